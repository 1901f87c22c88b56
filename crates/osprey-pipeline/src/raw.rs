//! [`RawTraces`]: trace data kept as its protobuf encoding (the collector's fast path).
//!
//! A receiver that skimmed a request ([`osprey_model::skim`]) and found it well-formed and
//! clean passes the bytes on unchanged; the batch processor concatenates such byte strings
//! (concatenated encodings of a message are the encoding of the merged message: repeated
//! fields append) and the otlp exporter sends them as they are. Only components that need the
//! structure decode them ([`crate::Batch::materialize`]).

use crate::ConsumeError;
use bytes::{Bytes, BytesMut};
use osprey_model::TraceRequest;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

static DECODE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Raw trace batches that could not be decoded when a component needed them (each was
/// dropped with a permanent error). Always 0 unless something produced bytes without a skim.
pub fn decode_failures() -> u64 {
    DECODE_FAILURES.load(Ordering::Relaxed)
}

/// An encoded `ExportTraceServiceRequest` known to decode, with its span count. It may be
/// held in several chunks (what [`RawTraces::concat`] makes without copying): their
/// concatenation is the request.
#[derive(Clone)]
pub struct RawTraces {
    chunks: Vec<Bytes>,
    spans: usize,
}

impl fmt::Debug for RawTraces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawTraces")
            .field("bytes", &self.len())
            .field("chunks", &self.chunks.len())
            .field("spans", &self.spans)
            .finish()
    }
}

impl PartialEq for RawTraces {
    fn eq(&self, other: &Self) -> bool {
        self.spans == other.spans && self.to_bytes() == other.to_bytes()
    }
}

impl Eq for RawTraces {}

impl RawTraces {
    /// Wraps bytes a skim accepted; `spans` is the count it found.
    pub fn new(bytes: Bytes, spans: usize) -> RawTraces {
        RawTraces {
            chunks: vec![bytes],
            spans,
        }
    }

    /// Skims `bytes` (limits do not matter for the count) and wraps them if they decode.
    pub fn from_bytes(bytes: Bytes) -> Result<RawTraces, osprey_model::skim::SkimError> {
        let s = osprey_model::skim::skim(&bytes, &osprey_model::Limits::default())?;
        Ok(RawTraces::new(bytes, s.spans))
    }

    /// The encoding in pieces, in order.
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    pub fn into_chunks(self) -> Vec<Bytes> {
        self.chunks
    }

    /// The encoded request in one piece (copied only when held in several chunks).
    pub fn to_bytes(&self) -> Bytes {
        match self.chunks.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut out = BytesMut::with_capacity(self.len());
                for c in many {
                    out.extend_from_slice(c);
                }
                out.freeze()
            }
        }
    }

    /// The same request in one chunk (copied only when held in several).
    pub fn flatten(self) -> RawTraces {
        if self.chunks.len() == 1 {
            return self;
        }
        RawTraces::new(self.to_bytes(), self.spans)
    }

    /// Encoded size in bytes.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.iter().all(Bytes::is_empty)
    }

    pub fn spans(&self) -> usize {
        self.spans
    }

    /// Decodes with prost.
    pub fn decode(&self) -> Result<TraceRequest, String> {
        osprey_model::skim::decode(&self.to_bytes()).map_err(|e| e.to_string())
    }

    /// [`RawTraces::decode`] for a component that needs the structure: a failure is logged,
    /// counted and returned as a permanent error.
    pub fn decode_or_count(&self) -> Result<TraceRequest, ConsumeError> {
        self.decode().map_err(|e| {
            DECODE_FAILURES.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, spans = self.spans, bytes = self.len(),
                "raw trace batch does not decode; dropped");
            ConsumeError::Permanent(format!("raw trace batch does not decode: {e}"))
        })
    }

    /// One request holding all of `parts`, in order: their chunks, not copied.
    pub fn concat(parts: Vec<RawTraces>) -> RawTraces {
        let mut chunks = Vec::with_capacity(parts.iter().map(|p| p.chunks.len()).sum());
        let mut spans = 0;
        for p in parts {
            chunks.extend(p.chunks);
            spans += p.spans;
        }
        RawTraces { chunks, spans }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn request(names: &[&str]) -> TraceRequest {
        TraceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: names
                        .iter()
                        .map(|n| Span {
                            name: n.to_string(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn raw(names: &[&str]) -> RawTraces {
        let bytes = Bytes::from(osprey_model::skim::encode(&request(names)));
        RawTraces::from_bytes(bytes).unwrap()
    }

    #[test]
    fn concatenation_is_the_merged_request() {
        let all = RawTraces::concat(vec![raw(&["a", "b"]), raw(&["c"])]);
        assert_eq!((all.spans(), all.chunks().len()), (3, 2));
        assert_eq!(all.to_bytes().len(), all.len());
        let got = all.decode().unwrap();
        assert_eq!(got.resource_spans.len(), 2);
        assert_eq!(got.resource_spans[1].scope_spans[0].spans[0].name, "c");
        assert_eq!(RawTraces::concat(vec![raw(&["x"])]).spans(), 1);
        assert_eq!(RawTraces::concat(vec![]).spans(), 0);
    }

    #[test]
    fn materialize_keeps_the_bytes_and_payload_mut_drops_them() {
        let r = raw(&["a"]);
        let mut b = crate::Batch::from_payload(crate::Payload::RawTraces(r.clone()));
        assert_eq!((b.item_count(), b.span_count()), (1, 1));
        assert!(b.is_raw() && b.trace_request().is_none());
        b.materialize().unwrap();
        assert_eq!(b.encoded, Some(r.to_bytes()));
        assert_eq!(b.trace_request().map(osprey_model::span_count), Some(1));
        let mut b = crate::Batch::from_payload(crate::Payload::RawTraces(r));
        assert!(b.traces_mut().unwrap().is_some());
        assert!(b.encoded.is_none());
        let before = decode_failures();
        let bad = RawTraces::new(Bytes::from_static(&[0x0a, 0x05]), 1);
        let mut b = crate::Batch::from_payload(crate::Payload::RawTraces(bad));
        assert!(matches!(b.materialize(), Err(ConsumeError::Permanent(_))));
        assert!(decode_failures() > before);
    }
}
