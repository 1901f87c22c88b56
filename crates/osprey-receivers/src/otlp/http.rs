//! OTLP/HTTP: `POST /v1/traces` with protobuf or JSON bodies, optionally gzip/deflate.
//!
//! Responses use the request's encoding. Errors carry a `google.rpc.Status` body and the
//! OTLP-specified status: 400 for bad data, 413 for a body over the limit, 415 for an unknown
//! content type, 503 with `Retry-After` when the store is overloaded (retryable), and 501 for
//! the signals Osprey does not store yet.

use super::body::{self, Encoding};
use super::{IngestError, TraceIngest};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, Limited};
use prost::Message;

/// The URL paths of the three signals (the Collector's `traces_url_path` etc.).
#[derive(Debug, Clone)]
pub struct Paths {
    pub traces: String,
    pub metrics: String,
    pub logs: String,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            traces: "/v1/traces".into(),
            metrics: "/v1/metrics".into(),
            logs: "/v1/logs".into(),
        }
    }
}

/// Routes for `/v1/traces`, `/v1/metrics`, `/v1/logs`.
pub fn router(ingest: TraceIngest) -> Router {
    router_with_paths(ingest, &Paths::default())
}

/// Routes for the three signals at the given paths.
pub fn router_with_paths(ingest: TraceIngest, paths: &Paths) -> Router {
    Router::new()
        .route(&paths.traces, post(export_traces))
        .route(&paths.metrics, post(export_metrics))
        .route(&paths.logs, post(export_logs))
        .layer(DefaultBodyLimit::disable())
        .with_state(ingest)
}

/// gRPC status codes used in `google.rpc.Status` bodies.
mod code {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
}

fn response_encoding(headers: &HeaderMap) -> Encoding {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Encoding::from_content_type)
        .unwrap_or(Encoding::Protobuf)
}

/// An error response with a `google.rpc.Status` body in `enc`.
fn status_response(enc: Encoding, http: StatusCode, grpc_code: i32, message: &str) -> Response {
    let body = match enc {
        Encoding::Protobuf => tonic_types::Status {
            code: grpc_code,
            message: message.to_string(),
            details: vec![],
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": grpc_code, "message": message })
            .to_string()
            .into_bytes(),
    };
    (http, [(header::CONTENT_TYPE, enc.content_type())], body).into_response()
}

fn error_response(enc: Encoding, err: &IngestError) -> Response {
    let msg = err.to_string();
    match err {
        IngestError::BadRequest(_) => {
            status_response(enc, StatusCode::BAD_REQUEST, code::INVALID_ARGUMENT, &msg)
        }
        IngestError::TooLarge(_) => status_response(
            enc,
            StatusCode::PAYLOAD_TOO_LARGE,
            code::RESOURCE_EXHAUSTED,
            &msg,
        ),
        IngestError::Overloaded { retry_after, .. } => {
            let mut r = status_response(
                enc,
                StatusCode::SERVICE_UNAVAILABLE,
                code::UNAVAILABLE,
                &msg,
            );
            let secs = retry_after.as_secs().max(1).to_string();
            if let Ok(v) = HeaderValue::from_str(&secs) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        IngestError::Unavailable(_) => status_response(
            enc,
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            &msg,
        ),
        IngestError::Internal(_) => {
            status_response(enc, StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL, &msg)
        }
        IngestError::NotServed(_) => {
            status_response(enc, StatusCode::NOT_IMPLEMENTED, code::UNIMPLEMENTED, &msg)
        }
    }
}

/// The JSON form of an `ExportTraceServiceResponse` (proto3 JSON: int64 as a string).
fn json_response(
    resp: &osprey_model::otlp::collector::trace::v1::ExportTraceServiceResponse,
) -> Vec<u8> {
    let v = match &resp.partial_success {
        Some(ps) => serde_json::json!({
            "partialSuccess": { "rejectedSpans": ps.rejected_spans.to_string(), "errorMessage": ps.error_message }
        }),
        None => serde_json::json!({}),
    };
    v.to_string().into_bytes()
}

/// Reads, size-checks and decompresses a request body off the async workers, then decodes
/// it with `decode`. Gives the response encoding too, or the error response to send.
async fn read_body<T: Send + 'static>(
    ingest: &TraceIngest,
    headers: &HeaderMap,
    body: Body,
    decode: impl FnOnce(Encoding, &[u8]) -> Result<T, body::BodyError> + Send + 'static,
) -> Result<(Encoding, T, Option<bytes::Bytes>), Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(enc) = Encoding::from_content_type(content_type) else {
        let msg = format!("unsupported Content-Type `{content_type}`; use application/x-protobuf or application/json");
        return Err(status_response(
            Encoding::Protobuf,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::INVALID_ARGUMENT,
            &msg,
        ));
    };
    let limit = ingest.config().max_request_bytes;
    let raw = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            let err = if e.is::<http_body_util::LengthLimitError>() {
                IngestError::TooLarge(format!(
                    "request body is larger than the limit of {limit} bytes"
                ))
            } else {
                IngestError::BadRequest(format!("could not read the request body: {e}"))
            };
            return Err(error_response(enc, &err));
        }
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Decompressing and decoding are CPU work: keep them off the async workers.
    let decoded = tokio::task::spawn_blocking(move || -> Result<_, IngestError> {
        let plain = body::decompress(encoding.as_deref(), raw, limit)?;
        let req = decode(enc, &plain)?;
        Ok((req, (enc == Encoding::Protobuf).then_some(plain)))
    })
    .await;
    match decoded {
        Ok(Ok((req, plain))) => Ok((enc, req, plain)),
        Ok(Err(e)) => Err(error_response(enc, &e)),
        Err(e) => Err(error_response(
            enc,
            &IngestError::Internal(format!("decoder task failed: {e}")),
        )),
    }
}

/// A success response with an empty `Export*ServiceResponse` (no partial success).
fn empty_success(enc: Encoding) -> Response {
    let body = match enc {
        Encoding::Protobuf => Vec::new(),
        Encoding::Json => b"{}".to_vec(),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, enc.content_type())],
        body,
    )
        .into_response()
}

/// The client's address, when the server was started with connect info.
fn client_of(ext: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    ext.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

async fn export_metrics(
    State(ingest): State<TraceIngest>,
    ext: axum::http::Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !ingest.serves(osprey_pipeline::Signal::Metrics) {
        let e = ingest.export_metrics(Default::default(), None).await.err();
        let e = e.unwrap_or(IngestError::NotServed("metrics".into()));
        return error_response(response_encoding(&headers), &e);
    }
    let (enc, req, _) = match read_body(&ingest, &headers, body, body::decode_metrics).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match ingest.export_metrics(req, client_of(&ext)).await {
        Ok(_) => empty_success(enc),
        Err(e) => error_response(enc, &e),
    }
}

async fn export_logs(
    State(ingest): State<TraceIngest>,
    ext: axum::http::Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !ingest.serves(osprey_pipeline::Signal::Logs) {
        let e = ingest.export_logs(Default::default(), None).await.err();
        let e = e.unwrap_or(IngestError::NotServed("logs".into()));
        return error_response(response_encoding(&headers), &e);
    }
    let (enc, req, _) = match read_body(&ingest, &headers, body, body::decode_logs).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match ingest.export_logs(req, client_of(&ext)).await {
        Ok(_) => empty_success(enc),
        Err(e) => error_response(enc, &e),
    }
}

async fn export_traces(
    State(ingest): State<TraceIngest>,
    ext: axum::http::Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(e) = ingest.check_room() {
        return error_response(response_encoding(&headers), &e);
    }
    let limits = ingest.config().limits;
    let cutoff = ingest.config().max_span_age.map(super::cutoff_ns);
    let decode = move |enc: Encoding, b: &[u8]| body::decode_traces(enc, b, &limits, cutoff);
    let (enc, req, encoded) = match read_body(&ingest, &headers, body, decode).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let client = client_of(&ext);
    let result = match (req, encoded) {
        (body::TraceBody::Clean { spans }, Some(bytes)) => {
            ingest.pass_raw(bytes, spans, client).await
        }
        (body::TraceBody::Decoded(req), encoded) => ingest.export_from(req, encoded, client).await,
        (body::TraceBody::Clean { .. }, None) => Err(IngestError::Internal(
            "a clean protobuf body lost its bytes".into(),
        )),
    };
    match result {
        Ok(outcome) => {
            let resp = outcome.into_response();
            let body = match enc {
                Encoding::Protobuf => resp.encode_to_vec(),
                Encoding::Json => json_response(&resp),
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, enc.content_type())],
                body,
            )
                .into_response()
        }
        Err(e) => error_response(enc, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::OtlpConfig;
    use super::*;
    use axum::http::Request;
    use osprey_model::otlp::collector::trace::v1::ExportTraceServiceResponse;
    use osprey_pipeline::ConsumeError;
    use std::sync::Arc;
    use std::time::Duration;
    use tower::ServiceExt;

    async fn call(app: Router, ct: &str, body: Vec<u8>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let req = Request::post("/v1/traces")
            .header("content-type", ct)
            .body(Body::from(body));
        let Ok(req) = req else {
            return (StatusCode::IM_A_TEAPOT, HeaderMap::new(), vec![]);
        };
        let Ok(resp) = app.oneshot(req).await;
        let (parts, body) = resp.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|c| c.to_bytes().to_vec())
            .unwrap_or_default();
        (parts.status, parts.headers, bytes)
    }

    #[tokio::test]
    async fn protobuf_partial_success() {
        let rec = Arc::new(Recorder::default());
        let app = router(TraceIngest::new(rec.clone(), OtlpConfig::default()));
        let mut bad = span(1, 2);
        bad.span_id = vec![1, 2, 3];
        let (status, _, body) = call(
            app,
            "application/x-protobuf",
            request(vec![span(1, 1), bad]).encode_to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let resp = ExportTraceServiceResponse::decode(body.as_slice()).unwrap_or_default();
        let ps = resp.partial_success.unwrap_or_default();
        assert_eq!(ps.rejected_spans, 1);
        assert!(
            ps.error_message.contains("span_id must be 8 bytes, got 3"),
            "{}",
            ps.error_message
        );
        // The original bytes travel with the batch for the WAL.
        assert!(rec
            .got
            .lock()
            .map(|g| g[0].encoded.is_some())
            .unwrap_or(false));
    }

    #[tokio::test]
    async fn a_clean_protobuf_body_stays_undecoded() {
        let rec = Arc::new(Recorder::default());
        let app = router(TraceIngest::new(rec.clone(), OtlpConfig::default()));
        let body = request(vec![span(1, 1), span(1, 2)]).encode_to_vec();
        let (status, _, resp) = call(app, "application/x-protobuf", body.clone()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(resp.is_empty(), "no partial success");
        let got = rec.got.lock().map(|g| g.clone()).unwrap_or_default();
        assert_eq!(got.len(), 1);
        let osprey_pipeline::Payload::RawTraces(raw) = &got[0].payload else {
            panic!("expected raw traces, got {:?}", got[0].payload)
        };
        assert_eq!((raw.spans(), raw.to_bytes().as_ref()), (2, body.as_slice()));
    }

    #[tokio::test]
    async fn errors_use_the_right_statuses() {
        let rec = Arc::new(Recorder::default());
        let cfg = OtlpConfig {
            max_request_bytes: 64,
            ..OtlpConfig::default()
        };
        let app = router(TraceIngest::new(rec.clone(), cfg));
        let (s, _, b) = call(app.clone(), "application/json", b"{oops".to_vec()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
        assert_eq!(v["code"], 3);
        assert!(v["message"].as_str().unwrap_or("").contains("OTLP/JSON"));
        let (s, _, _) = call(app.clone(), "text/plain", b"x".to_vec()).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (s, _, b) = call(app.clone(), "application/x-protobuf", vec![0; 65]).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        let st = tonic_types::Status::decode(b.as_slice()).unwrap_or_default();
        assert!(st.message.contains("limit of 64 bytes"), "{}", st.message);
        if let Ok(mut r) = rec.refuse.lock() {
            *r = Some(ConsumeError::Overloaded {
                retry_after: Duration::from_secs(3),
                reason: "full".into(),
            });
        }
        let (s, h, _) = call(
            app,
            "application/x-protobuf",
            request(vec![span(1, 1)]).encode_to_vec(),
        )
        .await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            h.get("retry-after").and_then(|v| v.to_str().ok()),
            Some("3")
        );
    }

    #[tokio::test]
    async fn a_full_pipeline_refuses_before_reading() {
        let rec = Arc::new(Recorder::default());
        rec.no_room
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let app = router(TraceIngest::new(rec.clone(), OtlpConfig::default()));
        // Not even a valid body: it is never read.
        let (s, h, b) = call(app, "application/json", b"{oops".to_vec()).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            h.get("retry-after").and_then(|v| v.to_str().ok()),
            Some("1")
        );
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
        assert_eq!(v["code"], 14, "{v}");
        assert_eq!(rec.got.lock().map(|g| g.len()).unwrap_or(9), 0);
    }

    #[tokio::test]
    async fn metrics_are_not_supported_yet() {
        let app = router(TraceIngest::new(
            Arc::new(Recorder::default()),
            OtlpConfig::default(),
        ));
        let req = Request::post("/v1/metrics")
            .header("content-type", "application/json")
            .body(Body::from("{}"));
        let Ok(req) = req else { return };
        let Ok(resp) = app.oneshot(req).await;
        assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED);
        let b = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        assert!(String::from_utf8_lossy(&b).contains("not supported yet"));
    }
}
