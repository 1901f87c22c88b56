//! The `otlphttp` exporter's configuration: `confighttp.ClientConfig` plus the per-signal
//! URLs and `encoding`, with the Collector's defaults (proto, gzip, 30s).

use crate::otlp::common::{Compression, Headers};
use crate::otlp::tls::TlsClientConfig;
use osprey_pipeline::{go_duration, ConfigError, Signal};
use serde::Deserialize;
use std::time::Duration;

/// `encoding:` of the request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Proto,
    Json,
}

impl Encoding {
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Proto => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpHttpConfig {
    /// Base URL; `/v1/traces`, `/v1/metrics`, `/v1/logs` are appended.
    pub endpoint: String,
    pub traces_endpoint: String,
    pub metrics_endpoint: String,
    pub logs_endpoint: String,
    /// Accepted; profiles are not a pipeline signal here.
    pub profiles_endpoint: String,
    pub encoding: Encoding,
    pub compression: Compression,
    /// `{level: N}`; accepted, the default level of each codec is used.
    pub compression_params: serde_yaml::Value,
    pub headers: Headers,
    /// Whole-request time limit; 0 means none.
    #[serde(with = "go_duration")]
    pub timeout: Duration,
    pub tls: TlsClientConfig,
    pub proxy_url: String,
    pub read_buffer_size: u64,
    pub write_buffer_size: u64,
    pub max_idle_conns: Option<u64>,
    pub max_idle_conns_per_host: Option<u64>,
    pub max_conns_per_host: Option<u64>,
    #[serde(with = "go_duration")]
    pub idle_conn_timeout: Duration,
    pub disable_keep_alives: bool,
    /// Accepted and ignored (Go HTTP/2 transport tuning).
    pub http2_read_idle_timeout: serde_yaml::Value,
    pub http2_ping_timeout: serde_yaml::Value,
    pub force_attempt_http2: serde_yaml::Value,
    pub cookies: serde_yaml::Value,
    /// Authentication extensions are not supported: any value is a config error.
    pub auth: serde_yaml::Value,
    pub middlewares: serde_yaml::Value,
    /// Handled by the pipeline's exporter helper, not here.
    pub sending_queue: serde_yaml::Value,
    pub retry_on_failure: serde_yaml::Value,
}

impl Default for OtlpHttpConfig {
    fn default() -> Self {
        OtlpHttpConfig {
            endpoint: String::new(),
            traces_endpoint: String::new(),
            metrics_endpoint: String::new(),
            logs_endpoint: String::new(),
            profiles_endpoint: String::new(),
            encoding: Encoding::Proto,
            compression: Compression::Gzip,
            compression_params: serde_yaml::Value::Null,
            headers: Headers::default(),
            timeout: Duration::from_secs(30),
            tls: TlsClientConfig::default(),
            proxy_url: String::new(),
            read_buffer_size: 0,
            write_buffer_size: 512 * 1024,
            max_idle_conns: None,
            max_idle_conns_per_host: None,
            max_conns_per_host: None,
            idle_conn_timeout: Duration::from_secs(90),
            disable_keep_alives: false,
            http2_read_idle_timeout: serde_yaml::Value::Null,
            http2_ping_timeout: serde_yaml::Value::Null,
            force_attempt_http2: serde_yaml::Value::Null,
            cookies: serde_yaml::Value::Null,
            auth: serde_yaml::Value::Null,
            middlewares: serde_yaml::Value::Null,
            sending_queue: serde_yaml::Value::Null,
            retry_on_failure: serde_yaml::Value::Null,
        }
    }
}

fn parse_url(text: &str, key: &str) -> Result<reqwest::Url, ConfigError> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| ConfigError::new(key, format!("{key} must be a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(
            key,
            format!("{key} must be an http or https URL"),
        ));
    }
    Ok(url)
}

impl OtlpHttpConfig {
    /// The URL a signal is sent to: its `*_endpoint`, else `endpoint` + `/v1/<signal>`;
    /// `Ok(None)` when neither is set.
    pub fn signal_url(&self, signal: Signal) -> Result<Option<reqwest::Url>, ConfigError> {
        let (key, explicit) = match signal {
            Signal::Traces => ("traces_endpoint", &self.traces_endpoint),
            Signal::Metrics => ("metrics_endpoint", &self.metrics_endpoint),
            Signal::Logs => ("logs_endpoint", &self.logs_endpoint),
        };
        if !explicit.is_empty() {
            return parse_url(explicit, key).map(Some);
        }
        if self.endpoint.is_empty() {
            return Ok(None);
        }
        let sep = if self.endpoint.ends_with('/') {
            ""
        } else {
            "/"
        };
        let composed = format!("{}{sep}v1/{}", self.endpoint, signal.as_str());
        parse_url(&composed, "endpoint").map(Some)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.endpoint.is_empty()
            && self.traces_endpoint.is_empty()
            && self.metrics_endpoint.is_empty()
            && self.logs_endpoint.is_empty()
            && self.profiles_endpoint.is_empty()
        {
            return Err(ConfigError::new(
                "endpoint",
                "at least one endpoint must be specified",
            ));
        }
        if !self.endpoint.is_empty() {
            parse_url(&self.endpoint, "endpoint")?;
        }
        for signal in Signal::ALL {
            self.signal_url(signal)?;
        }
        if matches!(self.compression, Compression::Snappy | Compression::Lz4) {
            return Err(ConfigError::new(
                "compression",
                format!(
                    "{} compression is not supported yet (use gzip, zstd, zlib, deflate or none)",
                    self.compression.as_str()
                ),
            ));
        }
        self.tls.validate()?;
        self.headers.validate()?;
        if !self.proxy_url.is_empty() {
            reqwest::Proxy::all(&self.proxy_url)
                .map_err(|e| ConfigError::new("proxy_url", format!("invalid proxy URL: {e}")))?;
        }
        if !self.auth.is_null() {
            return Err(ConfigError::new(
                "auth",
                "authentication extensions are not supported yet",
            ));
        }
        if !(self.middlewares.is_null()
            || self.middlewares.as_sequence().is_some_and(|s| s.is_empty()))
        {
            return Err(ConfigError::new(
                "middlewares",
                "middlewares are not supported yet",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_pipeline::decode_config;

    fn cfg(yaml: &str) -> Result<OtlpHttpConfig, ConfigError> {
        let c: OtlpHttpConfig = decode_config(&serde_yaml::from_str(yaml).unwrap())?;
        c.validate().map(|_| c)
    }

    #[test]
    fn signal_urls_compose_like_the_collector() {
        let c = cfg("endpoint: https://example.com:4318").unwrap();
        let url = |c: &OtlpHttpConfig, s| c.signal_url(s).unwrap().unwrap().to_string();
        assert_eq!(
            url(&c, Signal::Traces),
            "https://example.com:4318/v1/traces"
        );
        let c =
            cfg("endpoint: http://h:4318/prefix/\nlogs_endpoint: http://logs:1/custom").unwrap();
        assert_eq!(url(&c, Signal::Metrics), "http://h:4318/prefix/v1/metrics");
        assert_eq!(url(&c, Signal::Logs), "http://logs:1/custom");
        let c = cfg("traces_endpoint: http://t:1/v1/traces").unwrap();
        assert!(c.signal_url(Signal::Metrics).unwrap().is_none());
    }

    #[test]
    fn defaults_and_errors() {
        let c = cfg("endpoint: http://h:4318\nsending_queue: {queue_size: 10}").unwrap();
        assert_eq!(c.encoding, Encoding::Proto);
        assert_eq!(c.compression, Compression::Gzip);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(cfg("{}").unwrap_err().path, "endpoint");
        assert_eq!(cfg("endpoint: 'not a url'").unwrap_err().path, "endpoint");
        assert_eq!(
            cfg("endpoint: http://h\nencoding: xml").unwrap_err().path,
            "encoding"
        );
        assert_eq!(
            cfg("endpoint: http://h\ncompression: snappy")
                .unwrap_err()
                .path,
            "compression"
        );
        assert_eq!(
            cfg("traces_endpoint: ftp://h").unwrap_err().path,
            "traces_endpoint"
        );
        assert_eq!(
            cfg("endpoint: http://h\nencoding: json").unwrap().encoding,
            Encoding::Json
        );
    }
}
