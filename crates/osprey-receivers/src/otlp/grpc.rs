//! OTLP/gRPC: `TraceService/Export`, `MetricsService/Export` and `LogsService/Export`. A
//! signal the receiver has no consumer for is answered UNIMPLEMENTED with a message. Traces
//! are taken as bytes and skimmed (`grpc_raw`); metrics and logs are decoded by tonic.
//!
//! Status codes follow the OTLP spec: INVALID_ARGUMENT for bad data, RESOURCE_EXHAUSTED
//! (without RetryInfo, so not retried) for a message over the size limit, UNAVAILABLE with
//! RetryInfo when the store is overloaded.

use super::{IngestError, TraceIngest};
use osprey_model::otlp::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use osprey_model::otlp::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use osprey_model::otlp::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use osprey_model::otlp::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use std::future::Future;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use tonic::codec::CompressionEncoding;
use tonic::transport::server::Router;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub fn to_status(err: &IngestError) -> Status {
    let msg = err.to_string();
    match err {
        IngestError::BadRequest(_) => Status::invalid_argument(msg),
        IngestError::TooLarge(_) => Status::resource_exhausted(msg),
        IngestError::Overloaded { retry_after, .. } => Status::with_error_details(
            Code::Unavailable,
            msg,
            ErrorDetails::with_retry_info(Some(*retry_after)),
        ),
        IngestError::Unavailable(_) => Status::unavailable(msg),
        IngestError::Internal(_) => Status::internal(msg),
        IngestError::NotServed(_) => Status::unimplemented(msg),
    }
}

struct Metrics(TraceIngest);

#[tonic::async_trait]
impl MetricsService for Metrics {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let client = request.remote_addr().map(|a| a.ip());
        match self.0.export_metrics(request.into_inner(), client).await {
            Ok(_) => Ok(Response::new(ExportMetricsServiceResponse::default())),
            Err(e) => Err(to_status(&e)),
        }
    }
}

struct Logs(TraceIngest);

#[tonic::async_trait]
impl LogsService for Logs {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let client = request.remote_addr().map(|a| a.ip());
        match self.0.export_logs(request.into_inner(), client).await {
            Ok(_) => Ok(Response::new(ExportLogsServiceResponse::default())),
            Err(e) => Err(to_status(&e)),
        }
    }
}

/// The largest HTTP/2 frame clients may send (the protocol's default is 16 KiB).
const MAX_FRAME_SIZE: u32 = 1 << 20;

/// A tonic router with the three OTLP services, size limits and gzip.
pub fn router(
    ingest: TraceIngest,
) -> Router<tower::layer::util::Stack<OversizeLayer, tower::layer::util::Identity>> {
    let limit = ingest.config().max_request_bytes;
    let traces = super::grpc_raw::RawTraceServer::new(ingest.clone());
    let metrics = MetricsServiceServer::new(Metrics(ingest.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let logs = LogsServiceServer::new(Logs(ingest))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    tonic::transport::Server::builder()
        // Let clients send a request in a few large HTTP/2 frames rather than in 16 KiB ones:
        // fewer frames and socket reads per request.
        .max_frame_size(MAX_FRAME_SIZE)
        .layer(OversizeLayer)
        .add_service(traces)
        .add_service(metrics)
        .add_service(logs)
}

/// Serves the OTLP gRPC services on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    ingest: TraceIngest,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    router(ingest).serve_with_shutdown(addr, shutdown).await
}

/// Serves on an already bound listener (lets callers bind port 0 and learn the port).
pub async fn serve_listener(
    listener: tokio::net::TcpListener,
    ingest: TraceIngest,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    router(ingest)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// tonic refuses an oversized message with OUT_OF_RANGE, which OTLP clients retry forever,
/// and a message it cannot decode with INTERNAL. The OTLP spec asks for RESOURCE_EXHAUSTED
/// without RetryInfo and INVALID_ARGUMENT (neither retried): this layer rewrites those two
/// answers. tonic sends it as a trailers-only response, so the status is in
/// the headers.
#[derive(Clone, Copy, Debug, Default)]
pub struct OversizeLayer;

impl<S> tower::Layer<S> for OversizeLayer {
    type Service = Oversize<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Oversize(inner)
    }
}

#[derive(Clone, Debug)]
pub struct Oversize<S>(S);

impl<S, B, RB> tower::Service<http::Request<B>> for Oversize<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let fut = self.0.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            rewrite_oversize(resp.headers_mut());
            Ok(resp)
        })
    }
}

fn rewrite_oversize(headers: &mut http::HeaderMap) {
    let status = headers.get("grpc-status").map(|v| v.as_bytes().to_vec());
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .replace("%20", " ");
    match status.as_deref() {
        // tonic's "decoded message length too large" is OUT_OF_RANGE: make it
        // RESOURCE_EXHAUSTED without RetryInfo (not retryable).
        Some(b"11") if message.contains("message length too large") => {
            headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        }
        // A body that is not a valid ExportTraceServiceRequest (bad wire format, invalid
        // UTF-8 in a string, nesting past prost's recursion limit) is the client's fault:
        // tonic says INTERNAL, OTLP says INVALID_ARGUMENT (not retryable).
        Some(b"13") if message.starts_with("failed to decode Protobuf message") => {
            headers.insert("grpc-status", http::HeaderValue::from_static("3"));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_size_refusal_is_rewritten() {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", http::HeaderValue::from_static("11"));
        h.insert(
            "grpc-message",
            http::HeaderValue::from_static("Error,%20decoded%20message%20length%20too%20large"),
        );
        rewrite_oversize(&mut h);
        assert_eq!(h.get("grpc-status").map(|v| v.as_bytes()), Some(&b"8"[..]));
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", http::HeaderValue::from_static("11"));
        h.insert("grpc-message", http::HeaderValue::from_static("other"));
        rewrite_oversize(&mut h);
        assert_eq!(h.get("grpc-status").map(|v| v.as_bytes()), Some(&b"11"[..]));
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", http::HeaderValue::from_static("13"));
        h.insert(
            "grpc-message",
            http::HeaderValue::from_static("failed%20to%20decode%20Protobuf%20message:%20x"),
        );
        rewrite_oversize(&mut h);
        assert_eq!(h.get("grpc-status").map(|v| v.as_bytes()), Some(&b"3"[..]));
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", http::HeaderValue::from_static("13"));
        h.insert(
            "grpc-message",
            http::HeaderValue::from_static("store%20failed"),
        );
        rewrite_oversize(&mut h);
        assert_eq!(h.get("grpc-status").map(|v| v.as_bytes()), Some(&b"13"[..]));
    }

    #[test]
    fn overload_carries_retry_info() {
        let st = to_status(&IngestError::Overloaded {
            retry_after: std::time::Duration::from_secs(2),
            reason: "full".into(),
        });
        assert_eq!(st.code(), Code::Unavailable);
        let details = st.get_error_details();
        assert_eq!(
            details.retry_info().and_then(|r| r.retry_delay),
            Some(std::time::Duration::from_secs(2))
        );
        assert_eq!(
            to_status(&IngestError::TooLarge("x".into())).code(),
            Code::ResourceExhausted
        );
        assert_eq!(
            to_status(&IngestError::BadRequest("x".into())).code(),
            Code::InvalidArgument
        );
    }
}
