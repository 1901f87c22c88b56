//! The Jaeger span model shared by the Thrift and Protobuf decoders: both wire formats decode
//! into these types, and [`super::translate`] turns them into OTLP. Ids are unsigned, times
//! are nanoseconds since the epoch (Thrift's microseconds already scaled).

/// A tag's typed value. `Unknown` keeps the text upstream writes for an unknown type code.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    Long(i64),
    Double(f64),
    Binary(Vec<u8>),
    /// An unknown `vType`; the string is what the attribute becomes.
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    pub key: String,
    pub value: Value,
}

impl Tag {
    /// Go's `GetVStr()`: the string value, or "" for other types.
    pub fn str_value(&self) -> &str {
        match &self.value {
            Value::Str(s) => s,
            _ => "",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefType {
    ChildOf,
    FollowsFrom,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanRef {
    pub ref_type: RefType,
    pub trace_id_high: u64,
    pub trace_id_low: u64,
    pub span_id: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    pub timestamp_ns: u64,
    pub fields: Vec<Tag>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Process {
    pub service_name: String,
    /// `None` when the field was absent (upstream distinguishes nil from empty).
    pub tags: Option<Vec<Tag>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Span {
    pub trace_id_high: u64,
    pub trace_id_low: u64,
    pub span_id: u64,
    /// Thrift's explicit parent; Protobuf spans carry their parent as a reference only.
    pub parent_span_id: u64,
    pub operation_name: String,
    pub references: Vec<SpanRef>,
    pub flags: u32,
    pub start_time_ns: u64,
    pub end_time_ns: u64,
    pub tags: Vec<Tag>,
    pub logs: Vec<Log>,
    /// Protobuf only: a per-span process that overrides the batch's.
    pub process: Option<Process>,
}

impl Span {
    /// A span with every field at its zero value, which upstream skips.
    pub fn is_blank(&self) -> bool {
        *self == Span::default()
    }

    /// The parent: the explicit parent id if set, else the first CHILD_OF reference into the
    /// same trace, else the first FOLLOWS_FROM reference into the same trace (Jaeger's
    /// `Span.ParentSpanID`).
    pub fn parent(&self) -> u64 {
        if self.parent_span_id != 0 {
            return self.parent_span_id;
        }
        let same_trace = |r: &&SpanRef| {
            r.trace_id_high == self.trace_id_high && r.trace_id_low == self.trace_id_low
        };
        let mut follows = None;
        for r in self.references.iter().filter(same_trace) {
            match r.ref_type {
                RefType::ChildOf => return r.span_id,
                RefType::FollowsFrom => {
                    follows.get_or_insert(r.span_id);
                }
            }
        }
        follows.unwrap_or(0)
    }
}

/// One batch as a client sent it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub process: Option<Process>,
    pub spans: Vec<Span>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(ref_type: RefType, low: u64, span_id: u64) -> SpanRef {
        SpanRef {
            ref_type,
            trace_id_high: 0,
            trace_id_low: low,
            span_id,
        }
    }

    #[test]
    fn parent_prefers_explicit_then_child_of_then_follows_from_in_same_trace() {
        let mut s = Span {
            trace_id_low: 1,
            span_id: 9,
            references: vec![
                r(RefType::ChildOf, 2, 5),
                r(RefType::FollowsFrom, 1, 6),
                r(RefType::ChildOf, 1, 7),
            ],
            ..Span::default()
        };
        assert_eq!(s.parent(), 7);
        s.references.pop();
        assert_eq!(s.parent(), 6);
        s.parent_span_id = 3;
        assert_eq!(s.parent(), 3);
        s.parent_span_id = 0;
        s.references.clear();
        assert_eq!(s.parent(), 0);
        assert!(!s.is_blank());
        assert!(Span::default().is_blank());
    }
}
