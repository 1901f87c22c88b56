//! Parses an OTTL condition into a [`BoolExpr`], resolving paths for one context (span,
//! span event or log record) so that unknown paths are configuration errors.

use super::lexer::{lex, CmpOp, Spanned, Tok};
use super::paths::{enum_value, resolve};
use regex::Regex;

/// Which OTTL context a condition is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextKind {
    Resource,
    Span,
    SpanEvent,
    Log,
}

/// An index into a map (`["key"]`) or a list (`[0]`).
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Str(String),
    Int(i64),
}

/// A resolved path.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    SpanName,
    SpanKind,
    StatusCode,
    StatusMessage,
    SpanAttrs(Vec<Key>),
    TraceId { string: bool },
    SpanId { string: bool },
    ParentSpanId { string: bool },
    TraceState(Option<String>),
    StartTime,
    EndTime,
    SpanDropped(u8),
    ResourceAttrs(Vec<Key>),
    ScopeName,
    ScopeVersion,
    ScopeAttrs(Vec<Key>),
    EventName,
    EventTime,
    EventAttrs(Vec<Key>),
    EventDroppedAttrs,
    LogBody(Vec<Key>),
    LogSeverityNumber,
    LogSeverityText,
    LogAttrs(Vec<Key>),
    LogTime,
    LogObservedTime,
    LogTraceId { string: bool },
    LogSpanId { string: bool },
    LogFlags,
    LogEventName,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// A value expression.
#[derive(Debug, Clone)]
pub enum ValueExpr {
    Lit(Lit),
    Path(Field),
    Func(Box<Func>),
}

/// The supported functions (all converters returning booleans).
#[derive(Debug, Clone)]
pub enum Func {
    IsMatch(ValueExpr, Regex),
    IsRootSpan,
    IsString(ValueExpr),
    IsInt(ValueExpr),
    IsDouble(ValueExpr),
    IsBool(ValueExpr),
    IsMap(ValueExpr),
    IsList(ValueExpr),
}

/// A boolean expression.
#[derive(Debug, Clone)]
pub enum BoolExpr {
    Or(Vec<BoolExpr>),
    And(Vec<BoolExpr>),
    Not(Box<BoolExpr>),
    Cmp(ValueExpr, CmpOp, ValueExpr),
    Const(bool),
    Func(Box<Func>),
}

/// Parses `src` as a condition in context `ctx`.
pub fn parse(src: &str, ctx: ContextKind) -> Result<BoolExpr, String> {
    let toks = lex(src)?;
    let mut p = Parser { toks, pos: 0, ctx };
    let e = p.or_expr()?;
    if let Some((t, at)) = p.toks.get(p.pos) {
        return Err(format!("unexpected token `{t}` at column {}", at + 1));
    }
    Ok(e)
}

struct Parser {
    toks: Vec<Spanned>,
    pos: usize,
    ctx: ContextKind,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }

    fn next(&mut self) -> Result<Spanned, String> {
        let t = self
            .toks
            .get(self.pos)
            .cloned()
            .ok_or_else(|| "unexpected end of condition".to_string())?;
        self.pos += 1;
        Ok(t)
    }

    fn expect(&mut self, want: Tok) -> Result<(), String> {
        let (t, at) = self.next()?;
        if t == want {
            Ok(())
        } else {
            Err(format!(
                "expected `{want}` but found `{t}` at column {}",
                at + 1
            ))
        }
    }

    fn or_expr(&mut self) -> Result<BoolExpr, String> {
        let mut terms = vec![self.and_expr()?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            terms.push(self.and_expr()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            BoolExpr::Or(terms)
        })
    }

    fn and_expr(&mut self) -> Result<BoolExpr, String> {
        let mut terms = vec![self.bool_value()?];
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            terms.push(self.bool_value()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            BoolExpr::And(terms)
        })
    }

    fn bool_value(&mut self) -> Result<BoolExpr, String> {
        if self.peek() == Some(&Tok::Not) {
            self.pos += 1;
            return Ok(BoolExpr::Not(Box::new(self.bool_value()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.or_expr()?;
            self.expect(Tok::RParen)?;
            return Ok(e);
        }
        let at = self.toks.get(self.pos).map_or(0, |t| t.1);
        let left = self.value()?;
        if let Some(Tok::Cmp(op)) = self.peek() {
            let op = *op;
            self.pos += 1;
            let right = self.value()?;
            return Ok(BoolExpr::Cmp(left, op, right));
        }
        match left {
            ValueExpr::Lit(Lit::Bool(b)) => Ok(BoolExpr::Const(b)),
            ValueExpr::Func(f) => Ok(BoolExpr::Func(f)),
            _ => Err(format!(
                "expression at column {} is not a comparison or a boolean",
                at + 1
            )),
        }
    }

    fn value(&mut self) -> Result<ValueExpr, String> {
        let (t, at) = self.next()?;
        Ok(match t {
            Tok::Nil => ValueExpr::Lit(Lit::Nil),
            Tok::True => ValueExpr::Lit(Lit::Bool(true)),
            Tok::False => ValueExpr::Lit(Lit::Bool(false)),
            Tok::Int(i) => ValueExpr::Lit(Lit::Int(i)),
            Tok::Float(f) => ValueExpr::Lit(Lit::Float(f)),
            Tok::Str(s) => ValueExpr::Lit(Lit::Str(s)),
            Tok::Ident(name) if self.peek() == Some(&Tok::LParen) => {
                ValueExpr::Func(Box::new(self.func(&name, at)?))
            }
            Tok::Ident(name) if name.starts_with(|c: char| c.is_ascii_uppercase()) => {
                ValueExpr::Lit(Lit::Int(enum_value(&name, self.ctx).ok_or_else(|| {
                    format!("unknown enum `{name}` at column {}", at + 1)
                })?))
            }
            Tok::Ident(name) => ValueExpr::Path(self.path(name, at)?),
            other => return Err(format!("unsupported token `{other}` at column {}", at + 1)),
        })
    }

    fn func(&mut self, name: &str, at: usize) -> Result<Func, String> {
        self.expect(Tok::LParen)?;
        let mut args = Vec::new();
        if self.peek() != Some(&Tok::RParen) {
            loop {
                args.push(self.value()?);
                if self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        self.expect(Tok::RParen)?;
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "function `{name}` at column {} takes {n} argument(s), got {}",
                    at + 1,
                    args.len()
                ))
            }
        };
        let one = |args: &mut Vec<ValueExpr>| args.remove(0);
        Ok(match name {
            "IsMatch" => {
                arity(2)?;
                let pattern = match args.pop() {
                    Some(ValueExpr::Lit(Lit::Str(p))) => p,
                    _ => {
                        return Err(format!(
                            "IsMatch at column {}: the pattern must be a string literal",
                            at + 1
                        ))
                    }
                };
                let re = Regex::new(&pattern)
                    .map_err(|e| format!("IsMatch at column {}: invalid regex: {e}", at + 1))?;
                Func::IsMatch(one(&mut args), re)
            }
            "IsRootSpan" if self.ctx == ContextKind::Span => {
                arity(0)?;
                Func::IsRootSpan
            }
            "IsString" | "IsInt" | "IsDouble" | "IsBool" | "IsMap" | "IsList" => {
                arity(1)?;
                let v = one(&mut args);
                match name {
                    "IsString" => Func::IsString(v),
                    "IsInt" => Func::IsInt(v),
                    "IsDouble" => Func::IsDouble(v),
                    "IsBool" => Func::IsBool(v),
                    "IsMap" => Func::IsMap(v),
                    _ => Func::IsList(v),
                }
            }
            other => {
                return Err(format!(
                    "unsupported function `{other}` at column {}",
                    at + 1
                ))
            }
        })
    }

    fn keys(&mut self) -> Result<Vec<Key>, String> {
        let mut keys = Vec::new();
        while self.peek() == Some(&Tok::LBracket) {
            self.pos += 1;
            let (t, at) = self.next()?;
            keys.push(match t {
                Tok::Str(s) => Key::Str(s),
                Tok::Int(i) => Key::Int(i),
                other => return Err(format!("unsupported key `{other}` at column {}", at + 1)),
            });
            self.expect(Tok::RBracket)?;
        }
        Ok(keys)
    }

    fn path(&mut self, first: String, at: usize) -> Result<Field, String> {
        let mut segs = vec![first];
        while self.peek() == Some(&Tok::Dot) {
            self.pos += 1;
            match self.next()? {
                (Tok::Ident(s), _) => segs.push(s),
                (t, at) => return Err(format!("unsupported token `{t}` at column {}", at + 1)),
            }
        }
        let keys = self.keys()?;
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let unknown = || format!("unknown path `{}` at column {}", segs.join("."), at + 1);
        resolve(&segs, keys, self.ctx).ok_or_else(unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_precedence_and_paths() {
        let e = parse(
            r#"name == "a" or kind == SPAN_KIND_SERVER and not attributes["x"] != nil"#,
            ContextKind::Span,
        )
        .unwrap();
        let BoolExpr::Or(terms) = e else {
            panic!("{e:?}")
        };
        assert!(matches!(terms[1], BoolExpr::And(_)));
        let e = parse(
            r#"IsMatch(resource.attributes["service.name"], "^api-")"#,
            ContextKind::Span,
        )
        .unwrap();
        assert!(matches!(e, BoolExpr::Func(_)));
        assert!(parse("span.status.code == STATUS_CODE_ERROR", ContextKind::Span).is_ok());
        assert!(parse(
            "span.name == \"x\" and name == \"e\"",
            ContextKind::SpanEvent
        )
        .is_ok());
        assert!(parse("severity_number >= SEVERITY_NUMBER_WARN", ContextKind::Log).is_ok());
    }

    #[test]
    fn errors_name_the_token() {
        assert!(parse("duration > 5", ContextKind::Span)
            .unwrap_err()
            .contains("unknown path `duration`"));
        assert!(parse("name == 1 + 2", ContextKind::Span)
            .unwrap_err()
            .contains("`+`"));
        assert!(parse("Concat(name) == \"x\"", ContextKind::Span)
            .unwrap_err()
            .contains("unsupported function `Concat`"));
        assert!(parse("kind == SPAN_KIND_BOGUS", ContextKind::Span)
            .unwrap_err()
            .contains("SPAN_KIND_BOGUS"));
        assert!(parse("name", ContextKind::Span)
            .unwrap_err()
            .contains("not a comparison"));
        assert!(parse("(name == \"a\"", ContextKind::Span).is_err());
        assert!(parse("IsRootSpan()", ContextKind::SpanEvent).is_err());
    }
}
