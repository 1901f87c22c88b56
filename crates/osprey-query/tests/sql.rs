//! The SQL engine over a real store: buffered and flushed rows, map access, pruning,
//! read-only refusal, row and time limits.

use bytes::Bytes;
use osprey_model::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use osprey_model::otlp::resource::v1::Resource;
use osprey_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use osprey_model::TraceRequest;
use osprey_query::{QueryConfig, QueryEngine, QueryError};
use osprey_store::{FsyncPolicy, Store, StoreConfig};
use prost::Message;
use serde_json::{json, Value as Json};
use std::time::Duration;

const HOUR: u64 = 3_600_000_000_000;
const T0: u64 = 1_764_000_000_000_000_000; // 2025-11-24T16:00:00Z

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn request(trace: u8, service: &str, start: u64, spans: u8) -> TraceRequest {
    let spans = (0..spans)
        .map(|i| Span {
            trace_id: vec![trace; 16],
            span_id: vec![trace, i + 1, 0, 0, 0, 0, 0, 1],
            parent_span_id: if i == 0 {
                vec![]
            } else {
                vec![trace, 1, 0, 0, 0, 0, 0, 1]
            },
            name: format!("op{i}"),
            kind: 2,
            start_time_unix_nano: start + u64::from(i) * 1000,
            end_time_unix_nano: start + u64::from(i) * 1000 + 2_000_000,
            attributes: vec![kv("http.route", &format!("/r{}", i % 2))],
            ..Default::default()
        })
        .collect();
    TraceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service)],
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

async fn setup(dir: &std::path::Path, cfg: QueryConfig) -> (Store, QueryEngine) {
    let mut sc = StoreConfig::new(dir);
    sc.fsync = FsyncPolicy::Never;
    let store = Store::open(sc).expect("open store");
    let engine = QueryEngine::new(store.clone(), cfg).expect("engine");
    (store, engine)
}

async fn append(store: &Store, req: &TraceRequest) {
    let batch = osprey_model::request_to_batch(req).expect("convert");
    store
        .append(Bytes::from(req.encode_to_vec()), batch)
        .await
        .expect("append");
}

async fn rows(engine: &QueryEngine, sql: &str) -> Vec<Vec<Json>> {
    let res = engine
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    osprey_query::json::to_rows(&res.schema, &res.batches).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_see_buffer_and_segments() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (store, engine) = setup(tmp.path(), QueryConfig::default()).await;
    append(&store, &request(1, "cart", T0, 3)).await;
    append(&store, &request(2, "cart", T0 + 2 * HOUR, 2)).await;
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.flush())
        .await
        .expect("join")
        .expect("flush");
    append(&store, &request(3, "checkout", T0 + 3 * HOUR, 4)).await;

    let r = rows(
        &engine,
        "select service_name, count(*) from spans group by service_name order by 1",
    )
    .await;
    assert_eq!(
        r,
        vec![
            vec![json!("cart"), json!(5)],
            vec![json!("checkout"), json!(4)]
        ]
    );

    let r = rows(
        &engine,
        "select span_attributes['http.route'] as route, count(*) from spans group by 1 order by 1",
    )
    .await;
    assert_eq!(
        r,
        vec![vec![json!("/r0"), json!(5)], vec![json!("/r1"), json!(4)]]
    );

    let r = rows(&engine, "select count(*) from spans where span_attributes['http.route'] = '/r1' and service_name = 'checkout'").await;
    assert_eq!(r, vec![vec![json!(2)]]);

    let tid = hex::encode([2u8; 16]);
    let r = rows(
        &engine,
        &format!(
            "select span_id, parent_span_id from spans where trace_id = '{tid}' order by span_id"
        ),
    )
    .await;
    assert_eq!(
        r,
        vec![
            vec![json!("0201000000000001"), Json::Null],
            vec![json!("0202000000000001"), json!("0201000000000001")]
        ]
    );

    // A time window that only the first flushed hour overlaps.
    let r = rows(
        &engine,
        "select count(*) from spans where start_time >= '2025-11-24T16:00:00Z' and start_time < '2025-11-24T17:00:00Z'",
    )
    .await;
    assert_eq!(r, vec![vec![json!(3)]]);
    let r = rows(&engine, "select min(start_time) from spans").await;
    assert_eq!(r, vec![vec![json!("2025-11-24T16:00:00.000000000Z")]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_the_problem() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = QueryConfig {
        max_rows: 3,
        timeout: Duration::from_millis(300),
        ..QueryConfig::default()
    };
    let (store, engine) = setup(tmp.path(), cfg).await;
    append(&store, &request(1, "cart", T0, 5)).await;
    for sql in [
        "create table t(a int)",
        "insert into spans (span_name) values ('x')",
        "drop table spans",
        "delete from spans",
        "set datafusion.execution.batch_size = 1",
    ] {
        let e = engine.query(sql).await.err();
        assert!(matches!(e, Some(QueryError::ReadOnly(_))), "{sql}: {e:?}");
        assert!(e
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("read-only"));
    }
    let e = engine
        .query("selec * from spans")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("selec"), "{e}");
    let e = engine
        .query("select nope from spans")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("nope"), "{e}");
    let e = engine.query("select * from spans").await.err();
    assert!(
        matches!(e, Some(QueryError::TooManyRows { limit: 3 })),
        "{e:?}"
    );
    assert_eq!(
        rows(&engine, "select span_id from spans limit 3")
            .await
            .len(),
        3
    );
    let e = engine
        .query("select count(*) from generate_series(1, 100000000000) a where a.value % 7 = 3")
        .await
        .err();
    assert!(
        matches!(
            e,
            Some(QueryError::Timeout { .. }) | Some(QueryError::Execution(_))
        ),
        "{e:?}"
    );
    // The engine still answers.
    assert_eq!(rows(&engine, "select 1").await, vec![vec![json!(1)]]);
}
