//! `thrift_http`: the Jaeger collector's `POST /api/traces`, whose body is a `jaeger.thrift`
//! `Batch` in the Thrift binary protocol (`Content-Type: application/x-thrift` or
//! `application/vnd.apache.thrift.binary`), optionally gzip/deflate compressed.
//!
//! Answers as upstream: 202 Accepted on success; 400 with a plain-text reason for an
//! unparsable or unsupported content type (upstream answers 400 here, not 415) or an
//! undecodable body. Osprey additions: 413 for a body over `max_request_body_size`, 503 with
//! `Retry-After` when the pipeline asks the client to retry, 500 for a permanent refusal
//! (upstream answers 500 for every consumer error).

use super::config::ThriftHttpConfig;
use super::thrift::decode_batch;
use super::thrift_reader::Wire;
use super::translate::{self, Flavor};
use super::Ingest;
use crate::otlp::body::{decompress, BodyError};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, Limited};
use osprey_pipeline::{ConsumeError, Context};
use std::net::SocketAddr;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const ACCEPTED_TYPES: [&str; 2] = [
    "application/x-thrift",
    "application/vnd.apache.thrift.binary",
];

#[derive(Clone)]
struct HttpState {
    ingest: Ingest,
    max_body: usize,
    include_metadata: bool,
}

/// A plain-text error, as Go's `http.Error` writes it.
fn text(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{msg}\n"),
    )
        .into_response()
}

/// The media type of `Content-Type`, lower-cased and without parameters (Go's
/// `mime.ParseMediaType`).
fn media_type(headers: &HeaderMap) -> Result<String, String> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().map_err(|_| "invalid header value".to_string()))
        .transpose()?
        .unwrap_or("");
    let mt = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mt.is_empty() {
        return Err("mime: no media type".into());
    }
    if mt.chars().filter(|&c| c == '/').count() != 1 || mt.contains(char::is_whitespace) {
        return Err("mime: expected token after slash".into());
    }
    Ok(mt)
}

fn refusal(err: &ConsumeError) -> Response {
    let msg = format!("Cannot submit Jaeger batch: {err}");
    match err {
        ConsumeError::Overloaded { retry_after, .. } => {
            let mut r = text(StatusCode::SERVICE_UNAVAILABLE, &msg);
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        ConsumeError::Unavailable(_) => text(StatusCode::SERVICE_UNAVAILABLE, &msg),
        ConsumeError::Permanent(_) => text(StatusCode::INTERNAL_SERVER_ERROR, &msg),
    }
}

async fn post_traces(State(st): State<HttpState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let mt = match media_type(&parts.headers) {
        Ok(mt) => mt,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("Cannot parse content type: {e}"),
            )
        }
    };
    if !ACCEPTED_TYPES.contains(&mt.as_str()) {
        return text(
            StatusCode::BAD_REQUEST,
            &format!("Unsupported content type: {mt}"),
        );
    }
    let raw = match Limited::new(body, st.max_body).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body is larger than {} bytes", st.max_body),
            )
        }
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("Unable to process request body: {e}"),
            )
        }
    };
    let encoding = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let body = match decompress(encoding, raw, st.max_body) {
        Ok(b) => b,
        Err(e @ BodyError::TooLarge { .. }) => {
            return text(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string())
        }
        Err(e) => return text(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let batch = match decode_batch(&body, Wire::Binary) {
        Ok(b) => b,
        Err(e) => {
            st.ingest.decode_error();
            return text(
                StatusCode::BAD_REQUEST,
                &format!("Unable to process request body: {e}"),
            );
        }
    };
    let mut context = Context {
        client_addr: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
        ..Context::default()
    };
    if st.include_metadata {
        for (k, v) in parts.headers.iter() {
            if let Ok(v) = v.to_str() {
                context
                    .metadata
                    .entry(k.as_str().to_string())
                    .or_default()
                    .push(v.to_string());
            }
        }
    }
    let request = translate::to_otlp(batch, Flavor::Thrift);
    match st.ingest.ingest(request, context).await {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(e) => {
            tracing::debug!(error = %e, "jaeger thrift_http: batch refused");
            refusal(&e)
        }
    }
}

fn router(state: HttpState) -> Router {
    Router::new()
        .route("/api/traces", post(post_traces))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serves `POST /api/traces` on `listener` until `shutdown` is cancelled.
pub(crate) fn spawn(
    listener: tokio::net::TcpListener,
    cfg: &ThriftHttpConfig,
    ingest: Ingest,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let app = router(HttpState {
        ingest,
        max_body: cfg.max_body_bytes(),
        include_metadata: cfg.include_metadata,
    })
    .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "jaeger receiver: Thrift HTTP server failed");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn media_types_are_parsed_like_go() {
        assert_eq!(
            media_type(&ct("Application/X-Thrift; charset=binary")).unwrap(),
            "application/x-thrift"
        );
        assert!(media_type(&HeaderMap::new()).is_err());
        assert!(media_type(&ct("thrift")).is_err());
    }

    #[test]
    fn refusals_map_to_retryable_codes() {
        let r = refusal(&ConsumeError::Overloaded {
            retry_after: std::time::Duration::from_millis(1500),
            reason: "full".into(),
        });
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let r = refusal(&ConsumeError::Permanent("no".into()));
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
