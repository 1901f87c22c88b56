//! Tests of the probabilistic sampler: trace-id consistency, rates, tracestate, modes.

use super::*;
use crate::testutil::{span, trace_request, with_attr, Sink};
use osprey_model::otlp::common::v1::AnyValue;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

fn sampler(yaml: &str) -> TraceSampler {
    let c: ProbabilisticSamplerConfig =
        osprey_pipeline::decode_config(&serde_yaml::from_str(yaml).unwrap()).unwrap();
    TraceSampler::new(&c).unwrap()
}

fn random_ids(n: usize) -> Vec<u128> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(42);
    (0..n).map(|_| rng.random::<u128>()).collect()
}

#[test]
fn fnv_vectors() {
    assert_eq!(fnv1a32_update(FNV32_OFFSET, b""), 0x811c9dc5);
    assert_eq!(fnv1a32_update(FNV32_OFFSET, b"a"), 0xe40c292c);
    assert_eq!(fnv1a32_update(FNV32_OFFSET, b"foobar"), 0xbf9cf968);
    assert_eq!(
        fnv1a32(0x0403_0201, b"x"),
        fnv1a32_update(FNV32_OFFSET, &[1, 2, 3, 4, b'x'])
    );
}

#[test]
fn hash_seed_is_trace_consistent_and_near_the_percentage() {
    let a = sampler("sampling_percentage: 25\nhash_seed: 22");
    let b = sampler("sampling_percentage: 25\nhash_seed: 22");
    let ids = random_ids(10_000);
    let mut kept = 0;
    for id in &ids {
        let da = a.keep_span(&mut span(*id, 1, "x"));
        let db = b.keep_span(&mut span(*id, 2, "y"));
        assert_eq!(
            da, db,
            "same trace id, same decision across samplers and spans"
        );
        kept += usize::from(da);
    }
    assert!(
        (2_000..3_000).contains(&kept),
        "kept {kept} of 10000 at 25%"
    );
    let other_seed = sampler("sampling_percentage: 25\nhash_seed: 23");
    let differ = ids
        .iter()
        .filter(|id| {
            other_seed.keep_span(&mut span(**id, 1, "x")) != a.keep_span(&mut span(**id, 1, "x"))
        })
        .count();
    assert!(
        differ > 1_000,
        "another seed makes other decisions ({differ})"
    );
}

#[test]
fn hash_seed_matches_upstream_bucket_rule() {
    // Kept iff the low 14 bits of FNV-1a(seed, trace id) are below uint32(pct * 163.84).
    let s = sampler("sampling_percentage: 10\nhash_seed: 7");
    let scaled = (10f32 * 163.84f32) as u32;
    for id in random_ids(2_000) {
        let bucket = fnv1a32(7, &id.to_be_bytes()) & 0x3fff;
        assert_eq!(
            s.keep_span(&mut span(id, 1, "x")),
            bucket < scaled,
            "id {id:x}"
        );
    }
}

#[test]
fn kept_spans_carry_ot_tracestate() {
    let s = sampler("sampling_percentage: 100");
    let mut sp = span(0xabc, 1, "x");
    sp.trace_state = "vendor=1".into();
    assert!(s.keep_span(&mut sp));
    let ts = TraceState::parse(&sp.trace_state).unwrap();
    assert_eq!(ts.th, Some(ALWAYS_SAMPLE));
    assert!(ts.rv.is_some());
    assert!(
        sp.trace_state.starts_with("ot=rv:") && sp.trace_state.ends_with(";th:0,vendor=1"),
        "{}",
        sp.trace_state
    );
    assert!(!sampler("sampling_percentage: 0").keep_span(&mut span(1, 1, "x")));
}

#[test]
fn priority_overrides_and_fail_closed() {
    let s = sampler("sampling_percentage: 0.0001");
    let int = |i| AnyValue {
        value: Some(Value::IntValue(i)),
    };
    assert!(s.keep_span(&mut with_attr(span(5, 1, "x"), "sampling.priority", int(1))));
    let all = sampler("sampling_percentage: 100");
    assert!(!all.keep_span(&mut with_attr(span(5, 1, "x"), "sampling.priority", int(0))));
    let mut no_id = span(0, 1, "x");
    assert!(
        !all.keep_span(&mut no_id),
        "fail_closed drops spans without randomness"
    );
    let open = sampler("sampling_percentage: 100\nfail_closed: false");
    let mut bad_ts = span(9, 1, "x");
    bad_ts.trace_state = "not a tracestate".into();
    assert!(open.keep_span(&mut bad_ts));
}

#[test]
fn equalizing_and_proportional() {
    let eq = sampler("sampling_percentage: 50\nmode: equalizing");
    let prop = sampler("sampling_percentage: 50\nmode: proportional");
    // Randomness 0xe0..: above th c (p=.25) and 8 (p=.5).
    let id = 0x00e0_0000_0000_0000u128;
    let mut a = span(id, 1, "x");
    a.trace_state = "ot=th:c".into();
    assert!(eq.keep_span(&mut a));
    assert_eq!(
        a.trace_state, "ot=th:c",
        "equalizing keeps a higher incoming threshold"
    );
    let mut b = span(id, 1, "x");
    b.trace_state = "ot=th:8".into();
    assert!(prop.keep_span(&mut b));
    assert_eq!(b.trace_state, "ot=th:c", "proportional: 0.5 * 0.5 = 0.25");
    let mut c = span(0x0010_0000_0000_0000u128, 1, "x");
    assert!(!eq.keep_span(&mut c));
    let kept = random_ids(10_000)
        .into_iter()
        .filter(|id| prop.keep_span(&mut span(*id, 1, "x")))
        .count();
    assert!((4_500..5_500).contains(&kept), "kept {kept}");
}

#[test]
fn config_validation() {
    let bad = |y: &str| {
        let c: ProbabilisticSamplerConfig =
            osprey_pipeline::decode_config(&serde_yaml::from_str(y).unwrap()).unwrap();
        c.validate().unwrap_err().path
    };
    assert_eq!(bad("sampling_percentage: -1"), "sampling_percentage");
    assert_eq!(bad("mode: random"), "mode");
    assert_eq!(bad("sampling_precision: 15"), "sampling_precision");
    assert_eq!(bad("attribute_source: body"), "attribute_source");
}

#[tokio::test]
async fn processor_drops_unsampled_and_empty_batches() {
    let sink = Arc::new(Sink::default());
    let c: ProbabilisticSamplerConfig =
        osprey_pipeline::decode_config(&serde_yaml::from_str("sampling_percentage: 0").unwrap())
            .unwrap();
    let p = ProbabilisticSamplerProcessor::new(c, sink.clone()).unwrap();
    p.consume(Batch::traces(trace_request("svc", vec![span(1, 1, "a")])))
        .await
        .unwrap();
    assert!(sink.take().is_empty());
}
