//! The `otlp` receiver's Collector config (`protocols.grpc` / `protocols.http`) and its start-up
//! on top of `osprey-receivers`' OTLP front ends (the same code `osprey up` serves).

use osprey_pipeline::{bind_addr, ConfigError, SharedConsumer};
use osprey_receivers::otlp::{self, OtlpConfig, TraceIngest};
use serde_yaml::Value;
use std::net::SocketAddr;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    #[serde(default)]
    pub protocols: Protocols,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    /// `Some(Null)` for `grpc:` with an empty body.
    #[serde(default, deserialize_with = "present")]
    pub grpc: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub http: Option<Value>,
}

/// Keeps "key present with an empty body" apart from "key absent".
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    <Value as serde::Deserialize>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcSettings {
    pub endpoint: String,
    pub transport: String,
    pub max_recv_msg_size_mib: u64,
    pub max_concurrent_streams: u32,
    pub read_buffer_size: u64,
    pub write_buffer_size: u64,
    pub include_metadata: bool,
    pub keepalive: Value,
    pub auth: Value,
    pub tls: Value,
}

impl Default for GrpcSettings {
    fn default() -> Self {
        GrpcSettings {
            endpoint: "localhost:4317".into(),
            transport: "tcp".into(),
            max_recv_msg_size_mib: 4,
            max_concurrent_streams: 0,
            read_buffer_size: 0,
            write_buffer_size: 0,
            include_metadata: false,
            keepalive: Value::Null,
            auth: Value::Null,
            tls: Value::Null,
        }
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    pub endpoint: String,
    pub traces_url_path: String,
    pub metrics_url_path: String,
    pub logs_url_path: String,
    pub max_request_body_size: usize,
    pub include_metadata: bool,
    pub cors: Value,
    pub auth: Value,
    pub tls: Value,
    pub compression_algorithms: Value,
    pub response_headers: Value,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            endpoint: "localhost:4318".into(),
            traces_url_path: "/v1/traces".into(),
            metrics_url_path: "/v1/metrics".into(),
            logs_url_path: "/v1/logs".into(),
            max_request_body_size: 20 << 20,
            include_metadata: false,
            cors: Value::Null,
            auth: Value::Null,
            tls: Value::Null,
            compression_algorithms: Value::Null,
            response_headers: Value::Null,
        }
    }
}

/// The parsed, checked settings.
pub struct Settings {
    pub grpc: Option<(GrpcSettings, SocketAddr)>,
    pub http: Option<(HttpSettings, SocketAddr)>,
}

pub fn parse(body: &Value) -> Result<Settings, ConfigError> {
    let cfg: OtlpReceiverConfig = osprey_pipeline::decode_config(body)?;
    let grpc = match &cfg.protocols.grpc {
        None => None,
        Some(v) => {
            let g: GrpcSettings =
                osprey_pipeline::decode_config(v).map_err(|e| e.under("protocols.grpc"))?;
            if !g.tls.is_null() {
                return Err(ConfigError::new("protocols.grpc.tls", "TLS on receivers is not supported yet; terminate TLS in front of the collector"));
            }
            if g.transport != "tcp" {
                return Err(ConfigError::new(
                    "protocols.grpc.transport",
                    "only tcp is supported",
                ));
            }
            let addr = bind_addr(&g.endpoint)
                .map_err(|m| ConfigError::new("protocols.grpc.endpoint", m))?;
            Some((g, addr))
        }
    };
    let http = match &cfg.protocols.http {
        None => None,
        Some(v) => {
            let h: HttpSettings =
                osprey_pipeline::decode_config(v).map_err(|e| e.under("protocols.http"))?;
            if !h.tls.is_null() {
                return Err(ConfigError::new("protocols.http.tls", "TLS on receivers is not supported yet; terminate TLS in front of the collector"));
            }
            for (key, p) in [
                ("traces_url_path", &h.traces_url_path),
                ("metrics_url_path", &h.metrics_url_path),
                ("logs_url_path", &h.logs_url_path),
            ] {
                if !p.starts_with('/') {
                    return Err(ConfigError::new(
                        format!("protocols.http.{key}"),
                        "must start with /",
                    ));
                }
            }
            let addr = bind_addr(&h.endpoint)
                .map_err(|m| ConfigError::new("protocols.http.endpoint", m))?;
            Some((h, addr))
        }
    };
    if grpc.is_none() && http.is_none() {
        return Err(ConfigError::new(
            "protocols",
            "must specify at least one protocol when using the OTLP receiver",
        ));
    }
    Ok(Settings { grpc, http })
}

/// Binds and serves; bind failures are returned at once.
pub async fn start(
    name: &str,
    settings: Settings,
    traces: Option<SharedConsumer>,
    metrics: Option<SharedConsumer>,
    logs: Option<SharedConsumer>,
    stop: CancellationToken,
    bound: &mut Vec<(String, SocketAddr)>,
) -> Result<Vec<JoinHandle<()>>, String> {
    let mut tasks = vec![];
    if let Some((g, addr)) = settings.grpc {
        let cfg = OtlpConfig {
            max_request_bytes: (g.max_recv_msg_size_mib.max(1) << 20) as usize,
            ..Default::default()
        };
        let ingest = TraceIngest::with_signals(traces.clone(), metrics.clone(), logs.clone(), cfg);
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("receiver {name}: cannot listen for gRPC on {addr}: {e}"))?;
        bound.push((format!("{name} grpc"), l.local_addr().unwrap_or(addr)));
        let s = stop.clone();
        let label = name.to_string();
        tasks.push(tokio::spawn(async move {
            if let Err(e) =
                otlp::grpc::serve_listener(l, ingest, async move { s.cancelled().await }).await
            {
                tracing::error!(receiver = %label, error = %e, "OTLP gRPC server failed");
            }
        }));
    }
    if let Some((h, addr)) = settings.http {
        let cfg = OtlpConfig {
            max_request_bytes: h.max_request_body_size.max(1),
            ..Default::default()
        };
        let ingest = TraceIngest::with_signals(traces, metrics, logs, cfg);
        let paths = otlp::http::Paths {
            traces: h.traces_url_path,
            metrics: h.metrics_url_path,
            logs: h.logs_url_path,
        };
        let app = otlp::http::router_with_paths(ingest, &paths);
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("receiver {name}: cannot listen for HTTP on {addr}: {e}"))?;
        bound.push((format!("{name} http"), l.local_addr().unwrap_or(addr)));
        let s = stop.clone();
        let label = name.to_string();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(l, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
            {
                tracing::error!(receiver = %label, error = %e, "OTLP HTTP server failed");
            }
        }));
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_protocol_bodies_mean_defaults() {
        let v: Value = serde_yaml::from_str("protocols:\n  grpc:\n  http:\n").unwrap();
        let s = parse(&v).unwrap();
        assert_eq!(s.grpc.unwrap().1.port(), 4317);
        assert_eq!(s.http.unwrap().1.port(), 4318);
        let v: Value =
            serde_yaml::from_str("protocols:\n  grpc:\n    endpoint: 0.0.0.0:5317\n").unwrap();
        let s = parse(&v).unwrap();
        assert!(s.http.is_none());
        assert_eq!(s.grpc.unwrap().1.to_string(), "0.0.0.0:5317");
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse(&Value::Null).err().unwrap();
        assert_eq!(e.path, "protocols");
        let v: Value =
            serde_yaml::from_str("protocols:\n  grpc:\n    endpoint: nowhere\n").unwrap();
        assert_eq!(parse(&v).err().unwrap().path, "protocols.grpc.endpoint");
        let v: Value = serde_yaml::from_str("protocols:\n  http:\n    endpont: x\n").unwrap();
        let e = parse(&v).err().unwrap();
        assert!(e.path.starts_with("protocols.http"), "{e}");
        let v: Value = serde_yaml::from_str("protocols:\n  thrift:\n").unwrap();
        assert!(parse(&v).err().unwrap().message.contains("thrift"));
    }
}
