//! Jaeger's HTTP query API (the "v1" JSON API that Jaeger UI and Grafana's Jaeger data
//! source call), at the root of the query port: services, operations, trace search, trace
//! by id and the service dependency graph, in Jaeger's envelope and trace model.

pub mod model;
pub mod params;

use crate::engine::{QueryEngine, QueryError};
use crate::traces::{fetch_traces, normalize_trace_id, quote, string_column};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use params::{Params, SearchQuery};
use serde_json::{json, Value};

/// The Jaeger routes.
pub fn router(engine: QueryEngine) -> Router {
    Router::new()
        .route("/api/services", get(services))
        .route(
            "/api/services/{service}/operations",
            get(service_operations),
        )
        .route("/api/operations", get(operations))
        .route("/api/traces", get(search))
        .route("/api/traces/{trace_id}", get(trace_by_id))
        .route("/api/dependencies", get(dependencies))
        .with_state(engine)
}

/// Jaeger's envelope around `data`.
fn ok(data: Value, total: usize) -> Response {
    Json(json!({ "data": data, "total": total, "limit": 0, "offset": 0, "errors": null }))
        .into_response()
}

/// Jaeger's error envelope.
fn fail(status: StatusCode, msg: impl Into<String>) -> Response {
    let msg = msg.into();
    (
        status,
        Json(json!({
            "data": null, "total": 0, "limit": 0, "offset": 0,
            "errors": [{ "code": status.as_u16(), "msg": msg }],
        })),
    )
        .into_response()
}

fn query_failed(e: QueryError) -> Response {
    let status = match e {
        QueryError::Invalid(_) | QueryError::ReadOnly(_) => StatusCode::BAD_REQUEST,
        QueryError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    fail(status, e.to_string())
}

async fn strings(engine: &QueryEngine, sql: &str) -> Result<Vec<String>, Response> {
    let res = engine.query(sql).await.map_err(query_failed)?;
    Ok(string_column(&res, 0))
}

async fn services(State(engine): State<QueryEngine>) -> Response {
    match strings(
        &engine,
        "SELECT DISTINCT service_name FROM spans ORDER BY service_name",
    )
    .await
    {
        Ok(list) => ok(json!(list), list.len()),
        Err(r) => r,
    }
}

async fn service_operations(
    State(engine): State<QueryEngine>,
    Path(service): Path<String>,
) -> Response {
    let sql = format!(
        "SELECT DISTINCT span_name FROM spans WHERE service_name = {} ORDER BY span_name",
        quote(&service)
    );
    match strings(&engine, &sql).await {
        Ok(list) => ok(json!(list), list.len()),
        Err(r) => r,
    }
}

async fn operations(State(engine): State<QueryEngine>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let Some(service) = p.one("service").filter(|s| !s.is_empty()) else {
        return fail(StatusCode::BAD_REQUEST, "parameter 'service' is required");
    };
    let mut sql = format!(
        "SELECT DISTINCT span_name, span_kind FROM spans WHERE service_name = {}",
        quote(service)
    );
    if let Some(kind) = p.one("spanKind").filter(|k| !k.is_empty()) {
        let Some(otlp) = model::otlp_kind(kind) else {
            return fail(
                StatusCode::BAD_REQUEST,
                format!("unsupported span kind {kind:?}: expected server, client, producer, consumer or internal"),
            );
        };
        sql.push_str(&format!(" AND span_kind = {}", quote(otlp)));
    }
    sql.push_str(" ORDER BY span_name, span_kind");
    let res = match engine.query(&sql).await {
        Ok(r) => r,
        Err(e) => return query_failed(e),
    };
    let names = string_column(&res, 0);
    let kinds = string_column(&res, 1);
    let data: Vec<Value> = names
        .iter()
        .zip(kinds.iter())
        .map(|(n, k)| json!({ "name": n, "spanKind": model::kind_name(k) }))
        .collect();
    let total = data.len();
    ok(json!(data), total)
}

async fn trace_by_id(State(engine): State<QueryEngine>, Path(trace_id): Path<String>) -> Response {
    let id = match normalize_trace_id(&trace_id) {
        Ok(id) => id,
        Err(msg) => return fail(StatusCode::BAD_REQUEST, msg),
    };
    match fetch_traces(&engine, std::slice::from_ref(&id)).await {
        Ok(traces) => match traces.get(&id) {
            Some(spans) => ok(json!([model::trace(&id, spans)]), 1),
            None => fail(StatusCode::NOT_FOUND, "trace not found"),
        },
        Err(e) => query_failed(e),
    }
}

async fn search(State(engine): State<QueryEngine>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let query = match SearchQuery::from_params(&p, crate::traces::now_ns()) {
        Ok(q) => q,
        Err(msg) => return fail(StatusCode::BAD_REQUEST, msg),
    };
    let ids = if query.trace_ids.is_empty() {
        let res = match engine.query(&query.candidates_sql()).await {
            Ok(r) => r,
            Err(e) => return query_failed(e),
        };
        string_column(&res, 0)
    } else {
        query.trace_ids.clone()
    };
    let mut traces = match fetch_traces(&engine, &ids).await {
        Ok(t) => t,
        Err(e) => return query_failed(e),
    };
    // Newest first, as the candidates query ordered them.
    let data: Vec<Value> = ids
        .iter()
        .filter_map(|id| traces.remove(id).map(|spans| model::trace(id, &spans)))
        .collect();
    let total = data.len();
    ok(json!(data), total)
}

async fn dependencies(State(engine): State<QueryEngine>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let now_ms = crate::traces::now_ns() / 1_000_000;
    let end_ms = match p.int("endTs") {
        Ok(v) => v.unwrap_or(now_ms),
        Err(msg) => return fail(StatusCode::BAD_REQUEST, msg),
    };
    let lookback_ms = match p.int("lookback") {
        Ok(v) => v.unwrap_or(24 * 3600 * 1000),
        Err(msg) => return fail(StatusCode::BAD_REQUEST, msg),
    };
    if lookback_ms < 0 {
        return fail(
            StatusCode::BAD_REQUEST,
            "parameter 'lookback' must not be negative",
        );
    }
    let end = end_ms.saturating_mul(1_000_000);
    let start = end.saturating_sub(lookback_ms.saturating_mul(1_000_000));
    let sql = params::dependencies_sql(start, end);
    let res = match engine.query(&sql).await {
        Ok(r) => r,
        Err(e) => return query_failed(e),
    };
    let parents = string_column(&res, 0);
    let children = string_column(&res, 1);
    let counts = string_column(&res, 2);
    let data: Vec<Value> = parents
        .iter()
        .zip(children.iter())
        .zip(counts.iter())
        .map(|((p, c), n)| {
            json!({ "parent": p, "child": c, "callCount": n.parse::<u64>().unwrap_or(0) })
        })
        .collect();
    let total = data.len();
    ok(json!(data), total)
}
