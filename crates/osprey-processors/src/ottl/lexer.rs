//! Tokens of the OTTL condition subset.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A lower- or upper-case identifier: a path segment, an enum or a function name.
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    LBracket,
    RBracket,
    LParen,
    RParen,
    Dot,
    Comma,
    Cmp(CmpOp),
    And,
    Or,
    Not,
    True,
    False,
    Nil,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "{s}"),
            Tok::Str(s) => write!(f, "{s:?}"),
            Tok::Int(i) => write!(f, "{i}"),
            Tok::Float(x) => write!(f, "{x}"),
            Tok::LBracket => f.write_str("["),
            Tok::RBracket => f.write_str("]"),
            Tok::LParen => f.write_str("("),
            Tok::RParen => f.write_str(")"),
            Tok::Dot => f.write_str("."),
            Tok::Comma => f.write_str(","),
            Tok::Cmp(op) => f.write_str(match op {
                CmpOp::Eq => "==",
                CmpOp::Ne => "!=",
                CmpOp::Lt => "<",
                CmpOp::Le => "<=",
                CmpOp::Gt => ">",
                CmpOp::Ge => ">=",
            }),
            Tok::And => f.write_str("and"),
            Tok::Or => f.write_str("or"),
            Tok::Not => f.write_str("not"),
            Tok::True => f.write_str("true"),
            Tok::False => f.write_str("false"),
            Tok::Nil => f.write_str("nil"),
        }
    }
}

/// A token and the byte offset where it starts.
pub type Spanned = (Tok, usize);

/// Splits `src` into tokens; the error names the offending text and its column (1-based).
pub fn lex(src: &str) -> Result<Vec<Spanned>, String> {
    let bytes = src.as_bytes();
    let mut out: Vec<Spanned> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'[' => out.push((Tok::LBracket, start)),
            b']' => out.push((Tok::RBracket, start)),
            b'(' => out.push((Tok::LParen, start)),
            b')' => out.push((Tok::RParen, start)),
            b'.' => out.push((Tok::Dot, start)),
            b',' => out.push((Tok::Comma, start)),
            b'=' | b'!' | b'<' | b'>' => {
                let next = bytes.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    (b'=', Some(b'=')) => (CmpOp::Eq, 2),
                    (b'!', Some(b'=')) => (CmpOp::Ne, 2),
                    (b'<', Some(b'=')) => (CmpOp::Le, 2),
                    (b'>', Some(b'=')) => (CmpOp::Ge, 2),
                    (b'<', _) => (CmpOp::Lt, 1),
                    (b'>', _) => (CmpOp::Gt, 1),
                    _ => return Err(unsupported(src, start, 1)),
                };
                out.push((Tok::Cmp(op), start));
                i += len;
                continue;
            }
            b'"' => {
                let (s, len) = lex_string(&src[i..])
                    .ok_or_else(|| format!("unterminated string at column {}", start + 1))?;
                out.push((Tok::Str(s), start));
                i += len;
                continue;
            }
            b'-' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) && !ends_value(out.last()) => {
                let (t, len) = lex_number(&src[i..]).ok_or_else(|| unsupported(src, start, 1))?;
                out.push((t, start));
                i += len;
                continue;
            }
            c if c.is_ascii_digit() => {
                if c == b'0' && matches!(bytes.get(i + 1), Some(b'x' | b'X')) {
                    return Err(unsupported(src, start, 2));
                }
                let (t, len) = lex_number(&src[i..]).ok_or_else(|| unsupported(src, start, 1))?;
                out.push((t, start));
                i += len;
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let len = src[i..]
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                    .unwrap_or(src.len() - i);
                let word = &src[i..i + len];
                let t = match word {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "true" => Tok::True,
                    "false" => Tok::False,
                    "nil" => Tok::Nil,
                    w => Tok::Ident(w.to_string()),
                };
                out.push((t, start));
                i += len;
                continue;
            }
            _ => return Err(unsupported(src, start, 1)),
        }
        i += 1;
    }
    Ok(out)
}

fn ends_value(t: Option<&Spanned>) -> bool {
    matches!(
        t.map(|t| &t.0),
        Some(
            Tok::Ident(_)
                | Tok::Str(_)
                | Tok::Int(_)
                | Tok::Float(_)
                | Tok::RBracket
                | Tok::RParen
                | Tok::True
                | Tok::False
                | Tok::Nil
        )
    )
}

fn unsupported(src: &str, at: usize, len: usize) -> String {
    let end = (at + len).min(src.len());
    let text = src.get(at..end).unwrap_or("?");
    format!("unsupported token `{text}` at column {}", at + 1)
}

fn lex_string(s: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\\' => {
                let (_, e) = chars.next()?;
                out.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    other => other,
                });
            }
            c => out.push(c),
        }
    }
    None
}

fn lex_number(s: &str) -> Option<(Tok, usize)> {
    let body_start = usize::from(s.starts_with('-'));
    let len = s[body_start..]
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or(s.len(), |n| n + body_start);
    let text = &s[..len];
    if text.contains('.') {
        text.parse::<f64>().ok().map(|f| (Tok::Float(f), len))
    } else {
        text.parse::<i64>().ok().map(|n| (Tok::Int(n), len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let t: Vec<Tok> = lex(r#"attributes["k"] >= -1.5 and not IsMatch(name, "a\"b")"#)
            .unwrap()
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert_eq!(t[0], Tok::Ident("attributes".into()));
        assert_eq!(t[2], Tok::Str("k".into()));
        assert_eq!(t[4], Tok::Cmp(CmpOp::Ge));
        assert_eq!(t[5], Tok::Float(-1.5));
        assert_eq!(t[6], Tok::And);
        assert_eq!(t[12], Tok::Str("a\"b".into()));
        assert!(lex("a + 1").unwrap_err().contains("`+`"));
    }
}
