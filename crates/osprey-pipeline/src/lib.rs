//! The pipeline's component contract: what flows between receivers, processors, connectors and
//! exporters, and how a refusal travels back to the client.
//!
//! A receiver decodes a request, sanitizes it, and hands a [`Batch`] to a [`Consumer`] (a
//! processor, a fan-out, or an exporter). It acknowledges its client only after `consume`
//! returned `Ok`: for the store exporter that means the spans are in the write-ahead log, for a
//! queued exporter that the batch is in its queue. A [`ConsumeError`] says whether the client
//! should retry.
//!
//! Component configuration follows the OpenTelemetry Collector: each component has a `serde`
//! config with defaults; [`ConfigError`] names the path of a bad key.

pub mod raw;
pub mod signal;

pub use raw::RawTraces;
pub use signal::{Batch, Context, LogsRequest, MetricsRequest, Payload, Signal};

use osprey_model::TraceRequest;
use std::sync::Arc;
use std::time::Duration;

/// Trace data in flight (the name `osprey up` grew up with).
pub type TraceBatch = Batch;

impl Batch {
    /// A trace batch with no context.
    pub fn new(request: TraceRequest) -> Self {
        Batch::traces(request)
    }
}

/// Why a consumer did not take a batch. Receivers map each case to the protocol's own code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConsumeError {
    /// Temporarily over capacity: the client should retry after the given delay
    /// (gRPC UNAVAILABLE, HTTP 503 + Retry-After).
    #[error("overloaded, retry after {retry_after:?}: {reason}")]
    Overloaded {
        retry_after: Duration,
        reason: String,
    },
    /// A failure that may pass (disk error, peer down, shutdown in progress): retryable.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The data can never be accepted: not retryable.
    #[error("refused: {0}")]
    Permanent(String),
}

impl ConsumeError {
    /// Whether a client (or a retrying exporter) should try again.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ConsumeError::Permanent(_))
    }
}

/// Something that takes batches: a processor, a connector's input, a fan-out or an exporter.
#[async_trait::async_trait]
pub trait Consumer: Send + Sync + 'static {
    /// Takes ownership of `batch`. `Ok` means the batch is safe: the receiver may acknowledge.
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError>;

    /// A cheap hint, asked before a receiver reads a request's body: `false` when a `consume`
    /// now would surely be refused as overloaded (a full non-blocking sending queue, memory
    /// over the limit), so the request can be refused without being read. `true` promises
    /// nothing: `consume` may still refuse.
    fn has_room(&self) -> bool {
        true
    }
}

/// A shared consumer handle.
pub type SharedConsumer = Arc<dyn Consumer>;

/// A bad configuration value, with the dotted path of the key (`exporters.otlp.endpoint`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same error under a parent path (`endpoint` under `exporters.otlp`).
    pub fn under(self, parent: &str) -> Self {
        let path = if self.path.is_empty() {
            parent.to_string()
        } else if parent.is_empty() {
            self.path
        } else {
            format!("{parent}.{}", self.path)
        };
        ConfigError { path, ..self }
    }
}

/// Decodes a component's config body. `null` (an empty body such as `batch:`) means all
/// defaults; unknown keys are errors, as in the Collector. The error names the bad key's path
/// relative to the component.
pub fn decode_config<T>(value: &serde_yaml::Value) -> Result<T, ConfigError>
where
    T: serde::de::DeserializeOwned + Default,
{
    if value.is_null() {
        return Ok(T::default());
    }
    let de = value.clone();
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigError::new(path, e.into_inner().to_string())
    })
}

/// Parses a Go-style duration as the Collector writes them: `200ms`, `5s`, `1m30s`, `1h`,
/// `1.5s`, `0`. A bare integer is taken as nanoseconds, like Go's `time.Duration` in YAML.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_nanos(n));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration {text:?} lacks a unit (ns, us, ms, s, m, h)"))?;
        if num_len == 0 {
            return Err(format!("invalid duration {text:?}"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => {
                return Err(format!(
                    "invalid unit {u:?} in duration {text:?} (expected ns, us, ms, s, m or h)"
                ))
            }
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// `serde` helpers for Go-style durations in component configs:
/// `#[serde(with = "osprey_pipeline::go_duration")]`.
pub mod go_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Duration::from_nanos(n)),
            Raw::Text(t) => super::parse_go_duration(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// Resolves a Collector-style `endpoint` (`host:port`, `:port`, `localhost:4317`,
/// `0.0.0.0:4317`, `[::1]:4317`) to the address a receiver binds.
pub fn bind_addr(endpoint: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    let e = endpoint.trim();
    let (host, port) = e
        .rsplit_once(':')
        .ok_or_else(|| format!("endpoint {endpoint:?} is not host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("endpoint {endpoint:?} has an invalid port {port:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = match host {
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => h.parse().map_err(|_| {
            format!("endpoint {endpoint:?}: host {h:?} is not an IP address or localhost")
        })?,
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert!(parse_go_duration("5 parsecs").is_err());
        assert!(parse_go_duration("s").is_err());
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        size: u32,
        #[serde(with = "go_duration")]
        timeout: Duration,
    }

    #[test]
    fn empty_body_means_defaults_and_bad_keys_are_named() {
        let v: Sample = decode_config(&serde_yaml::Value::Null).unwrap();
        assert_eq!(v.size, 0);
        let bad: serde_yaml::Value = serde_yaml::from_str("size: many").unwrap();
        let e = decode_config::<Sample>(&bad).unwrap_err();
        assert_eq!(e.path, "size");
        let bad: serde_yaml::Value = serde_yaml::from_str("sise: 3").unwrap();
        let e = decode_config::<Sample>(&bad).unwrap_err();
        assert!(e.message.contains("unknown field `sise`"), "{e}");
        let t: Sample = decode_config(&serde_yaml::from_str("timeout: 2s").unwrap()).unwrap();
        assert_eq!(t.timeout, Duration::from_secs(2));
        assert_eq!(
            ConfigError::new("size", "x").under("processors.batch").path,
            "processors.batch.size"
        );
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            bind_addr("localhost:4317").unwrap().to_string(),
            "127.0.0.1:4317"
        );
        assert_eq!(bind_addr(":4318").unwrap().to_string(), "0.0.0.0:4318");
        assert_eq!(bind_addr("[::1]:9411").unwrap().to_string(), "[::1]:9411");
        assert!(bind_addr("collector:4317")
            .unwrap_err()
            .contains("not an IP"));
        assert!(bind_addr("4317").is_err());
        assert!(bind_addr("0.0.0.0:99999").unwrap_err().contains("port"));
    }
}
