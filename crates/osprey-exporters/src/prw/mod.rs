//! The `prometheusremotewrite` exporter: translates OTLP metrics into Prometheus remote-write
//! 1.0 series ([`translate`]) and POSTs them, protobuf + snappy (block format), split into
//! requests of at most `max_batch_size_bytes`.
//!
//! `consume` makes one attempt per request; queueing (`remote_write_queue`) and retries
//! (`retry_on_failure`) are the pipeline's exporter helper's job. HTTP 5xx and 429 and
//! transport errors are retryable ([`ConsumeError::Unavailable`]); other statuses are
//! [`ConsumeError::Permanent`] with the start of the response body. `https://` endpoints use
//! the `tls:` block (rustls), as the `otlphttp` exporter does.

pub mod config;
pub mod labels;
pub mod naming;
pub mod prompb;
pub mod translate;

#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod tests;

pub use config::PrwConfig;
pub use translate::{translate, Settings, Translation};

use crate::otlp::tls::error_chain;
use osprey_pipeline::{Batch, ConfigError, ConsumeError, Consumer, Payload};
use prost::Message;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

/// How much of an error response body goes into the error message (as upstream).
const MAX_ERROR_BODY: usize = 256;

/// The User-Agent, in upstream's `<description>/<version>` form.
pub fn user_agent() -> String {
    format!("osprey-collector/{}", env!("CARGO_PKG_VERSION"))
}

/// Splits a translation into write requests whose series add up to less than `max_bytes`
/// (a single larger series goes alone); metadata follows in requests of its own.
pub fn batches(t: Translation, max_bytes: usize) -> Vec<prompb::WriteRequest> {
    let mut out = Vec::new();
    let mut current = prompb::WriteRequest::default();
    let mut size = 0;
    for ts in t.series {
        let len = ts.encoded_len();
        if !current.timeseries.is_empty() && size + len >= max_bytes {
            out.push(std::mem::take(&mut current));
            size = 0;
        }
        size += len;
        current.timeseries.push(ts);
    }
    for m in t.metadata {
        let len = m.encoded_len();
        if !(current.timeseries.is_empty() && current.metadata.is_empty())
            && size + len >= max_bytes
        {
            out.push(std::mem::take(&mut current));
            size = 0;
        }
        size += len;
        current.metadata.push(m);
    }
    if !(current.timeseries.is_empty() && current.metadata.is_empty()) {
        out.push(current);
    }
    out
}

pub struct PrwExporter {
    url: reqwest::Url,
    client: reqwest::Client,
    headers: HeaderMap,
    settings: Settings,
    max_batch_size: usize,
    include_metadata_keys: Vec<String>,
    timeout: Duration,
}

impl std::fmt::Debug for PrwExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrwExporter")
            .field("url", &self.url.as_str())
            .finish()
    }
}

impl PrwExporter {
    pub fn new(config: PrwConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let url = config.endpoint_url()?;
        let c = config.client();
        if !c.endpoint.contains("://") {
            tracing::warn!(
                endpoint = c.endpoint,
                url = %url,
                "prometheusremotewrite: the endpoint has no scheme; using http:// (the Collector would fail every export)"
            );
        }
        let in_block = |e: ConfigError| {
            if c.prefix.is_empty() {
                e
            } else {
                e.under("http")
            }
        };
        let mut builder = reqwest::Client::builder();
        if url.scheme() == "https" {
            builder = c.tls.apply_reqwest(builder).map_err(in_block)?;
        }
        if !c.proxy_url.is_empty() {
            let proxy = reqwest::Proxy::all(c.proxy_url)
                .map_err(|e| ConfigError::new(format!("{}proxy_url", c.prefix), e.to_string()))?;
            builder = builder.proxy(proxy);
        }
        if let Some(t) = c.timeout {
            builder = builder.timeout(t);
        }
        let client = builder.build().map_err(|e| {
            ConfigError::new(
                "",
                format!("cannot build the HTTP client: {}", error_chain(&e)),
            )
        })?;

        let mut headers = HeaderMap::new();
        for (name, value) in &c.headers.0 {
            if config::RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                tracing::warn!(header = %name, "prometheusremotewrite: this header cannot be changed; ignored");
                continue;
            }
            let bad =
                |_| ConfigError::new(format!("{}headers.{name}", c.prefix), "not a valid header");
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(bad)?;
            let v = HeaderValue::from_str(value).map_err(|_| {
                ConfigError::new(
                    format!("{}headers.{name}", c.prefix),
                    "not a valid header value",
                )
            })?;
            headers.append(n, v);
        }
        let fixed = [
            ("content-encoding", "snappy".to_string()),
            ("content-type", "application/x-protobuf".to_string()),
            ("x-prometheus-remote-write-version", "0.1.0".to_string()),
            ("user-agent", user_agent()),
        ];
        for (name, value) in fixed {
            let v = HeaderValue::from_str(&value)
                .map_err(|_| ConfigError::new("", format!("invalid built-in header {name}")))?;
            headers.insert(HeaderName::from_static(name), v);
        }

        let settings = Settings {
            namer: naming::MetricNamer {
                namespace: config.namespace.clone(),
                with_suffixes: config.with_suffixes(),
            },
            external_labels: config
                .external_labels
                .iter()
                .map(|(k, v)| (naming::label_name(k), v.clone()))
                .collect(),
            target_info: config.target_info.enabled,
            scope_labels: !config.disable_scope_info,
            created_metric: config.export_created_metric.enabled,
            send_metadata: config.send_metadata,
            resource_to_telemetry: config.resource_to_telemetry_conversion.enabled.then_some(
                config
                    .resource_to_telemetry_conversion
                    .exclude_service_attributes,
            ),
        };
        Ok(PrwExporter {
            url,
            client,
            headers,
            settings,
            max_batch_size: config.max_batch_size(),
            include_metadata_keys: config.include_metadata_keys.clone(),
            timeout: config.timeout,
        })
    }

    /// The remote-write URL requests go to.
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// POSTs one write request.
    async fn send(
        &self,
        req: &prompb::WriteRequest,
        extra: &HeaderMap,
    ) -> Result<(), ConsumeError> {
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .map_err(|e| ConsumeError::Permanent(format!("snappy compression failed: {e}")))?;
        let mut rb = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .headers(extra.clone())
            .body(body);
        if !self.timeout.is_zero() {
            rb = rb.timeout(self.timeout);
        }
        let resp = rb.send().await.map_err(|e| {
            ConsumeError::Unavailable(format!(
                "remote write to {} failed: {}",
                self.url,
                error_chain(&e)
            ))
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.bytes().await.unwrap_or_default();
        let body = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_BODY)]);
        let message = format!(
            "remote write returned HTTP status {status}: {}",
            body.trim()
        );
        if status.is_server_error() || status.as_u16() == 429 {
            Err(ConsumeError::Unavailable(message))
        } else {
            Err(ConsumeError::Permanent(message))
        }
    }

    /// `include_metadata_keys` values of the batch's client metadata, as headers.
    fn metadata_headers(&self, batch: &Batch) -> HeaderMap {
        let mut extra = HeaderMap::new();
        for key in &self.include_metadata_keys {
            let lower = key.to_ascii_lowercase();
            let Some(values) = batch.context.metadata.get(&lower) else {
                continue;
            };
            let Ok(name) = HeaderName::from_bytes(lower.as_bytes()) else {
                continue;
            };
            for v in values {
                if let Ok(v) = HeaderValue::from_str(v) {
                    extra.append(name.clone(), v);
                }
            }
        }
        extra
    }
}

#[async_trait::async_trait]
impl Consumer for PrwExporter {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let Payload::Metrics(request) = &batch.payload else {
            return Err(ConsumeError::Permanent(format!(
                "the prometheusremotewrite exporter takes metrics, not {}",
                batch.signal()
            )));
        };
        let translation = translate(request, &self.settings);
        if !translation.errors.is_empty() {
            tracing::warn!(
                errors = ?translation.errors,
                translated = translation.series.len(),
                "prometheusremotewrite: failed to translate some metrics, exporting the rest"
            );
        }
        let extra = self.metadata_headers(&batch);
        for req in batches(translation, self.max_batch_size) {
            self.send(&req, &extra).await?;
        }
        Ok(())
    }
}
