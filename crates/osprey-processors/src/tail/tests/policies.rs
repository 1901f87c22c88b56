//! One test per policy type, through the sampler with injected time.

use super::super::policy::{fnv1a64, probability_threshold};
use super::*;

#[test]
fn latency_status_span_count_policies() {
    let mut slow = span(1, 1, "slow");
    slow.end_time_unix_nano = slow.start_time_unix_nano + 600_000_000;
    let fast = span(2, 1, "fast");
    let mut s = sampler("[{name: l, type: latency, latency: {threshold_ms: 500}}]");
    assert_eq!(
        decide(
            &mut s,
            vec![(1, vec![slow.clone()]), (2, vec![fast.clone()])]
        ),
        [1]
    );
    let mut s = sampler(
        "[{name: l, type: latency, latency: {threshold_ms: 100, upper_threshold_ms: 500}}]",
    );
    assert_eq!(
        decide(&mut s, vec![(1, vec![slow]), (2, vec![fast])]),
        Vec::<u128>::new()
    );

    let mut s = sampler("[{name: e, type: status_code, status_code: {status_codes: [ERROR]}}]");
    assert_eq!(
        decide(
            &mut s,
            vec![
                (1, vec![span(1, 1, "a"), with_status(span(1, 2, "b"), 2)]),
                (2, vec![with_status(span(2, 1, "c"), 1)])
            ]
        ),
        [1]
    );

    let mut s = sampler("[{name: c, type: span_count, span_count: {min_spans: 2, max_spans: 3}}]");
    let many: Vec<Span> = (0..4).map(|i| span(3, i, "x")).collect();
    assert_eq!(
        decide(
            &mut s,
            vec![
                (1, vec![span(1, 1, "a")]),
                (2, vec![span(2, 1, "a"), span(2, 2, "b")]),
                (3, many)
            ]
        ),
        [2]
    );
}

#[test]
fn attribute_policies() {
    let mut s = sampler("[{name: s, type: string_attribute, string_attribute: {key: http.route, values: [/checkout]}}]");
    assert_eq!(
        decide(
            &mut s,
            vec![
                (
                    1,
                    vec![with_attr(
                        span(1, 1, "a"),
                        "http.route",
                        str_value("/checkout")
                    )]
                ),
                (
                    2,
                    vec![with_attr(span(2, 1, "a"), "http.route", str_value("/cart"))]
                )
            ]
        ),
        [1]
    );
    let mut s = sampler("[{name: s, type: string_attribute, string_attribute: {key: service.name, values: ['^sv'], enabled_regex_matching: true}}]");
    assert_eq!(
        decide(&mut s, vec![(1, vec![span(1, 1, "a")])]),
        [1],
        "resource attributes count"
    );
    let mut s = sampler("[{name: n, type: numeric_attribute, numeric_attribute: {key: http.status_code, min_value: 500, max_value: 599}}]");
    assert_eq!(
        decide(
            &mut s,
            vec![
                (
                    1,
                    vec![with_attr(span(1, 1, "a"), "http.status_code", int(503))]
                ),
                (
                    2,
                    vec![with_attr(span(2, 1, "a"), "http.status_code", int(200))]
                )
            ]
        ),
        [1]
    );
    let mut s = sampler(
        "[{name: b, type: boolean_attribute, boolean_attribute: {key: force, value: true}}]",
    );
    let flag = AnyValue {
        value: Some(Value::BoolValue(true)),
    };
    assert_eq!(
        decide(
            &mut s,
            vec![
                (1, vec![with_attr(span(1, 1, "a"), "force", flag)]),
                (2, vec![span(2, 1, "a")])
            ]
        ),
        [1]
    );
    let mut s = sampler("[{name: ts, type: trace_state, trace_state: {key: team, values: [a]}}]");
    let mut with_ts = span(1, 1, "a");
    with_ts.trace_state = "vendor=x,team=a".into();
    let mut flagged = span(2, 1, "a");
    flagged.flags = 0x101;
    assert_eq!(
        decide(&mut s, vec![(1, vec![with_ts]), (2, vec![flagged.clone()])]),
        [1]
    );
    let mut s = sampler("[{name: f, type: trace_flags}]");
    assert_eq!(
        decide(&mut s, vec![(2, vec![flagged]), (3, vec![span(3, 1, "a")])]),
        [2]
    );
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
    assert_eq!(
        decide(&mut s, vec![(1, vec![health]), (2, vec![span(2, 1, "b")])]),
        [2]
    );
    let mut s = sampler("[{name: inv, type: numeric_attribute, numeric_attribute: {key: code, min_value: 1, max_value: 10, invert_match: true}}]");
    assert_eq!(
        decide(
            &mut s,
            vec![
                (1, vec![with_attr(span(1, 1, "a"), "code", int(5))]),
                (2, vec![span(2, 1, "b")])
            ]
        ),
        [2]
    );
}

#[test]
fn and_not_drop_composite() {
    let mut s = sampler(
        "[{name: a, type: and, and: {and_sub_policy: [
            {name: err, type: status_code, status_code: {status_codes: [ERROR]}},
            {name: route, type: string_attribute, string_attribute: {key: r, values: [x]}}]}}]",
    );
    let both = with_status(with_attr(span(1, 1, "a"), "r", str_value("x")), 2);
    assert_eq!(
        decide(
            &mut s,
            vec![(1, vec![both]), (2, vec![with_status(span(2, 1, "a"), 2)])]
        ),
        [1]
    );

    let mut s = sampler(
        "[{name: all, type: always_sample},
          {name: d, type: drop, drop: {drop_sub_policy: [{name: h, type: string_attribute, string_attribute: {key: r, values: [/health]}}]}}]",
    );
    assert_eq!(
        decide(
            &mut s,
            vec![
                (
                    1,
                    vec![with_attr(span(1, 1, "a"), "r", str_value("/health"))]
                ),
                (2, vec![span(2, 1, "b")])
            ]
        ),
        [2]
    );

    let mut s = sampler("[{name: n, type: not, not: {not_sub_policy: {name: e, type: status_code, status_code: {status_codes: [ERROR]}}}}]");
    assert_eq!(
        decide(
            &mut s,
            vec![
                (1, vec![with_status(span(1, 1, "a"), 2)]),
                (2, vec![span(2, 1, "b")])
            ]
        ),
        [2]
    );

    // Composite: 10 spans/s in total, 50% (5) for errors; always_sample gets no allocation.
    let mut s = sampler(
        "[{name: c, type: composite, composite: {max_total_spans_per_second: 10, policy_order: [e, all],
            composite_sub_policy: [{name: e, type: status_code, status_code: {status_codes: [ERROR]}}, {name: all, type: always_sample}],
            rate_allocation: [{policy: e, percent: 50}]}}]",
    );
    let err_trace = |id: u128, n: u64| {
        (
            id,
            (0..n)
                .map(|i| with_status(span(id, i, "e"), 2))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        decide(
            &mut s,
            vec![
                err_trace(1, 3),
                err_trace(2, 3),
                (3, vec![span(3, 1, "ok")])
            ]
        ),
        [1]
    );
}

#[test]
fn ottl_condition_policy() {
    let mut s = sampler(
        r#"[{name: o, type: ottl_condition, ottl_condition: {span: ['attributes["tenant"] == "vip"'], spanevent: ['name == "exception"']}}]"#,
    );
    let mut with_event = span(2, 1, "b");
    with_event
        .events
        .push(osprey_model::otlp::trace::v1::span::Event {
            name: "exception".into(),
            ..Default::default()
        });
    assert_eq!(
        decide(
            &mut s,
            vec![
                (
                    1,
                    vec![with_attr(span(1, 1, "a"), "tenant", str_value("vip"))]
                ),
                (2, vec![with_event]),
                (3, vec![span(3, 1, "c")])
            ]
        ),
        [1, 2]
    );
}

#[test]
fn probabilistic_policy_is_trace_consistent() {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let ids: Vec<u128> = (0..10_000).map(|_| rng.random()).collect();
    let traces: Vec<(u128, Vec<Span>)> = ids
        .iter()
        .map(|id| (*id, vec![span(*id, 1, "x")]))
        .collect();
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
    let expected = ids
        .iter()
        .filter(|id| fnv1a64(b"default-hash-seed", &id.to_be_bytes()) <= threshold)
        .count();
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
    assert_eq!(
        first.resource_spans.len(),
        1,
        "burst of 4 spans: the second 3-span trace waits"
    );
    let second = s.tick(t0 + Duration::from_secs(12));
    assert_eq!(second.resource_spans.len(), 1, "refilled at 2 spans/s");
}
