//! The `span_stats` table and `hist_quantile` / `hist_merge` over a real store: counts equal
//! the raw `spans` counts (buffer and files), minute pruning, quantiles within 2 %.

mod common;

use common::{append, rows};
use osprey_model::otlp::trace::v1::{status::StatusCode, Span, Status};
use osprey_model::TraceRequest;
use osprey_query::{QueryConfig, QueryEngine};
use osprey_store::{FsyncPolicy, Store, StoreConfig};
use serde_json::json;

const MINUTE: u64 = 60_000_000_000;
const T0: u64 = 1_764_000_000_000_000_000; // 2025-11-24T16:00:00Z

/// Trace `t` of `service`: `n` spans 1.5 s apart from `start`, durations 1..~800 ms.
fn request(t: u8, service: &str, start: u64, n: u16) -> TraceRequest {
    let spans = (0..n)
        .map(|i| {
            let s = start + u64::from(i) * 1_500_000_000;
            let ms = 1 + (u64::from(i) * 7919 + u64::from(t) * 31) % 800;
            Span {
                trace_id: vec![t; 16],
                span_id: vec![t, (i >> 8) as u8, i as u8, 1, 1, 1, 1, 1],
                name: format!("op{}", i % 4),
                kind: if i % 3 == 0 { 3 } else { 2 },
                status: Some(Status {
                    code: if i % 10 == 0 {
                        StatusCode::Error as i32
                    } else {
                        StatusCode::Unset as i32
                    },
                    ..Default::default()
                }),
                start_time_unix_nano: s,
                end_time_unix_nano: s + ms * 1_000_000,
                ..Default::default()
            }
        })
        .collect();
    common::request(service, spans)
}

fn exact_percentile_cont(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let frac = pos - lo as f64;
    match v.get(lo + 1) {
        Some(hi) => v[lo] + frac * (hi - v[lo]),
        None => v[lo],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_stats_counts_equal_spans_and_quantiles_are_close() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut sc = StoreConfig::new(tmp.path());
    sc.fsync = FsyncPolicy::Never;
    let store = Store::open(sc).expect("open store");
    let engine = QueryEngine::new(store.clone(), QueryConfig::default()).expect("engine");
    // Two traces flushed to files, two left in the buffer; 200 spans each over 5 minutes.
    append(&store, &request(1, "cart", T0 + 5_000_000_000, 200)).await;
    append(&store, &request(2, "checkout", T0 + 61_000_000_000, 200)).await;
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.flush())
        .await
        .expect("join")
        .expect("flush");
    append(&store, &request(3, "cart", T0 + 2 * MINUTE, 200)).await;
    append(&store, &request(4, "frontend", T0, 200)).await;

    let per_service = "select service_name, count(*) as n, \
        sum(case when status_code = 'STATUS_CODE_ERROR' then 1 else 0 end) as e \
        from spans group by 1 order by 1";
    let rolled = "select service_name, sum(calls) as n, sum(errors) as e \
        from span_stats group by 1 order by 1";
    let want = rows(&engine, per_service).await;
    assert_eq!(want.len(), 3);
    assert_eq!(rows(&engine, rolled).await, want);

    let per_minute_raw =
        "select date_bin(interval '1 minute', start_time) as m, span_kind, count(*) \
        from spans group by 1, 2 order by 1, 2";
    let per_minute = "select minute as m, span_kind, sum(calls) from span_stats \
        group by 1, 2 order by 1, 2";
    assert_eq!(
        rows(&engine, per_minute).await,
        rows(&engine, per_minute_raw).await
    );

    // A minute range: only rows of those minutes, as from spans.
    let from = (T0 + 3 * MINUTE) / 1_000_000;
    let to = (T0 + 5 * MINUTE) / 1_000_000;
    let raw = rows(&engine, &format!(
        "select count(*) from spans where start_time >= to_timestamp_millis({from}) and start_time < to_timestamp_millis({to})"
    )).await;
    let got = rows(&engine, &format!(
        "select sum(calls) from span_stats where minute >= to_timestamp_millis({from}) and minute < to_timestamp_millis({to})"
    )).await;
    assert_eq!(got, raw);
    assert!(raw[0][0].as_i64().unwrap_or(0) > 100);

    // Quantiles: within 2 % of the exact percentile_cont of the durations.
    let durations: Vec<f64> = rows(
        &engine,
        "select duration_ms from spans where span_kind = 'SPAN_KIND_SERVER'",
    )
    .await
    .iter()
    .filter_map(|r| r[0].as_f64())
    .collect();
    assert!(durations.len() > 400);
    for q in [0.5, 0.9, 0.99] {
        let got = rows(&engine, &format!(
            "select hist_quantile(case when span_kind = 'SPAN_KIND_SERVER' then hist end, {q}) from span_stats"
        )).await[0][0]
            .as_f64()
            .expect("a number");
        let want = exact_percentile_cont(durations.clone(), q);
        assert!((got - want).abs() <= 0.02 * want, "q={q}: {got} vs {want}");
    }
    // hist_merge then hist_quantile gives the same as hist_quantile over the rows.
    let direct = rows(&engine, "select hist_quantile(hist, 0.95) from span_stats").await;
    let merged = rows(
        &engine,
        "select hist_quantile(h, 0.95) from (select hist_merge(hist) as h from span_stats group by service_name, minute)",
    )
    .await;
    assert_eq!(direct, merged);
    // No rows counted: NULL. A bad quantile: an error naming the function.
    let none = rows(
        &engine,
        "select hist_quantile(case when calls < 0 then hist end, 0.5) from span_stats",
    )
    .await;
    assert_eq!(none, vec![vec![json!(null)]]);
    let err = engine
        .query("select hist_quantile(hist, 2) from span_stats")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("hist_quantile"), "{err}");
}
