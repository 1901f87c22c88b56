//! A TraceQL subset, compiled to SQL over the `spans` table.
//!
//! Supported: spansets `{ ... }` joined by `&&` / `||` (a trace with a span matching each /
//! either), and inside a spanset comparisons joined by `&&`, `||` and parentheses. A
//! comparison is `field op literal` with `op` one of `= != > >= < <= =~ !~`. Fields:
//! `span.x`, `resource.x`, unscoped `.x` (span or resource), and the intrinsics `name`,
//! `status`, `statusMessage`, `kind`, `duration`. Literals: strings, integers, floats,
//! durations (`100ms`), `true`/`false`, statuses (`error`, `ok`, `unset`) and kinds
//! (`server`, `client`, ...). Regular expressions are fully anchored, as in Tempo.

use crate::traces::{parse_duration_ns, quote};

#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    Spanset(Option<Cond>),
    And(Box<Query>, Box<Query>),
    Or(Box<Query>, Box<Query>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Cmp(Field, Op, Lit),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Span(String),
    Resource(String),
    Any(String),
    Name,
    Status,
    StatusMessage,
    Kind,
    Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Re,
    NotRe,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Int(i64),
    Float(f64),
    DurationNs(i64),
    Bool(bool),
    /// A bare word: a status (`error`) or kind (`server`) name.
    Word(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    AndAnd,
    OrOr,
    Op(Op),
    Str(String),
    Num(String),
    Ident(String),
}

fn tokenize(q: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let two = |t: Tok, out: &mut Vec<Tok>, i: &mut usize| {
            out.push(t);
            *i += 2;
        };
        match c {
            c if c.is_whitespace() => i += 1,
            '{' => {
                out.push(Tok::LBrace);
                i += 1
            }
            '}' => {
                out.push(Tok::RBrace);
                i += 1
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            '&' if next == Some('&') => two(Tok::AndAnd, &mut out, &mut i),
            '|' if next == Some('|') => two(Tok::OrOr, &mut out, &mut i),
            '=' if next == Some('~') => two(Tok::Op(Op::Re), &mut out, &mut i),
            '!' if next == Some('~') => two(Tok::Op(Op::NotRe), &mut out, &mut i),
            '!' if next == Some('=') => two(Tok::Op(Op::Ne), &mut out, &mut i),
            '>' if next == Some('=') => two(Tok::Op(Op::Ge), &mut out, &mut i),
            '<' if next == Some('=') => two(Tok::Op(Op::Le), &mut out, &mut i),
            '=' => {
                out.push(Tok::Op(Op::Eq));
                i += 1
            }
            '>' => {
                out.push(Tok::Op(Op::Gt));
                i += 1
            }
            '<' => {
                out.push(Tok::Op(Op::Lt));
                i += 1
            }
            '"' | '`' => {
                let quote_char = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(format!("unterminated string starting at offset {}", i))
                        }
                        Some('\\') if quote_char == '"' => {
                            match chars.get(i + 1) {
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some(&e) => s.push(e),
                                None => return Err("unterminated string".into()),
                            }
                            i += 2;
                        }
                        Some(&ch) if ch == quote_char => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == 'µ')
                {
                    i += 1;
                }
                out.push(Tok::Num(chars[start..i].iter().collect()));
            }
            c if c.is_alphabetic() || c == '.' || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric()
                        || matches!(chars[i], '.' | '_' | '-' | '/' | ':'))
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character {other:?} at offset {i}")),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn expect(&mut self, want: Tok, what: &str) -> Result<(), String> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            Some(t) => Err(format!("expected {what}, found {}", show(&t))),
            None => Err(format!("expected {what}, found the end of the query")),
        }
    }

    fn query(&mut self) -> Result<Query, String> {
        let mut left = self.spanset_term()?;
        loop {
            match self.peek() {
                Some(Tok::AndAnd) => {
                    self.next();
                    left = Query::And(Box::new(left), Box::new(self.spanset_term()?));
                }
                Some(Tok::OrOr) => {
                    self.next();
                    left = Query::Or(Box::new(left), Box::new(self.spanset_term()?));
                }
                _ => return Ok(left),
            }
        }
    }

    fn spanset_term(&mut self) -> Result<Query, String> {
        match self.peek() {
            Some(Tok::LParen) => {
                self.next();
                let q = self.query()?;
                self.expect(Tok::RParen, "')'")?;
                Ok(q)
            }
            _ => {
                self.expect(Tok::LBrace, "'{' to start a spanset")?;
                if self.peek() == Some(&Tok::RBrace) {
                    self.next();
                    return Ok(Query::Spanset(None));
                }
                let c = self.or_cond()?;
                self.expect(Tok::RBrace, "'}' to close the spanset")?;
                Ok(Query::Spanset(Some(c)))
            }
        }
    }

    fn or_cond(&mut self) -> Result<Cond, String> {
        let mut left = self.and_cond()?;
        while self.peek() == Some(&Tok::OrOr) {
            self.next();
            left = Cond::Or(Box::new(left), Box::new(self.and_cond()?));
        }
        Ok(left)
    }

    fn and_cond(&mut self) -> Result<Cond, String> {
        let mut left = self.cmp()?;
        while self.peek() == Some(&Tok::AndAnd) {
            self.next();
            left = Cond::And(Box::new(left), Box::new(self.cmp()?));
        }
        Ok(left)
    }

    fn cmp(&mut self) -> Result<Cond, String> {
        if self.peek() == Some(&Tok::LParen) {
            self.next();
            let c = self.or_cond()?;
            self.expect(Tok::RParen, "')'")?;
            return Ok(c);
        }
        let field = match self.next() {
            Some(Tok::Ident(name)) => field(&name)?,
            Some(t) => {
                return Err(format!(
                    "expected an attribute or intrinsic, found {}",
                    show(&t)
                ))
            }
            None => {
                return Err("expected an attribute or intrinsic, found the end of the query".into())
            }
        };
        let op = match self.next() {
            Some(Tok::Op(op)) => op,
            Some(t) => {
                return Err(format!(
                "expected a comparison operator (= != > >= < <= =~ !~) after the field, found {}",
                show(&t)
            ))
            }
            None => return Err("expected a comparison operator, found the end of the query".into()),
        };
        let lit = match self.next() {
            Some(Tok::Str(s)) => Lit::Str(s),
            Some(Tok::Num(n)) => number(&n)?,
            Some(Tok::Ident(w)) => match w.as_str() {
                "true" => Lit::Bool(true),
                "false" => Lit::Bool(false),
                _ => Lit::Word(w),
            },
            Some(t) => return Err(format!("expected a value, found {}", show(&t))),
            None => return Err("expected a value, found the end of the query".into()),
        };
        Ok(Cond::Cmp(field, op, lit))
    }
}

fn show(t: &Tok) -> String {
    match t {
        Tok::LBrace => "'{'".into(),
        Tok::RBrace => "'}'".into(),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::AndAnd => "'&&'".into(),
        Tok::OrOr => "'||'".into(),
        Tok::Op(op) => format!("operator {op:?}"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Num(n) => format!("number {n}"),
        Tok::Ident(i) => format!("{i:?}"),
    }
}

fn field(name: &str) -> Result<Field, String> {
    let f = if let Some(k) = name.strip_prefix("span.") {
        Field::Span(k.into())
    } else if let Some(k) = name.strip_prefix("resource.") {
        Field::Resource(k.into())
    } else if let Some(k) = name.strip_prefix('.') {
        Field::Any(k.into())
    } else {
        match name {
            "name" | "span:name" => Field::Name,
            "status" | "span:status" => Field::Status,
            "statusMessage" | "span:statusMessage" => Field::StatusMessage,
            "kind" | "span:kind" => Field::Kind,
            "duration" | "span:duration" => Field::Duration,
            other => {
                return Err(format!(
                    "unknown field {other:?}: use span.<attr>, resource.<attr>, .<attr>, or one of name, status, statusMessage, kind, duration"
                ))
            }
        }
    };
    match &f {
        Field::Span(k) | Field::Resource(k) | Field::Any(k) if k.is_empty() => {
            Err(format!("attribute name missing in {name:?}"))
        }
        _ => Ok(f),
    }
}

fn number(n: &str) -> Result<Lit, String> {
    if let Ok(i) = n.parse::<i64>() {
        return Ok(Lit::Int(i));
    }
    if let Ok(f) = n.parse::<f64>() {
        return Ok(Lit::Float(f));
    }
    parse_duration_ns(n)
        .map(Lit::DurationNs)
        .map_err(|_| format!("invalid number or duration {n:?}"))
}

/// Parses a TraceQL query; errors name the offending token.
pub fn parse(q: &str) -> Result<Query, String> {
    let toks = tokenize(q).map_err(|e| format!("invalid TraceQL: {e}"))?;
    if toks.is_empty() {
        return Ok(Query::Spanset(None));
    }
    let mut p = Parser { toks, pos: 0 };
    let query = p.query().map_err(|e| format!("invalid TraceQL: {e}"))?;
    if let Some(t) = p.peek() {
        return Err(format!(
            "invalid TraceQL: unexpected {} after the end of the query (pipelines and aggregates are not supported)",
            show(t)
        ));
    }
    Ok(query)
}

fn sql_op(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "<>",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Re => "~",
        Op::NotRe => "!~",
    }
}

fn compare_text(expr: &str, op: Op, lit: &Lit) -> Result<String, String> {
    Ok(match (op, lit) {
        (Op::Re | Op::NotRe, Lit::Str(re)) => {
            regex::Regex::new(re).map_err(|e| format!("invalid regular expression {re:?}: {e}"))?;
            format!("{expr} {} {}", sql_op(op), quote(&format!("^(?:{re})$")))
        }
        (Op::Re | Op::NotRe, _) => return Err("=~ and !~ need a string regular expression".into()),
        (_, Lit::Str(s)) | (_, Lit::Word(s)) => format!("{expr} {} {}", sql_op(op), quote(s)),
        (_, Lit::Bool(b)) => format!("{expr} {} {}", sql_op(op), quote(&b.to_string())),
        (_, Lit::Int(i)) => format!("TRY_CAST({expr} AS DOUBLE) {} {i}", sql_op(op)),
        (_, Lit::Float(f)) => format!("TRY_CAST({expr} AS DOUBLE) {} {f:?}", sql_op(op)),
        (_, Lit::DurationNs(_)) => {
            return Err("a duration can only be compared with duration".into())
        }
    })
}

fn intrinsic_word(field: &str, lit: &Lit, map: WordMap) -> Result<String, String> {
    match lit {
        Lit::Word(w) | Lit::Str(w) => map(w)
            .map(quote)
            .ok_or_else(|| format!("unknown {field} value {w:?}")),
        other => Err(format!("{field} compares with a name, not {other:?}")),
    }
}

/// A TraceQL word (`error`, `server`) to the stored value.
type WordMap = fn(&str) -> Option<&'static str>;

fn status_of(w: &str) -> Option<&'static str> {
    Some(match w {
        "error" => "STATUS_CODE_ERROR",
        "ok" => "STATUS_CODE_OK",
        "unset" => "STATUS_CODE_UNSET",
        _ => return None,
    })
}

fn kind_of(w: &str) -> Option<&'static str> {
    Some(match w {
        "server" => "SPAN_KIND_SERVER",
        "client" => "SPAN_KIND_CLIENT",
        "producer" => "SPAN_KIND_PRODUCER",
        "consumer" => "SPAN_KIND_CONSUMER",
        "internal" => "SPAN_KIND_INTERNAL",
        "unspecified" => "SPAN_KIND_UNSPECIFIED",
        _ => return None,
    })
}

/// The SQL condition on one span for a spanset's condition.
pub fn cond_sql(c: &Cond) -> Result<String, String> {
    Ok(match c {
        Cond::And(a, b) => format!("({} AND {})", cond_sql(a)?, cond_sql(b)?),
        Cond::Or(a, b) => format!("({} OR {})", cond_sql(a)?, cond_sql(b)?),
        Cond::Cmp(field, op, lit) => match field {
            Field::Span(k) => compare_text(&format!("span_attributes[{}]", quote(k)), *op, lit)?,
            Field::Resource(k) => {
                if k == "service.name" {
                    compare_text("service_name", *op, lit)?
                } else {
                    compare_text(&format!("resource_attributes[{}]", quote(k)), *op, lit)?
                }
            }
            Field::Any(k) => format!(
                "({} OR {})",
                compare_text(&format!("span_attributes[{}]", quote(k)), *op, lit)?,
                compare_text(&format!("resource_attributes[{}]", quote(k)), *op, lit)?
            ),
            Field::Name => compare_text("span_name", *op, lit)?,
            Field::StatusMessage => compare_text("status_message", *op, lit)?,
            Field::Status | Field::Kind => {
                let (name, col, map): (&str, &str, WordMap) = if *field == Field::Status {
                    ("status", "status_code", status_of)
                } else {
                    ("kind", "span_kind", kind_of)
                };
                if !matches!(op, Op::Eq | Op::Ne) {
                    return Err(format!("{name} supports only = and !="));
                }
                format!("{col} {} {}", sql_op(*op), intrinsic_word(name, lit, map)?)
            }
            Field::Duration => {
                let ns = match lit {
                    Lit::DurationNs(ns) => *ns,
                    other => {
                        return Err(format!(
                            "duration compares with a duration like 100ms, not {other:?}"
                        ))
                    }
                };
                if matches!(op, Op::Re | Op::NotRe) {
                    return Err("duration does not support regular expressions".into());
                }
                format!("duration_ms {} {:?}", sql_op(*op), ns as f64 / 1e6)
            }
        },
    })
}

/// A span-level SQL condition true for spans matching any spanset of the query.
pub fn any_span_sql(q: &Query) -> Result<String, String> {
    Ok(match q {
        Query::Spanset(None) => "TRUE".into(),
        Query::Spanset(Some(c)) => cond_sql(c)?,
        Query::And(a, b) | Query::Or(a, b) => {
            format!("({} OR {})", any_span_sql(a)?, any_span_sql(b)?)
        }
    })
}

/// A trace-level SQL condition (for HAVING) when the query joins several spansets; `None`
/// for a single spanset, whose span condition alone decides.
pub fn trace_sql(q: &Query) -> Result<Option<String>, String> {
    fn go(q: &Query) -> Result<String, String> {
        Ok(match q {
            Query::Spanset(_) => format!("bool_or({})", any_span_sql(q)?),
            Query::And(a, b) => format!("({} AND {})", go(a)?, go(b)?),
            Query::Or(a, b) => format!("({} OR {})", go(a)?, go(b)?),
        })
    }
    match q {
        Query::Spanset(_) => Ok(None),
        _ => go(q).map(Some),
    }
}

/// The attribute keys a query mentions, as (scope, key), for the spans Tempo lists.
pub fn mentioned(q: &Query, out: &mut Vec<Field>) {
    fn cond(c: &Cond, out: &mut Vec<Field>) {
        match c {
            Cond::And(a, b) | Cond::Or(a, b) => {
                cond(a, out);
                cond(b, out);
            }
            Cond::Cmp(f, _, _) => {
                if !out.contains(f) {
                    out.push(f.clone())
                }
            }
        }
    }
    match q {
        Query::Spanset(Some(c)) => cond(c, out),
        Query::Spanset(None) => {}
        Query::And(a, b) | Query::Or(a, b) => {
            mentioned(a, out);
            mentioned(b, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(q: &str) -> String {
        match parse(q).and_then(|p| any_span_sql(&p)) {
            Ok(s) => s,
            Err(e) => panic!("{q}: {e}"),
        }
    }

    #[test]
    fn compiles_the_grafana_builder_subset() {
        assert_eq!(
            sql(r#"{ resource.service.name = "x" && span.http.status_code >= 500 && duration > 100ms }"#),
            "((service_name = 'x' AND TRY_CAST(span_attributes['http.status_code'] AS DOUBLE) >= 500) AND duration_ms > 100.0)"
        );
        assert_eq!(
            sql("{ status = error }"),
            "status_code = 'STATUS_CODE_ERROR'"
        );
        assert_eq!(sql("{ kind = server }"), "span_kind = 'SPAN_KIND_SERVER'");
        assert_eq!(sql(r#"{ name =~ "GET.*" }"#), "span_name ~ '^(?:GET.*)$'");
        assert_eq!(
            sql(r#"{ .k = "v" }"#),
            "(span_attributes['k'] = 'v' OR resource_attributes['k'] = 'v')"
        );
        assert_eq!(sql("{}"), "TRUE");
        let q = parse(r#"{ name = "a" } && { name = "b" }"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            trace_sql(&q),
            Ok(Some(
                "(bool_or(span_name = 'a') AND bool_or(span_name = 'b'))".into()
            ))
        );
    }

    #[test]
    fn errors_name_the_problem() {
        for (q, word) in [
            ("{ span.x = }", "value"),
            ("{ span.x 5 }", "operator"),
            ("{ status = bogus }", "status"),
            ("{ duration > 5 }", "duration"),
            ("{ name = \"a\"", "'}'"),
            ("{ name =~ \"(\" }", "regular expression"),
            ("{ foo = 1 }", "unknown field"),
            ("{ name = \"a\" } | count() > 2", "unexpected"),
        ] {
            match parse(q).and_then(|p| any_span_sql(&p)) {
                Ok(s) => panic!("{q} accepted as {s}"),
                Err(e) => assert!(e.contains(word), "{q}: {e}"),
            }
        }
    }
}
