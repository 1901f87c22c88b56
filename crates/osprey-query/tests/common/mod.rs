//! Shared setup of the rollup table tests: OTLP requests of one service, appends through the
//! store's write path, and query answers as JSON rows.

use bytes::Bytes;
use osprey_model::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use osprey_model::otlp::resource::v1::Resource;
use osprey_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use osprey_model::TraceRequest;
use osprey_query::QueryEngine;
use osprey_store::Store;
use prost::Message;
use serde_json::Value as Json;

/// One request holding `spans` of `service`.
pub fn request(service: &str, spans: Vec<Span>) -> TraceRequest {
    TraceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue(service.into())),
                    }),
                    ..Default::default()
                }],
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

/// Appends `req` as a receiver would (WAL, then buffer).
pub async fn append(store: &Store, req: &TraceRequest) {
    let batch = osprey_model::request_to_batch(req).expect("convert");
    store
        .append(Bytes::from(req.encode_to_vec()), batch)
        .await
        .expect("append");
}

/// The answer rows of `sql`; panics naming the statement when it fails.
pub async fn rows(engine: &QueryEngine, sql: &str) -> Vec<Vec<Json>> {
    let res = engine
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    osprey_query::json::to_rows(&res.schema, &res.batches).1
}
