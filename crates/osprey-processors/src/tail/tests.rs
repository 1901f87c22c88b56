use super::policy::{fnv1a64, probability_threshold};
use super::*;
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
    TailSampler::new(&config(&format!("decision_wait: 10s\npolicies: {policies}"))).unwrap()
}

fn int(i: i64) -> AnyValue {
    AnyValue { value: Some(Value::IntValue(i)) }
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
    s.add(trace_request("svc", vec![span(1, 1, "root"), span(2, 1, "other")]), t0).unwrap();
    s.add(trace_request("svc", vec![span(1, 2, "child")]), t0 + Duration::from_secs(5)).unwrap();
    assert!(s.tick(t0 + Duration::from_millis(9_999)).resource_spans.is_empty());
    let out = s.tick(t0 + Duration::from_secs(10));
    assert_eq!(names(&out), ["root", "child", "other"]);
    assert_eq!(s.stats().traces_sampled, 2);
    assert_eq!(s.stats().spans_held, 0);
}

#[test]
fn latency_status_span_count_policies() {
    let mut slow = span(1, 1, "slow");
    slow.end_time_unix_nano = slow.start_time_unix_nano + 600_000_000;
    let fast = span(2, 1, "fast");
    let mut s = sampler("[{name: l, type: latency, latency: {threshold_ms: 500}}]");
    assert_eq!(decide(&mut s, vec![(1, vec![slow.clone()]), (2, vec![fast.clone()])]), [1]);
    let mut s = sampler("[{name: l, type: latency, latency: {threshold_ms: 100, upper_threshold_ms: 500}}]");
    assert_eq!(decide(&mut s, vec![(1, vec![slow]), (2, vec![fast])]), Vec::<u128>::new());

    let mut s = sampler("[{name: e, type: status_code, status_code: {status_codes: [ERROR]}}]");
    assert_eq!(decide(&mut s, vec![(1, vec![span(1, 1, "a"), with_status(span(1, 2, "b"), 2)]), (2, vec![with_status(span(2, 1, "c"), 1)])]), [1]);

    let mut s = sampler("[{name: c, type: span_count, span_count: {min_spans: 2, max_spans: 3}}]");
    let many: Vec<Span> = (0..4).map(|i| span(3, i, "x")).collect();
    assert_eq!(decide(&mut s, vec![(1, vec![span(1, 1, "a")]), (2, vec![span(2, 1, "a"), span(2, 2, "b")]), (3, many)]), [2]);
}

#[test]
fn attribute_policies() {
    let mut s = sampler("[{name: s, type: string_attribute, string_attribute: {key: http.route, values: [/checkout]}}]");
    assert_eq!(
        decide(&mut s, vec![(1, vec![with_attr(span(1, 1, "a"), "http.route", str_value("/checkout"))]), (2, vec![with_attr(span(2, 1, "a"), "http.route", str_value("/cart"))])]),
        [1]
    );
    let mut s = sampler("[{name: s, type: string_attribute, string_attribute: {key: service.name, values: ['^sv'], enabled_regex_matching: true}}]");
    assert_eq!(decide(&mut s, vec![(1, vec![span(1, 1, "a")])]), [1], "resource attributes count");
    let mut s = sampler("[{name: n, type: numeric_attribute, numeric_attribute: {key: http.status_code, min_value: 500, max_value: 599}}]");
    assert_eq!(
        decide(&mut s, vec![(1, vec![with_attr(span(1, 1, "a"), "http.status_code", int(503))]), (2, vec![with_attr(span(2, 1, "a"), "http.status_code", int(200))])]),
        [1]
    );
    let mut s = sampler("[{name: b, type: boolean_attribute, boolean_attribute: {key: force, value: true}}]");
    let flag = AnyValue { value: Some(Value::BoolValue(true)) };
    assert_eq!(decide(&mut s, vec![(1, vec![with_attr(span(1, 1, "a"), "force", flag)]), (2, vec![span(2, 1, "a")])]), [1]);
    let mut s = sampler("[{name: ts, type: trace_state, trace_state: {key: team, values: [a]}}]");
    let mut with_ts = span(1, 1, "a");
    with_ts.trace_state = "vendor=x,team=a".into();
    let mut flagged = span(2, 1, "a");
    flagged.flags = 0x101;
    assert_eq!(decide(&mut s, vec![(1, vec![with_ts]), (2, vec![flagged.clone()])]), [1]);
    let mut s = sampler("[{name: f, type: trace_flags}]");
    assert_eq!(decide(&mut s, vec![(2, vec![flagged]), (3, vec![span(3, 1, "a")])]), [2]);
}

#[test]
fn inverted_matches_veto_other_samples() {
    // invert_match: a trace with the value gets "inverted not sampled", which wins over
    // another policy's "sampled"; other traces get "inverted sampled".
    let mut s = sampler(
        "[{name: all, type: always_sample},
          {name: not-health, type: string_attribute, string_attribute: {key: http.route, values: [/health], invert_match: true}}]",
    );
    let health = with_attr(span(1, 1, "a"), "http.route", str_value("/health"));
    assert_eq!(decide(&mut s, vec![(1, vec![health]), (2, vec![span(2, 1, "b")])]), [2]);
    let mut s = sampler("[{name: inv, type: numeric_attribute, numeric_attribute: {key: code, min_value: 1, max_value: 10, invert_match: true}}]");
    assert_eq!(decide(&mut s, vec![(1, vec![with_attr(span(1, 1, "a"), "code", int(5))]), (2, vec![span(2, 1, "b")])]), [2]);
}

#[test]
fn and_not_drop_composite() {
    let mut s = sampler(
        "[{name: a, type: and, and: {and_sub_policy: [
            {name: err, type: status_code, status_code: {status_codes: [ERROR]}},
            {name: route, type: string_attribute, string_attribute: {key: r, values: [x]}}]}}]",
    );
    let both = with_status(with_attr(span(1, 1, "a"), "r", str_value("x")), 2);
    assert_eq!(decide(&mut s, vec![(1, vec![both]), (2, vec![with_status(span(2, 1, "a"), 2)])]), [1]);

    let mut s = sampler(
        "[{name: all, type: always_sample},
          {name: d, type: drop, drop: {drop_sub_policy: [{name: h, type: string_attribute, string_attribute: {key: r, values: [/health]}}]}}]",
    );
    assert_eq!(decide(&mut s, vec![(1, vec![with_attr(span(1, 1, "a"), "r", str_value("/health"))]), (2, vec![span(2, 1, "b")])]), [2]);

    let mut s = sampler("[{name: n, type: not, not: {not_sub_policy: {name: e, type: status_code, status_code: {status_codes: [ERROR]}}}}]");
    assert_eq!(decide(&mut s, vec![(1, vec![with_status(span(1, 1, "a"), 2)]), (2, vec![span(2, 1, "b")])]), [2]);

    // Composite: 10 spans/s in total, 50% (5) for errors; always_sample gets no allocation.
    let mut s = sampler(
        "[{name: c, type: composite, composite: {max_total_spans_per_second: 10, policy_order: [e, all],
            composite_sub_policy: [{name: e, type: status_code, status_code: {status_codes: [ERROR]}}, {name: all, type: always_sample}],
            rate_allocation: [{policy: e, percent: 50}]}}]",
    );
    let err_trace = |id: u128, n: u64| (id, (0..n).map(|i| with_status(span(id, i, "e"), 2)).collect::<Vec<_>>());
    assert_eq!(decide(&mut s, vec![err_trace(1, 3), err_trace(2, 3), (3, vec![span(3, 1, "ok")])]), [1]);
}

#[test]
fn ottl_condition_policy() {
    let mut s = sampler(
        r#"[{name: o, type: ottl_condition, ottl_condition: {span: ['attributes["tenant"] == "vip"'], spanevent: ['name == "exception"']}}]"#,
    );
    let mut with_event = span(2, 1, "b");
    with_event.events.push(osprey_model::otlp::trace::v1::span::Event { name: "exception".into(), ..Default::default() });
    assert_eq!(
        decide(&mut s, vec![(1, vec![with_attr(span(1, 1, "a"), "tenant", str_value("vip"))]), (2, vec![with_event]), (3, vec![span(3, 1, "c")])]),
        [1, 2]
    );
}

#[test]
fn probabilistic_policy_is_trace_consistent() {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let ids: Vec<u128> = (0..10_000).map(|_| rng.random()).collect();
    let traces: Vec<(u128, Vec<Span>)> = ids.iter().map(|id| (*id, vec![span(*id, 1, "x")])).collect();
    let mut a = TailSampler::new(&config("num_traces: 20000\npolicies: [{name: p, type: probabilistic, probabilistic: {sampling_percentage: 20}}]")).unwrap();
    let mut b = TailSampler::new(&config("num_traces: 20000\npolicies: [{name: p, type: probabilistic, probabilistic: {sampling_percentage: 20}}]")).unwrap();
    let t0 = Instant::now();
    for (_, spans) in &traces {
        a.add(trace_request("svc", spans.clone()), t0).unwrap();
        b.add(trace_request("svc", spans.clone()), t0).unwrap();
    }
    let later = t0 + Duration::from_secs(30);
    let (ra, rb) = (a.tick(later), b.tick(later));
    assert_eq!(ra, rb, "same ids, same decisions");
    let kept = ra.resource_spans.len();
    assert!((1_700..2_300).contains(&kept), "kept {kept}");
    let threshold = probability_threshold(0.2);
    let expected = ids.iter().filter(|id| fnv1a64(b"default-hash-seed", &id.to_be_bytes()) <= threshold).count();
    assert_eq!(kept, expected);
    assert_eq!(probability_threshold(1.0), u64::MAX);
    assert_eq!(probability_threshold(0.5), u64::MAX / 2);
}

#[test]
fn rate_limiting_uses_a_token_bucket() {
    let mut s = sampler("[{name: r, type: rate_limiting, rate_limiting: {spans_per_second: 2}}]");
    let t0 = Instant::now();
    let three = |id: u128| trace_request("svc", (0..3).map(|i| span(id, i, "x")).collect());
    s.add(three(1), t0).unwrap();
    s.add(three(2), t0).unwrap();
    s.add(three(3), t0 + Duration::from_secs(2)).unwrap();
    let first = s.tick(t0 + Duration::from_secs(10));
    assert_eq!(first.resource_spans.len(), 1, "burst of 4 spans: the second 3-span trace waits");
    let second = s.tick(t0 + Duration::from_secs(12));
    assert_eq!(second.resource_spans.len(), 1, "refilled at 2 spans/s");
}

#[test]
fn late_spans_follow_the_decision() {
    let mut s = sampler("[{name: e, type: status_code, status_code: {status_codes: [ERROR]}}]");
    let t0 = Instant::now();
    s.add(trace_request("svc", vec![with_status(span(1, 1, "err"), 2), span(2, 1, "ok")]), t0).unwrap();
    assert_eq!(s.tick(t0 + Duration::from_secs(10)).resource_spans.len(), 1);
    let late = s.add(trace_request("svc", vec![span(1, 2, "late-kept"), span(2, 2, "late-dropped")]), t0 + Duration::from_secs(11)).unwrap();
    assert_eq!(names(&late), ["late-kept"]);
    assert!(s.tick(t0 + Duration::from_secs(60)).resource_spans.is_empty());
    let st = s.stats();
    assert_eq!((st.late_spans_forwarded, st.late_spans_dropped), (1, 1));
}

#[test]
fn num_traces_evicts_oldest_and_caches_remember() {
    let mut s = TailSampler::new(&config("num_traces: 2\ndecision_wait: 1s\npolicies: [{name: all, type: always_sample}]")).unwrap();
    let t0 = Instant::now();
    for id in 1..=3u128 {
        s.add(trace_request("svc", vec![span(id, 1, "x")]), t0).unwrap();
    }
    assert_eq!(s.stats().traces_dropped_too_early, 1);
    let out = s.tick(t0 + Duration::from_secs(1));
    assert_eq!(out.resource_spans.len(), 2);
    // Trace 2 was decided but is pushed out by a new trace; a late span of it then starts
    // a new trace (no cache) ...
    s.add(trace_request("svc", vec![span(4, 1, "x")]), t0 + Duration::from_secs(2)).unwrap();
    let late = s.add(trace_request("svc", vec![span(2, 9, "late")]), t0 + Duration::from_secs(2)).unwrap();
    assert!(late.resource_spans.is_empty());
    // ... unless the sampled-decision cache remembers it.
    let mut c = TailSampler::new(&config("num_traces: 1\ndecision_wait: 1s\ndecision_cache: {sampled_cache_size: 10}\npolicies: [{name: all, type: always_sample}]")).unwrap();
    c.add(trace_request("svc", vec![span(1, 1, "x")]), t0).unwrap();
    c.tick(t0 + Duration::from_secs(1));
    c.add(trace_request("svc", vec![span(2, 1, "x")]), t0 + Duration::from_secs(1)).unwrap();
    let late = c.add(trace_request("svc", vec![span(1, 2, "late")]), t0 + Duration::from_secs(1)).unwrap();
    assert_eq!(names(&late), ["late"]);
}

#[test]
fn block_on_overflow_refuses_and_flush_decides() {
    let mut s = TailSampler::new(&config("num_traces: 1\nblock_on_overflow: true\npolicies: [{name: all, type: always_sample}]")).unwrap();
    let t0 = Instant::now();
    s.add(trace_request("svc", vec![span(1, 1, "x")]), t0).unwrap();
    assert!(s.add(trace_request("svc", vec![span(2, 1, "x")]), t0).is_err());
    s.add(trace_request("svc", vec![span(1, 2, "y")]), t0).unwrap();
    assert_eq!(names(&s.flush(t0)), ["x", "y"]);
    s.add(trace_request("svc", vec![span(2, 1, "x")]), t0).unwrap();
    let mut d = TailSampler::new(&config("drop_pending_traces_on_shutdown: true\npolicies: [{name: all, type: always_sample}]")).unwrap();
    d.add(trace_request("svc", vec![span(1, 1, "x")]), t0).unwrap();
    assert!(d.flush(t0).resource_spans.is_empty());
}

#[test]
fn config_errors_name_the_policy() {
    let bad = |y: &str| config(y).validate().unwrap_err();
    assert_eq!(bad("policies: []").path, "policies");
    assert_eq!(bad("policies: [{name: a, type: always_sample}, {name: a, type: always_sample}]").path, "policies[1].name");
    assert_eq!(bad("policies: [{name: a, type: always_sample}, {name: b, type: sometimes}]").path, "policies[1].type");
    assert_eq!(bad("policies: [{name: a, type: status_code, status_code: {status_codes: [FAIL]}}]").path, "policies[0].status_code.status_codes[0]");
    assert_eq!(bad("policies: [{name: a, type: and, and: {and_sub_policy: [{name: b, type: drop}]}}]").path, "policies[0].and.and_sub_policy[0].type");
    assert_eq!(bad("policies: [{name: a, type: ottl_condition, ottl_condition: {span: ['name + 1']}}]").path, "policies[0].ottl_condition.span[0]");
    assert_eq!(bad("decision_wait: 0s\npolicies: [{name: a, type: always_sample}]").path, "decision_wait");
    let c = config("policies: [{name: a, type: always_sample}]");
    assert_eq!((c.decision_wait, c.num_traces), (Duration::from_secs(30), 50_000));
}

#[tokio::test(start_paused = true)]
async fn processor_ticks_and_forwards() {
    let sink = std::sync::Arc::new(Sink::default());
    let p = TailSamplingProcessor::new(config("decision_wait: 5s\npolicies: [{name: all, type: always_sample}]"), sink.clone()).unwrap();
    p.consume(Batch::traces(trace_request("svc", vec![span(1, 1, "a")]))).await.unwrap();
    assert!(sink.take().is_empty(), "held, not forwarded yet");
    tokio::time::sleep(Duration::from_secs(7)).await;
    let got = sink.take();
    assert_eq!(got.len(), 1);
    assert_eq!(names(got[0].trace_request().unwrap()), ["a"]);
    p.consume(Batch::traces(trace_request("svc", vec![span(1, 2, "late")]))).await.unwrap();
    assert_eq!(names(sink.take()[0].trace_request().unwrap()), ["late"], "late spans go straight through");
    p.consume(Batch::traces(trace_request("svc", vec![span(2, 1, "pending")]))).await.unwrap();
    p.shutdown().await;
    assert_eq!(names(sink.take()[0].trace_request().unwrap()), ["pending"]);
    assert_eq!(p.stats().traces_sampled, 2);
}
