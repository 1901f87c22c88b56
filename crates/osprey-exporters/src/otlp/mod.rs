//! The `otlp` exporter: sends traces, metrics and logs to an OTLP/gRPC endpoint, one unary
//! `Export` call per batch, over one lazily connected tonic channel.
//!
//! Retry and queueing (`retry_on_failure`, `sending_queue`) belong to the pipeline's exporter
//! helper; `consume` makes a single attempt and classifies failures as the Collector does
//! ([`status::classify`]). TLS is rustls (ring): the gRPC client uses TLS unless
//! `tls.insecure: true` (an `https://` endpoint forces it), verifying against the system roots
//! and/or `tls.ca_file`. The submodules `common` and `tls` hold the config pieces the
//! `otlphttp` exporter shares. Traces that are still the receiver's bytes (`RawTraces`) are
//! sent as they are, through [`raw::RawTraceCodec`].

pub mod common;
pub mod config;
pub mod raw;
pub mod status;
pub mod tls;

#[cfg(test)]
mod tests;

pub use config::{KeepaliveConfig, OtlpConfig};

use common::Compression;
use osprey_model::otlp::collector::logs::v1::logs_service_client::LogsServiceClient;
use osprey_model::otlp::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use osprey_model::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use osprey_pipeline::{Batch, ConfigError, ConsumeError, Consumer, Payload};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{AsciiMetadataValue, BinaryMetadataValue, MetadataKey, MetadataMap};
use tonic::transport::{Channel, Endpoint};

/// The User-Agent this collector's clients send.
pub fn user_agent() -> String {
    format!(
        "Osprey Collector/{} ({}/{})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

pub struct OtlpExporter {
    target: String,
    endpoint: Endpoint,
    channel: OnceLock<Channel>,
    metadata: MetadataMap,
    compression: Option<CompressionEncoding>,
    timeout: Duration,
    rejected: AtomicU64,
}

impl std::fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("target", &self.target)
            .finish()
    }
}

fn metadata(headers: &common::Headers) -> Result<MetadataMap, ConfigError> {
    let mut map = MetadataMap::new();
    for (name, value) in &headers.0 {
        let bad =
            |what: &str| ConfigError::new(format!("headers.{name}"), format!("not a valid {what}"));
        let lower = name.to_ascii_lowercase();
        if lower.ends_with("-bin") {
            let key =
                MetadataKey::from_bytes(lower.as_bytes()).map_err(|_| bad("gRPC metadata key"))?;
            map.append_bin(key, BinaryMetadataValue::from_bytes(value.as_bytes()));
        } else {
            let key =
                MetadataKey::from_bytes(lower.as_bytes()).map_err(|_| bad("gRPC metadata key"))?;
            let value = AsciiMetadataValue::try_from(value.as_str())
                .map_err(|_| bad("gRPC metadata value"))?;
            map.append(key, value);
        }
    }
    Ok(map)
}

impl OtlpExporter {
    /// Validates `config` and prepares the channel (connected on first use).
    pub fn new(config: OtlpConfig) -> Result<OtlpExporter, ConfigError> {
        config.validate()?;
        let target = config.target()?;
        let tls = config.tls.grpc_uses_tls(target.https);
        let uri = format!(
            "{}://{}",
            if tls { "https" } else { "http" },
            target.host_port
        );
        let mut endpoint = Endpoint::from_shared(uri)
            .map_err(|e| ConfigError::new("endpoint", tls::error_chain(&e)))?
            .user_agent(user_agent())
            .map_err(|e| ConfigError::new("endpoint", tls::error_chain(&e)))?;
        if let Some(k) = &config.keepalive {
            endpoint = endpoint
                .http2_keep_alive_interval(k.time)
                .keep_alive_timeout(k.timeout)
                .keep_alive_while_idle(k.permit_without_stream);
        }
        if !config.authority.is_empty() {
            let origin = format!(
                "{}://{}",
                if tls { "https" } else { "http" },
                config.authority
            );
            let origin = origin
                .parse()
                .map_err(|_| ConfigError::new("authority", "not a valid authority"))?;
            endpoint = endpoint.origin(origin);
        }
        if tls {
            endpoint = config.tls.apply_tonic(endpoint)?;
        }
        let compression = match config.compression {
            Compression::Gzip => Some(CompressionEncoding::Gzip),
            Compression::Zstd => Some(CompressionEncoding::Zstd),
            _ => None,
        };
        Ok(OtlpExporter {
            target: config.endpoint.clone(),
            endpoint,
            channel: OnceLock::new(),
            metadata: metadata(&config.headers)?,
            compression,
            timeout: config.timeout,
            rejected: AtomicU64::new(0),
        })
    }

    /// Items the server reported as rejected in partial-success responses.
    pub fn rejected_items(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// The channel; created on first use (it needs a Tokio runtime), connecting lazily.
    fn channel(&self) -> Channel {
        self.channel
            .get_or_init(|| self.endpoint.connect_lazy())
            .clone()
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = self.metadata.clone();
        if !self.timeout.is_zero() {
            request.set_timeout(self.timeout);
        }
        request
    }

    /// Runs one export call under the configured timeout and classifies its failure.
    async fn call<R>(
        &self,
        call: impl std::future::Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    ) -> Result<R, ConsumeError> {
        let outcome = if self.timeout.is_zero() {
            call.await
        } else {
            match tokio::time::timeout(self.timeout, call).await {
                Ok(outcome) => outcome,
                Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                    "no response within {:?}",
                    self.timeout
                ))),
            }
        };
        outcome
            .map(tonic::Response::into_inner)
            .map_err(|status| status::classify(&self.target, &status))
    }

    /// `TraceService/Export` with pre-encoded request bytes (compression and metadata as the
    /// generated client would send them).
    async fn export_raw(
        &self,
        chunks: Vec<bytes::Bytes>,
    ) -> Result<
        tonic::Response<osprey_model::otlp::collector::trace::v1::ExportTraceServiceResponse>,
        tonic::Status,
    > {
        let mut grpc = tonic::client::Grpc::new(self.channel())
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .max_decoding_message_size(64 * 1024 * 1024);
        if let Some(encoding) = self.compression {
            grpc = grpc.send_compressed(encoding);
        }
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unknown(format!("Service was not ready: {e}")))?;
        let mut request = self.request(chunks);
        request.extensions_mut().insert(tonic::GrpcMethod::new(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            "Export",
        ));
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(raw::EXPORT_PATH);
        grpc.unary(request, path, raw::RawTraceCodec).await
    }

    fn count_rejected(&self, item_name: &str, rejected: i64, message: &str) {
        let n = status::report_partial_success(&self.target, item_name, rejected, message);
        self.rejected.fetch_add(n, Ordering::Relaxed);
    }
}

/// Applies the configured compression to a generated client (they share no trait).
macro_rules! client {
    ($exporter:expr, $client:ident) => {{
        let mut client = $client::new($exporter.channel())
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .max_decoding_message_size(64 * 1024 * 1024);
        if let Some(encoding) = $exporter.compression {
            client = client.send_compressed(encoding);
        }
        client
    }};
}

#[async_trait::async_trait]
impl Consumer for OtlpExporter {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        if batch.payload.is_empty() {
            return Ok(());
        }
        match batch.payload {
            Payload::RawTraces(raw) => {
                let response = self.call(self.export_raw(raw.into_chunks())).await?;
                if let Some(p) = response.partial_success {
                    self.count_rejected("spans", p.rejected_spans, &p.error_message);
                }
            }
            Payload::Traces(request) => {
                let mut client = client!(self, TraceServiceClient);
                let response = self.call(client.export(self.request(request))).await?;
                if let Some(p) = response.partial_success {
                    self.count_rejected("spans", p.rejected_spans, &p.error_message);
                }
            }
            Payload::Metrics(request) => {
                let mut client = client!(self, MetricsServiceClient);
                let response = self.call(client.export(self.request(request))).await?;
                if let Some(p) = response.partial_success {
                    self.count_rejected("data points", p.rejected_data_points, &p.error_message);
                }
            }
            Payload::Logs(request) => {
                let mut client = client!(self, LogsServiceClient);
                let response = self.call(client.export(self.request(request))).await?;
                if let Some(p) = response.partial_success {
                    self.count_rejected("log records", p.rejected_log_records, &p.error_message);
                }
            }
        }
        Ok(())
    }
}
