//! The `jaeger` receiver (Collector-contrib `jaegerreceiver`): Jaeger clients and agents send
//! spans over gRPC (`jaeger.api_v2.CollectorService/PostSpans`), Thrift over HTTP
//! (`POST /api/traces`) and Thrift over UDP (the agent's `emitBatch`, compact on 6831, binary
//! on 6832). Each decoded batch is translated to OTLP ([`translate`]), sanitized and handed to
//! the next consumer; the client is acknowledged only once that consumer took it (UDP has no
//! acknowledgement: what cannot be decoded or taken is dropped and counted).
//!
//! [`start`] binds every configured protocol and serves until the cancellation token fires.

mod attrs;
pub mod config;
mod grpc;
mod http;
pub mod model;
pub mod proto;
pub mod thrift;
pub mod thrift_reader;
pub mod translate;
mod udp;

#[cfg(test)]
mod server_tests;
#[cfg(test)]
mod testutil;

pub use config::{GrpcConfig, JaegerConfig, Protocols, ThriftHttpConfig, UdpConfig};

use osprey_model::{sanitize_request, Limits, TraceRequest};
use osprey_pipeline::{Batch, ConfigError, ConsumeError, Context, SharedConsumer};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One of the receiver's four front ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Grpc,
    ThriftHttp,
    ThriftCompact,
    ThriftBinary,
}

impl Protocol {
    /// The config key (`protocols.<key>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::ThriftHttp => "thrift_http",
            Protocol::ThriftCompact => "thrift_compact",
            Protocol::ThriftBinary => "thrift_binary",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JaegerError {
    #[error("jaeger receiver: {0}")]
    Config(#[from] ConfigError),
    #[error("jaeger receiver: cannot bind {protocol} on {addr}: {source}")]
    Bind {
        protocol: Protocol,
        addr: String,
        source: std::io::Error,
    },
}

/// Counters shared by the four front ends.
#[derive(Debug, Default)]
pub struct JaegerStats {
    /// Batches decoded (any protocol).
    pub batches: AtomicU64,
    /// Spans handed on.
    pub spans_accepted: AtomicU64,
    /// Spans removed by sanitizing (bad ids, no start time).
    pub spans_rejected: AtomicU64,
    /// Batches the next consumer refused.
    pub batches_refused: AtomicU64,
    /// Bodies, messages or datagrams that could not be decoded.
    pub decode_errors: AtomicU64,
    /// UDP datagrams dropped because the queue was full.
    pub udp_queue_full: AtomicU64,
}

/// The running receiver: where each protocol listens, and its tasks.
pub struct JaegerServers {
    pub addrs: Vec<(Protocol, SocketAddr)>,
    pub handles: Vec<JoinHandle<()>>,
    pub stats: Arc<JaegerStats>,
}

impl JaegerServers {
    pub fn addr(&self, protocol: Protocol) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(p, _)| *p == protocol)
            .map(|(_, a)| *a)
    }
}

/// The protocol-neutral part: sanitize, hand on, count.
#[derive(Clone)]
pub(crate) struct Ingest {
    consumer: SharedConsumer,
    stats: Arc<JaegerStats>,
}

impl Ingest {
    /// Sanitizes `request` and passes it on; `Ok(n)` with the number of spans handed on
    /// (0 when nothing survived sanitizing, in which case the consumer is not called).
    pub async fn ingest(
        &self,
        mut request: TraceRequest,
        context: Context,
    ) -> Result<u64, ConsumeError> {
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        let report = sanitize_request(&mut request, &Limits::default());
        self.stats
            .spans_rejected
            .fetch_add(report.rejected, Ordering::Relaxed);
        if report.accepted == 0 {
            return Ok(0);
        }
        let mut batch = Batch::traces(request);
        batch.context = Arc::new(context);
        match self.consumer.consume(batch).await {
            Ok(()) => {
                self.stats
                    .spans_accepted
                    .fetch_add(report.accepted, Ordering::Relaxed);
                Ok(report.accepted)
            }
            Err(e) => {
                self.stats.batches_refused.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    pub fn decode_error(&self) -> u64 {
        self.stats.decode_errors.fetch_add(1, Ordering::Relaxed) + 1
    }
}

fn resolve(protocol: Protocol, endpoint: &str) -> Result<SocketAddr, JaegerError> {
    osprey_pipeline::bind_addr(endpoint).map_err(|e| {
        JaegerError::Config(ConfigError::new(
            format!("protocols.{protocol}.endpoint"),
            e,
        ))
    })
}

async fn bind_tcp(
    protocol: Protocol,
    endpoint: &str,
) -> Result<(tokio::net::TcpListener, SocketAddr), JaegerError> {
    let addr = resolve(protocol, endpoint)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_error(protocol, addr))?;
    let local = listener.local_addr().map_err(bind_error(protocol, addr))?;
    Ok((listener, local))
}

fn bind_error(protocol: Protocol, addr: SocketAddr) -> impl FnOnce(std::io::Error) -> JaegerError {
    move |source| JaegerError::Bind {
        protocol,
        addr: addr.to_string(),
        source,
    }
}

/// Binds every configured protocol (the first failure is returned and nothing is left
/// running), then serves until `shutdown` is cancelled. Endpoints with port 0 bind an
/// ephemeral port; [`JaegerServers::addrs`] tells which.
pub async fn start(
    config: &JaegerConfig,
    consumer: SharedConsumer,
    shutdown: CancellationToken,
) -> Result<JaegerServers, JaegerError> {
    let p = &config.protocols;
    if p.is_empty() {
        return Err(ConfigError::new("protocols", "must specify at least one protocol").into());
    }
    if config.remote_sampling.is_some() {
        tracing::warn!(
            "jaeger receiver: `remote_sampling` is deprecated and does nothing; \
             use a jaegerremotesampling extension instead"
        );
    }
    let stats = Arc::new(JaegerStats::default());
    let ingest = Ingest {
        consumer,
        stats: Arc::clone(&stats),
    };

    // Bind everything first, so that a failure leaves nothing behind.
    let grpc = match &p.grpc {
        Some(g) => Some((g.clone(), bind_tcp(Protocol::Grpc, g.endpoint()).await?)),
        None => None,
    };
    let http = match &p.thrift_http {
        Some(h) => Some((
            h.clone(),
            bind_tcp(Protocol::ThriftHttp, h.endpoint()).await?,
        )),
        None => None,
    };
    let mut udps = Vec::new();
    for (protocol, cfg, default) in [
        (
            Protocol::ThriftCompact,
            &p.thrift_compact,
            config::DEFAULT_THRIFT_COMPACT_ENDPOINT,
        ),
        (
            Protocol::ThriftBinary,
            &p.thrift_binary,
            config::DEFAULT_THRIFT_BINARY_ENDPOINT,
        ),
    ] {
        let Some(u) = cfg else { continue };
        let addr = resolve(protocol, u.endpoint_or(default))?;
        let socket = udp::bind(addr, u.socket_buffer_size).map_err(bind_error(protocol, addr))?;
        let local = socket.local_addr().map_err(bind_error(protocol, addr))?;
        udps.push((protocol, u.clone(), socket, local));
    }

    let mut servers = JaegerServers {
        addrs: Vec::new(),
        handles: Vec::new(),
        stats,
    };
    if let Some((cfg, (listener, addr))) = grpc {
        tracing::info!(%addr, "jaeger receiver: gRPC (api_v2 PostSpans) listening");
        servers.addrs.push((Protocol::Grpc, addr));
        let task = grpc::spawn(listener, &cfg, ingest.clone(), shutdown.clone());
        servers.handles.push(task);
    }
    if let Some((cfg, (listener, addr))) = http {
        tracing::info!(%addr, "jaeger receiver: Thrift HTTP (POST /api/traces) listening");
        servers.addrs.push((Protocol::ThriftHttp, addr));
        let task = http::spawn(listener, &cfg, ingest.clone(), shutdown.clone());
        servers.handles.push(task);
    }
    for (protocol, cfg, socket, addr) in udps {
        tracing::info!(%addr, "jaeger receiver: {protocol} (UDP agent emitBatch) listening");
        servers.addrs.push((protocol, addr));
        let tasks = udp::spawn(protocol, socket, &cfg, ingest.clone(), shutdown.clone());
        servers.handles.extend(tasks);
    }
    Ok(servers)
}
