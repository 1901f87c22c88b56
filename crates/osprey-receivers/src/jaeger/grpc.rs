//! `jaeger.api_v2.CollectorService/PostSpans` over gRPC: a hand-written equivalent of the
//! tonic-generated server (route by path, decode with prost, answer with tonic's `Grpc`).
//!
//! Answers: OK with an empty `PostSpansResponse` once the consumer took the batch;
//! INVALID_ARGUMENT for malformed ids or a refused (permanent) batch; UNAVAILABLE (with
//! RetryInfo when overloaded) when the pipeline asks the client to retry.

use super::config::GrpcConfig;
use super::proto::{self, PostSpansRequest, PostSpansResponse};
use super::translate::{self, Flavor};
use super::Ingest;
use osprey_pipeline::{ConsumeError, Context};
use std::convert::Infallible;
use std::task::Poll;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::codegen::StdError;
use tonic::codegen::{http, Body, BoxFuture, CompressionEncoding, EnabledCompressionEncodings};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub const SERVICE_NAME: &str = "jaeger.api_v2.CollectorService";
pub const POST_SPANS_PATH: &str = "/jaeger.api_v2.CollectorService/PostSpans";

/// The collector service.
#[derive(Clone)]
pub(crate) struct CollectorServer {
    ingest: Ingest,
    max_recv_bytes: usize,
    include_metadata: bool,
}

/// The gRPC answer to a consumer's refusal.
pub(crate) fn consume_status(err: &ConsumeError) -> Status {
    let msg = format!("cannot accept the Jaeger batch: {err}");
    match err {
        ConsumeError::Overloaded { retry_after, .. } => Status::with_error_details(
            Code::Unavailable,
            msg,
            ErrorDetails::with_retry_info(Some(*retry_after)),
        ),
        ConsumeError::Unavailable(_) => Status::unavailable(msg),
        ConsumeError::Permanent(_) => Status::invalid_argument(msg),
    }
}

impl CollectorServer {
    async fn post_spans(
        &self,
        req: tonic::Request<PostSpansRequest>,
    ) -> Result<tonic::Response<PostSpansResponse>, Status> {
        let mut context = Context {
            client_addr: req.remote_addr().map(|a| a.ip()),
            ..Context::default()
        };
        if self.include_metadata {
            for (k, v) in req.metadata().clone().into_headers().iter() {
                if let Ok(v) = v.to_str() {
                    context
                        .metadata
                        .entry(k.as_str().to_string())
                        .or_default()
                        .push(v.to_string());
                }
            }
        }
        let batch = req.into_inner().batch.unwrap_or_default();
        let model = proto::to_model(batch).map_err(|e| {
            self.ingest.decode_error();
            Status::invalid_argument(format!("invalid Jaeger batch: {e}"))
        })?;
        let request = translate::to_otlp(model, Flavor::Proto);
        match self.ingest.ingest(request, context).await {
            Ok(_) => Ok(tonic::Response::new(PostSpansResponse {})),
            Err(e) => {
                tracing::debug!(error = %e, "jaeger gRPC: batch refused");
                Err(consume_status(&e))
            }
        }
    }
}

impl tonic::server::NamedService for CollectorServer {
    const NAME: &'static str = SERVICE_NAME;
}

impl<B> tower::Service<http::Request<B>> for CollectorServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != POST_SPANS_PATH {
            return Box::pin(async {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(
                    Status::GRPC_STATUS,
                    http::HeaderValue::from(Code::Unimplemented as i32),
                );
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            });
        }
        let this = self.clone();
        Box::pin(async move {
            let max = this.max_recv_bytes;
            let method = tower::service_fn(move |r: tonic::Request<PostSpansRequest>| {
                let this = this.clone();
                async move { this.post_spans(r).await }
            });
            let mut accept = EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                .apply_compression_config(accept, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(max), None);
            Ok(grpc.unary(method, req).await)
        })
    }
}

/// Serves the collector service on `listener` until `shutdown` is cancelled.
pub(crate) fn spawn(
    listener: tokio::net::TcpListener,
    cfg: &GrpcConfig,
    ingest: Ingest,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let service = CollectorServer {
        ingest,
        max_recv_bytes: cfg.max_recv_bytes(),
        include_metadata: cfg.include_metadata,
    };
    let mut builder = tonic::transport::Server::builder();
    if cfg.max_concurrent_streams > 0 {
        builder = builder.max_concurrent_streams(cfg.max_concurrent_streams);
    }
    let router = builder.add_service(service);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(async move {
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "jaeger receiver: gRPC server failed");
        }
    })
}
