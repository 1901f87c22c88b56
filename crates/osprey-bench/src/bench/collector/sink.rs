//! The benchmark's OTLP/gRPC trace sink: accepts `TraceService/Export` and only counts spans,
//! decoding nothing but the nesting down to the span messages (unknown fields are skipped), so
//! the sink takes as little of the machine as possible from the collector under test.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use tonic::codegen::{
    http, Body, BoxFuture, CompressionEncoding, EnabledCompressionEncodings, StdError,
};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

#[derive(Clone, PartialEq, prost::Message)]
struct CountRequest {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<CountResource>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct CountResource {
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<CountScope>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct CountScope {
    #[prost(message, repeated, tag = "2")]
    spans: Vec<Nothing>,
}
#[derive(Clone, Copy, PartialEq, prost::Message)]
struct Nothing {}
#[derive(Clone, PartialEq, prost::Message)]
struct EmptyResponse {}

/// Spans and requests received so far.
#[derive(Default)]
pub struct Counts {
    pub spans: AtomicU64,
    pub requests: AtomicU64,
}

#[derive(Clone)]
struct Sink(Arc<Counts>);

impl tonic::server::NamedService for Sink {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> tower::Service<http::Request<B>> for Sink
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let counts = self.0.clone();
        let wrong_path = req.uri().path() != EXPORT_PATH;
        Box::pin(async move {
            if wrong_path {
                return Ok(tonic::Status::unimplemented("only TraceService/Export").into_http());
            }
            let method = tower::service_fn(move |r: tonic::Request<CountRequest>| {
                let counts = counts.clone();
                async move {
                    let n: usize = r
                        .get_ref()
                        .resource_spans
                        .iter()
                        .flat_map(|rs| &rs.scope_spans)
                        .map(|ss| ss.spans.len())
                        .sum();
                    counts.spans.fetch_add(n as u64, Ordering::Relaxed);
                    counts.requests.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, tonic::Status>(tonic::Response::new(EmptyResponse {}))
                }
            });
            let mut accept = EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                .apply_compression_config(accept, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(64 << 20), None);
            Ok(grpc.unary(method, req).await)
        })
    }
}

/// Serves the sink on `listener` until the process ends; returns its counters.
pub fn spawn(listener: tokio::net::TcpListener) -> Arc<Counts> {
    let counts = Arc::new(Counts::default());
    let svc = Sink(counts.clone());
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(async move {
        // Advertise large HTTP/2 frames, as an Osprey OTLP receiver does (both subjects' exporters
        // then send a request in a few frames).
        let r = tonic::transport::Server::builder()
            .max_frame_size(1 << 20)
            .add_service(svc)
            .serve_with_incoming(incoming)
            .await;
        if let Err(e) = r {
            eprintln!("bench sink failed: {e}");
        }
    });
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn counts_spans_of_a_real_request() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![
                    ScopeSpans {
                        spans: vec![
                            Span {
                                name: "a".into(),
                                ..Default::default()
                            };
                            3
                        ],
                        ..Default::default()
                    },
                    ScopeSpans {
                        spans: vec![Span::default(); 2],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
        };
        let c = CountRequest::decode(req.encode_to_vec().as_slice()).unwrap();
        let n: usize = c
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        assert_eq!(n, 5);
    }
}
