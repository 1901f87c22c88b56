//! The `zipkin` receiver's configuration, with the upstream receiver's keys and defaults: the
//! Collector's `confighttp` server settings (either at the top level, the legacy form, or under
//! `protocols.http`) plus `parse_string_tags`.

use osprey_pipeline::{bind_addr, go_duration, ConfigError};
use serde::de::IgnoredAny;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where the receiver listens unless told otherwise (upstream's default).
pub const DEFAULT_ENDPOINT: &str = "localhost:9411";
/// `confighttp`'s default body limit (20 MiB) when `max_request_body_size` is unset or <= 0.
pub const DEFAULT_MAX_REQUEST_BODY_SIZE: usize = 20 << 20;
/// The `Content-Encoding`s this receiver can decode (the names `compression_algorithms` takes).
pub const SUPPORTED_ENCODINGS: [&str; 5] = ["gzip", "zlib", "deflate", "snappy", "x-snappy-framed"];

/// `confighttp`'s CORS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to send cross-origin requests; `*` alone allows any, and one `*`
    /// inside a pattern matches any run of characters (`https://*.example.com`).
    pub allowed_origins: Vec<String>,
    /// Request headers allowed besides the always-allowed `Accept`, `Content-Type`,
    /// `X-Requested-With` (and `Content-Encoding`, which Zipkin clients send).
    pub allowed_headers: Vec<String>,
    /// Seconds a browser may cache a preflight answer; 0 leaves it to the browser.
    pub max_age: u64,
}

/// `confighttp.ServerConfig`, as it may appear under `protocols.http`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpServerSettings {
    pub endpoint: String,
    /// Not supported: any value is refused by `validate`.
    pub tls: Option<IgnoredAny>,
    /// Not supported: any value is refused by `validate`.
    pub auth: Option<IgnoredAny>,
    /// Not supported when non-empty.
    pub middlewares: Vec<IgnoredAny>,
    pub cors: Option<CorsConfig>,
    /// Bytes; <= 0 means the default of 20 MiB. Applies before and after decompression.
    pub max_request_body_size: i64,
    /// Keep the request headers in the batch context (for `batch`'s `metadata_keys`).
    pub include_metadata: bool,
    /// Headers added to every response.
    pub response_headers: BTreeMap<String, String>,
    /// `Content-Encoding`s accepted; unset means all of [`SUPPORTED_ENCODINGS`].
    pub compression_algorithms: Option<Vec<String>>,
    /// Accepted and ignored.
    #[serde(with = "go_duration")]
    pub read_timeout: Duration,
    /// Accepted and ignored.
    #[serde(with = "go_duration")]
    pub read_header_timeout: Duration,
    /// Accepted and ignored.
    #[serde(with = "go_duration")]
    pub write_timeout: Duration,
    /// Accepted and ignored.
    #[serde(with = "go_duration")]
    pub idle_timeout: Duration,
    /// Accepted and ignored.
    pub keep_alives_enabled: bool,
}

impl Default for HttpServerSettings {
    fn default() -> Self {
        HttpServerSettings {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            tls: None,
            auth: None,
            middlewares: Vec::new(),
            cors: None,
            max_request_body_size: 0,
            include_metadata: false,
            response_headers: BTreeMap::new(),
            compression_algorithms: None,
            read_timeout: Duration::ZERO,
            read_header_timeout: Duration::ZERO,
            write_timeout: Duration::ZERO,
            idle_timeout: Duration::ZERO,
            keep_alives_enabled: true,
        }
    }
}

impl HttpServerSettings {
    /// The body limit in bytes.
    pub fn body_limit(&self) -> usize {
        if self.max_request_body_size <= 0 {
            DEFAULT_MAX_REQUEST_BODY_SIZE
        } else {
            usize::try_from(self.max_request_body_size).unwrap_or(usize::MAX)
        }
    }

    /// Whether requests with this (lower-case) `Content-Encoding` are accepted.
    pub fn accepts_encoding(&self, encoding: &str) -> bool {
        match &self.compression_algorithms {
            None => SUPPORTED_ENCODINGS.contains(&encoding),
            Some(list) => list.iter().any(|a| a.eq_ignore_ascii_case(encoding)),
        }
    }

    /// Semantic checks; paths are relative to this block.
    pub fn validate(&self) -> Result<(), ConfigError> {
        bind_addr(&self.endpoint).map_err(|m| ConfigError::new("endpoint", m))?;
        if self.tls.is_some() {
            return Err(ConfigError::new(
                "tls",
                "TLS is not supported by osprey's zipkin receiver; terminate TLS in front of it",
            ));
        }
        if self.auth.is_some() {
            return Err(ConfigError::new(
                "auth",
                "authenticator extensions are not supported by osprey's zipkin receiver",
            ));
        }
        if !self.middlewares.is_empty() {
            return Err(ConfigError::new(
                "middlewares",
                "middleware extensions are not supported by osprey's zipkin receiver",
            ));
        }
        for (i, alg) in self.compression_algorithms.iter().flatten().enumerate() {
            let lower = alg.to_ascii_lowercase();
            if !SUPPORTED_ENCODINGS.contains(&lower.as_str()) {
                return Err(ConfigError::new(
                    format!("compression_algorithms[{i}]"),
                    format!(
                        "unsupported compression algorithm {alg:?} (supported: {})",
                        SUPPORTED_ENCODINGS.join(", ")
                    ),
                ));
            }
        }
        for (name, value) in &self.response_headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || http::HeaderValue::from_str(value).is_err()
            {
                return Err(ConfigError::new(
                    format!("response_headers.{name}"),
                    "not a valid HTTP header name and value",
                ));
            }
        }
        if let Some(cors) = &self.cors {
            for (i, origin) in cors.allowed_origins.iter().enumerate() {
                if origin != "*" && origin.matches('*').count() > 1 {
                    return Err(ConfigError::new(
                        format!("cors.allowed_origins[{i}]"),
                        "an origin pattern may hold at most one `*`",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `protocols:`; only `http` exists upstream.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZipkinProtocols {
    pub http: Option<HttpServerSettings>,
}

/// The `zipkin` receiver's config. The legacy top-level server keys are used unless
/// `protocols.http` is given, which then wins (as upstream, which also warns).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZipkinConfig {
    pub protocols: ZipkinProtocols,
    /// Turn string tags that look like integers, floats or booleans into typed attributes.
    pub parse_string_tags: bool,
    pub endpoint: String,
    pub tls: Option<IgnoredAny>,
    pub auth: Option<IgnoredAny>,
    pub middlewares: Vec<IgnoredAny>,
    pub cors: Option<CorsConfig>,
    pub max_request_body_size: i64,
    pub include_metadata: bool,
    pub response_headers: BTreeMap<String, String>,
    pub compression_algorithms: Option<Vec<String>>,
    #[serde(with = "go_duration")]
    pub read_timeout: Duration,
    #[serde(with = "go_duration")]
    pub read_header_timeout: Duration,
    #[serde(with = "go_duration")]
    pub write_timeout: Duration,
    #[serde(with = "go_duration")]
    pub idle_timeout: Duration,
    pub keep_alives_enabled: bool,
}

impl Default for ZipkinConfig {
    fn default() -> Self {
        let s = HttpServerSettings::default();
        ZipkinConfig {
            protocols: ZipkinProtocols::default(),
            parse_string_tags: false,
            endpoint: s.endpoint,
            tls: s.tls,
            auth: s.auth,
            middlewares: s.middlewares,
            cors: s.cors,
            max_request_body_size: s.max_request_body_size,
            include_metadata: s.include_metadata,
            response_headers: s.response_headers,
            compression_algorithms: s.compression_algorithms,
            read_timeout: s.read_timeout,
            read_header_timeout: s.read_header_timeout,
            write_timeout: s.write_timeout,
            idle_timeout: s.idle_timeout,
            keep_alives_enabled: s.keep_alives_enabled,
        }
    }
}

impl ZipkinConfig {
    /// The server settings in effect: `protocols.http` when given, else the top-level keys.
    pub fn server(&self) -> HttpServerSettings {
        if let Some(http) = &self.protocols.http {
            return http.clone();
        }
        HttpServerSettings {
            endpoint: self.endpoint.clone(),
            tls: self.tls,
            auth: self.auth,
            middlewares: self.middlewares.clone(),
            cors: self.cors.clone(),
            max_request_body_size: self.max_request_body_size,
            include_metadata: self.include_metadata,
            response_headers: self.response_headers.clone(),
            compression_algorithms: self.compression_algorithms.clone(),
            read_timeout: self.read_timeout,
            read_header_timeout: self.read_header_timeout,
            write_timeout: self.write_timeout,
            idle_timeout: self.idle_timeout,
            keep_alives_enabled: self.keep_alives_enabled,
        }
    }

    /// Semantic checks; the error path is relative to the receiver (`protocols.http.endpoint`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match &self.protocols.http {
            Some(http) => http.validate().map_err(|e| e.under("protocols.http")),
            None => self.server().validate(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_pipeline::decode_config;

    fn parse(yaml: &str) -> Result<ZipkinConfig, ConfigError> {
        let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        let c: ZipkinConfig = decode_config(&v)?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn defaults_match_upstream() {
        let c = parse("~").unwrap();
        let s = c.server();
        assert_eq!(s.endpoint, "localhost:9411");
        assert!(!c.parse_string_tags);
        assert_eq!(s.body_limit(), 20 << 20);
        assert!(s.accepts_encoding("gzip") && s.accepts_encoding("deflate"));
        assert!(!s.accepts_encoding("br"));
    }

    #[test]
    fn legacy_and_protocols_forms() {
        let c = parse("endpoint: 0.0.0.0:9412\nparse_string_tags: true\ninclude_metadata: true\nmax_request_body_size: 1024\ncors:\n  allowed_origins: ['https://*.example.com']\nread_timeout: 5s").unwrap();
        let s = c.server();
        assert_eq!(s.endpoint, "0.0.0.0:9412");
        assert!(c.parse_string_tags && s.include_metadata);
        assert_eq!(s.body_limit(), 1024);
        assert_eq!(s.read_timeout, Duration::from_secs(5));
        let c = parse("endpoint: 0.0.0.0:1\nprotocols:\n  http:\n    endpoint: 127.0.0.1:9999")
            .unwrap();
        assert_eq!(c.server().endpoint, "127.0.0.1:9999");
        let c = parse("protocols:\n  http:").unwrap();
        assert_eq!(c.server().endpoint, "localhost:9411");
    }

    #[test]
    fn bad_keys_are_named() {
        let e = parse("endpoit: x").unwrap_err();
        assert!(e.message.contains("unknown field `endpoit`"), "{e}");
        let e = parse("protocols:\n  http:\n    endpoint: nowhere").unwrap_err();
        assert_eq!(e.path, "protocols.http.endpoint");
        let e = parse("protocols:\n  grpc: {}").unwrap_err();
        assert!(e.message.contains("unknown field `grpc`"), "{e}");
        let e = parse("tls:\n  cert_file: a.pem").unwrap_err();
        assert_eq!(e.path, "tls");
        let e = parse("compression_algorithms: [gzip, zstd]").unwrap_err();
        assert_eq!(e.path, "compression_algorithms[1]");
        let e = parse("parse_string_tags: maybe").unwrap_err();
        assert_eq!(e.path, "parse_string_tags");
    }
}
