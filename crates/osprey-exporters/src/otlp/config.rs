//! The `otlp` (gRPC) exporter's configuration: `configgrpc.ClientConfig` plus the exporter's
//! `timeout`, with the Collector's defaults (gzip, 5s).

use super::common::{present_means_default, Compression, Headers};
use super::tls::TlsClientConfig;
use osprey_pipeline::{go_duration, ConfigError};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// `host:port`, optionally with an `http://`, `https://` or `dns://` prefix.
    pub endpoint: String,
    pub compression: Compression,
    pub tls: TlsClientConfig,
    pub headers: Headers,
    /// Per-attempt deadline; 0 means none.
    #[serde(with = "go_duration")]
    pub timeout: Duration,
    /// Accepted; tonic keeps one HTTP/2 connection (no client-side balancing).
    pub balancer_name: String,
    /// Overrides the `:authority` header.
    pub authority: String,
    #[serde(deserialize_with = "present_means_default")]
    pub keepalive: Option<KeepaliveConfig>,
    /// Accepted and ignored (gRPC-Go tuning knobs).
    pub read_buffer_size: u64,
    pub write_buffer_size: u64,
    pub wait_for_ready: bool,
    /// Authentication extensions are not supported: any value is a config error.
    pub auth: serde_yaml::Value,
    pub middlewares: serde_yaml::Value,
    /// Handled by the pipeline's exporter helper, not here.
    pub sending_queue: serde_yaml::Value,
    pub retry_on_failure: serde_yaml::Value,
    /// Deprecated upstream in favour of `sending_queue.batch`; passed through.
    pub batcher: serde_yaml::Value,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            endpoint: String::new(),
            compression: Compression::Gzip,
            tls: TlsClientConfig::default(),
            headers: Headers::default(),
            timeout: Duration::from_secs(5),
            balancer_name: String::new(),
            authority: String::new(),
            keepalive: None,
            read_buffer_size: 0,
            write_buffer_size: 512 * 1024,
            wait_for_ready: false,
            auth: serde_yaml::Value::Null,
            middlewares: serde_yaml::Value::Null,
            sending_queue: serde_yaml::Value::Null,
            retry_on_failure: serde_yaml::Value::Null,
            batcher: serde_yaml::Value::Null,
        }
    }
}

/// `keepalive:` (gRPC client keepalive pings). Present means on, with 10s / 10s defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveConfig {
    #[serde(with = "go_duration")]
    pub time: Duration,
    #[serde(with = "go_duration")]
    pub timeout: Duration,
    pub permit_without_stream: bool,
}

impl Default for KeepaliveConfig {
    fn default() -> Self {
        KeepaliveConfig {
            time: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            permit_without_stream: false,
        }
    }
}

/// Where to connect: `host:port` and whether the endpoint said `https://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host_port: String,
    pub https: bool,
}

/// Checks `host:port` the way Go's `net.SplitHostPort` + `strconv.Atoi` do.
fn check_host_port(host_port: &str) -> Result<(), String> {
    let (host, port) = host_port
        .rsplit_once(':')
        .ok_or_else(|| format!("address {host_port}: missing port in address"))?;
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!("address {host_port}: too many colons in address"));
    }
    if port.parse::<u16>().is_err() {
        return Err(format!("invalid port {port:?}"));
    }
    Ok(())
}

impl OtlpConfig {
    /// The connection target, with the scheme prefixes `configgrpc` strips.
    pub fn target(&self) -> Result<Target, ConfigError> {
        let e = self.endpoint.trim();
        if e.is_empty() {
            return Err(ConfigError::new(
                "endpoint",
                r#"requires a non-empty "endpoint""#,
            ));
        }
        if e.starts_with("unix://") {
            return Err(ConfigError::new(
                "endpoint",
                "unix socket endpoints are not supported yet",
            ));
        }
        let (rest, https) = if let Some(r) = e.strip_prefix("https://") {
            (r, true)
        } else if let Some(r) = e.strip_prefix("http://") {
            (r, false)
        } else if let Some(r) = e.strip_prefix("dns://") {
            (r.trim_start_matches('/'), false)
        } else {
            (e, false)
        };
        let rest = rest.trim_end_matches('/');
        check_host_port(rest).map_err(|m| ConfigError::new("endpoint", m))?;
        Ok(Target {
            host_port: rest.to_string(),
            https,
        })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.target()?;
        match self.compression {
            Compression::None | Compression::Gzip | Compression::Zstd => {}
            Compression::Snappy => {
                return Err(ConfigError::new(
                    "compression",
                    "snappy compression is not supported yet for gRPC (use gzip, zstd or none)",
                ))
            }
            other => {
                return Err(ConfigError::new(
                    "compression",
                    format!("unsupported compression type {:?} for gRPC", other.as_str()),
                ))
            }
        }
        self.tls.validate()?;
        self.headers.validate()?;
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
        if !self.authority.is_empty()
            && http::uri::Authority::try_from(self.authority.as_str()).is_err()
        {
            return Err(ConfigError::new("authority", "not a valid authority"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_pipeline::decode_config;

    fn cfg(yaml: &str) -> Result<OtlpConfig, ConfigError> {
        let c: OtlpConfig = decode_config(&serde_yaml::from_str(yaml).unwrap())?;
        c.validate().map(|_| c)
    }

    #[test]
    fn defaults_and_pass_through_keys() {
        let c = cfg(
            "endpoint: collector:4317\nsending_queue: {enabled: true}\nretry_on_failure: {enabled: false}",
        )
        .unwrap();
        assert_eq!(c.compression, Compression::Gzip);
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert!(c.keepalive.is_none());
        assert!(!c.sending_queue.is_null());
        let c = cfg("endpoint: a:1\nkeepalive:\ncompression: none\ntimeout: 2s").unwrap();
        assert_eq!(c.keepalive.unwrap().time, Duration::from_secs(10));
        assert_eq!(c.compression, Compression::None);
        assert_eq!(c.timeout, Duration::from_secs(2));
    }

    #[test]
    fn endpoint_forms() {
        let t = |e: &str| cfg(&format!("endpoint: {e:?}")).map(|c| c.target().unwrap());
        assert_eq!(
            t("https://h:4317").unwrap(),
            Target {
                host_port: "h:4317".into(),
                https: true
            }
        );
        assert!(!t("http://h:4317").unwrap().https);
        assert_eq!(t("dns:///h:4317").unwrap().host_port, "h:4317");
        assert_eq!(t("[::1]:4317").unwrap().host_port, "[::1]:4317");
        assert_eq!(t("h").unwrap_err().path, "endpoint");
        assert!(t("h:port").unwrap_err().message.contains("invalid port"));
        assert!(cfg("{}").unwrap_err().message.contains("non-empty"));
    }

    #[test]
    fn unsupported_settings_are_named() {
        assert_eq!(
            cfg("endpoint: a:1\ncompression: snappy").unwrap_err().path,
            "compression"
        );
        assert_eq!(
            cfg("endpoint: a:1\nauth: {authenticator: x}")
                .unwrap_err()
                .path,
            "auth"
        );
        assert_eq!(cfg("endpoint: a:1\nbogus: 1").unwrap_err().path, "bogus");
        assert_eq!(
            cfg("endpoint: a:1\ntls: {bogus: 1}").unwrap_err().path,
            "tls.bogus"
        );
    }
}
