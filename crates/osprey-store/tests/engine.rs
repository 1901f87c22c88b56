//! The store's public behaviour: append, query snapshot, flush, reopen, retention, compaction.

use arrow::array::{AsArray, RecordBatch};
use bytes::Bytes;
use osprey_model::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use osprey_model::otlp::resource::v1::Resource;
use osprey_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use osprey_model::TraceRequest;
use osprey_store::{FsyncPolicy, Store, StoreConfig};
use prost::Message;
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// `n` spans in one trace `t`, starting at `start_ns`.
fn request(t: u8, n: u8, start_ns: u64) -> TraceRequest {
    let spans = (0..n)
        .map(|i| Span {
            trace_id: vec![t; 16],
            span_id: vec![t, i, 1, 1, 1, 1, 1, 1],
            name: format!("op{i}"),
            start_time_unix_nano: start_ns + u64::from(i),
            end_time_unix_nano: start_ns + 1_000_000 + u64::from(i),
            ..Default::default()
        })
        .collect();
    let svc = KeyValue {
        key: "service.name".into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue("svc".into())),
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

async fn append(store: &Store, req: &TraceRequest) -> u64 {
    let batch = osprey_model::request_to_batch(req).expect("convert");
    store
        .append(Bytes::from(req.encode_to_vec()), batch)
        .await
        .expect("append")
}

fn span_ids(store: &Store) -> Vec<String> {
    let snap = store.snapshot();
    let mut batches: Vec<RecordBatch> = snap.batches.clone();
    for f in &snap.segments {
        batches.extend(osprey_store::segment::read_segment(&f.path).expect("read segment"));
    }
    let mut ids = Vec::new();
    for b in batches {
        let col = b
            .column_by_name("span_id")
            .expect("span_id")
            .as_string::<i32>()
            .clone();
        ids.extend(col.iter().flatten().map(str::to_string));
    }
    ids.sort();
    ids
}

fn config(dir: &std::path::Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.fsync = FsyncPolicy::Never;
    cfg
}

#[tokio::test]
async fn appended_spans_survive_reopen_without_duplicates() {
    let dir = tempfile::tempdir().expect("tmp");
    let t0 = now_ns();
    {
        let store = Store::open(config(dir.path())).expect("open");
        append(&store, &request(1, 3, t0)).await;
        assert_eq!(
            span_ids(&store).len(),
            3,
            "buffered spans are visible at once"
        );
        store.flush().expect("flush");
        append(&store, &request(2, 2, t0)).await;
        // No close(): simulates a crash with one record only in the WAL.
    }
    let store = Store::open(config(dir.path())).expect("reopen");
    let ids = span_ids(&store);
    assert_eq!(ids.len(), 5, "flushed + replayed spans: {ids:?}");
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        5,
        "no duplicates"
    );
    // Flush again and reopen: the WAL must not be replayed twice.
    store.flush().expect("flush");
    store.close().expect("close");
    drop(store);
    let store = Store::open(config(dir.path())).expect("reopen 2");
    assert_eq!(span_ids(&store).len(), 5);
}

#[tokio::test]
async fn a_second_process_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().expect("tmp");
    let _a = Store::open(config(dir.path())).expect("open");
    let err = Store::open(config(dir.path()))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("in use"), "{err}");
}

#[tokio::test]
async fn retention_drops_old_partitions_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path());
    cfg.retention = Duration::from_secs(7 * 24 * 3600);
    let store = Store::open(cfg).expect("open");
    let ten_days = 10 * 24 * 3600 * 1_000_000_000u64;
    append(&store, &request(1, 2, now_ns() - ten_days)).await;
    append(&store, &request(2, 2, now_ns())).await;
    store.flush().expect("flush");
    assert_eq!(
        store.stats().segment_files,
        2,
        "one file per hour partition"
    );
    assert_eq!(store.enforce_retention().expect("retention"), 1);
    let ids = span_ids(&store);
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(|id| id.starts_with("02")), "{ids:?}");
}

#[tokio::test]
async fn compaction_merges_files_and_keeps_rows() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(config(dir.path())).expect("open");
    let t0 = now_ns();
    for t in 1..=5u8 {
        append(&store, &request(t, 4, t0)).await;
        store.flush().expect("flush");
    }
    let before = span_ids(&store);
    let held = store.snapshot();
    assert_eq!(store.compact().expect("compact"), 5);
    assert_eq!(store.stats().segment_files, 1);
    assert_eq!(span_ids(&store), before);
    // A reader holding the old files can still read them; they go when it lets go.
    let old = held.segments[0].path.clone();
    assert!(old.exists());
    drop(held);
    assert!(!old.exists());
    drop(store);
    let store = Store::open(config(dir.path())).expect("reopen");
    assert_eq!(span_ids(&store), before);
}

#[tokio::test]
async fn buffer_limit_refuses_with_retryable_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path());
    cfg.max_buffer_bytes = 1;
    let store = Store::open(cfg).expect("open");
    let req = request(1, 2, now_ns());
    append(&store, &req).await;
    let batch = osprey_model::request_to_batch(&req).expect("convert");
    let err = store
        .append(Bytes::from(req.encode_to_vec()), batch)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("buffer is full"), "{err}");
}

/// Flushes and compactions run at the same time (the background loops do): both land in
/// the manifest, no span is lost or doubled, and a reopen sees the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_flush_and_compaction_keep_every_span_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path());
    cfg.compact_min_files = 2;
    let store = Store::open(cfg.clone()).expect("open");
    let t0 = now_ns();
    for t in 1..=6u8 {
        append(&store, &request(t, 3, t0)).await;
        store.flush().expect("flush");
    }
    let compactor = {
        let s = store.clone();
        std::thread::spawn(move || {
            let mut merged = 0;
            for _ in 0..20 {
                merged += s.compact().expect("compact");
            }
            merged
        })
    };
    for t in 7..=40u8 {
        append(&store, &request(t, 3, t0)).await;
        store.flush().expect("flush");
    }
    let merged = compactor.join().expect("compactor thread");
    assert!(merged > 0, "some files were merged");
    let ids = span_ids(&store);
    assert_eq!(ids.len(), 40 * 3);
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        40 * 3,
        "no duplicates"
    );
    store.close().expect("close");
    drop(store);
    let store = Store::open(cfg).expect("reopen");
    let ids = span_ids(&store);
    assert_eq!(
        ids.len(),
        40 * 3,
        "the manifest holds every flush and every merge"
    );
}
