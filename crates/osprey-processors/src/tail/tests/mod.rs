//! Tests of the tail sampling state machine (injected time) and of the processor (paused tokio clock).

use super::*;

mod policies;
use crate::attrs::str_value;
use crate::testutil::{names, span, trace_request, with_attr, with_status, Sink};
use osprey_model::otlp::common::v1::{any_value::Value, AnyValue};
use osprey_model::otlp::trace::v1::Span;
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn config(yaml: &str) -> TailSamplingConfig {
    osprey_pipeline::decode_config(&serde_yaml::from_str(yaml).unwrap()).unwrap()
}

fn sampler(policies: &str) -> TailSampler {
    TailSampler::new(&config(&format!(
        "decision_wait: 10s\npolicies: {policies}"
    )))
    .unwrap()
}

fn int(i: i64) -> AnyValue {
    AnyValue {
        value: Some(Value::IntValue(i)),
    }
}

/// Feeds each trace (id -> spans), waits the decision, and returns the sampled trace ids.
fn decide(s: &mut TailSampler, traces: Vec<(u128, Vec<Span>)>) -> Vec<u128> {
    let t0 = Instant::now();
    for (_, spans) in traces {
        s.add(trace_request("svc", spans), t0).unwrap();
    }
    let out = s.tick(t0 + Duration::from_secs(10));
    let mut ids: Vec<u128> = out
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|sp| u128::from_be_bytes(sp.trace_id.clone().try_into().unwrap()))
        .collect();
    ids.dedup();
    ids
}

#[test]
fn waits_decision_wait_then_forwards_whole_traces() {
    let mut s = sampler("[{name: all, type: always_sample}]");
    let t0 = Instant::now();
    s.add(
        trace_request("svc", vec![span(1, 1, "root"), span(2, 1, "other")]),
        t0,
    )
    .unwrap();
    s.add(
        trace_request("svc", vec![span(1, 2, "child")]),
        t0 + Duration::from_secs(5),
    )
    .unwrap();
    assert!(s
        .tick(t0 + Duration::from_millis(9_999))
        .resource_spans
        .is_empty());
    let out = s.tick(t0 + Duration::from_secs(10));
    assert_eq!(names(&out), ["root", "child", "other"]);
    assert_eq!(s.stats().traces_sampled, 2);
    assert_eq!(s.stats().spans_held, 0);
}

#[test]
fn late_spans_follow_the_decision() {
    let mut s = sampler("[{name: e, type: status_code, status_code: {status_codes: [ERROR]}}]");
    let t0 = Instant::now();
    s.add(
        trace_request(
            "svc",
            vec![with_status(span(1, 1, "err"), 2), span(2, 1, "ok")],
        ),
        t0,
    )
    .unwrap();
    assert_eq!(s.tick(t0 + Duration::from_secs(10)).resource_spans.len(), 1);
    let late = s
        .add(
            trace_request(
                "svc",
                vec![span(1, 2, "late-kept"), span(2, 2, "late-dropped")],
            ),
            t0 + Duration::from_secs(11),
        )
        .unwrap();
    assert_eq!(names(&late), ["late-kept"]);
    assert!(s
        .tick(t0 + Duration::from_secs(60))
        .resource_spans
        .is_empty());
    let st = s.stats();
    assert_eq!((st.late_spans_forwarded, st.late_spans_dropped), (1, 1));
}

#[test]
fn num_traces_evicts_oldest_and_caches_remember() {
    let mut s = TailSampler::new(&config(
        "num_traces: 2\ndecision_wait: 1s\npolicies: [{name: all, type: always_sample}]",
    ))
    .unwrap();
    let t0 = Instant::now();
    for id in 1..=3u128 {
        s.add(trace_request("svc", vec![span(id, 1, "x")]), t0)
            .unwrap();
    }
    assert_eq!(s.stats().traces_dropped_too_early, 1);
    let out = s.tick(t0 + Duration::from_secs(1));
    assert_eq!(out.resource_spans.len(), 2);
    // Trace 2 was decided but is pushed out by a new trace; a late span of it then starts
    // a new trace (no cache) ...
    s.add(
        trace_request("svc", vec![span(4, 1, "x")]),
        t0 + Duration::from_secs(2),
    )
    .unwrap();
    let late = s
        .add(
            trace_request("svc", vec![span(2, 9, "late")]),
            t0 + Duration::from_secs(2),
        )
        .unwrap();
    assert!(late.resource_spans.is_empty());
    // ... unless the sampled-decision cache remembers it.
    let mut c = TailSampler::new(&config("num_traces: 1\ndecision_wait: 1s\ndecision_cache: {sampled_cache_size: 10}\npolicies: [{name: all, type: always_sample}]")).unwrap();
    c.add(trace_request("svc", vec![span(1, 1, "x")]), t0)
        .unwrap();
    c.tick(t0 + Duration::from_secs(1));
    c.add(
        trace_request("svc", vec![span(2, 1, "x")]),
        t0 + Duration::from_secs(1),
    )
    .unwrap();
    let late = c
        .add(
            trace_request("svc", vec![span(1, 2, "late")]),
            t0 + Duration::from_secs(1),
        )
        .unwrap();
    assert_eq!(names(&late), ["late"]);
}

#[test]
fn block_on_overflow_refuses_and_flush_decides() {
    let mut s = TailSampler::new(&config(
        "num_traces: 1\nblock_on_overflow: true\npolicies: [{name: all, type: always_sample}]",
    ))
    .unwrap();
    let t0 = Instant::now();
    s.add(trace_request("svc", vec![span(1, 1, "x")]), t0)
        .unwrap();
    assert!(s
        .add(trace_request("svc", vec![span(2, 1, "x")]), t0)
        .is_err());
    s.add(trace_request("svc", vec![span(1, 2, "y")]), t0)
        .unwrap();
    assert_eq!(names(&s.flush(t0)), ["x", "y"]);
    s.add(trace_request("svc", vec![span(2, 1, "x")]), t0)
        .unwrap();
    let mut d = TailSampler::new(&config(
        "drop_pending_traces_on_shutdown: true\npolicies: [{name: all, type: always_sample}]",
    ))
    .unwrap();
    d.add(trace_request("svc", vec![span(1, 1, "x")]), t0)
        .unwrap();
    assert!(d.flush(t0).resource_spans.is_empty());
}

#[test]
fn config_errors_name_the_policy() {
    let bad = |y: &str| config(y).validate().unwrap_err();
    assert_eq!(bad("policies: []").path, "policies");
    assert_eq!(
        bad("policies: [{name: a, type: always_sample}, {name: a, type: always_sample}]").path,
        "policies[1].name"
    );
    assert_eq!(
        bad("policies: [{name: a, type: always_sample}, {name: b, type: sometimes}]").path,
        "policies[1].type"
    );
    assert_eq!(
        bad("policies: [{name: a, type: status_code, status_code: {status_codes: [FAIL]}}]").path,
        "policies[0].status_code.status_codes[0]"
    );
    assert_eq!(
        bad("policies: [{name: a, type: and, and: {and_sub_policy: [{name: b, type: drop}]}}]")
            .path,
        "policies[0].and.and_sub_policy[0].type"
    );
    assert_eq!(
        bad("policies: [{name: a, type: ottl_condition, ottl_condition: {span: ['name + 1']}}]")
            .path,
        "policies[0].ottl_condition.span[0]"
    );
    assert_eq!(
        bad("decision_wait: 0s\npolicies: [{name: a, type: always_sample}]").path,
        "decision_wait"
    );
    let c = config("policies: [{name: a, type: always_sample}]");
    assert_eq!(
        (c.decision_wait, c.num_traces),
        (Duration::from_secs(30), 50_000)
    );
}

#[tokio::test]
async fn processor_ticks_and_forwards() {
    let sink = std::sync::Arc::new(Sink::default());
    let p = TailSamplingProcessor::new(
        config("decision_wait: 2s\npolicies: [{name: all, type: always_sample}]"),
        sink.clone(),
    )
    .unwrap();
    p.consume(Batch::traces(trace_request("svc", vec![span(1, 1, "a")])))
        .await
        .unwrap();
    assert!(sink.take().is_empty(), "held, not forwarded yet");
    // Real time, polled: no bound on how late the ticker may run on a slow machine.
    let mut got = sink.take();
    for _ in 0..600 {
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        got = sink.take();
    }
    assert_eq!(got.len(), 1);
    assert_eq!(names(got[0].trace_request().unwrap()), ["a"]);
    p.consume(Batch::traces(trace_request(
        "svc",
        vec![span(1, 2, "late")],
    )))
    .await
    .unwrap();
    assert_eq!(
        names(sink.take()[0].trace_request().unwrap()),
        ["late"],
        "late spans go straight through"
    );
    p.consume(Batch::traces(trace_request(
        "svc",
        vec![span(2, 1, "pending")],
    )))
    .await
    .unwrap();
    p.shutdown().await;
    assert_eq!(names(sink.take()[0].trace_request().unwrap()), ["pending"]);
    assert_eq!(p.stats().traces_sampled, 2);
}
