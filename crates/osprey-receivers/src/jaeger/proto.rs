//! The `jaeger.api_v2` Protobuf messages (jaeger-idl `proto/api_v2/model.proto` and
//! `collector.proto`) as hand-written prost types, and their conversion to [`super::model`].
//! Field numbers follow model.proto; `Timestamp`/`Duration` mirror the well-known types.

use super::model::{self, RefType};

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `google.protobuf.Duration`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Duration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `ValueType`: STRING=0, BOOL=1, INT64=2, FLOAT64=3, BINARY=4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ValueType {
    String = 0,
    Bool = 1,
    Int64 = 2,
    Float64 = 3,
    Binary = 4,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(enumeration = "ValueType", tag = "2")]
    pub v_type: i32,
    #[prost(string, tag = "3")]
    pub v_str: String,
    #[prost(bool, tag = "4")]
    pub v_bool: bool,
    #[prost(int64, tag = "5")]
    pub v_int64: i64,
    #[prost(double, tag = "6")]
    pub v_float64: f64,
    #[prost(bytes = "vec", tag = "7")]
    pub v_binary: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Log {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(message, repeated, tag = "2")]
    pub fields: Vec<KeyValue>,
}

/// `SpanRefType`: CHILD_OF=0, FOLLOWS_FROM=1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SpanRefType {
    ChildOf = 0,
    FollowsFrom = 1,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SpanRef {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(enumeration = "SpanRefType", tag = "3")]
    pub ref_type: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Process {
    #[prost(string, tag = "1")]
    pub service_name: String,
    #[prost(message, repeated, tag = "2")]
    pub tags: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Span {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(string, tag = "3")]
    pub operation_name: String,
    #[prost(message, repeated, tag = "4")]
    pub references: Vec<SpanRef>,
    #[prost(uint32, tag = "5")]
    pub flags: u32,
    #[prost(message, optional, tag = "6")]
    pub start_time: Option<Timestamp>,
    #[prost(message, optional, tag = "7")]
    pub duration: Option<Duration>,
    #[prost(message, repeated, tag = "8")]
    pub tags: Vec<KeyValue>,
    #[prost(message, repeated, tag = "9")]
    pub logs: Vec<Log>,
    #[prost(message, optional, tag = "10")]
    pub process: Option<Process>,
    #[prost(string, tag = "11")]
    pub process_id: String,
    #[prost(string, repeated, tag = "12")]
    pub warnings: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Batch {
    #[prost(message, repeated, tag = "1")]
    pub spans: Vec<Span>,
    #[prost(message, optional, tag = "2")]
    pub process: Option<Process>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PostSpansRequest {
    #[prost(message, optional, tag = "1")]
    pub batch: Option<Batch>,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct PostSpansResponse {}

/// An id field that is not 8 or 16 bytes, which Jaeger's model refuses to unmarshal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(String);

/// (high, low) from an 8- or 16-byte big-endian trace id; empty means 0.
fn trace_id(b: &[u8]) -> Result<(u64, u64), InvalidId> {
    let be = |s: &[u8]| s.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
    match b.len() {
        0 => Ok((0, 0)),
        8 => Ok((0, be(b))),
        16 => Ok((be(&b[..8]), be(&b[8..]))),
        n => Err(InvalidId(format!("invalid length for TraceID: {n} bytes"))),
    }
}

fn span_id(b: &[u8]) -> Result<u64, InvalidId> {
    match b.len() {
        0 => Ok(0),
        8 => Ok(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))),
        n => Err(InvalidId(format!("invalid length for SpanID: {n} bytes"))),
    }
}

/// Nanoseconds since the epoch; times before it clamp to 0.
fn ts_ns(t: Option<Timestamp>) -> u64 {
    let t = t.unwrap_or_default();
    let ns = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
    u64::try_from(ns.max(0)).unwrap_or(u64::MAX)
}

fn duration_ns(d: Option<Duration>) -> i128 {
    let d = d.unwrap_or_default();
    i128::from(d.seconds) * 1_000_000_000 + i128::from(d.nanos)
}

fn tag(kv: KeyValue) -> model::Tag {
    let value = match ValueType::try_from(kv.v_type) {
        Ok(ValueType::String) => model::Value::Str(kv.v_str),
        Ok(ValueType::Bool) => model::Value::Bool(kv.v_bool),
        Ok(ValueType::Int64) => model::Value::Long(kv.v_int64),
        Ok(ValueType::Float64) => model::Value::Double(kv.v_float64),
        Ok(ValueType::Binary) => model::Value::Binary(kv.v_binary),
        // Go's %q of an unknown proto enum value prints its number.
        Err(_) => model::Value::Unknown(format!("<Unknown Jaeger TagType \"{}\">", kv.v_type)),
    };
    model::Tag { key: kv.key, value }
}

fn process(p: Process) -> model::Process {
    model::Process {
        service_name: p.service_name,
        tags: Some(p.tags.into_iter().map(tag).collect()),
    }
}

fn span(s: Span) -> Result<model::Span, InvalidId> {
    let (high, low) = trace_id(&s.trace_id)?;
    let start = ts_ns(s.start_time);
    let end = (i128::from(start) + duration_ns(s.duration)).clamp(0, i128::from(u64::MAX));
    let mut references = Vec::with_capacity(s.references.len());
    for r in s.references {
        let (h, l) = trace_id(&r.trace_id)?;
        references.push(model::SpanRef {
            ref_type: if r.ref_type == SpanRefType::ChildOf as i32 {
                RefType::ChildOf
            } else {
                RefType::FollowsFrom
            },
            trace_id_high: h,
            trace_id_low: l,
            span_id: span_id(&r.span_id)?,
        });
    }
    Ok(model::Span {
        trace_id_high: high,
        trace_id_low: low,
        span_id: span_id(&s.span_id)?,
        parent_span_id: 0,
        operation_name: s.operation_name,
        references,
        flags: s.flags,
        start_time_ns: start,
        end_time_ns: end as u64,
        tags: s.tags.into_iter().map(tag).collect(),
        logs: s
            .logs
            .into_iter()
            .map(|l| model::Log {
                timestamp_ns: ts_ns(l.timestamp),
                fields: l.fields.into_iter().map(tag).collect(),
            })
            .collect(),
        process: s.process.map(process),
    })
}

/// Converts a `PostSpansRequest` batch to the shared model.
pub fn to_model(batch: Batch) -> Result<model::Batch, InvalidId> {
    Ok(model::Batch {
        process: batch.process.map(process),
        spans: batch
            .spans
            .into_iter()
            .map(span)
            .collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn field_numbers_match_model_proto() {
        // KeyValue{key:"k"(1), v_type:INT64(2), v_int64:7(5)} encoded by hand.
        let bytes = [0x0a, 0x01, b'k', 0x10, 0x02, 0x28, 0x07];
        let kv = KeyValue::decode(&bytes[..]).unwrap();
        assert_eq!((kv.key.as_str(), kv.v_type, kv.v_int64), ("k", 2, 7));
        // PostSpansRequest{batch(1){process(2){service_name(1):"s"}}}.
        let bytes = [0x0a, 0x05, 0x12, 0x03, 0x0a, 0x01, b's'];
        let req = PostSpansRequest::decode(&bytes[..]).unwrap();
        assert_eq!(req.batch.unwrap().process.unwrap().service_name, "s");
    }

    #[test]
    fn ids_times_and_values_convert() {
        let mut tid = vec![0u8; 16];
        tid[7] = 1;
        tid[15] = 2;
        let s = Span {
            trace_id: tid,
            span_id: vec![0, 0, 0, 0, 0, 0, 0, 3],
            start_time: Some(Timestamp {
                seconds: 10,
                nanos: 5,
            }),
            duration: Some(Duration {
                seconds: 1,
                nanos: 0,
            }),
            tags: vec![KeyValue {
                key: "x".into(),
                v_type: 9,
                ..Default::default()
            }],
            ..Default::default()
        };
        let m = span(s).unwrap();
        assert_eq!((m.trace_id_high, m.trace_id_low, m.span_id), (1, 2, 3));
        assert_eq!(
            (m.start_time_ns, m.end_time_ns),
            (10_000_000_005, 11_000_000_005)
        );
        assert_eq!(
            m.tags[0].value,
            model::Value::Unknown("<Unknown Jaeger TagType \"9\">".into())
        );
        assert_eq!(trace_id(&[0, 0, 0, 0, 0, 0, 0, 9]).unwrap(), (0, 9));
        assert!(span(Span {
            span_id: vec![1, 2, 3],
            ..Default::default()
        })
        .is_err());
    }
}
