//! The `call_edges` and `slow_spans` tables over a real store, against the same figures
//! computed from `spans`: calls between services equal the parent/child join when the two
//! ends of a call arrive in different requests, flushes and files (and after compaction); the
//! slowest spans equal `order by duration_ms desc limit 15`.

mod common;

use common::{append, request, rows};
use osprey_model::otlp::trace::v1::{span::SpanKind, status::StatusCode, Span, Status};
use osprey_query::{QueryConfig, QueryEngine};
use osprey_store::{FsyncPolicy, Store, StoreConfig};
use serde_json::Value as Json;

const T0: u64 = 1_764_000_000_000_000_000; // 2025-11-24T16:00:00Z

fn span_id(trace: u16, n: u16) -> Vec<u8> {
    let (t, i) = (trace.to_be_bytes(), n.to_be_bytes());
    vec![t[0], t[1], i[0], i[1], 7, 7, 7, 7]
}

/// One span of trace `trace` (ids derived from the numbers).
fn span(
    trace: u16,
    n: u16,
    parent: Option<u16>,
    name: &str,
    kind: SpanKind,
    start: u64,
    ms: u64,
) -> Span {
    let mut id = vec![0u8; 14];
    id.extend(trace.to_be_bytes());
    Span {
        trace_id: id,
        span_id: span_id(trace, n),
        parent_span_id: parent.map(|p| span_id(trace, p)).unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        status: Some(Status {
            code: if (u32::from(trace) + u32::from(n)) % 7 == 0 {
                StatusCode::Error as i32
            } else {
                StatusCode::Unset as i32
            },
            ..Default::default()
        }),
        start_time_unix_nano: start,
        // Distinct durations, so "the slowest 15" is one answer.
        end_time_unix_nano: start + ms * 1_000_000 + u64::from(trace) * 1000 + u64::from(n),
        ..Default::default()
    }
}

/// The spans of trace `t`, per service: frontend calls cart (GET /cart) and checkout (POST
/// /pay); checkout calls cart again and a database nobody instruments, and publishes a
/// message that two worker instances consume (their spans sent separately); cart has an
/// internal client/server pair of its own (not an edge) and a server span under an internal
/// span (not an edge either). 9 s per trace, so traces cross minutes.
fn trace(t: u16) -> Vec<(&'static str, Vec<Span>)> {
    use SpanKind::*;
    let s = T0 + u64::from(t) * 9_000_000_000;
    let ms = |k: u64| 1 + (u64::from(t) * 37 + k * 101) % 400;
    vec![
        (
            "frontend",
            vec![
                span(t, 1, None, "GET /", Server, s, 900),
                span(t, 2, Some(1), "GET /cart", Client, s + 1_000_000, ms(1) + 5),
                span(t, 3, Some(1), "POST /pay", Client, s + 2_000_000, ms(2) + 5),
            ],
        ),
        (
            "cart",
            vec![
                span(t, 4, Some(2), "GET /cart", Server, s + 2_000_000, ms(1)),
                span(t, 5, Some(4), "cache get", Client, s + 3_000_000, 1),
                span(t, 6, Some(5), "cache get", Server, s + 3_100_000, 1),
                span(t, 7, Some(4), "work", Internal, s + 4_000_000, 2),
                span(t, 8, Some(7), "odd", Server, s + 4_100_000, 1),
                span(t, 12, Some(11), "GET /cart", Server, s + 9_000_000, ms(4)),
            ],
        ),
        (
            "checkout",
            vec![
                span(t, 9, Some(3), "POST /pay", Server, s + 3_000_000, ms(2)),
                span(t, 10, Some(9), "SELECT", Client, s + 4_000_000, ms(3)),
                span(
                    t,
                    11,
                    Some(9),
                    "GET /cart",
                    Client,
                    s + 5_000_000,
                    ms(4) + 3,
                ),
                span(t, 13, Some(9), "publish", Producer, s + 6_000_000, 1),
            ],
        ),
        (
            "worker",
            vec![span(
                t,
                14,
                Some(13),
                "consume",
                Consumer,
                s + 7_000_000,
                ms(5),
            )],
        ),
        (
            "worker",
            vec![span(
                t,
                15,
                Some(13),
                "consume",
                Consumer,
                s + 8_000_000,
                ms(6),
            )],
        ),
    ]
}

async fn flush(store: &Store) {
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.flush())
        .await
        .expect("join")
        .expect("flush");
}

const RAW_EDGES: &str = "select date_bin(interval '1 minute', c.start_time) as m, \
    p.service_name, p.span_name, c.service_name, c.span_name, count(*), \
    sum(case when c.status_code = 'STATUS_CODE_ERROR' then 1 else 0 end), \
    round(sum(c.duration_ms), 6) \
    from spans c join spans p on c.trace_id = p.trace_id and c.parent_span_id = p.span_id \
    where c.service_name <> p.service_name \
      and p.span_kind in ('SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER') \
      and c.span_kind in ('SPAN_KIND_SERVER', 'SPAN_KIND_CONSUMER') \
    group by 1, 2, 3, 4, 5 order by 1, 2, 3, 4, 5";

const ROLLED_EDGES: &str = "select minute as m, caller_service, caller_span_name, \
    callee_service, callee_span_name, sum(calls), sum(errors), round(sum(sum_ms), 6) \
    from call_edges group by 1, 2, 3, 4, 5 order by 1, 2, 3, 4, 5";

async fn check_slowest(engine: &QueryEngine, what: &str) {
    for (svc, filter) in [
        ("frontend", "span_kind = 'SPAN_KIND_SERVER'"),
        (
            "cart",
            "span_kind in ('SPAN_KIND_SERVER', 'SPAN_KIND_CONSUMER')",
        ),
        ("cart", "span_name = 'GET /cart'"),
        ("checkout", "true"),
    ] {
        let q = |table: &str| {
            format!(
                "select trace_id, span_id, span_name, duration_ms, start_time, status_code \
                 from {table} where service_name = '{svc}' and {filter} \
                 order by duration_ms desc limit 15"
            )
        };
        let want = rows(engine, &q("spans")).await;
        assert_eq!(want.len(), 15, "{what}: {svc}");
        assert_eq!(
            rows(engine, &q("slow_spans")).await,
            want,
            "{what}: {svc} {filter}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_edges_equal_the_parent_child_join_across_requests_and_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut sc = StoreConfig::new(tmp.path());
    sc.fsync = FsyncPolicy::Never;
    let store = Store::open(sc).expect("open store");
    let engine = QueryEngine::new(store.clone(), QueryConfig::default()).expect("engine");
    // 40 traces; each service's spans in its own request, and callers and callees split
    // over flushes: frontend's spans of traces 0..20 are flushed before cart's arrive, and
    // some checkout spans stay in the buffer while their callers are in files; the second
    // consumer of each message arrives last, after its producer was paired with the first.
    let traces: Vec<_> = (0..40).map(trace).collect();
    for (t, parts) in traces.iter().enumerate() {
        if t < 20 {
            append(&store, &request(parts[0].0, parts[0].1.clone())).await;
        }
    }
    flush(&store).await;
    for (t, parts) in traces.iter().enumerate() {
        for (i, (svc, spans)) in parts.iter().enumerate() {
            if (i == 0 && t < 20) || (i == 2 && t % 3 == 0) || i == 4 {
                continue;
            }
            append(&store, &request(svc, spans.clone())).await;
        }
        if t == 25 {
            flush(&store).await;
        }
    }
    flush(&store).await;
    for (t, parts) in traces.iter().enumerate() {
        if t % 3 == 0 {
            append(&store, &request(parts[2].0, parts[2].1.clone())).await;
        }
        append(&store, &request(parts[4].0, parts[4].1.clone())).await;
    }
    assert!(store.snapshot().segments.len() >= 3);
    assert!(!store.snapshot().batches.is_empty());

    let want = rows(&engine, RAW_EDGES).await;
    // frontend->cart, frontend->checkout, checkout->cart, checkout->worker, in several minutes.
    let pairs: std::collections::BTreeSet<(String, String)> = want
        .iter()
        .map(|r| (r[1].to_string(), r[3].to_string()))
        .collect();
    assert_eq!(pairs.len(), 4, "{want:?}");
    assert_eq!(rows(&engine, ROLLED_EDGES).await, want, "buffer and files");
    // The percentiles come from the same calls: 40 calls per edge over all minutes (80 to
    // the workers: two consumers per message).
    let totals = rows(
        &engine,
        "select caller_service, callee_service, sum(calls), hist_quantile(hist, 0.5) is not null \
         from call_edges group by 1, 2 order by 1, 2",
    )
    .await;
    assert!(
        totals.iter().all(
            |r| r[2].as_i64() == Some(if r[1] == "worker" { 80 } else { 40 })
                && r[3] == Json::Bool(true)
        ),
        "{totals:?}"
    );
    // A minute range: only calls whose callee started in it.
    let from = (T0 + 60_000_000_000) / 1_000_000;
    let to = (T0 + 180_000_000_000) / 1_000_000;
    let range =
        |c: &str| format!("{c} >= to_timestamp_millis({from}) and {c} < to_timestamp_millis({to})");
    let raw_in = rows(&engine, &format!(
        "select count(*) from spans c join spans p on c.trace_id = p.trace_id and c.parent_span_id = p.span_id \
         where c.service_name <> p.service_name \
         and p.span_kind in ('SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER') \
         and c.span_kind in ('SPAN_KIND_SERVER', 'SPAN_KIND_CONSUMER') and {}", range("c.start_time"))).await;
    let rolled_in = rows(
        &engine,
        &format!(
            "select sum(calls) from call_edges where {}",
            range("minute")
        ),
    )
    .await;
    assert_eq!(rolled_in, raw_in);
    check_slowest(&engine, "buffer and files").await;

    // Every unit in a file, then merged by compaction: the same answers.
    flush(&store).await;
    assert_eq!(rows(&engine, ROLLED_EDGES).await, want, "files");
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.compact())
        .await
        .expect("join")
        .expect("compact");
    assert_eq!(rows(&engine, ROLLED_EDGES).await, want, "compacted");
    check_slowest(&engine, "compacted").await;
}
