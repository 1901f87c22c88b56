//! The pod mutating webhook: an HTTPS server (`/mutate-v1-pod`, `/healthz`, `/readyz`,
//! `/metrics`) answering AdmissionReview v1 for pod CREATEs with the auto-instrumentation
//! and sidecar mutation of [`crate::inject`]. It never blocks a pod unless fail-closed mode
//! is configured; failures and skips show as Events on the pod's owner and in the metrics.
//!
//! ```ignore
//! let material = certs::ensure(&client, &cert_spec).await?;
//! let tls = certs::CertResolver::new(&material)?;
//! tokio::spawn(certs::rotate_loop(client.clone(), cert_spec, tls.clone(), certs::CHECK_INTERVAL, stop.clone()));
//! webhook::serve(WebhookConfig::default().ignoring(&operator_ns), tls, Cluster::Api(client), stop).await?;
//! ```

pub mod admission;
mod cluster;
pub mod context;
pub mod events;
pub mod metrics;
pub mod server;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
pub(crate) mod fake_api;
#[cfg(test)]
mod tests;

pub use cluster::ApiCluster;
pub use context::{ClusterView, ContextError, Owner, StaticCluster};
pub use metrics::Metrics;

use crate::certs::CertResolver;
use crate::inject::InjectConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The webhook's settings.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Where to listen (default `0.0.0.0:9443`, upstream's container port).
    pub listen: SocketAddr,
    /// Pods in these namespaces are admitted unchanged without looking further (default
    /// `kube-system`; add the operator's own namespace with [`WebhookConfig::ignoring`]).
    pub ignored_namespaces: Vec<String>,
    /// Deny pods whose mutation failed instead of admitting them unchanged.
    pub fail_closed: bool,
    pub inject: InjectConfig,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9443)),
            ignored_namespaces: vec!["kube-system".to_string()],
            fail_closed: false,
            inject: InjectConfig::default(),
        }
    }
}

impl WebhookConfig {
    /// Also ignores `namespace` (typically the operator's own).
    pub fn ignoring(mut self, namespace: &str) -> Self {
        if !self.ignored_namespaces.iter().any(|n| n == namespace) {
            self.ignored_namespaces.push(namespace.to_string());
        }
        self
    }
}

/// Where the webhook learns about the cluster.
pub enum Cluster {
    /// The Kubernetes API (watches Instrumentations and collectors, reads Namespaces and
    /// owners, publishes Events).
    Api(kube::Client),
    /// Fixed lists (tests, runs without a cluster).
    Static(StaticCluster),
    /// Any other view.
    View(Arc<dyn ClusterView>),
}

/// Webhook server errors.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook listener on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] crate::certs::CertError),
    #[error("webhook server: {0}")]
    Serve(#[source] std::io::Error),
}

/// A bound, not yet serving, webhook server.
pub struct Webhook {
    listener: server::TlsListener,
    router: axum::Router,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
}

impl Webhook {
    /// Binds `cfg.listen` (port 0 picks a free port) and prepares the routes.
    pub async fn bind(
        cfg: WebhookConfig,
        tls: Arc<CertResolver>,
        cluster: Cluster,
        stop: CancellationToken,
    ) -> Result<Self, WebhookError> {
        let view: Arc<dyn ClusterView> = match cluster {
            Cluster::Api(client) => ApiCluster::start(client, &stop),
            Cluster::Static(s) => Arc::new(s),
            Cluster::View(v) => v,
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls.server_config()?));
        let addr = cfg.listen;
        let listener = server::TlsListener::bind(addr, acceptor, stop.clone())
            .await
            .map_err(|source| WebhookError::Bind { addr, source })?;
        let metrics = Arc::new(Metrics::default());
        let handler = Arc::new(admission::Handler {
            cfg,
            view,
            metrics: metrics.clone(),
        });
        Ok(Self {
            listener,
            router: server::router(handler),
            metrics,
            stop,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        use axum::serve::Listener;
        self.listener
            .local_addr()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The server's counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Serves until the stop token is cancelled.
    pub async fn run(self) -> Result<(), WebhookError> {
        tracing::info!(addr = %self.local_addr(), "pod webhook listening (HTTPS)");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(self.stop.cancelled_owned())
            .await
            .map_err(WebhookError::Serve)
    }
}

/// Binds and serves the webhook until `stop`.
pub async fn serve(
    cfg: WebhookConfig,
    tls: Arc<CertResolver>,
    cluster: Cluster,
    stop: CancellationToken,
) -> Result<(), WebhookError> {
    Webhook::bind(cfg, tls, cluster, stop).await?.run().await
}
