//! The `jaeger` receiver's configuration, as the Collector-contrib `jaegerreceiver` reads it:
//! a `protocols` map in which only the protocols present are started (an empty body such as
//! `grpc:` means "on, with defaults"), plus the deprecated no-op `remote_sampling` key.

use osprey_pipeline::{bind_addr, ConfigError};
use serde::{Deserialize, Deserializer};

pub const DEFAULT_GRPC_ENDPOINT: &str = "localhost:14250";
pub const DEFAULT_THRIFT_HTTP_ENDPOINT: &str = "localhost:14268";
pub const DEFAULT_THRIFT_COMPACT_ENDPOINT: &str = "localhost:6831";
pub const DEFAULT_THRIFT_BINARY_ENDPOINT: &str = "localhost:6832";

/// gRPC's default receive limit (grpc-go and `configgrpc` when `max_recv_msg_size_mib` is 0).
pub const DEFAULT_GRPC_MAX_RECV_BYTES: usize = 4 << 20;
/// `confighttp`'s default `max_request_body_size`.
pub const DEFAULT_HTTP_MAX_BODY_BYTES: usize = 20 << 20;

/// `receivers.jaeger`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JaegerConfig {
    pub protocols: Protocols,
    /// Deprecated upstream and a no-op there: accepted, ignored with a warning.
    pub remote_sampling: Option<serde::de::IgnoredAny>,
}

/// `protocols`: `None` means the protocol is not configured and not started.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Protocols {
    #[serde(deserialize_with = "present")]
    pub grpc: Option<GrpcConfig>,
    #[serde(deserialize_with = "present")]
    pub thrift_http: Option<ThriftHttpConfig>,
    #[serde(deserialize_with = "present")]
    pub thrift_compact: Option<UdpConfig>,
    #[serde(deserialize_with = "present")]
    pub thrift_binary: Option<UdpConfig>,
}

/// A key that is present turns its protocol on, even with an empty (null) body.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

/// `protocols.grpc` (a subset of `configgrpc.ServerConfig`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// `host:port`; default `localhost:14250`.
    pub endpoint: Option<String>,
    /// Only `tcp` is supported.
    pub transport: Option<String>,
    /// Largest request accepted, in MiB; 0 means gRPC's default of 4 MiB.
    pub max_recv_msg_size_mib: u64,
    /// HTTP/2 concurrent streams per connection; 0 means no limit.
    pub max_concurrent_streams: u32,
    /// Accepted for compatibility; the socket buffers are left to the OS.
    pub read_buffer_size: Option<u64>,
    /// Accepted for compatibility; the socket buffers are left to the OS.
    pub write_buffer_size: Option<u64>,
    /// Keep the request metadata in the batch context (for `batch.metadata_keys`).
    pub include_metadata: bool,
}

impl GrpcConfig {
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_deref().unwrap_or(DEFAULT_GRPC_ENDPOINT)
    }
    pub fn max_recv_bytes(&self) -> usize {
        match self.max_recv_msg_size_mib {
            0 => DEFAULT_GRPC_MAX_RECV_BYTES,
            mib => usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
        }
    }
}

/// `protocols.thrift_http` (a subset of `confighttp.ServerConfig`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThriftHttpConfig {
    /// `host:port`; default `localhost:14268`.
    pub endpoint: Option<String>,
    /// Largest body accepted (after decompression), in bytes; 0 means 20 MiB.
    pub max_request_body_size: u64,
    /// Keep the request headers in the batch context (for `batch.metadata_keys`).
    pub include_metadata: bool,
}

impl ThriftHttpConfig {
    pub fn endpoint(&self) -> &str {
        self.endpoint
            .as_deref()
            .unwrap_or(DEFAULT_THRIFT_HTTP_ENDPOINT)
    }
    pub fn max_body_bytes(&self) -> usize {
        match self.max_request_body_size {
            0 => DEFAULT_HTTP_MAX_BODY_BYTES,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        }
    }
}

/// `protocols.thrift_compact` / `protocols.thrift_binary`: the Jaeger agent's UDP servers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UdpConfig {
    /// `host:port`; default `localhost:6831` (compact) or `localhost:6832` (binary).
    pub endpoint: Option<String>,
    /// Datagrams waiting for a worker; more are dropped (counted).
    pub queue_size: usize,
    /// Largest datagram read; longer ones are truncated and fail to decode.
    pub max_packet_size: usize,
    /// Datagrams decoded and handed on concurrently.
    pub workers: usize,
    /// `SO_RCVBUF` in bytes; 0 leaves the OS default.
    pub socket_buffer_size: usize,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            endpoint: None,
            queue_size: 1_000,
            max_packet_size: 65_000,
            workers: 10,
            socket_buffer_size: 0,
        }
    }
}

impl UdpConfig {
    pub fn endpoint_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.endpoint.as_deref().unwrap_or(default)
    }
}

impl Protocols {
    pub fn is_empty(&self) -> bool {
        self.grpc.is_none()
            && self.thrift_http.is_none()
            && self.thrift_compact.is_none()
            && self.thrift_binary.is_none()
    }
}

/// Upstream's endpoint check: `host:port` with a port in 1..=65535, and (for Osprey) a host
/// that [`bind_addr`] can resolve.
fn check_endpoint(path: &str, endpoint: &str) -> Result<(), ConfigError> {
    let addr = bind_addr(endpoint).map_err(|e| ConfigError::new(path, e))?;
    if addr.port() == 0 {
        return Err(ConfigError::new(
            path,
            format!("endpoint {endpoint:?}: port number must be between 1 and 65535"),
        ));
    }
    Ok(())
}

impl JaegerConfig {
    /// Semantic checks, with paths relative to the receiver (`protocols.grpc.endpoint`).
    /// Like upstream, port 0 is refused here; [`super::start`] itself accepts it (tests).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = &self.protocols;
        if p.is_empty() {
            return Err(ConfigError::new(
                "protocols",
                "must specify at least one protocol when using the Jaeger receiver \
                 (grpc, thrift_http, thrift_compact, thrift_binary)",
            ));
        }
        if let Some(g) = &p.grpc {
            check_endpoint("protocols.grpc.endpoint", g.endpoint())?;
            if let Some(t) = g.transport.as_deref() {
                if t != "tcp" {
                    return Err(ConfigError::new(
                        "protocols.grpc.transport",
                        format!("transport {t:?} is not supported (only \"tcp\")"),
                    ));
                }
            }
        }
        if let Some(h) = &p.thrift_http {
            check_endpoint("protocols.thrift_http.endpoint", h.endpoint())?;
        }
        for (name, cfg, default) in [
            (
                "thrift_compact",
                &p.thrift_compact,
                DEFAULT_THRIFT_COMPACT_ENDPOINT,
            ),
            (
                "thrift_binary",
                &p.thrift_binary,
                DEFAULT_THRIFT_BINARY_ENDPOINT,
            ),
        ] {
            let Some(u) = cfg else { continue };
            check_endpoint(
                &format!("protocols.{name}.endpoint"),
                u.endpoint_or(default),
            )?;
            if u.workers == 0 {
                return Err(ConfigError::new(
                    format!("protocols.{name}.workers"),
                    "must be at least 1",
                ));
            }
            if u.max_packet_size == 0 {
                return Err(ConfigError::new(
                    format!("protocols.{name}.max_packet_size"),
                    "must be at least 1",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_pipeline::decode_config;

    fn parse(text: &str) -> Result<JaegerConfig, ConfigError> {
        let v: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        let c: JaegerConfig = decode_config(&v)?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn empty_bodies_enable_protocols_with_defaults() {
        let c = parse("protocols:\n  grpc:\n  thrift_compact:\n").unwrap();
        assert_eq!(
            c.protocols.grpc.as_ref().unwrap().endpoint(),
            "localhost:14250"
        );
        let u = c.protocols.thrift_compact.as_ref().unwrap();
        assert_eq!(
            u.endpoint_or(DEFAULT_THRIFT_COMPACT_ENDPOINT),
            "localhost:6831"
        );
        assert_eq!(
            (u.queue_size, u.max_packet_size, u.workers),
            (1000, 65000, 10)
        );
        assert!(c.protocols.thrift_http.is_none());
        assert!(c.protocols.thrift_binary.is_none());
        assert_eq!(
            c.protocols.grpc.unwrap().max_recv_bytes(),
            DEFAULT_GRPC_MAX_RECV_BYTES
        );
    }

    #[test]
    fn explicit_settings_are_read() {
        let c = parse(
            "protocols:\n  thrift_http:\n    endpoint: 0.0.0.0:1234\n  thrift_binary:\n    \
             endpoint: 127.0.0.1:7000\n    queue_size: 5\n    max_packet_size: 9000\n    \
             workers: 2\n    socket_buffer_size: 65536\nremote_sampling:\n  host_endpoint: x:1\n",
        )
        .unwrap();
        assert_eq!(c.protocols.thrift_http.unwrap().endpoint(), "0.0.0.0:1234");
        let b = c.protocols.thrift_binary.unwrap();
        assert_eq!(b.endpoint.as_deref(), Some("127.0.0.1:7000"));
        assert_eq!(
            (
                b.queue_size,
                b.max_packet_size,
                b.workers,
                b.socket_buffer_size
            ),
            (5, 9000, 2, 65536)
        );
        assert!(c.remote_sampling.is_some());
    }

    #[test]
    fn no_protocols_is_an_error() {
        let e = parse("protocols: {}").unwrap_err();
        assert_eq!(e.path, "protocols");
        assert!(e.message.contains("at least one protocol"), "{e}");
        let null: JaegerConfig = decode_config(&serde_yaml::Value::Null).unwrap();
        assert_eq!(null.validate().unwrap_err().path, "protocols");
    }

    #[test]
    fn unknown_protocols_and_keys_are_named() {
        let e = parse("protocols:\n  thrift_tcp:\n").unwrap_err();
        assert!(e.message.contains("thrift_tcp"), "{e}");
        let e = parse("protocols:\n  grpc:\n    endpont: x:1\n").unwrap_err();
        assert!(e.message.contains("endpont"), "{e}");
        assert!(e.path.starts_with("protocols.grpc"), "{e}");
    }

    #[test]
    fn bad_endpoints_name_their_path() {
        let e = parse("protocols:\n  thrift_http:\n    endpoint: nowhere\n").unwrap_err();
        assert_eq!(e.path, "protocols.thrift_http.endpoint");
        let e = parse("protocols:\n  grpc:\n    endpoint: localhost:0\n").unwrap_err();
        assert_eq!(e.path, "protocols.grpc.endpoint");
        let e = parse("protocols:\n  thrift_compact:\n    workers: 0\n").unwrap_err();
        assert_eq!(e.path, "protocols.thrift_compact.workers");
        let e = parse("protocols:\n  grpc:\n    transport: unix\n").unwrap_err();
        assert_eq!(e.path, "protocols.grpc.transport");
    }
}
