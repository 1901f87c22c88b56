//! The HTTP SQL endpoint: `POST /api/sql` with `{"sql": "..."}`.

use crate::engine::{QueryEngine, QueryError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    pub sql: String,
}

/// Routes served under the query port.
pub fn router(engine: QueryEngine) -> Router {
    Router::new()
        .route("/api/sql", post(sql))
        .with_state(engine)
}

fn error(status: StatusCode, msg: String) -> Response {
    (status, Json(serde_json::json!({ "error": msg }))).into_response()
}

/// The body is read as JSON whatever its Content-Type, so `curl -d '{"sql": ...}'` works.
async fn sql(State(engine): State<QueryEngine>, body: axum::body::Bytes) -> Response {
    let req: SqlRequest = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected a JSON body {{\"sql\": \"...\"}}: {e}"),
            )
        }
    };
    match engine.query(&req.sql).await {
        Ok(res) => {
            let (columns, rows) = crate::json::to_rows(&res.schema, &res.batches);
            Json(serde_json::json!({ "columns": columns, "rows": rows })).into_response()
        }
        Err(e) => {
            let status = match e {
                QueryError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            tracing::debug!(error = %e, sql = %req.sql, "query refused");
            error(status, e.to_string())
        }
    }
}
