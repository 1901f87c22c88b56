//! Tests for [`super`]: the sample batch through the Thrift rules, and the Protobuf-only rules
//! (process regrouping, scopes, trace state, the no-service-name marker).

use super::*;
use crate::jaeger::model::{Log, SpanRef, Value};
use crate::jaeger::testutil::{s, sample_batch, tag, START_NS, TRACE_HIGH, TRACE_LOW};
use osprey_model::otlp::common::v1::KeyValue;
use osprey_model::otlp::trace::v1::status::StatusCode;
use osprey_model::otlp::trace::v1::Status;

/// Attributes as sorted (key, value) pairs (pdata does not keep attribute order).
fn kv(attrs: &[KeyValue]) -> Vec<(String, Av)> {
    let mut v: Vec<_> = attrs
        .iter()
        .map(|kv| {
            let val = kv.value.clone().and_then(|v| v.value).unwrap();
            (kv.key.clone(), val)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn sv(v: &str) -> Av {
    Av::StringValue(v.into())
}

#[test]
fn thrift_batch_translates_exactly() {
    let req = to_otlp(sample_batch(), Flavor::Thrift);
    assert_eq!(req.resource_spans.len(), 1);
    let rs = &req.resource_spans[0];
    assert_eq!(
        kv(&rs.resource.as_ref().unwrap().attributes),
        vec![
            ("host.name".into(), sv("web-1")),
            ("ip".into(), sv("10.0.0.1")),
            ("opencensus.exporterversion".into(), sv("Jaeger-Go-2.30.0")),
            ("service.name".into(), sv("frontend")),
        ]
    );
    assert_eq!(rs.scope_spans.len(), 1);
    assert_eq!(
        rs.scope_spans[0].scope,
        Some(InstrumentationScope::default())
    );
    let spans = &rs.scope_spans[0].spans;
    assert_eq!(spans.len(), 2);

    let server = &spans[0];
    let tid = hex_id("0102030405060708", "1112131415161718");
    assert_eq!(server.trace_id, tid);
    assert_eq!(server.span_id, 0xAAu64.to_be_bytes().to_vec());
    assert_eq!(server.parent_span_id, 0xBBu64.to_be_bytes().to_vec());
    assert_eq!(server.name, "GET /users");
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(server.flags, 1);
    assert_eq!(server.start_time_unix_nano, START_NS);
    assert_eq!(server.end_time_unix_nano, START_NS + 2_500_000);
    assert_eq!(
        server.status,
        Some(Status {
            message: "boom".into(),
            code: StatusCode::Error as i32
        })
    );
    assert_eq!(
        kv(&server.attributes),
        vec![
            ("blob".into(), Av::BytesValue(vec![1, 2, 3])),
            ("http.status_code".into(), Av::IntValue(500)),
            ("ratio".into(), Av::DoubleValue(0.5)),
        ]
    );
    assert_eq!(server.trace_state, "");
    assert_eq!(server.links.len(), 1);
    let link = &server.links[0];
    assert_eq!(link.trace_id, trace_id_bytes(7, 8));
    assert_eq!(link.span_id, 0xCCu64.to_be_bytes().to_vec());
    assert_eq!(
        kv(&link.attributes),
        vec![("opentracing.ref_type".into(), sv("follows_from"))]
    );
    assert_eq!(server.events.len(), 2);
    assert_eq!(server.events[0].name, "retry");
    assert_eq!(server.events[0].time_unix_nano, START_NS + 1_000);
    assert_eq!(
        kv(&server.events[0].attributes),
        vec![("attempt".into(), Av::IntValue(2))]
    );
    assert_eq!(server.events[1].name, "");
    assert_eq!(
        kv(&server.events[1].attributes),
        vec![("message".into(), sv("no name"))]
    );

    let client = &spans[1];
    assert!(client.parent_span_id.is_empty());
    assert_eq!(client.kind, SpanKind::Client as i32);
    assert_eq!(client.flags, 0);
    assert_eq!(
        client.status,
        Some(Status {
            message: String::new(),
            code: StatusCode::Ok as i32
        })
    );
    assert!(client.attributes.is_empty());
    assert!(client.links.is_empty() && client.events.is_empty());
}

fn hex_id(high: &str, low: &str) -> Vec<u8> {
    let h = u64::from_str_radix(high, 16).unwrap();
    let l = u64::from_str_radix(low, 16).unwrap();
    let b = trace_id_bytes(h, l);
    assert_eq!(b.len(), 16);
    b
}

#[test]
fn thrift_keeps_scope_and_tracestate_tags_as_attributes() {
    let mut b = sample_batch();
    b.spans.truncate(1);
    b.spans[0].tags = vec![
        tag("otel.library.name", s("lib")),
        tag("w3c.tracestate", s("k=v")),
    ];
    let req = to_otlp(b, Flavor::Thrift);
    let ss = &req.resource_spans[0].scope_spans[0];
    assert_eq!(ss.scope.as_ref().unwrap().name, "");
    assert_eq!(ss.spans[0].attributes.len(), 2);
    assert_eq!(ss.spans[0].trace_state, "");
}

fn pspan(id: u64, tags: Vec<Tag>, process: Option<Process>) -> Span {
    Span {
        trace_id_high: TRACE_HIGH,
        trace_id_low: TRACE_LOW,
        span_id: id,
        operation_name: format!("op{id}"),
        start_time_ns: START_NS,
        end_time_ns: START_NS + 1,
        tags,
        process,
        ..Span::default()
    }
}

fn proc(name: &str) -> Process {
    Process {
        service_name: name.into(),
        tags: Some(vec![]),
    }
}

#[test]
fn proto_regroups_by_process_and_scope() {
    let mut a = pspan(
        1,
        vec![
            tag("otel.scope.name", s("lib")),
            tag("otel.scope.version", s("1.0")),
            tag("w3c.tracestate", s("k=v")),
            tag("keep", Value::Bool(true)),
        ],
        None,
    );
    a.references = vec![SpanRef {
        ref_type: RefType::FollowsFrom,
        trace_id_high: TRACE_HIGH,
        trace_id_low: TRACE_LOW,
        span_id: 9,
    }];
    a.logs = vec![Log {
        timestamp_ns: START_NS,
        fields: vec![tag("event", Value::Long(1))],
    }];
    let b = pspan(
        2,
        vec![tag("otel.library.name", s("old"))],
        Some(proc("other")),
    );
    let c = pspan(3, vec![], Some(proc("main")));
    let blank = Span::default();
    let batch = Batch {
        process: Some(proc("main")),
        spans: vec![a, b, c, blank],
    };
    let req = to_otlp(batch, Flavor::Proto);
    assert_eq!(req.resource_spans.len(), 2);
    let service = |rs: &ResourceSpans| kv(&rs.resource.as_ref().unwrap().attributes)[0].1.clone();
    assert_eq!(service(&req.resource_spans[0]), sv("main"));
    assert_eq!(service(&req.resource_spans[1]), sv("other"));

    let main = &req.resource_spans[0].scope_spans;
    assert_eq!(main.len(), 2);
    let scope = main[0].scope.as_ref().unwrap();
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        ("lib", "1.0")
    );
    let a = &main[0].spans[0];
    assert_eq!(a.trace_state, "k=v");
    assert_eq!(
        kv(&a.attributes),
        vec![("keep".into(), Av::BoolValue(true))]
    );
    // A same-trace FOLLOWS_FROM reference is the parent and also stays a link.
    assert_eq!(a.parent_span_id, 9u64.to_be_bytes().to_vec());
    assert_eq!(a.links.len(), 1);
    // A non-string `event` field names the event "" (pdata's Str()).
    assert_eq!(a.events[0].name, "");
    assert!(a.events[0].attributes.is_empty());
    assert_eq!(main[1].scope.as_ref().unwrap().name, "");
    assert_eq!(main[1].spans[0].name, "op3");

    let other = &req.resource_spans[1].scope_spans;
    assert_eq!(other[0].scope.as_ref().unwrap().name, "old");
    assert!(other[0].spans[0].attributes.is_empty());
}

#[test]
fn proto_no_service_name_marker_and_empty_batches() {
    let batch = Batch {
        process: Some(Process {
            service_name: NO_SERVICE_NAME.into(),
            tags: Some(vec![tag("a", s("b"))]),
        }),
        spans: vec![pspan(1, vec![], None)],
    };
    let req = to_otlp(batch, Flavor::Proto);
    assert!(req.resource_spans[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .is_empty());
    assert!(to_otlp(Batch::default(), Flavor::Proto)
        .resource_spans
        .is_empty());
    assert!(to_otlp(Batch::default(), Flavor::Thrift)
        .resource_spans
        .is_empty());
}
