//! The `zipkin` receiver (upstream: opentelemetry-collector-contrib `receiver/zipkinreceiver`):
//! Zipkin v2 JSON and protobuf on `POST /api/v2/spans`, Zipkin v1 JSON on `POST /api/v1/spans`,
//! translated to OTLP as the Collector's Zipkin translator does, sanitized, and handed to the
//! next consumer; the client gets 202 only once that consumer took the spans.
//!
//! - [`config`]: the YAML config (`endpoint`, `parse_string_tags`, `confighttp` keys).
//! - [`http`]: routes, status codes, CORS.
//! - [`body`]: content types and decompression.
//! - [`json`], [`proto`], [`v1`]: the wire formats, decoded into [`model`].
//! - [`translate`] and [`attrs`]: the Zipkin model to OTLP.

pub mod attrs;
pub mod body;
pub mod config;
pub mod http;
pub mod json;
pub mod model;
pub mod proto;
pub mod translate;
pub mod v1;

pub use config::{CorsConfig, HttpServerSettings, ZipkinConfig, ZipkinProtocols};
pub use http::router;

use osprey_pipeline::SharedConsumer;
use std::net::SocketAddr;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why the receiver could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ZipkinError {
    #[error("zipkin receiver: invalid config: {0}")]
    Config(#[from] osprey_pipeline::ConfigError),
    #[error("zipkin receiver: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("zipkin receiver on {addr}: server error: {source}")]
    Serve {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running receiver.
#[derive(Debug)]
pub struct ZipkinServer {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    /// Finishes once the shutdown token is cancelled and in-flight requests are answered.
    pub handle: JoinHandle<Result<(), ZipkinError>>,
}

/// Validates `config`, binds its endpoint and serves until `shutdown` is cancelled.
pub async fn start(
    config: &ZipkinConfig,
    consumer: SharedConsumer,
    shutdown: CancellationToken,
) -> Result<ZipkinServer, ZipkinError> {
    config.validate()?;
    let settings = config.server();
    let wanted = osprey_pipeline::bind_addr(&settings.endpoint)
        .map_err(|m| osprey_pipeline::ConfigError::new("endpoint", m))?;
    let listener = tokio::net::TcpListener::bind(wanted)
        .await
        .map_err(|source| ZipkinError::Bind {
            addr: wanted,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ZipkinError::Bind {
        addr: wanted,
        source,
    })?;
    let app = router(config, consumer).into_make_service_with_connect_info::<SocketAddr>();
    tracing::info!(%addr, "zipkin receiver listening");
    let handle = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(|source| ZipkinError::Serve { addr, source })
    });
    Ok(ZipkinServer { addr, handle })
}

#[cfg(test)]
mod fixtures;
