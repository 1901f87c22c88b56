//! The `prometheusremotewrite` exporter's configuration: the keys and defaults of the
//! Collector-contrib exporter (`exporter/prometheusremotewriteexporter/config.go`,
//! `factory.go`), including its `confighttp` client keys, either at the top level or (newer)
//! under `http:`.

use crate::otlp::common::Headers;
use crate::otlp::tls::TlsClientConfig;
use osprey_pipeline::{go_duration, ConfigError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Upstream's default `max_batch_size_bytes` (~2.81 MiB).
pub const DEFAULT_MAX_BATCH_SIZE_BYTES: usize = 3_000_000;
/// Headers the remote-write protocol owns; `headers` and `include_metadata_keys` cannot set them.
pub const RESERVED_HEADERS: [&str; 4] = [
    "content-encoding",
    "content-type",
    "user-agent",
    "x-prometheus-remote-write-version",
];

/// The `confighttp` client keys. Only `endpoint`, `headers`, `tls`, `compression`, `timeout`
/// and `proxy_url` have an effect; the connection-pool knobs are accepted and ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpClientConfig {
    pub endpoint: String,
    pub headers: Headers,
    pub tls: TlsClientConfig,
    pub compression: String,
    #[serde(with = "go_duration")]
    pub timeout: Duration,
    pub proxy_url: String,
    /// Authentication extensions are not supported: any value is a config error.
    pub auth: serde_yaml::Value,
    pub read_buffer_size: serde_yaml::Value,
    pub write_buffer_size: serde_yaml::Value,
    pub max_idle_conns: serde_yaml::Value,
    pub max_idle_conns_per_host: serde_yaml::Value,
    pub max_conns_per_host: serde_yaml::Value,
    pub idle_conn_timeout: serde_yaml::Value,
    pub disable_keep_alives: serde_yaml::Value,
    pub force_attempt_http2: serde_yaml::Value,
    pub http2_read_idle_timeout: serde_yaml::Value,
    pub http2_ping_timeout: serde_yaml::Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteQueue {
    pub enabled: bool,
    pub queue_size: usize,
    pub num_consumers: usize,
}

impl Default for RemoteWriteQueue {
    fn default() -> Self {
        RemoteWriteQueue {
            enabled: true,
            queue_size: 10_000,
            num_consumers: 5,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceToTelemetry {
    pub enabled: bool,
    /// Leave out `service.name`, `service.namespace`, `service.instance.id` (they are `job`
    /// and `instance` already).
    pub exclude_service_attributes: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetInfo {
    pub enabled: bool,
}

impl Default for TargetInfo {
    fn default() -> Self {
        TargetInfo { enabled: true }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CreatedMetric {
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrwConfig {
    // confighttp, squashed at the top level (deprecated upstream in favour of `http:`).
    pub endpoint: String,
    pub headers: Headers,
    pub tls: TlsClientConfig,
    pub compression: String,
    pub proxy_url: String,
    pub auth: serde_yaml::Value,
    pub read_buffer_size: serde_yaml::Value,
    pub write_buffer_size: serde_yaml::Value,
    pub max_idle_conns: serde_yaml::Value,
    pub max_idle_conns_per_host: serde_yaml::Value,
    pub max_conns_per_host: serde_yaml::Value,
    pub idle_conn_timeout: serde_yaml::Value,
    pub disable_keep_alives: serde_yaml::Value,
    pub force_attempt_http2: serde_yaml::Value,
    pub http2_read_idle_timeout: serde_yaml::Value,
    pub http2_ping_timeout: serde_yaml::Value,
    /// The nested client block; when present it replaces the top-level client keys.
    pub http: Option<HttpClientConfig>,
    /// Export timeout (exporterhelper `timeout`, default 5s; 0 = none).
    #[serde(with = "go_duration")]
    pub timeout: Duration,
    /// Handled by the pipeline's exporter helper, not here.
    pub retry_on_failure: serde_yaml::Value,
    pub namespace: String,
    pub external_labels: BTreeMap<String, String>,
    pub resource_to_telemetry_conversion: ResourceToTelemetry,
    pub add_metric_suffixes: bool,
    /// `UnderscoreEscapingWithSuffixes` / `UnderscoreEscapingWithoutSuffixes`; overrides
    /// `add_metric_suffixes` when set.
    pub translation_strategy: String,
    pub send_metadata: bool,
    /// Queueing is the pipeline's job; the lead's queue reads these.
    pub remote_write_queue: RemoteWriteQueue,
    /// Largest remote-write request body before snappy (0 = the 3 000 000 default).
    pub max_batch_size_bytes: i64,
    pub max_batch_request_parallelism: Option<i64>,
    pub target_info: TargetInfo,
    /// Removed upstream (v0.118); honoured here: `<name>_created` series with the start time.
    pub export_created_metric: CreatedMetric,
    /// Leaves out the `otel_scope_name`/`otel_scope_version` labels.
    pub disable_scope_info: bool,
    /// Client metadata (from receivers with `include_metadata`) forwarded as request headers.
    pub include_metadata_keys: Vec<String>,
    /// Only `prometheus.WriteRequest` (remote write 1.0) is supported.
    pub protobuf_message: String,
    /// The exporter's write-ahead log is not supported.
    pub wal: serde_yaml::Value,
}

impl Default for PrwConfig {
    fn default() -> Self {
        PrwConfig {
            endpoint: String::new(),
            headers: Headers::default(),
            tls: TlsClientConfig::default(),
            compression: String::new(),
            proxy_url: String::new(),
            auth: serde_yaml::Value::Null,
            read_buffer_size: serde_yaml::Value::Null,
            write_buffer_size: serde_yaml::Value::Null,
            max_idle_conns: serde_yaml::Value::Null,
            max_idle_conns_per_host: serde_yaml::Value::Null,
            max_conns_per_host: serde_yaml::Value::Null,
            idle_conn_timeout: serde_yaml::Value::Null,
            disable_keep_alives: serde_yaml::Value::Null,
            force_attempt_http2: serde_yaml::Value::Null,
            http2_read_idle_timeout: serde_yaml::Value::Null,
            http2_ping_timeout: serde_yaml::Value::Null,
            http: None,
            timeout: Duration::from_secs(5),
            retry_on_failure: serde_yaml::Value::Null,
            namespace: String::new(),
            external_labels: BTreeMap::new(),
            resource_to_telemetry_conversion: ResourceToTelemetry::default(),
            add_metric_suffixes: true,
            translation_strategy: String::new(),
            send_metadata: false,
            remote_write_queue: RemoteWriteQueue::default(),
            max_batch_size_bytes: 0,
            max_batch_request_parallelism: None,
            target_info: TargetInfo::default(),
            export_created_metric: CreatedMetric::default(),
            disable_scope_info: false,
            include_metadata_keys: Vec::new(),
            protobuf_message: String::new(),
            wal: serde_yaml::Value::Null,
        }
    }
}

/// The effective HTTP client settings and the key prefix their errors carry.
pub struct Client<'a> {
    pub prefix: &'static str,
    pub endpoint: &'a str,
    pub headers: &'a Headers,
    pub tls: &'a TlsClientConfig,
    pub compression: &'a str,
    pub proxy_url: &'a str,
    pub auth: &'a serde_yaml::Value,
    /// The `http.timeout` client timeout, when the nested block sets one.
    pub timeout: Option<Duration>,
}

impl PrwConfig {
    /// Decodes and checks a `prometheusremotewrite` config body.
    pub fn from_yaml(value: &serde_yaml::Value) -> Result<Self, ConfigError> {
        let config: PrwConfig = osprey_pipeline::decode_config(value)?;
        config.validate()?;
        Ok(config)
    }

    pub fn client(&self) -> Client<'_> {
        match &self.http {
            Some(h) => Client {
                prefix: "http.",
                endpoint: &h.endpoint,
                headers: &h.headers,
                tls: &h.tls,
                compression: &h.compression,
                proxy_url: &h.proxy_url,
                auth: &h.auth,
                timeout: (!h.timeout.is_zero()).then_some(h.timeout),
            },
            None => Client {
                prefix: "",
                endpoint: &self.endpoint,
                headers: &self.headers,
                tls: &self.tls,
                compression: &self.compression,
                proxy_url: &self.proxy_url,
                auth: &self.auth,
                timeout: None,
            },
        }
    }

    /// Whether type and unit suffixes are added (`translation_strategy` wins over
    /// `add_metric_suffixes`).
    pub fn with_suffixes(&self) -> bool {
        match self.translation_strategy.as_str() {
            "UnderscoreEscapingWithSuffixes" => true,
            "UnderscoreEscapingWithoutSuffixes" => false,
            _ => self.add_metric_suffixes,
        }
    }

    pub fn max_batch_size(&self) -> usize {
        match self.max_batch_size_bytes {
            n if n > 0 => n as usize,
            _ => DEFAULT_MAX_BATCH_SIZE_BYTES,
        }
    }

    /// The remote-write URL. An endpoint without a scheme (`promscale:9201/write`) gets
    /// `http://`: upstream would take `promscale` for the URL scheme and fail every export
    /// with "unsupported protocol scheme", so osprey fixes it up (and `new` logs a warning).
    pub fn endpoint_url(&self) -> Result<reqwest::Url, ConfigError> {
        let c = self.client();
        let path = format!("{}endpoint", c.prefix);
        let raw = c.endpoint.trim();
        if raw.is_empty() {
            return Err(ConfigError::new(path, "the remote write URL must be set"));
        }
        let text = if raw.contains("://") {
            raw.to_string()
        } else {
            format!("http://{raw}")
        };
        let url = reqwest::Url::parse(&text)
            .map_err(|e| ConfigError::new(&path, format!("invalid endpoint {raw:?}: {e}")))?;
        match url.scheme() {
            "http" | "https" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(url),
            "http" | "https" => Err(ConfigError::new(
                path,
                format!("invalid endpoint {raw:?}: no host"),
            )),
            s => Err(ConfigError::new(
                path,
                format!(
                    "invalid endpoint {raw:?}: unsupported scheme {s:?} (use http:// or https://)"
                ),
            )),
        }
    }

    /// Semantic checks; errors name the key path relative to the exporter.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = self.client();
        let under = |e: ConfigError| {
            if c.prefix.is_empty() {
                e
            } else {
                e.under("http")
            }
        };
        self.endpoint_url()?;
        c.headers.validate().map_err(under)?;
        c.tls.validate().map_err(under)?;
        if !c.compression.is_empty() && c.compression != "snappy" {
            return Err(ConfigError::new(
                format!("{}compression", c.prefix),
                "compression type must be snappy",
            ));
        }
        if !c.auth.is_null() {
            return Err(ConfigError::new(
                format!("{}auth", c.prefix),
                "authentication extensions are not supported by osprey; use headers",
            ));
        }
        if !c.proxy_url.is_empty() && reqwest::Proxy::all(c.proxy_url).is_err() {
            return Err(ConfigError::new(
                format!("{}proxy_url", c.prefix),
                "invalid proxy URL",
            ));
        }
        if self
            .external_labels
            .iter()
            .any(|(k, v)| k.is_empty() || v.is_empty())
        {
            return Err(ConfigError::new(
                "external_labels",
                "prometheus remote write: external labels configuration contains an empty key or value",
            ));
        }
        if self.remote_write_queue.enabled && self.remote_write_queue.queue_size == 0 {
            return Err(ConfigError::new(
                "remote_write_queue.queue_size",
                "a 0 size queue will drop all the data",
            ));
        }
        if self.max_batch_size_bytes < 0 {
            return Err(ConfigError::new(
                "max_batch_size_bytes",
                "max_batch_size_bytes must be greater than 0",
            ));
        }
        if self.max_batch_request_parallelism.is_some_and(|n| n < 1) {
            return Err(ConfigError::new(
                "max_batch_request_parallelism",
                "max_batch_request_parallelism can't be set to below 1",
            ));
        }
        match self.translation_strategy.as_str() {
            "" | "UnderscoreEscapingWithSuffixes" | "UnderscoreEscapingWithoutSuffixes" => {}
            s @ ("NoUTF8EscapingWithSuffixes" | "NoTranslation") => {
                return Err(ConfigError::new(
                    "translation_strategy",
                    format!("translation strategy {s} requires Prometheus Remote Write 2.0 (UTF-8 support), which osprey does not send"),
                ))
            }
            s => return Err(ConfigError::new("translation_strategy", format!("invalid translation_strategy: {s}"))),
        }
        match self.protobuf_message.as_str() {
            "" | "prometheus.WriteRequest" => {}
            "io.prometheus.write.v2.Request" => {
                return Err(ConfigError::new(
                    "protobuf_message",
                    "remote write v2 is not supported by osprey",
                ))
            }
            s => {
                return Err(ConfigError::new(
                    "protobuf_message",
                    format!("unknown remote write protobuf message {s:?}"),
                ))
            }
        }
        if !self.wal.is_null() {
            return Err(ConfigError::new(
                "wal",
                "the remote write WAL is not supported by osprey",
            ));
        }
        for key in &self.include_metadata_keys {
            if RESERVED_HEADERS.contains(&key.to_ascii_lowercase().as_str()) {
                return Err(ConfigError::new(
                    "include_metadata_keys",
                    format!("include_metadata_keys entry {key:?} collides with a reserved remote write header"),
                ));
            }
        }
        Ok(())
    }
}
