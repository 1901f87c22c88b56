//! Sending one encoded `ExportTraceServiceRequest` over OTLP/gRPC or OTLP/HTTP (protobuf),
//! with the retry rules of the OTLP specification: retryable failures are retried with
//! exponential backoff, honouring the server's `Retry-After` / gRPC `RetryInfo` delay.

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use rand::Rng;
use std::time::Duration;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Why an attempt failed.
#[derive(Debug, Clone)]
pub struct Failure {
    /// A short, low-cardinality reason used to count failures (`grpc Unavailable`, `http 503`).
    pub reason: String,
    pub detail: String,
    pub retryable: bool,
    /// The server's requested delay, if it gave one.
    pub retry_after: Option<Duration>,
}

/// A successful export: how many spans the server rejected (partial success).
#[derive(Debug, Clone, Copy, Default)]
pub struct Accepted {
    pub rejected: u64,
}

/// Passes pre-encoded request bytes through and decodes the response.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

struct RawEncoder;
struct RespDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RespDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        ExportTraceServiceResponse::decode(bytes)
            .map(Some)
            .map_err(|e| Status::internal(format!("bad response: {e}")))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = RespDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RespDecoder {
        RespDecoder
    }
}

/// One exporter per worker (its own gRPC connection or HTTP connection pool slot).
pub enum Exporter {
    Grpc(tonic::client::Grpc<Channel>),
    Http {
        client: reqwest::Client,
        url: String,
    },
}

fn grpc_retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::OutOfRange
            | Code::DataLoss
            | Code::ResourceExhausted
    )
}

impl Exporter {
    pub fn grpc(endpoint: &str, timeout: Duration) -> anyhow::Result<Exporter> {
        let ep = Endpoint::from_shared(endpoint.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .timeout(timeout)
            .tcp_nodelay(true);
        Ok(Exporter::Grpc(tonic::client::Grpc::new(ep.connect_lazy())))
    }

    pub fn http(client: reqwest::Client, endpoint: &str) -> Exporter {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        Exporter::Http { client, url }
    }

    /// One attempt.
    pub async fn send(&mut self, body: Bytes) -> Result<Accepted, Failure> {
        match self {
            Exporter::Grpc(grpc) => {
                grpc.ready().await.map_err(|e| Failure {
                    reason: "grpc connect".into(),
                    detail: e.to_string(),
                    retryable: true,
                    retry_after: None,
                })?;
                let path = PathAndQuery::from_static(EXPORT_PATH);
                match grpc.unary(tonic::Request::new(body), path, RawCodec).await {
                    Ok(resp) => {
                        let rejected = resp
                            .into_inner()
                            .partial_success
                            .map(|p| p.rejected_spans)
                            .unwrap_or(0);
                        Ok(Accepted {
                            rejected: rejected.max(0) as u64,
                        })
                    }
                    Err(status) => {
                        let delay = status.get_details_retry_info().and_then(|r| r.retry_delay);
                        let code = status.code();
                        // Without RetryInfo, RESOURCE_EXHAUSTED is not retryable (OTLP spec).
                        let retryable = grpc_retryable(code)
                            && (code != Code::ResourceExhausted || delay.is_some());
                        Err(Failure {
                            reason: format!("grpc {code:?}"),
                            detail: status.message().to_string(),
                            retryable,
                            retry_after: delay,
                        })
                    }
                }
            }
            Exporter::Http { client, url } => {
                let resp = client
                    .post(url.as_str())
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| Failure {
                        reason: if e.is_timeout() {
                            "http timeout".into()
                        } else {
                            "http connect".into()
                        },
                        detail: e.to_string(),
                        retryable: true,
                        retry_after: None,
                    })?;
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let body = resp.bytes().await.unwrap_or_default();
                if (200..300).contains(&status) {
                    let rejected = ExportTraceServiceResponse::decode(body)
                        .ok()
                        .and_then(|r| r.partial_success)
                        .map(|p| p.rejected_spans.max(0) as u64)
                        .unwrap_or(0);
                    Ok(Accepted { rejected })
                } else {
                    Err(Failure {
                        reason: format!("http {status}"),
                        detail: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
                        retryable: matches!(status, 429 | 502 | 503 | 504),
                        retry_after,
                    })
                }
            }
        }
    }
}

/// Retry policy: exponential backoff from `initial` up to `max`, at most `max_retries`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 10,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

/// The outcome of a request after retries.
pub struct Outcome {
    pub result: Result<Accepted, Failure>,
    /// Retry attempts made, by the reason of the attempt that was retried.
    pub retries: Vec<String>,
}

/// Sends `body`, retrying retryable failures.
pub async fn send_with_retry(exporter: &mut Exporter, body: Bytes, policy: RetryPolicy) -> Outcome {
    let mut retries = Vec::new();
    let mut backoff = policy.initial;
    loop {
        match exporter.send(body.clone()).await {
            Ok(a) => {
                return Outcome {
                    result: Ok(a),
                    retries,
                }
            }
            Err(f) if f.retryable && (retries.len() as u32) < policy.max_retries => {
                let jitter = rand::rng().random_range(0.8..1.2);
                let wait = f.retry_after.unwrap_or_else(|| backoff.mul_f64(jitter));
                tracing::debug!(reason = %f.reason, detail = %f.detail, ?wait, "retrying export");
                retries.push(f.reason);
                tokio::time::sleep(wait.min(Duration::from_secs(60))).await;
                backoff = (backoff * 2).min(policy.max);
            }
            Err(f) => {
                return Outcome {
                    result: Err(f),
                    retries,
                }
            }
        }
    }
}
