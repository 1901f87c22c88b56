use super::tree::{MAX_DEPTH, MAX_SPANS, MIN_SPANS};
use super::*;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;
use std::collections::{HashMap, HashSet};

fn gen(seed: u64, services: usize) -> Generator {
    let cfg = WorkloadConfig::new(seed, services, Duration::from_secs(3600));
    match Generator::new(cfg) {
        Ok(g) => g,
        Err(e) => panic!("generator: {e:#}"),
    }
}

/// All spans of `batches` batches, grouped by trace id.
fn collect(g: &mut Generator, batches: u64) -> (HashMap<Vec<u8>, Vec<Span>>, usize) {
    let mut traces: HashMap<Vec<u8>, Vec<Span>> = HashMap::new();
    let mut total = 0;
    for i in 0..batches {
        let n = g.fill_batch(i, 1000, usize::MAX);
        assert!(
            (1000..1000 + MAX_SPANS).contains(&n),
            "batch {i}: {n} spans"
        );
        let mut seen = 0;
        g.for_each_span(|_, _, s| {
            traces
                .entry(s.trace_id.clone())
                .or_default()
                .push(s.clone());
            seen += 1;
        });
        assert_eq!(seen, n);
        total += n;
    }
    (traces, total)
}

#[test]
fn trace_invariants_over_100k_spans() {
    let mut g = gen(42, 20);
    let (traces, total) = collect(&mut g, 100);
    assert!(total >= 100_000);
    let mut span_ids = HashSet::new();
    let mut errors = 0usize;
    let mut sizes = Vec::new();
    let mut kinds = HashSet::new();
    let mut services = HashSet::new();
    for (tid, spans) in &traces {
        assert_eq!(tid.len(), 16);
        assert!(tid.iter().any(|b| *b != 0), "all-zero trace id");
        assert!(
            (MIN_SPANS..=MAX_SPANS).contains(&spans.len()),
            "trace size {}",
            spans.len()
        );
        sizes.push(spans.len());
        let by_id: HashMap<&[u8], &Span> =
            spans.iter().map(|s| (s.span_id.as_slice(), s)).collect();
        assert_eq!(by_id.len(), spans.len(), "duplicate span id within a trace");
        let roots = spans.iter().filter(|s| s.parent_span_id.is_empty()).count();
        assert_eq!(roots, 1, "one root per trace");
        for s in spans {
            assert_eq!(&s.trace_id, tid);
            assert_eq!(s.span_id.len(), 8);
            assert!(s.span_id.iter().any(|b| *b != 0), "all-zero span id");
            assert!(
                span_ids.insert(s.span_id.clone()),
                "span id reused across traces"
            );
            assert!(s.start_time_unix_nano > 0 && s.end_time_unix_nano >= s.start_time_unix_nano);
            kinds.insert(s.kind);
            if s.status
                .as_ref()
                .is_some_and(|st| st.code == StatusCode::Error as i32)
            {
                errors += 1;
            }
            // Walk up to the root: parents exist, contain their children, depth is bounded.
            let mut depth = 0;
            let mut cur: &Span = s;
            while !cur.parent_span_id.is_empty() {
                let Some(p) = by_id.get(cur.parent_span_id.as_slice()) else {
                    panic!("span {} has a parent outside its trace", cur.name);
                };
                assert!(
                    p.start_time_unix_nano <= cur.start_time_unix_nano,
                    "{} starts before {}",
                    cur.name,
                    p.name
                );
                assert!(
                    p.end_time_unix_nano >= cur.end_time_unix_nano,
                    "{} ends after {}",
                    cur.name,
                    p.name
                );
                depth += 1;
                assert!(depth < MAX_DEPTH, "too deep");
                cur = p;
            }
        }
    }
    g.for_each_span(|name, res, _| {
        services.insert(name.to_string());
        assert!(res.attributes.iter().any(|kv| kv.key == "service.name"));
    });
    let ratio = errors as f64 / total as f64;
    sizes.sort_unstable();
    let mean = total as f64 / traces.len() as f64;
    eprintln!(
        "spans {total}, traces {}, mean size {mean:.1}, median {}, error ratio {ratio:.4}",
        traces.len(),
        sizes[sizes.len() / 2]
    );
    assert!((0.007..=0.013).contains(&ratio), "error ratio {ratio}");
    assert_eq!(kinds.len(), 5, "all five span kinds appear: {kinds:?}");
    assert!(
        services.len() >= 10,
        "services in the last batch: {services:?}"
    );
}

#[test]
fn encode_matches_prost() {
    let mut g = gen(7, 20);
    g.fill_batch(3, 500, usize::MAX);
    let mut buf = Vec::new();
    g.encode(&mut buf);
    let req = g.to_request();
    assert_eq!(buf, req.encode_to_vec());
    assert_eq!(buf.len(), g.encoded_len());
    let back = match ExportTraceServiceRequest::decode(buf.as_slice()) {
        Ok(r) => r,
        Err(e) => panic!("decode: {e}"),
    };
    assert_eq!(back, req);
    // Resources are grouped: one ResourceSpans per (service, pod), no repeats.
    let mut seen = HashSet::new();
    for rs in &req.resource_spans {
        let pod = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "k8s.pod.name"))
            .cloned();
        assert!(seen.insert(format!("{pod:?}")));
    }
}

#[test]
fn batches_are_deterministic_and_reusable() {
    let cfg = WorkloadConfig::new(1, 20, Duration::from_secs(3600));
    let (Ok(mut a), Ok(mut b)) = (Generator::new(cfg.clone()), Generator::new(cfg)) else {
        panic!("generator");
    };
    // b produces other batches first: slot reuse must not leak into later batches.
    b.fill_batch(9, 2000, usize::MAX);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    a.fill_batch(5, 1000, usize::MAX);
    b.fill_batch(5, 1000, usize::MAX);
    a.encode(&mut x);
    b.encode(&mut y);
    assert_eq!(x, y);
    b.fill_batch(6, 1000, usize::MAX);
    y.clear();
    b.encode(&mut y);
    assert_ne!(x, y);
}

#[test]
fn limits_and_service_counts() {
    for n in [1, 3, 5, 20, 45] {
        let mut g = gen(3, n);
        let got = g.fill_batch(0, 1000, 100);
        assert!(got > 0 && got <= 100, "services {n}: {got}");
        let mut names = HashSet::new();
        for i in 0..20 {
            g.fill_batch(i, 1000, usize::MAX);
            g.for_each_span(|name, _, _| {
                names.insert(name.to_string());
            });
        }
        assert!(names.len() <= n, "services {n}: saw {}", names.len());
        if n == 45 {
            assert!(names.len() > 25, "replicas used: {}", names.len());
        }
    }
    let mut g = gen(3, 20);
    assert_eq!(g.fill_batch(0, 1000, 3), 0, "no trace fits in 3 spans");
    assert!(Generator::new(WorkloadConfig::new(0, 0, Duration::ZERO)).is_err());
}

#[test]
fn spans_pass_osprey_sanitizing_untouched() {
    let mut g = gen(11, 20);
    g.fill_batch(0, 5000, usize::MAX);
    let mut req = g.to_request();
    let before = req.clone();
    let report = osprey_model::sanitize_request(&mut req, &osprey_model::Limits::default());
    assert_eq!(report.rejected, 0, "{:?}", report.errors);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(req, before);
}

#[test]
fn start_offset_spreads_over_the_window() {
    let mut g = gen(5, 20);
    g.fill_batch(0, 5000, usize::MAX);
    let base = g.cfg.base_time_ns;
    let (mut lo, mut hi) = (u64::MAX, 0);
    g.for_each_span(|_, _, s| {
        lo = lo.min(s.start_time_unix_nano);
        hi = hi.max(s.end_time_unix_nano);
    });
    assert!(hi <= base + 1_000_000_000);
    assert!(
        base - lo > 3_000_000_000_000,
        "spread over most of the hour"
    );
}

/// `cargo test --release -p osprey-bench -- --ignored --nocapture generator_throughput`
#[test]
#[ignore]
fn generator_throughput() {
    let mut g = gen(1, 20);
    let mut buf = Vec::with_capacity(1 << 20);
    let t = std::time::Instant::now();
    let mut spans = 0;
    let mut bytes = 0;
    for i in 0..1000 {
        spans += g.fill_batch(i, 1000, usize::MAX);
        buf.clear();
        g.encode(&mut buf);
        bytes += buf.len();
    }
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "{spans} spans in {secs:.2}s: {:.0} spans/s, {:.0} bytes/span encoded",
        spans as f64 / secs,
        bytes as f64 / spans as f64
    );
}
