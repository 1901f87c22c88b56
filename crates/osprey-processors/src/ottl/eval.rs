//! Evaluates parsed conditions against a span, span event or log record, with OTTL's
//! comparison rules: `nil` equals only `nil`; ints and doubles compare numerically; strings
//! compare lexically; booleans support only `==`/`!=`; values of different types are never
//! equal (and `<`-style comparisons between them are false).

use super::lexer::CmpOp;
use super::parser::{BoolExpr, Field, Func, Key, Lit, ValueExpr};
use crate::attrs;
use osprey_model::otlp::common::v1::{
    any_value::Value, AnyValue, InstrumentationScope, KeyValue, KeyValueList,
};
use osprey_model::otlp::logs::v1::LogRecord;
use osprey_model::otlp::trace::v1::{span::Event, Span};
use std::borrow::Cow;
use std::cmp::Ordering;

/// A value during evaluation.
#[derive(Debug, Clone)]
pub enum Val<'a> {
    Nil,
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Bytes(&'a [u8]),
    Map(&'a [KeyValue]),
    List(&'a [AnyValue]),
}

impl<'a> Val<'a> {
    pub fn from_any(v: &'a AnyValue) -> Val<'a> {
        match &v.value {
            None => Val::Nil,
            Some(Value::StringValue(s)) => Val::Str(Cow::Borrowed(s)),
            Some(Value::BoolValue(b)) => Val::Bool(*b),
            Some(Value::IntValue(i)) => Val::Int(*i),
            Some(Value::StringValueStrindex(i)) => Val::Int(i64::from(*i)),
            Some(Value::DoubleValue(d)) => Val::Float(*d),
            Some(Value::BytesValue(b)) => Val::Bytes(b),
            Some(Value::ArrayValue(a)) => Val::List(&a.values),
            Some(Value::KvlistValue(m)) => Val::Map(&m.values),
        }
    }

    fn index(self, keys: &[Key]) -> Val<'a> {
        let mut cur = self;
        for k in keys {
            cur = match (cur, k) {
                (Val::Map(m), Key::Str(s)) => attrs::get(m, s).map_or(Val::Nil, Val::from_any),
                (Val::List(l), Key::Int(i)) => usize::try_from(*i)
                    .ok()
                    .and_then(|i| l.get(i))
                    .map_or(Val::Nil, Val::from_any),
                _ => Val::Nil,
            };
        }
        cur
    }

    /// The text form OTTL's string-like getters give a value (`None` for nil).
    fn string_like(&self) -> Option<String> {
        Some(match self {
            Val::Nil => return None,
            Val::Str(s) => s.to_string(),
            Val::Int(i) => i.to_string(),
            Val::Float(f) => format!("{f}"),
            Val::Bool(b) => b.to_string(),
            Val::Bytes(b) => hex::encode(b),
            Val::Map(m) => attrs::as_string(&AnyValue {
                value: Some(Value::KvlistValue(KeyValueList { values: m.to_vec() })),
            }),
            Val::List(l) => attrs::as_string(&AnyValue {
                value: Some(Value::ArrayValue(
                    osprey_model::otlp::common::v1::ArrayValue { values: l.to_vec() },
                )),
            }),
        })
    }
}

/// What a condition reads its paths from.
pub trait Resolve {
    fn get(&self, f: &Field) -> Val<'_>;
    fn is_root_span(&self) -> bool {
        false
    }
}

fn map_val<'a>(m: &'a [KeyValue], keys: &[Key]) -> Val<'a> {
    Val::Map(m).index(keys)
}

fn id_val(id: &[u8], string: bool) -> Val<'_> {
    if string {
        Val::Str(Cow::Owned(hex::encode(id)))
    } else {
        Val::Bytes(id)
    }
}

/// A resource (`ottlresource`).
pub struct ResourceCtx<'a> {
    pub resource: &'a [KeyValue],
}

impl Resolve for ResourceCtx<'_> {
    fn get(&self, f: &Field) -> Val<'_> {
        match f {
            Field::ResourceAttrs(k) => map_val(self.resource, k),
            _ => Val::Nil,
        }
    }
}

/// A span with its resource and scope (OTTL's `ottlspan` context).
pub struct SpanCtx<'a> {
    pub resource: &'a [KeyValue],
    pub scope: Option<&'a InstrumentationScope>,
    pub span: &'a Span,
}

impl SpanCtx<'_> {
    fn common(&self, f: &Field) -> Option<Val<'_>> {
        Some(match f {
            Field::ResourceAttrs(k) => map_val(self.resource, k),
            Field::ScopeName => Val::Str(Cow::Borrowed(self.scope.map_or("", |s| s.name.as_str()))),
            Field::ScopeVersion => {
                Val::Str(Cow::Borrowed(self.scope.map_or("", |s| s.version.as_str())))
            }
            Field::ScopeAttrs(k) => map_val(
                self.scope
                    .map(|s| s.attributes.as_slice())
                    .unwrap_or_default(),
                k,
            ),
            _ => return None,
        })
    }
}

impl Resolve for SpanCtx<'_> {
    fn get(&self, f: &Field) -> Val<'_> {
        if let Some(v) = self.common(f) {
            return v;
        }
        let s = self.span;
        match f {
            Field::SpanName => Val::Str(Cow::Borrowed(&s.name)),
            Field::SpanKind => Val::Int(i64::from(s.kind)),
            Field::StatusCode => Val::Int(s.status.as_ref().map_or(0, |st| i64::from(st.code))),
            Field::StatusMessage => Val::Str(Cow::Borrowed(
                s.status.as_ref().map_or("", |st| st.message.as_str()),
            )),
            Field::SpanAttrs(k) => map_val(&s.attributes, k),
            Field::TraceId { string } => id_val(&s.trace_id, *string),
            Field::SpanId { string } => id_val(&s.span_id, *string),
            Field::ParentSpanId { string } => id_val(&s.parent_span_id, *string),
            Field::TraceState(None) => Val::Str(Cow::Borrowed(&s.trace_state)),
            Field::TraceState(Some(key)) => s
                .trace_state
                .split(',')
                .filter_map(|m| m.trim().split_once('='))
                .find(|(k, _)| k == key)
                .map_or(Val::Nil, |(_, v)| Val::Str(Cow::Borrowed(v))),
            Field::StartTime => Val::Int(s.start_time_unix_nano as i64),
            Field::EndTime => Val::Int(s.end_time_unix_nano as i64),
            Field::SpanDropped(0) => Val::Int(i64::from(s.dropped_attributes_count)),
            Field::SpanDropped(1) => Val::Int(i64::from(s.dropped_events_count)),
            Field::SpanDropped(_) => Val::Int(i64::from(s.dropped_links_count)),
            _ => Val::Nil,
        }
    }

    fn is_root_span(&self) -> bool {
        self.span.parent_span_id.iter().all(|b| *b == 0)
    }
}

/// A span event with its span, resource and scope (`ottlspanevent`).
pub struct EventCtx<'a> {
    pub span: SpanCtx<'a>,
    pub event: &'a Event,
}

impl Resolve for EventCtx<'_> {
    fn get(&self, f: &Field) -> Val<'_> {
        match f {
            Field::EventName => Val::Str(Cow::Borrowed(&self.event.name)),
            Field::EventTime => Val::Int(self.event.time_unix_nano as i64),
            Field::EventAttrs(k) => map_val(&self.event.attributes, k),
            Field::EventDroppedAttrs => Val::Int(i64::from(self.event.dropped_attributes_count)),
            other => self.span.get(other),
        }
    }
}

/// A log record with its resource and scope (`ottllog`).
pub struct LogCtx<'a> {
    pub resource: &'a [KeyValue],
    pub scope: Option<&'a InstrumentationScope>,
    pub log: &'a LogRecord,
}

impl Resolve for LogCtx<'_> {
    fn get(&self, f: &Field) -> Val<'_> {
        let l = self.log;
        match f {
            Field::ResourceAttrs(k) => map_val(self.resource, k),
            Field::ScopeName => Val::Str(Cow::Borrowed(self.scope.map_or("", |s| s.name.as_str()))),
            Field::ScopeVersion => {
                Val::Str(Cow::Borrowed(self.scope.map_or("", |s| s.version.as_str())))
            }
            Field::ScopeAttrs(k) => map_val(
                self.scope
                    .map(|s| s.attributes.as_slice())
                    .unwrap_or_default(),
                k,
            ),
            Field::LogBody(k) => l
                .body
                .as_ref()
                .map_or(Val::Nil, |b| Val::from_any(b).index(k)),
            Field::LogSeverityNumber => Val::Int(i64::from(l.severity_number)),
            Field::LogSeverityText => Val::Str(Cow::Borrowed(&l.severity_text)),
            Field::LogAttrs(k) => map_val(&l.attributes, k),
            Field::LogTime => Val::Int(l.time_unix_nano as i64),
            Field::LogObservedTime => Val::Int(l.observed_time_unix_nano as i64),
            Field::LogTraceId { string } => id_val(&l.trace_id, *string),
            Field::LogSpanId { string } => id_val(&l.span_id, *string),
            Field::LogFlags => Val::Int(i64::from(l.flags)),
            Field::LogEventName => Val::Str(Cow::Borrowed(&l.event_name)),
            _ => Val::Nil,
        }
    }
}

fn value<'a>(e: &'a ValueExpr, r: &'a dyn Resolve) -> Result<Val<'a>, String> {
    Ok(match e {
        ValueExpr::Lit(Lit::Nil) => Val::Nil,
        ValueExpr::Lit(Lit::Bool(b)) => Val::Bool(*b),
        ValueExpr::Lit(Lit::Int(i)) => Val::Int(*i),
        ValueExpr::Lit(Lit::Float(f)) => Val::Float(*f),
        ValueExpr::Lit(Lit::Str(s)) => Val::Str(Cow::Borrowed(s)),
        ValueExpr::Path(f) => r.get(f),
        ValueExpr::Func(f) => Val::Bool(call(f, r)?),
    })
}

fn call(f: &Func, r: &dyn Resolve) -> Result<bool, String> {
    Ok(match f {
        Func::IsMatch(target, re) => value(target, r)?
            .string_like()
            .is_some_and(|s| re.is_match(&s)),
        Func::IsRootSpan => r.is_root_span(),
        Func::IsString(v) => matches!(value(v, r)?, Val::Str(_)),
        Func::IsInt(v) => matches!(value(v, r)?, Val::Int(_)),
        Func::IsDouble(v) => matches!(value(v, r)?, Val::Float(_)),
        Func::IsBool(v) => matches!(value(v, r)?, Val::Bool(_)),
        Func::IsMap(v) => matches!(value(v, r)?, Val::Map(_)),
        Func::IsList(v) => matches!(value(v, r)?, Val::List(_)),
    })
}

/// OTTL's comparison of two values.
pub fn compare(a: &Val, op: CmpOp, b: &Val) -> bool {
    let ord: Option<Ordering> = match (a, b) {
        (Val::Nil, Val::Nil) => Some(Ordering::Equal),
        (Val::Nil, _) | (_, Val::Nil) => None,
        (Val::Str(x), Val::Str(y)) => Some(x.as_ref().cmp(y.as_ref())),
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::Int(x), Val::Float(y)) => (*x as f64).partial_cmp(y),
        (Val::Float(x), Val::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Val::Float(x), Val::Float(y)) => x.partial_cmp(y),
        (Val::Bytes(x), Val::Bytes(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => {
            return match op {
                CmpOp::Eq => x == y,
                CmpOp::Ne => x != y,
                _ => false,
            }
        }
        (Val::Map(x), Val::Map(y)) => return eq_only(op, x == y),
        (Val::List(x), Val::List(y)) => return eq_only(op, x == y),
        _ => None,
    };
    match ord {
        None => op == CmpOp::Ne,
        Some(o) => match op {
            CmpOp::Eq => o == Ordering::Equal,
            CmpOp::Ne => o != Ordering::Equal,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Le => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::Ge => o != Ordering::Less,
        },
    }
}

fn eq_only(op: CmpOp, equal: bool) -> bool {
    match op {
        CmpOp::Eq => equal,
        CmpOp::Ne => !equal,
        _ => false,
    }
}

/// Evaluates a boolean expression.
pub fn eval(e: &BoolExpr, r: &dyn Resolve) -> Result<bool, String> {
    Ok(match e {
        BoolExpr::Or(terms) => {
            for t in terms {
                if eval(t, r)? {
                    return Ok(true);
                }
            }
            false
        }
        BoolExpr::And(terms) => {
            for t in terms {
                if !eval(t, r)? {
                    return Ok(false);
                }
            }
            true
        }
        BoolExpr::Not(inner) => !eval(inner, r)?,
        BoolExpr::Const(b) => *b,
        BoolExpr::Func(f) => call(f, r)?,
        BoolExpr::Cmp(a, op, b) => compare(&value(a, r)?, *op, &value(b, r)?),
    })
}
