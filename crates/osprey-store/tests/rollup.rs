//! Per-minute rollups (`span_stats` rows) against the spans they summarise: the rows of all
//! units of a snapshot (files and buffered batches) add up to exactly its spans, per key,
//! through flush, compaction, reopen and retention.

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, TimestampNanosecondType};
use bytes::Bytes;
use osprey_model::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use osprey_model::otlp::resource::v1::Resource;
use osprey_model::otlp::trace::v1::{
    span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};
use osprey_model::TraceRequest;
use osprey_store::hist::LogHist;
use osprey_store::rollup::minute_of;
use osprey_store::{FsyncPolicy, Store, StoreConfig};
use prost::Message;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type Key = (i64, String, String, String);

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// One trace `t` of `service`: `n` spans of varied names, kinds, statuses and durations,
/// 7 s apart from `start_ns` (so a trace crosses minute boundaries).
fn request(t: u8, service: &str, n: u8, start_ns: u64) -> TraceRequest {
    let spans = (0..n)
        .map(|i| {
            let start = start_ns + u64::from(i) * 7_000_000_000;
            Span {
                trace_id: vec![t; 16],
                span_id: vec![t, i, 1, 1, 1, 1, 1, 1],
                name: format!("op{}", i % 3),
                kind: if i % 2 == 0 {
                    SpanKind::Server as i32
                } else {
                    SpanKind::Client as i32
                },
                status: Some(Status {
                    code: if i % 5 == 0 {
                        StatusCode::Error as i32
                    } else {
                        StatusCode::Ok as i32
                    },
                    ..Default::default()
                }),
                start_time_unix_nano: start,
                end_time_unix_nano: start + 1_000_000 * (1 + u64::from(i) * 13 % 97),
                ..Default::default()
            }
        })
        .collect();
    let svc = KeyValue {
        key: "service.name".into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(service.into())),
        }),
        ..Default::default()
    };
    TraceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![svc],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn append(store: &Store, req: &TraceRequest) {
    let batch = osprey_model::request_to_batch(req).expect("convert");
    store
        .append(Bytes::from(req.encode_to_vec()), batch)
        .await
        .expect("append");
}

fn config(dir: &std::path::Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.fsync = FsyncPolicy::Never;
    cfg
}

/// (calls, errors, sum of durations, histogram) per key.
type Agg = (i64, i64, f64, LogHist);

fn add(map: &mut BTreeMap<Key, Agg>, key: Key, calls: i64, errors: i64, sum: f64, h: &LogHist) {
    let e = map
        .entry(key)
        .or_insert_with(|| (0, 0, 0.0, LogHist::new()));
    e.0 += calls;
    e.1 += errors;
    e.2 += sum;
    e.3.merge(h);
}

/// What the rollup must say, computed from the stored rows themselves.
fn expected(store: &Store) -> BTreeMap<Key, Agg> {
    let snap = store.snapshot();
    let mut batches: Vec<RecordBatch> = snap.batches.clone();
    for f in &snap.segments {
        batches.extend(osprey_store::segment::read_segment(&f.path).expect("read segment"));
    }
    let mut out = BTreeMap::new();
    for b in batches {
        let s = |c: &str| b.column_by_name(c).expect(c).as_string::<i32>().clone();
        let (svc, name, kind, status) = (
            s("service_name"),
            s("span_name"),
            s("span_kind"),
            s("status_code"),
        );
        let start = b
            .column_by_name("start_time")
            .expect("start")
            .as_primitive::<TimestampNanosecondType>()
            .clone();
        let dur = b
            .column_by_name("duration_ms")
            .expect("duration")
            .as_primitive::<Float64Type>()
            .clone();
        for r in 0..b.num_rows() {
            let mut h = LogHist::new();
            h.record(dur.value(r));
            let key = (
                minute_of(start.value(r)),
                svc.value(r).to_string(),
                name.value(r).to_string(),
                kind.value(r).to_string(),
            );
            let err = i64::from(status.value(r) == "STATUS_CODE_ERROR");
            add(&mut out, key, 1, err, dur.value(r), &h);
        }
    }
    out
}

/// The rollup rows of every unit of a snapshot, merged per key.
fn rolled_up(store: &Store) -> BTreeMap<Key, Agg> {
    let snap = store.snapshot();
    let mut units = Vec::new();
    for f in &snap.segments {
        units.push(f.rollup().expect("segment rollup"));
    }
    for b in &snap.batch_stats {
        units.push(b.get().expect("buffer rollup"));
    }
    let mut out = BTreeMap::new();
    for u in units {
        let b = &u.stats;
        let s = |i: usize| b.column(i).as_string::<i32>().clone();
        let minute = b.column(0).as_primitive::<TimestampNanosecondType>();
        let (svc, name, kind) = (s(1), s(2), s(3));
        let calls = b.column(4).as_primitive::<Int64Type>();
        let errors = b.column(5).as_primitive::<Int64Type>();
        let sums = b.column(6).as_primitive::<Float64Type>();
        let hists = b.column(7).as_binary::<i32>();
        for r in 0..b.num_rows() {
            assert!(u.min_minute <= minute.value(r) && minute.value(r) <= u.max_minute);
            let key = (
                minute.value(r),
                svc.value(r).to_string(),
                name.value(r).to_string(),
                kind.value(r).to_string(),
            );
            let h = LogHist::decode(hists.value(r)).expect("hist");
            assert_eq!(h.count() as i64, calls.value(r));
            add(
                &mut out,
                key,
                calls.value(r),
                errors.value(r),
                sums.value(r),
                &h,
            );
        }
    }
    out
}

fn assert_matches(store: &Store, spans: i64, what: &str) {
    let want = expected(store);
    let got = rolled_up(store);
    assert_eq!(
        want.values().map(|a| a.0).sum::<i64>(),
        spans,
        "{what}: spans stored"
    );
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{what}: keys"
    );
    for (k, w) in &want {
        let g = &got[k];
        assert_eq!((g.0, g.1), (w.0, w.1), "{what}: calls, errors of {k:?}");
        assert!(
            (g.2 - w.2).abs() <= 1e-9 * w.2.max(1.0),
            "{what}: sum of {k:?}"
        );
        assert_eq!(g.3, w.3, "{what}: histogram of {k:?}");
    }
}

#[tokio::test]
async fn rollups_add_up_to_the_spans_through_flush_compaction_and_reopen() {
    let dir = tempfile::tempdir().expect("tmp");
    let t0 = minute_of(now_ns() as i64) as u64 - 5 * 60_000_000_000 + 3_000_000_000;
    let services = ["cart", "checkout", "frontend"];
    let mut spans = 0i64;
    {
        let mut cfg = config(dir.path());
        cfg.compact_min_files = 2;
        let store = Store::open(cfg).expect("open");
        for t in 1..=6u8 {
            let n = 5 + t;
            append(
                &store,
                &request(
                    t,
                    services[t as usize % 3],
                    n,
                    t0 + u64::from(t) * 11_000_000_000,
                ),
            )
            .await;
            spans += i64::from(n);
            if t % 2 == 0 {
                store.flush().expect("flush");
            }
            assert_matches(&store, spans, &format!("after trace {t}"));
        }
        // Buffered rows cached their rollup; more rows still add up.
        append(&store, &request(7, "cart", 9, t0)).await;
        spans += 9;
        assert_matches(&store, spans, "buffer and files");
        store.flush().expect("flush");
        let files = store.stats().segment_files;
        assert!(files >= 4, "{files} files");
        assert!(store.compact().expect("compact") >= 2);
        assert!(store.stats().segment_files < files);
        // The compacted file's rollup was computed from its rows and is cached already.
        assert!(store.snapshot().segments.iter().all(|s| s.has_rollup()));
        assert_matches(&store, spans, "after compaction");
        append(&store, &request(8, "checkout", 4, t0)).await;
        spans += 4;
        // No close(): the last trace is only in the WAL.
    }
    let store = Store::open(config(dir.path())).expect("reopen");
    assert!(store.snapshot().segments.iter().all(|s| !s.has_rollup()));
    assert_matches(&store, spans, "after reopen");
    assert_eq!(store.warm_rollups(0), 0, "computed already by the check");
    drop(store);
    let store = Store::open(config(dir.path())).expect("reopen 2");
    let n = store.snapshot().segments.len();
    assert_eq!(store.warm_rollups(i64::MAX), 0, "nothing that recent");
    assert_eq!(store.warm_rollups(0), n);
    assert!(store.snapshot().segments.iter().all(|s| s.has_rollup()));
}

#[tokio::test]
async fn retention_drops_rollups_with_their_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path());
    cfg.retention = Duration::from_secs(7 * 24 * 3600);
    let store = Store::open(cfg).expect("open");
    let ten_days = 10 * 24 * 3600 * 1_000_000_000u64;
    append(&store, &request(1, "old", 3, now_ns() - ten_days)).await;
    append(&store, &request(2, "new", 4, now_ns() - 60_000_000_000)).await;
    store.flush().expect("flush");
    assert_matches(&store, 7, "before retention");
    assert_eq!(store.enforce_retention().expect("retention"), 1);
    assert_matches(&store, 4, "after retention");
    assert!(rolled_up(&store).keys().all(|k| k.1 == "new"));
}

#[tokio::test]
async fn a_small_rollup_budget_drops_and_recomputes_without_changing_answers() {
    let dir = tempfile::tempdir().expect("tmp");
    let t0 = minute_of(now_ns() as i64) as u64 - 10 * 60_000_000_000;
    let mut spans = 0i64;
    let one = {
        let mut cfg = config(dir.path());
        cfg.compact_min_files = 1000;
        let store = Store::open(cfg).expect("open");
        for t in 1..=5u8 {
            append(
                &store,
                &request(t, "cart", 12, t0 + u64::from(t) * 60_000_000_000),
            )
            .await;
            spans += 12;
            store.flush().expect("flush");
        }
        let snap = store.snapshot();
        snap.segments
            .iter()
            .map(|s| s.rollup().expect("rollup").size())
            .max()
            .unwrap_or(0)
    };
    // Room for two files' rollups of five.
    let mut cfg = config(dir.path());
    cfg.compact_min_files = 1000;
    cfg.rollup_cache_bytes = one * 5 / 2;
    let store = Store::open(cfg).expect("reopen");
    assert_eq!(store.stats().segment_files, 5);
    for round in 0..2 {
        assert_matches(&store, spans, &format!("round {round}"));
        let stats = store.stats();
        assert!(stats.rollup_evictions > 0, "{stats:?}");
        assert!(stats.rollup_bytes as usize <= one * 5 / 2, "{stats:?}");
        let held = store
            .snapshot()
            .segments
            .iter()
            .filter(|s| s.has_rollup())
            .count();
        assert!((1..=2).contains(&held), "{held} held");
    }
}
