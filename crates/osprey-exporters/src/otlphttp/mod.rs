//! The `otlphttp` exporter: POSTs each batch as an OTLP/HTTP request (protobuf or JSON,
//! gzip by default) to `<endpoint>/v1/<signal>` or the signal's own `*_endpoint`.
//!
//! One attempt per `consume`; retry and queueing belong to the pipeline's exporter helper.
//! Failures are classified as the Collector does ([`response::classify`]). TLS (for `https://`
//! URLs) is rustls with the system roots plus `tls.ca_file`; see [`crate::otlp::tls`].

pub mod config;
pub mod response;

#[cfg(test)]
mod tests;

pub use config::{Encoding, OtlpHttpConfig};

use crate::otlp::common::Compression;
use crate::otlp::{status::report_partial_success, tls::error_chain, user_agent};
use osprey_pipeline::{Batch, ConfigError, ConsumeError, Consumer, Payload, Signal};
use prost::Message;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct OtlpHttpExporter {
    client: reqwest::Client,
    traces_url: Option<reqwest::Url>,
    metrics_url: Option<reqwest::Url>,
    logs_url: Option<reqwest::Url>,
    encoding: Encoding,
    compression: Compression,
    rejected: AtomicU64,
}

impl std::fmt::Debug for OtlpHttpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpHttpExporter")
            .field("traces_url", &self.traces_url)
            .field("metrics_url", &self.metrics_url)
            .field("logs_url", &self.logs_url)
            .finish()
    }
}

impl OtlpHttpExporter {
    /// Validates `config` and builds the HTTP client (no connection is made yet).
    pub fn new(config: OtlpHttpConfig) -> Result<OtlpHttpExporter, ConfigError> {
        config.validate()?;
        let mut headers = http::HeaderMap::new();
        for (name, value) in &config.headers.0 {
            let bad = || ConfigError::new(format!("headers.{name}"), "not a valid header");
            let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            let value = http::HeaderValue::from_str(value).map_err(|_| bad())?;
            headers.append(name, value);
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(user_agent())
            .default_headers(headers)
            .pool_idle_timeout(
                (!config.idle_conn_timeout.is_zero()).then_some(config.idle_conn_timeout),
            );
        if !config.timeout.is_zero() {
            builder = builder.timeout(config.timeout);
        }
        if config.disable_keep_alives {
            builder = builder.pool_max_idle_per_host(0);
        } else if let Some(n) = config.max_idle_conns_per_host.filter(|n| *n > 0) {
            builder = builder.pool_max_idle_per_host(n as usize);
        }
        if !config.proxy_url.is_empty() {
            let proxy = reqwest::Proxy::all(&config.proxy_url)
                .map_err(|e| ConfigError::new("proxy_url", error_chain(&e)))?;
            builder = builder.proxy(proxy);
        }
        // As confighttp: `insecure` without a CA leaves the default TLS setup (system roots).
        builder = if config.tls.insecure && !config.tls.has_ca() {
            builder.use_rustls_tls()
        } else {
            config.tls.apply_reqwest(builder)?
        };
        let client = builder.build().map_err(|e| {
            ConfigError::new(
                "tls",
                format!("cannot build the HTTP client: {}", error_chain(&e)),
            )
        })?;
        Ok(OtlpHttpExporter {
            client,
            traces_url: config.signal_url(Signal::Traces)?,
            metrics_url: config.signal_url(Signal::Metrics)?,
            logs_url: config.signal_url(Signal::Logs)?,
            encoding: config.encoding,
            compression: config.compression,
            rejected: AtomicU64::new(0),
        })
    }

    /// The URL `signal` is sent to; `None` when neither `endpoint` nor its `*_endpoint` is set
    /// (a pipeline of that signal cannot use this exporter).
    pub fn signal_url(&self, signal: Signal) -> Option<&reqwest::Url> {
        match signal {
            Signal::Traces => self.traces_url.as_ref(),
            Signal::Metrics => self.metrics_url.as_ref(),
            Signal::Logs => self.logs_url.as_ref(),
        }
    }

    /// Items the server reported as rejected in partial-success responses.
    pub fn rejected_items(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    fn body(&self, batch: &Batch) -> Result<Vec<u8>, ConsumeError> {
        let json = |r: Result<Vec<u8>, serde_json::Error>| {
            r.map_err(|e| ConsumeError::Permanent(format!("cannot encode OTLP/JSON: {e}")))
        };
        match (self.encoding, &batch.payload) {
            (Encoding::Proto, _) if batch.encoded.is_some() => Ok(batch
                .encoded
                .as_ref()
                .map(|b| b.to_vec())
                .unwrap_or_default()),
            (Encoding::Proto, Payload::Traces(r)) => Ok(r.encode_to_vec()),
            (Encoding::Proto, Payload::RawTraces(r)) => Ok(r.to_bytes().to_vec()),
            (Encoding::Json, Payload::RawTraces(r)) => {
                json(serde_json::to_vec(&r.decode_or_count()?))
            }
            (Encoding::Proto, Payload::Metrics(r)) => Ok(r.encode_to_vec()),
            (Encoding::Proto, Payload::Logs(r)) => Ok(r.encode_to_vec()),
            (Encoding::Json, Payload::Traces(r)) => json(serde_json::to_vec(r)),
            (Encoding::Json, Payload::Metrics(r)) => json(serde_json::to_vec(r)),
            (Encoding::Json, Payload::Logs(r)) => json(serde_json::to_vec(r)),
        }
    }

    /// Reads at most [`response::MAX_RESPONSE_BYTES`] of a response body.
    async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            let room = response::MAX_RESPONSE_BYTES - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= response::MAX_RESPONSE_BYTES {
                break;
            }
        }
        Ok(body)
    }
}

#[async_trait::async_trait]
impl Consumer for OtlpHttpExporter {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let signal = batch.signal();
        let Some(url) = self.signal_url(signal) else {
            return Err(ConsumeError::Permanent(format!(
                "either endpoint or {signal}_endpoint must be specified"
            )));
        };
        if batch.payload.is_empty() {
            return Ok(());
        }
        let body = self.body(&batch)?;
        let mut request = self
            .client
            .post(url.clone())
            .header(http::header::CONTENT_TYPE, self.encoding.content_type());
        let body = match self.compression.compress(&body) {
            Ok(Some(compressed)) => {
                request = request.header(http::header::CONTENT_ENCODING, self.compression.as_str());
                compressed
            }
            Ok(None) => body,
            Err(e) => {
                return Err(ConsumeError::Permanent(format!(
                    "cannot compress the request: {e}"
                )))
            }
        };
        let response = request.body(body).send().await.map_err(|e| {
            ConsumeError::Unavailable(format!(
                "failed to make an HTTP request: {}",
                error_chain(&e)
            ))
        })?;
        let status = response.status().as_u16();
        let header = |name: http::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(http::header::CONTENT_TYPE).unwrap_or_default();
        let retry_after = header(http::header::RETRY_AFTER);
        // A body that cannot be read counts as empty, as upstream's reader does on errors.
        let body = Self::read_body(response).await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(response::classify(
                url.as_str(),
                status,
                retry_after.as_deref(),
                &body,
            ));
        }
        match response::partial_success(signal, &content_type, &body) {
            Ok(Some((rejected, message))) => {
                let item = match signal {
                    Signal::Traces => "spans",
                    Signal::Metrics => "data points",
                    Signal::Logs => "log records",
                };
                let n = report_partial_success(url.as_str(), item, rejected, &message);
                self.rejected.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
            Ok(None) => Ok(()),
            // Upstream returns this as a (retryable) error too.
            Err(e) => Err(ConsumeError::Unavailable(format!("{url}: {e}"))),
        }
    }
}
