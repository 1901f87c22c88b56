//! Test fixtures: OTLP spans and requests built as receivers produce them, and a sink
//! consumer that records what reaches it.

use osprey_model::otlp::common::v1::{InstrumentationScope, KeyValue};
use osprey_model::otlp::resource::v1::Resource;
use osprey_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use osprey_model::TraceRequest;
use osprey_pipeline::{Batch, ConsumeError, Consumer};
use std::sync::Mutex;

/// A 16-byte trace id from a number.
pub fn tid(n: u128) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

/// A span of trace `trace` with id `id`, lasting 1 ms.
pub fn span(trace: u128, id: u64, name: &str) -> Span {
    Span {
        trace_id: tid(trace),
        span_id: id.to_be_bytes().to_vec(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_001_000_000,
        ..Default::default()
    }
}

pub fn with_attr(mut s: Span, key: &str, value: osprey_model::otlp::common::v1::AnyValue) -> Span {
    s.attributes.push(KeyValue {
        key: key.into(),
        value: Some(value),
        ..Default::default()
    });
    s
}

pub fn with_status(mut s: Span, code: i32) -> Span {
    s.status = Some(Status {
        code,
        message: String::new(),
    });
    s
}

/// A request with one resource (`service.name` = `service`) and one scope.
pub fn trace_request(service: &str, spans: Vec<Span>) -> TraceRequest {
    TraceRequest {
        resource_spans: vec![resource_spans(service, spans)],
    }
}

pub fn resource_spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(crate::attrs::str_value(service)),
                ..Default::default()
            }],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "test-lib".into(),
                version: "1.0".into(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// All span names of a request, in order.
pub fn names(req: &TraceRequest) -> Vec<String> {
    req.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| s.name.clone())
        .collect()
}

/// A consumer that keeps every batch.
#[derive(Default)]
pub struct Sink {
    batches: Mutex<Vec<Batch>>,
}

impl Sink {
    pub fn take(&self) -> Vec<Batch> {
        std::mem::take(&mut *self.batches.lock().unwrap())
    }
}

#[async_trait::async_trait]
impl Consumer for Sink {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.batches.lock().unwrap().push(batch);
        Ok(())
    }
}
