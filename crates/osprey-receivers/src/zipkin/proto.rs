//! Zipkin v2 protobuf (`application/x-protobuf` on `POST /api/v2/spans`): the messages of
//! openzipkin/zipkin-api's `zipkin.proto` (package `zipkin.proto3`), written out for prost,
//! and their decoding into the [`ZipkinSpan`] model.

use super::model::{Annotation, DecodeError, Endpoint, Kind, ZipkinSpan};
use prost::Message;
use std::net::{Ipv4Addr, Ipv6Addr};

/// `zipkin.proto3.ListOfSpans`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListOfSpans {
    #[prost(message, repeated, tag = "1")]
    pub spans: Vec<Span>,
}

/// `zipkin.proto3.Span`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Span {
    /// 8 or 16 bytes, big-endian.
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    /// Absent (empty) or 8 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub parent_id: Vec<u8>,
    /// 8 bytes.
    #[prost(bytes = "vec", tag = "3")]
    pub id: Vec<u8>,
    #[prost(enumeration = "SpanKind", tag = "4")]
    pub kind: i32,
    #[prost(string, tag = "5")]
    pub name: String,
    /// Epoch microseconds.
    #[prost(fixed64, tag = "6")]
    pub timestamp: u64,
    /// Microseconds.
    #[prost(uint64, tag = "7")]
    pub duration: u64,
    #[prost(message, optional, tag = "8")]
    pub local_endpoint: Option<ProtoEndpoint>,
    #[prost(message, optional, tag = "9")]
    pub remote_endpoint: Option<ProtoEndpoint>,
    #[prost(message, repeated, tag = "10")]
    pub annotations: Vec<ProtoAnnotation>,
    #[prost(map = "string, string", tag = "11")]
    pub tags: std::collections::HashMap<String, String>,
    #[prost(bool, tag = "12")]
    pub debug: bool,
    #[prost(bool, tag = "13")]
    pub shared: bool,
}

/// `zipkin.proto3.Span.Kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SpanKind {
    SpanKindUnspecified = 0,
    Client = 1,
    Server = 2,
    Producer = 3,
    Consumer = 4,
}

/// `zipkin.proto3.Endpoint`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoEndpoint {
    #[prost(string, tag = "1")]
    pub service_name: String,
    /// 4 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub ipv4: Vec<u8>,
    /// 16 bytes.
    #[prost(bytes = "vec", tag = "3")]
    pub ipv6: Vec<u8>,
    #[prost(int32, tag = "4")]
    pub port: i32,
}

/// `zipkin.proto3.Annotation`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoAnnotation {
    /// Epoch microseconds.
    #[prost(fixed64, tag = "1")]
    pub timestamp: u64,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// Decodes a `ListOfSpans` body.
pub fn decode_proto(body: &[u8]) -> Result<Vec<ZipkinSpan>, DecodeError> {
    let list = ListOfSpans::decode(body)
        .map_err(|e| DecodeError::new(format!("invalid Zipkin v2 protobuf (ListOfSpans): {e}")))?;
    list.spans
        .into_iter()
        .enumerate()
        .map(|(i, s)| span_to_model(s, i))
        .collect()
}

fn span_to_model(s: Span, i: usize) -> Result<ZipkinSpan, DecodeError> {
    let field = |name: &str| format!("span[{i}].{name}");
    let mut trace_id = [0u8; 16];
    match s.trace_id.len() {
        8 => trace_id[8..].copy_from_slice(&s.trace_id),
        16 => trace_id.copy_from_slice(&s.trace_id),
        n => {
            return Err(DecodeError::new(format!(
                "{} must be 8 or 16 bytes, got {n}",
                field("trace_id")
            )))
        }
    }
    if trace_id == [0; 16] {
        return Err(DecodeError::new(format!(
            "{} must not be zero",
            field("trace_id")
        )));
    }
    let id: [u8; 8] = s.id.as_slice().try_into().map_err(|_| {
        DecodeError::new(format!(
            "{} must be 8 bytes, got {}",
            field("id"),
            s.id.len()
        ))
    })?;
    if id == [0; 8] {
        return Err(DecodeError::new(format!(
            "{} must not be zero",
            field("id")
        )));
    }
    let parent_id = match s.parent_id.len() {
        0 => None,
        8 => {
            let mut p = [0u8; 8];
            p.copy_from_slice(&s.parent_id);
            (p != [0; 8]).then_some(p)
        }
        n => {
            return Err(DecodeError::new(format!(
                "{} must be absent or 8 bytes, got {n}",
                field("parent_id")
            )))
        }
    };
    let kind = match SpanKind::try_from(s.kind) {
        Ok(SpanKind::Client) => Some(Kind::Client),
        Ok(SpanKind::Server) => Some(Kind::Server),
        Ok(SpanKind::Producer) => Some(Kind::Producer),
        Ok(SpanKind::Consumer) => Some(Kind::Consumer),
        Ok(SpanKind::SpanKindUnspecified) | Err(_) => None,
    };
    let mut tags: Vec<(String, String)> = s.tags.into_iter().collect();
    // Protobuf maps have no order; sort for a deterministic output.
    tags.sort();
    Ok(ZipkinSpan {
        trace_id,
        id,
        parent_id,
        kind,
        name: s.name,
        timestamp_us: s.timestamp,
        duration_us: s.duration,
        local_endpoint: endpoint(s.local_endpoint, &field("local_endpoint"))?,
        remote_endpoint: endpoint(s.remote_endpoint, &field("remote_endpoint"))?,
        annotations: s
            .annotations
            .into_iter()
            .map(|a| Annotation {
                timestamp_us: a.timestamp,
                value: a.value,
            })
            .collect(),
        tags,
    })
}

fn endpoint(e: Option<ProtoEndpoint>, field: &str) -> Result<Option<Endpoint>, DecodeError> {
    let Some(e) = e else { return Ok(None) };
    let ipv4 = match e.ipv4.len() {
        0 => None,
        4 => Some(Ipv4Addr::new(e.ipv4[0], e.ipv4[1], e.ipv4[2], e.ipv4[3])),
        n => {
            return Err(DecodeError::new(format!(
                "{field}.ipv4 must be 4 bytes, got {n}"
            )))
        }
    };
    let ipv6 = match <[u8; 16]>::try_from(e.ipv6.as_slice()) {
        Ok(b) => Some(Ipv6Addr::from(b)),
        Err(_) if e.ipv6.is_empty() => None,
        Err(_) => {
            return Err(DecodeError::new(format!(
                "{field}.ipv6 must be 16 bytes, got {}",
                e.ipv6.len()
            )))
        }
    };
    let port = u16::try_from(e.port.max(0))
        .map_err(|_| DecodeError::new(format!("{field}.port {} is not a TCP/UDP port", e.port)))?;
    Ok(Endpoint {
        service_name: e.service_name,
        ipv4,
        ipv6,
        port,
    }
    .non_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zipkin::model::to_hex;

    #[test]
    fn field_numbers_match_zipkin_proto() {
        // Hand-encoded wire bytes for one span: trace_id (1, 8 bytes), id (3), kind (4) = CLIENT,
        // name (5), timestamp (6, fixed64), duration (7, varint), local_endpoint (8) with
        // service_name (1) and ipv4 (2), tags (11) {"k": "v"}.
        let mut span = vec![0x0a, 8, 0, 0, 0, 0, 0, 0, 0, 1];
        span.extend([0x1a, 8, 0, 0, 0, 0, 0, 0, 0, 2]);
        span.extend([0x20, 1]);
        span.extend([0x2a, 3, b'g', b'e', b't']);
        span.extend([0x31]);
        span.extend(1_000_000u64.to_le_bytes());
        span.extend([0x38, 0xe8, 0x07]); // 1000
        span.extend([0x42, 9, 0x0a, 1, b's', 0x12, 4, 10, 0, 0, 1]);
        span.extend([0x5a, 6, 0x0a, 1, b'k', 0x12, 1, b'v']);
        let mut body = vec![0x0a, span.len() as u8];
        body.extend(span);
        let spans = decode_proto(&body).unwrap();
        let s = &spans[0];
        assert_eq!(to_hex(&s.trace_id), "00000000000000000000000000000001");
        assert_eq!(to_hex(&s.id), "0000000000000002");
        assert_eq!(s.kind, Some(Kind::Client));
        assert_eq!(s.name, "get");
        assert_eq!((s.timestamp_us, s.duration_us), (1_000_000, 1000));
        let local = s.local_endpoint.as_ref().unwrap();
        assert_eq!(local.service_name, "s");
        assert_eq!(local.ipv4, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(s.tags, vec![("k".to_string(), "v".to_string())]);
    }

    #[test]
    fn bad_ids_are_named() {
        let body = ListOfSpans {
            spans: vec![Span {
                trace_id: vec![1; 16],
                id: vec![1; 4],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let e = decode_proto(&body).unwrap_err();
        assert_eq!(e.0, "span[0].id must be 8 bytes, got 4");
        let e = decode_proto(b"\x0a\x05\x01").unwrap_err();
        assert!(e.0.starts_with("invalid Zipkin v2 protobuf"), "{e}");
    }
}
