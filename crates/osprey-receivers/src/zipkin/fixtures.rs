//! Test fixtures in the real Zipkin formats, a recording consumer, and the translation tests
//! that check the OTLP output field by field.

use super::{json, translate, v1};
use osprey_model::otlp::common::v1::any_value::Value;
use osprey_model::otlp::common::v1::KeyValue;
use osprey_model::otlp::trace::v1::span::SpanKind;
use osprey_model::otlp::trace::v1::status::StatusCode;
use osprey_model::otlp::trace::v1::Span;
use osprey_pipeline::{Batch, ConsumeError, Consumer};
use std::sync::Mutex;

/// Zipkin v2 JSON as OpenTelemetry SDKs' Zipkin exporters write it: a client span with
/// remote endpoint, status, scope, trace state, a link and events; an internal child; and a
/// span without endpoint or timestamp.
pub const V2_OTEL: &str = r#"[
 {"traceId": "463ac35c9f6413ad48485a3953bb6124", "id": "a2fb4a1d1a96d312",
  "name": "HTTP GET", "kind": "CLIENT", "timestamp": 1581452772000000, "duration": 1000,
  "localEndpoint": {"serviceName": "frontend", "ipv6": "::1"},
  "remoteEndpoint": {"serviceName": "backend", "ipv4": "10.0.0.2", "port": 8080},
  "annotations": [
    {"timestamp": 1581452772000500, "value": "retry|{\"attempt\":2,\"reason\":\"timeout\"}|1"},
    {"timestamp": 1581452772000700, "value": "cache miss"}],
  "tags": {"http.method": "GET", "http.status_code": "503",
    "otel.status_code": "ERROR", "otel.status_description": "upstream unavailable",
    "otel.scope.name": "io.opentelemetry.http", "otel.scope.version": "1.2.3",
    "w3c.tracestate": "vendor=abc",
    "otlp.link.0": "0102030405060708090a0b0c0d0e0f10|0102030405060708|ts=1|{\"k\":\"v\"}|0"}},
 {"traceId": "463ac35c9f6413ad48485a3953bb6124", "id": "b2fb4a1d1a96d312",
  "parentId": "a2fb4a1d1a96d312", "name": "internal work",
  "timestamp": 1581452772000100, "duration": 200,
  "localEndpoint": {"serviceName": "frontend"},
  "tags": {"span.kind": "internal", "error": "true", "retries": "3",
    "deployment.environment": "prod"}},
 {"traceId": "463ac35c9f6413ad48485a3953bb6124", "id": "c2fb4a1d1a96d312",
  "name": "no endpoint", "duration": 5}
]"#;

/// Zipkin v1 JSON: one RPC span shared by client and server (the classic Finagle shape with
/// `cs`/`sr`/`ss`/`cr`, `ca`/`sa`), and a local span marked by `lc`.
pub const V1_RPC: &str = r#"[
 {"traceId": "1e223ff1f80f1c69", "id": "74280ae0c10d8062", "parentId": "1e223ff1f80f1c69",
  "name": "get", "timestamp": 1472470996199000, "duration": 207000,
  "annotations": [
   {"timestamp": 1472470996199000, "value": "cs",
    "endpoint": {"serviceName": "frontend", "ipv4": "192.168.99.101", "port": 9000}},
   {"timestamp": 1472470996238000, "value": "sr",
    "endpoint": {"serviceName": "backend", "ipv4": "192.168.99.101", "port": 9001}},
   {"timestamp": 1472470996403000, "value": "ss",
    "endpoint": {"serviceName": "backend", "ipv4": "192.168.99.101", "port": 9001}},
   {"timestamp": 1472470996406000, "value": "cr",
    "endpoint": {"serviceName": "frontend", "ipv4": "192.168.99.101", "port": 9000}}],
  "binaryAnnotations": [
   {"key": "http.path", "value": "/api",
    "endpoint": {"serviceName": "backend", "ipv4": "192.168.99.101", "port": 9001}},
   {"key": "clnt/finagle.version", "value": "6.45.0",
    "endpoint": {"serviceName": "frontend", "ipv4": "192.168.99.101", "port": 9000}},
   {"key": "ca", "value": true,
    "endpoint": {"serviceName": "frontend", "ipv4": "192.168.99.101", "port": 58648}},
   {"key": "sa", "value": true,
    "endpoint": {"serviceName": "backend", "ipv4": "192.168.99.101", "port": 9001}}]},
 {"traceId": "1e223ff1f80f1c69", "id": "aaaaaaaaaaaaaaaa", "parentId": "74280ae0c10d8062",
  "name": "compute", "timestamp": 1472470996300000, "duration": 1000,
  "annotations": [{"timestamp": 1472470996300500, "value": "cache.miss",
    "endpoint": {"serviceName": "backend", "ipv4": "192.168.99.101"}}],
  "binaryAnnotations": [{"key": "lc", "value": "worker",
    "endpoint": {"serviceName": "backend", "ipv4": "192.168.99.101"}}]}
]"#;

/// A consumer that records batches, or refuses them all with `fail`.
#[derive(Default)]
pub struct Recorder {
    pub batches: Mutex<Vec<Batch>>,
    pub fail: Option<ConsumeError>,
}

#[async_trait::async_trait]
impl Consumer for Recorder {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        if let Ok(mut b) = self.batches.lock() {
            b.push(batch);
        }
        Ok(())
    }
}

pub fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

pub fn s(v: &str) -> Value {
    Value::StringValue(v.to_string())
}

fn keys(attrs: &[KeyValue]) -> Vec<&str> {
    attrs.iter().map(|kv| kv.key.as_str()).collect()
}

fn hex(b: &[u8]) -> String {
    super::model::to_hex(b)
}

#[test]
fn v2_json_translates_like_upstream() {
    let req = translate::to_otlp(json::decode_v2(V2_OTEL.as_bytes()).unwrap(), true);
    // No service sorts first: an empty resource.
    assert_eq!(req.resource_spans.len(), 2);
    let none = &req.resource_spans[0];
    assert!(none.resource.as_ref().unwrap().attributes.is_empty());
    let orphan: &Span = &none.scope_spans[0].spans[0];
    assert_eq!(
        (orphan.start_time_unix_nano, orphan.end_time_unix_nano),
        (0, 5000)
    );
    assert_eq!(
        attr(&orphan.attributes, translate::START_TIME_ABSENT),
        Some(&Value::BoolValue(true))
    );
    assert_eq!(orphan.kind, SpanKind::Unspecified as i32);

    let fe = &req.resource_spans[1];
    let res = &fe.resource.as_ref().unwrap().attributes;
    assert_eq!(attr(res, "service.name"), Some(&s("frontend")));
    // Moved from the group's first span.
    assert_eq!(attr(res, "deployment.environment"), Some(&s("prod")));
    // The scope-less span comes first, then the scoped one.
    assert_eq!(fe.scope_spans.len(), 2);
    let internal = &fe.scope_spans[0].spans[0];
    assert_eq!(fe.scope_spans[0].scope.as_ref().unwrap().name, "");
    assert_eq!(internal.name, "internal work");
    assert_eq!(hex(&internal.parent_span_id), "a2fb4a1d1a96d312");
    assert_eq!(internal.kind, SpanKind::Internal as i32);
    assert_eq!(
        internal.status.as_ref().unwrap().code,
        StatusCode::Error as i32
    );
    assert_eq!(keys(&internal.attributes), ["retries"]);
    assert_eq!(
        attr(&internal.attributes, "retries"),
        Some(&Value::IntValue(3))
    );

    let scope = fe.scope_spans[1].scope.as_ref().unwrap();
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        ("io.opentelemetry.http", "1.2.3")
    );
    let client = &fe.scope_spans[1].spans[0];
    assert_eq!(hex(&client.trace_id), "463ac35c9f6413ad48485a3953bb6124");
    assert_eq!(hex(&client.span_id), "a2fb4a1d1a96d312");
    assert!(client.parent_span_id.is_empty());
    assert_eq!(client.name, "HTTP GET");
    assert_eq!(client.kind, SpanKind::Client as i32);
    assert_eq!(client.trace_state, "vendor=abc");
    assert_eq!(client.start_time_unix_nano, 1_581_452_772_000_000_000);
    assert_eq!(client.end_time_unix_nano, 1_581_452_772_001_000_000);
    let status = client.status.as_ref().unwrap();
    assert_eq!(
        (status.code, status.message.as_str()),
        (StatusCode::Error as i32, "upstream unavailable")
    );
    assert_eq!(
        keys(&client.attributes),
        [
            "http.method",
            "http.status_code",
            "network.local.address",
            "service.peer.name",
            "network.peer.address",
            "net.peer.port"
        ]
    );
    assert_eq!(
        attr(&client.attributes, "http.status_code"),
        Some(&Value::IntValue(503))
    );
    assert_eq!(
        attr(&client.attributes, "network.local.address"),
        Some(&s("::1"))
    );
    assert_eq!(
        attr(&client.attributes, "service.peer.name"),
        Some(&s("backend"))
    );
    assert_eq!(
        attr(&client.attributes, "network.peer.address"),
        Some(&s("10.0.0.2"))
    );
    assert_eq!(
        attr(&client.attributes, "net.peer.port"),
        Some(&Value::IntValue(8080))
    );
    assert_eq!(client.events.len(), 2);
    let retry = &client.events[0];
    assert_eq!(
        (retry.name.as_str(), retry.time_unix_nano),
        ("retry", 1_581_452_772_000_500_000)
    );
    assert_eq!(
        attr(&retry.attributes, "attempt"),
        Some(&Value::IntValue(2))
    );
    assert_eq!(attr(&retry.attributes, "reason"), Some(&s("timeout")));
    assert_eq!(retry.dropped_attributes_count, 1);
    assert_eq!(client.events[1].name, "cache miss");
    assert_eq!(client.links.len(), 1);
    let link = &client.links[0];
    assert_eq!(hex(&link.trace_id), "0102030405060708090a0b0c0d0e0f10");
    assert_eq!(hex(&link.span_id), "0102030405060708");
    assert_eq!(link.trace_state, "ts=1");
    assert_eq!(attr(&link.attributes, "k"), Some(&s("v")));
}

#[test]
fn string_tags_stay_strings_by_default() {
    let req = translate::to_otlp(json::decode_v2(V2_OTEL.as_bytes()).unwrap(), false);
    let internal = &req.resource_spans[1].scope_spans[0].spans[0];
    assert_eq!(attr(&internal.attributes, "retries"), Some(&s("3")));
}

#[test]
fn v1_json_is_split_and_merged_like_zipkin() {
    let spans = v1::decode_v1(V1_RPC.as_bytes()).unwrap();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let req = translate::to_otlp(spans, false);
    assert_eq!(req.resource_spans.len(), 2);
    let backend = &req.resource_spans[0];
    let res = &backend.resource.as_ref().unwrap().attributes;
    assert_eq!(attr(res, "service.name"), Some(&s("backend")));
    let server = &backend.scope_spans[0].spans[0];
    assert_eq!(hex(&server.trace_id), "00000000000000001e223ff1f80f1c69");
    assert_eq!(hex(&server.span_id), "74280ae0c10d8062");
    assert_eq!(hex(&server.parent_span_id), "1e223ff1f80f1c69");
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(server.start_time_unix_nano, 1_472_470_996_238_000_000);
    assert_eq!(server.end_time_unix_nano, 1_472_470_996_403_000_000);
    assert!(server.events.is_empty(), "core annotations are not events");
    assert_eq!(attr(&server.attributes, "http.path"), Some(&s("/api")));
    assert_eq!(
        attr(&server.attributes, "network.local.address"),
        Some(&s("192.168.99.101"))
    );
    assert_eq!(
        attr(&server.attributes, "net.host.port"),
        Some(&Value::IntValue(9001))
    );
    // "ca" is the remote side of the server span.
    assert_eq!(
        attr(&server.attributes, "service.peer.name"),
        Some(&s("frontend"))
    );
    assert_eq!(
        attr(&server.attributes, "net.peer.port"),
        Some(&Value::IntValue(58648))
    );

    let local = &backend.scope_spans[0].spans[1];
    assert_eq!(local.name, "compute");
    assert_eq!(local.kind, SpanKind::Unspecified as i32);
    assert_eq!(local.start_time_unix_nano, 1_472_470_996_300_000_000);
    assert_eq!(local.end_time_unix_nano, 1_472_470_996_301_000_000);
    assert_eq!(attr(&local.attributes, "lc"), Some(&s("worker")));
    assert_eq!(local.events[0].name, "cache.miss");
    assert_eq!(local.events[0].time_unix_nano, 1_472_470_996_300_500_000);

    let frontend = &req.resource_spans[1];
    let res = &frontend.resource.as_ref().unwrap().attributes;
    assert_eq!(attr(res, "service.name"), Some(&s("frontend")));
    let client = &frontend.scope_spans[0].spans[0];
    assert_eq!(client.kind, SpanKind::Client as i32);
    assert_eq!(client.start_time_unix_nano, 1_472_470_996_199_000_000);
    assert_eq!(client.end_time_unix_nano, 1_472_470_996_406_000_000);
    assert_eq!(
        attr(&client.attributes, "clnt/finagle.version"),
        Some(&s("6.45.0"))
    );
    assert_eq!(
        attr(&client.attributes, "service.peer.name"),
        Some(&s("backend"))
    );
    assert_eq!(
        attr(&client.attributes, "net.peer.port"),
        Some(&Value::IntValue(9001))
    );
    assert_eq!(
        attr(&client.attributes, "net.host.port"),
        Some(&Value::IntValue(9000))
    );
}

#[test]
fn v1_one_sided_and_loopback_spans() {
    // Only the server side: kind SERVER, times from sr/ss.
    let server_only = r#"[{"traceId":"1","id":"2","name":"x","annotations":[
      {"timestamp":10,"value":"sr","endpoint":{"serviceName":"b"}},
      {"timestamp":25,"value":"ss","endpoint":{"serviceName":"b"}}]}]"#;
    let spans = v1::decode_v1(server_only.as_bytes()).unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!((spans[0].timestamp_us, spans[0].duration_us), (10, 15));
    assert_eq!(spans[0].kind, Some(super::model::Kind::Server));
    // Client only with cs: incomplete, "cs" sets the timestamp, no duration.
    let cs_only = r#"[{"traceId":"1","id":"2","annotations":[
      {"timestamp":10,"value":"cs","endpoint":{"serviceName":"a"}}]}]"#;
    let spans = v1::decode_v1(cs_only.as_bytes()).unwrap();
    assert_eq!((spans[0].timestamp_us, spans[0].duration_us), (10, 0));
    // Loopback: same service on both sides still gives two spans.
    let loopback = r#"[{"traceId":"1","id":"2","annotations":[
      {"timestamp":10,"value":"cs","endpoint":{"serviceName":"a"}},
      {"timestamp":11,"value":"sr","endpoint":{"serviceName":"a"}},
      {"timestamp":19,"value":"ss","endpoint":{"serviceName":"a"}},
      {"timestamp":20,"value":"cr","endpoint":{"serviceName":"a"}}]}]"#;
    let spans = v1::decode_v1(loopback.as_bytes()).unwrap();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].kind, Some(super::model::Kind::Client));
    assert_eq!((spans[0].timestamp_us, spans[0].duration_us), (10, 10));
    assert_eq!(spans[1].kind, Some(super::model::Kind::Server));
    assert_eq!((spans[1].timestamp_us, spans[1].duration_us), (11, 8));
    // Errors name the span and field.
    let e = v1::decode_v1(br#"[{"traceId":"1","id":"xyz"}]"#).unwrap_err();
    assert_eq!(e.0, "span[0].id \"xyz\" is not hexadecimal");
}
