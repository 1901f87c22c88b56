//! Tests of include/exclude matching for spans and logs.

use super::*;
use crate::attrs::str_value;

fn props(yaml: &str) -> MatchProperties {
    serde_yaml::from_str(yaml).unwrap()
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(str_value(v)),
        ..Default::default()
    }
}

#[test]
fn span_properties() {
    let inc = props("{match_type: regexp, services: ['^svc-'], span_names: ['^GET '], attributes: [{key: http.status_code}]}");
    let m = SkipMatcher::new(Some(&inc), None, Target::Spans).unwrap();
    let res = vec![kv("service.name", "svc-a")];
    let mut span = Span {
        name: "GET /x".into(),
        attributes: vec![kv("http.status_code", "200")],
        ..Default::default()
    };
    assert!(!m.skip_span(&res, None, &span));
    span.name = "POST /x".into();
    assert!(m.skip_span(&res, None, &span));
    span.name = "GET /x".into();
    span.attributes.clear();
    assert!(m.skip_span(&res, None, &span), "attribute key required");
    assert!(
        m.skip_span(
            &[],
            None,
            &Span {
                name: "GET /".into(),
                attributes: vec![kv("http.status_code", "1")],
                ..Default::default()
            }
        ),
        "<nil-service-name> doesn't match"
    );
}

#[test]
fn exclude_kinds_and_strict_values() {
    let ex = props("{match_type: strict, span_kinds: [SPAN_KIND_CLIENT], attributes: [{key: env, value: prod}]}");
    let m = SkipMatcher::new(None, Some(&ex), Target::Spans).unwrap();
    let span = Span {
        kind: 3,
        attributes: vec![kv("env", "prod")],
        ..Default::default()
    };
    assert!(m.skip_span(&[], None, &span));
    let span = Span {
        kind: 2,
        attributes: vec![kv("env", "prod")],
        ..Default::default()
    };
    assert!(!m.skip_span(&[], None, &span));
    let bad = props("{match_type: strict, span_kinds: [client]}");
    let e = SkipMatcher::new(Some(&bad), None, Target::Spans).unwrap_err();
    assert_eq!(e.path, "include.span_kinds[0]");
    let e =
        SkipMatcher::new(Some(&props("{match_type: strict}")), None, Target::Spans).unwrap_err();
    assert_eq!(e.path, "include");
    let e = SkipMatcher::new(
        Some(&props("{match_type: fuzzy, services: [a]}")),
        None,
        Target::Spans,
    )
    .unwrap_err();
    assert_eq!(e.path, "include.match_type");
}

#[test]
fn logs_by_severity_and_body() {
    let inc = props("{match_type: strict, log_severity_number: {min: WARN}, log_bodies: [boom]}");
    let m = SkipMatcher::new(Some(&inc), None, Target::Logs).unwrap();
    let log = LogRecord {
        severity_number: 17,
        body: Some(str_value("boom")),
        ..Default::default()
    };
    assert!(!m.skip_log(&[], None, &log));
    let log = LogRecord {
        severity_number: 9,
        body: Some(str_value("boom")),
        ..Default::default()
    };
    assert!(m.skip_log(&[], None, &log));
}
