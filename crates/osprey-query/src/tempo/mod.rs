//! Tempo's HTTP API under `/tempo` (what Grafana's Tempo data source calls): trace by id
//! (OTLP JSON, or protobuf when `Accept: application/protobuf`), search with TraceQL or
//! legacy tags, tag names and values, echo and build info.

mod search;
pub mod traceql;

use crate::engine::{QueryEngine, QueryError};
use crate::traces::{fetch_traces, normalize_trace_id};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use osprey_model::from_arrow::to_resource_spans;
use osprey_model::otlp::trace::v1::{ResourceSpans, TracesData};
use prost::Message;
use serde_json::json;

/// The Tempo routes, mounted under `/tempo`.
pub fn router(engine: QueryEngine) -> Router {
    Router::new()
        .route("/tempo/api/echo", get(|| async { "echo" }))
        .route("/tempo/api/status/buildinfo", get(buildinfo))
        .route("/tempo/api/traces/{trace_id}", get(trace_v1))
        .route("/tempo/api/v2/traces/{trace_id}", get(trace_v2))
        .route("/tempo/api/search", get(search::search))
        .route("/tempo/api/search/tags", get(search::tags_v1))
        .route("/tempo/api/v2/search/tags", get(search::tags_v2))
        .route("/tempo/api/search/tag/{tag}/values", get(search::values_v1))
        .route(
            "/tempo/api/v2/search/tag/{tag}/values",
            get(search::values_v2),
        )
        .with_state(engine)
}

/// Tempo answers errors as plain text.
pub(crate) fn fail(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, msg.into()).into_response()
}

pub(crate) fn query_failed(e: QueryError) -> Response {
    let status = match e {
        QueryError::Invalid(_) | QueryError::ReadOnly(_) => StatusCode::BAD_REQUEST,
        QueryError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    fail(status, e.to_string())
}

async fn buildinfo() -> Response {
    Json(json!({
        "version": "2.6.0",
        "revision": "osprey",
        "branch": "osprey",
        "buildUser": "osprey",
        "buildDate": "",
        "goVersion": format!("osprey {}", env!("CARGO_PKG_VERSION")),
    }))
    .into_response()
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/protobuf") || v.contains("application/x-protobuf"))
}

/// The trace's spans as OTLP, or the response to give instead.
async fn load(engine: &QueryEngine, trace_id: &str) -> Result<Vec<ResourceSpans>, Response> {
    let id = normalize_trace_id(trace_id).map_err(|m| fail(StatusCode::BAD_REQUEST, m))?;
    let traces = fetch_traces(engine, std::slice::from_ref(&id))
        .await
        .map_err(query_failed)?;
    match traces.get(&id) {
        Some(spans) => Ok(to_resource_spans(spans)),
        None => Err(fail(
            StatusCode::NOT_FOUND,
            format!("trace not found: {id}"),
        )),
    }
}

fn protobuf(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/protobuf")], bytes).into_response()
}

/// tempopb.TraceByIDResponse: `trace` (field 1) and `status` (field 3, COMPLETE = 0).
#[derive(Clone, PartialEq, prost::Message)]
struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    trace: Option<TracesData>,
}

/// Trace by id, as `/api/traces/{id}` (`v2` false) or `/api/v2/traces/{id}` answer it.
async fn trace(engine: QueryEngine, trace_id: String, headers: HeaderMap, v2: bool) -> Response {
    let batches = match load(&engine, &trace_id).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let data = TracesData {
        resource_spans: batches,
    };
    match (wants_protobuf(&headers), v2) {
        // tempopb.Trace is field 1 = repeated ResourceSpans: the bytes of OTLP TracesData.
        (true, false) => protobuf(data.encode_to_vec()),
        (true, true) => protobuf(TraceByIdResponse { trace: Some(data) }.encode_to_vec()),
        (false, false) => Json(json!({ "batches": data.resource_spans })).into_response(),
        (false, true) => Json(json!({
            "trace": { "resourceSpans": data.resource_spans },
            "status": "COMPLETE",
        }))
        .into_response(),
    }
}

async fn trace_v1(
    State(engine): State<QueryEngine>,
    Path(trace_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    trace(engine, trace_id, headers, false).await
}

async fn trace_v2(
    State(engine): State<QueryEngine>,
    Path(trace_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    trace(engine, trace_id, headers, true).await
}
