//! Tests of the filter processor: OTTL and legacy rules over OTLP fixtures.

use super::*;
use crate::attrs::str_value;
use crate::testutil::{names, resource_spans, span, trace_request, with_attr, with_status, Sink};
use osprey_model::otlp::common::v1::{any_value::Value, AnyValue};
use osprey_model::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use osprey_model::otlp::trace::v1::span::Event;
use std::sync::Arc;

fn config(yaml: &str) -> FilterConfig {
    osprey_pipeline::decode_config(&serde_yaml::from_str(yaml).unwrap()).unwrap()
}

fn int(i: i64) -> AnyValue {
    AnyValue {
        value: Some(Value::IntValue(i)),
    }
}

#[test]
fn drops_matching_spans_and_empty_containers() {
    let cfg = config(
        r#"
traces:
  span:
    - 'attributes["http.route"] == "/health"'
    - 'kind == SPAN_KIND_INTERNAL and IsMatch(name, "^cache\\.")'
"#,
    );
    let rules = cfg.trace_rules().unwrap();
    let mut cache = span(1, 3, "cache.get");
    cache.kind = 1;
    let mut req = trace_request(
        "svc",
        vec![
            with_attr(span(1, 1, "GET"), "http.route", str_value("/health")),
            span(1, 2, "GET /orders"),
            cache,
        ],
    );
    req.resource_spans.push(resource_spans(
        "other",
        vec![with_attr(
            span(2, 1, "GET"),
            "http.route",
            str_value("/health"),
        )],
    ));
    let f = filter_traces(&rules, &mut req).unwrap();
    assert_eq!(f.dropped, 3);
    assert_eq!(names(&req), ["GET /orders"]);
    assert_eq!(
        req.resource_spans.len(),
        1,
        "the emptied resource is removed"
    );
}

#[test]
fn resource_and_event_conditions() {
    let cfg = config(
        r#"
traces:
  resource: ['attributes["service.name"] == "noisy"']
  spanevent: ['name == "debug" and span.name == "keep"']
"#,
    );
    let rules = cfg.trace_rules().unwrap();
    let mut s = span(1, 1, "keep");
    s.events = vec![
        Event {
            name: "debug".into(),
            ..Default::default()
        },
        Event {
            name: "exception".into(),
            ..Default::default()
        },
    ];
    let mut req = trace_request("svc", vec![s]);
    req.resource_spans
        .push(resource_spans("noisy", vec![span(2, 1, "x")]));
    let f = filter_traces(&rules, &mut req).unwrap();
    assert_eq!(
        f,
        Filtered {
            dropped: 1,
            dropped_events: 1
        }
    );
    let events = &req.resource_spans[0].scope_spans[0].spans[0].events;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name, "exception");
}

#[test]
fn context_inferred_trace_conditions() {
    let cfg = config(
        r#"
trace_conditions:
  - 'span.status.code == STATUS_CODE_OK and resource.attributes["service.name"] == "svc"'
  - context: span
    conditions: ['attributes["drop"] == true']
"#,
    );
    let rules = cfg.trace_rules().unwrap();
    let mut req = trace_request(
        "svc",
        vec![
            with_status(span(1, 1, "ok"), 1),
            with_status(span(1, 2, "err"), 2),
            with_attr(
                span(1, 3, "flag"),
                "drop",
                AnyValue {
                    value: Some(Value::BoolValue(true)),
                },
            ),
        ],
    );
    filter_traces(&rules, &mut req).unwrap();
    assert_eq!(names(&req), ["err"]);
    let e = config("trace_conditions: ['name == \"x\"']")
        .trace_rules()
        .unwrap_err();
    assert_eq!(e.path, "trace_conditions[0]");
}

#[test]
fn legacy_span_properties() {
    let cfg = config("spans: {exclude: {match_type: regexp, span_names: ['^/health']}}");
    let rules = cfg.trace_rules().unwrap();
    let mut req = trace_request("svc", vec![span(1, 1, "/healthz"), span(1, 2, "/api")]);
    filter_traces(&rules, &mut req).unwrap();
    assert_eq!(names(&req), ["/api"]);
    let cfg = config("spans: {include: {match_type: strict, services: [svc]}}");
    let mut req = trace_request("other", vec![span(1, 1, "a")]);
    filter_traces(&cfg.trace_rules().unwrap(), &mut req).unwrap();
    assert!(req.resource_spans.is_empty());
    let both = config("spans: {include: {match_type: strict, services: [svc]}}\ntraces: {span: ['name == \"a\"']}");
    assert!(both
        .validate()
        .unwrap_err()
        .message
        .contains("at the same time"));
}

#[test]
fn unsupported_syntax_is_a_config_error() {
    let cfg = config("traces: {span: ['name == \"a\"', 'attributes[\"x\"] + 1 > 2']}");
    let e = cfg.validate().unwrap_err();
    assert_eq!(e.path, "traces.span[1]");
    assert!(e.message.contains("`+`"), "{e}");
    let e = osprey_pipeline::decode_config::<FilterConfig>(
        &serde_yaml::from_str("error_mode: loud").unwrap(),
    )
    .unwrap_err();
    assert_eq!(e.path, "error_mode");
}

#[test]
fn logs_conditions() {
    let cfg = config("logs: {log_record: ['severity_number < SEVERITY_NUMBER_WARN', 'IsMatch(body, \"^healthcheck\")']}");
    let rules = cfg.log_rules().unwrap();
    let rec = |sev: i32, body: &str| LogRecord {
        severity_number: sev,
        body: Some(str_value(body)),
        ..Default::default()
    };
    let mut req = LogsRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![rec(9, "info"), rec(17, "boom"), rec(17, "healthcheck ok")],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let f = filter_logs(&rules, &mut req).unwrap();
    assert_eq!(f.dropped, 2);
    assert_eq!(
        req.resource_logs[0].scope_logs[0].log_records[0].severity_number,
        17
    );
    let legacy = config("logs: {exclude: {match_type: strict, severity_texts: [DEBUG]}}");
    let mut req = LogsRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    severity_text: "DEBUG".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    filter_logs(&legacy.log_rules().unwrap(), &mut req).unwrap();
    assert!(req.resource_logs.is_empty());
}

#[tokio::test]
async fn consumer_forwards_remainder_and_swallows_empty_batches() {
    let sink = Arc::new(Sink::default());
    let p = FilterProcessor::new(
        config("traces: {span: ['attributes[\"code\"] >= 500']}"),
        sink.clone(),
    )
    .unwrap();
    let mut b = Batch::traces(trace_request(
        "svc",
        vec![
            with_attr(span(1, 1, "a"), "code", int(500)),
            span(1, 2, "b"),
        ],
    ));
    b.encoded = Some(bytes::Bytes::from_static(b"old"));
    p.consume(b).await.unwrap();
    p.consume(Batch::traces(trace_request(
        "svc",
        vec![with_attr(span(1, 1, "a"), "code", int(503))],
    )))
    .await
    .unwrap();
    let got = sink.take();
    assert_eq!(got.len(), 1, "the fully filtered batch is not forwarded");
    assert!(got[0].encoded.is_none());
    assert_eq!(names(got[0].trace_request().unwrap()), ["b"]);
}
