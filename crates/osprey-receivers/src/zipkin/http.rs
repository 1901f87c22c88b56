//! The Zipkin HTTP API: `POST /api/v2/spans` (JSON or protobuf) and `POST /api/v1/spans`
//! (JSON). Like upstream, a POST to any other path is read as v2. Answers: 202 with an empty
//! body once the next consumer took the spans; 400 naming the problem for a bad body (or a
//! consumer's permanent refusal); 413 over `max_request_body_size`; 415 for an unsupported
//! `Content-Type`/`Content-Encoding`; 503 (with `Retry-After` when overloaded) for a
//! retryable refusal.

use super::body::{self, Api, BodyError, Format};
use super::config::{CorsConfig, HttpServerSettings, ZipkinConfig};
use super::model::DecodeError;
use super::{json, proto, translate, v1};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, Limited};
use osprey_model::{sanitize_request, span_count, Limits, TraceRequest};
use osprey_pipeline::{Batch, ConsumeError, Context, SharedConsumer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

struct Inner {
    consumer: SharedConsumer,
    settings: HttpServerSettings,
    parse_string_tags: bool,
}

type Shared = Arc<Inner>;

/// The receiver's routes, ready to serve (or to test with `tower::ServiceExt::oneshot`).
pub fn router(config: &ZipkinConfig, consumer: SharedConsumer) -> Router {
    let state = Arc::new(Inner {
        consumer,
        settings: config.server(),
        parse_string_tags: config.parse_string_tags,
    });
    Router::new()
        .route("/api/v1/spans", post(v1_spans).options(preflight))
        .route("/api/v2/spans", post(v2_spans).options(preflight))
        .fallback(fallback)
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn v1_spans(State(st): State<Shared>, req: Request) -> Response {
    serve(st, Api::V1, req).await
}

async fn v2_spans(State(st): State<Shared>, req: Request) -> Response {
    serve(st, Api::V2, req).await
}

async fn fallback(State(st): State<Shared>, req: Request) -> Response {
    match *req.method() {
        Method::POST => serve(st, Api::V2, req).await,
        Method::OPTIONS => preflight(State(st), req.headers().clone()).await,
        _ => text(
            StatusCode::NOT_FOUND,
            "the zipkin receiver serves POST /api/v2/spans and POST /api/v1/spans",
        ),
    }
}

fn text(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn serve(st: Shared, api: Api, req: Request) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut resp = handle(&st, api, req).await;
    let headers = resp.headers_mut();
    for (name, value) in &st.settings.response_headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    if let (Some(cors), Some(origin)) = (&st.settings.cors, origin) {
        if origin_allowed(cors, &origin) {
            allow_origin(headers, origin);
        }
    }
    resp
}

async fn handle(st: &Inner, api: Api, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let format = match body::format_for(api, header_str(&parts.headers, &header::CONTENT_TYPE)) {
        Ok(f) => f,
        Err(e) => return body_error(&e),
    };
    let limit = st.settings.body_limit();
    let raw = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return body_error(&BodyError::TooLarge {
                limit,
                decompressed: false,
            })
        }
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("could not read the request body: {e}"),
            )
        }
    };
    let encoding = header_str(&parts.headers, &header::CONTENT_ENCODING).to_string();
    let settings = st.settings.clone();
    let parse_string_tags = st.parse_string_tags;
    // Decompressing, decoding and translating are CPU work: keep them off the async workers.
    let decoded = tokio::task::spawn_blocking(move || -> Result<TraceRequest, BodyError> {
        let plain = body::decompress(&settings, &encoding, raw, limit)?;
        let spans = match format {
            Format::V1Json => v1::decode_v1(&plain),
            Format::V2Json => json::decode_v2(&plain),
            Format::V2Proto => proto::decode_proto(&plain),
        }
        .map_err(|DecodeError(m)| BodyError::Corrupt(m))?;
        Ok(translate::to_otlp(spans, parse_string_tags))
    })
    .await;
    let mut request = match decoded {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return body_error(&e),
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("decoder task failed: {e}"),
            )
        }
    };
    let report = sanitize_request(&mut request, &Limits::default());
    if let Some(msg) = report.message() {
        tracing::warn!(rejected = report.rejected, "zipkin receiver: {msg}");
    }
    if span_count(&request) == 0 {
        if report.rejected > 0 {
            let msg = report.message().unwrap_or_default();
            return text(StatusCode::BAD_REQUEST, &msg);
        }
        return StatusCode::ACCEPTED.into_response();
    }
    let context = Context {
        client_addr: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
        metadata: if st.settings.include_metadata {
            metadata(&parts.headers)
        } else {
            BTreeMap::new()
        },
    };
    let mut batch = Batch::traces(request);
    batch.context = Arc::new(context);
    match st.consumer.consume(batch).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => consume_error(&e),
    }
}

fn metadata(headers: &HeaderMap) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if let Ok(v) = value.to_str() {
            out.entry(name.as_str().to_string())
                .or_default()
                .push(v.to_string());
        }
    }
    out
}

fn body_error(e: &BodyError) -> Response {
    let status = match e {
        BodyError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        BodyError::Corrupt(_) => StatusCode::BAD_REQUEST,
    };
    text(status, &e.to_string())
}

fn consume_error(e: &ConsumeError) -> Response {
    tracing::warn!(error = %e, "zipkin receiver: spans refused by the pipeline");
    match e {
        ConsumeError::Permanent(_) => text(StatusCode::BAD_REQUEST, &e.to_string()),
        ConsumeError::Unavailable(_) => text(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        ConsumeError::Overloaded { retry_after, .. } => {
            let mut r = text(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
            let secs = retry_after.as_secs().max(1).to_string();
            if let Ok(v) = HeaderValue::from_str(&secs) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    }
}

/// `*`, an exact origin (case-insensitive), or a pattern with one `*`.
fn origin_allowed(cors: &CorsConfig, origin: &HeaderValue) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.to_ascii_lowercase();
    cors.allowed_origins.iter().any(|allowed| {
        let allowed = allowed.to_ascii_lowercase();
        if allowed == "*" {
            return true;
        }
        match allowed.split_once('*') {
            Some((prefix, suffix)) => {
                origin.len() >= prefix.len() + suffix.len()
                    && origin.starts_with(prefix)
                    && origin.ends_with(suffix)
            }
            None => allowed == origin,
        }
    })
}

fn allow_origin(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// A CORS preflight. Without `cors` configured, OPTIONS is not served (405); an origin,
/// method or header that is not allowed gets a 204 without CORS headers, so the browser
/// refuses.
async fn preflight(State(st): State<Shared>, headers: HeaderMap) -> Response {
    let Some(cors) = &st.settings.cors else {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    };
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let Some(origin) = headers.get(header::ORIGIN).cloned() else {
        return resp;
    };
    let method = header_str(&headers, &header::ACCESS_CONTROL_REQUEST_METHOD).to_ascii_uppercase();
    let requested = header_str(&headers, &header::ACCESS_CONTROL_REQUEST_HEADERS).to_string();
    let header_ok = |h: &str| {
        let h = h.trim();
        h.is_empty()
            || ["accept", "content-type", "x-requested-with", "origin"]
                .iter()
                .any(|a| h.eq_ignore_ascii_case(a))
            || cors
                .allowed_headers
                .iter()
                .any(|a| a == "*" || h.eq_ignore_ascii_case(a))
    };
    if !origin_allowed(cors, &origin)
        || !matches!(method.as_str(), "POST" | "GET" | "HEAD")
        || !requested.split(',').all(header_ok)
    {
        return resp;
    }
    let out = resp.headers_mut();
    allow_origin(out, origin);
    if let Ok(v) = HeaderValue::from_str(&method) {
        out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    if !requested.trim().is_empty() {
        if let Ok(v) = HeaderValue::from_str(&requested) {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
    }
    if cors.max_age > 0 {
        out.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(cors.max_age),
        );
    }
    resp
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
