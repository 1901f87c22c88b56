//! The `k8sattributes` processor: adds Kubernetes pod metadata (namespace, pod name/uid/start
//! time, owning deployment/statefulset/daemonset/job, node, containers, selected labels and
//! annotations) to the resource of every span, metric and log, finding the pod by the
//! `pod_association` rules (resource attributes, or the client's IP address).
//!
//! The pure core is [`PodIndex`] (pods from `k8s_openapi` objects, by identifier) and
//! [`enrich_traces`] / [`enrich_metrics`] / [`enrich_logs`]; [`watch`] keeps an index current
//! from the API server with kube-rs watchers; [`K8sAttributesProcessor`] ties them together.
//!
//! `auth_type`: `serviceAccount` (default, in-cluster), `kubeConfig` (local kubeconfig,
//! `context` selects the context) or `none` (the in-cluster API address without credentials
//! or certificate checks, as upstream: for tests and credential-adding proxies). With
//! `passthrough: true` no client is made at all. The processor must be built inside a tokio
//! runtime; `wait_for_metadata: true` needs a multi-threaded one.

pub mod client;
pub mod config;
pub mod enrich;
pub mod index;
pub mod pod;
pub mod rules;
pub mod watch;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod pod_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod watch_tests;

pub use config::{AuthType, K8sAttributesConfig};
pub use enrich::{enrich_logs, enrich_metrics, enrich_payload, enrich_resource, enrich_traces};
pub use index::{PodIndex, SharedIndex};
pub use pod::PodInfo;
pub use rules::Rules;

use osprey_pipeline::{Batch, ConfigError, ConsumeError, Consumer, SharedConsumer};
use std::sync::{Arc, PoisonError, RwLock};
use watch::K8sWatch;

/// The `k8sattributes` processor.
pub struct K8sAttributesProcessor {
    rules: Arc<Rules>,
    index: SharedIndex,
    /// Keeps the watchers running (none in passthrough mode).
    watch: Option<Arc<K8sWatch>>,
    next: SharedConsumer,
}

impl K8sAttributesProcessor {
    /// Builds the processor: connects to the API server per `auth_type` (unless
    /// `passthrough`) and starts watching, sharing the watch with other processors built from
    /// the same config. Fails when no client can be made, or when `wait_for_metadata` is set
    /// and the first pod list does not complete within `wait_for_metadata_timeout`.
    pub fn new(config: K8sAttributesConfig, next: SharedConsumer) -> Result<Self, ConfigError> {
        config.validate()?;
        let rules = Arc::new(Rules::compile(&config)?);
        if rules.passthrough {
            return Ok(Self::passthrough(rules, next));
        }
        let watch = watch::shared_watch(&config, rules.clone())?;
        Self::finish(&config, rules, watch, next)
    }

    /// Like [`new`](Self::new) with a given client (a test double, or a client the embedding
    /// program made); the watch is not shared.
    pub fn with_client(
        config: K8sAttributesConfig,
        client: kube::Client,
        next: SharedConsumer,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let rules = Arc::new(Rules::compile(&config)?);
        if rules.passthrough {
            return Ok(Self::passthrough(rules, next));
        }
        let watch = Arc::new(watch::start(client, &config, rules.clone()));
        Self::finish(&config, rules, watch, next)
    }

    fn passthrough(rules: Arc<Rules>, next: SharedConsumer) -> Self {
        let index = Arc::new(RwLock::new(PodIndex::new(rules.clone())));
        K8sAttributesProcessor {
            rules,
            index,
            watch: None,
            next,
        }
    }

    fn finish(
        config: &K8sAttributesConfig,
        rules: Arc<Rules>,
        watch: Arc<K8sWatch>,
        next: SharedConsumer,
    ) -> Result<Self, ConfigError> {
        if config.wait_for_metadata && !watch.is_synced() {
            wait_synced(&watch, config)?;
        }
        Ok(K8sAttributesProcessor {
            rules,
            index: watch.index().clone(),
            watch: Some(watch),
            next,
        })
    }

    /// The index enrichment reads.
    pub fn index(&self) -> &SharedIndex {
        &self.index
    }

    /// Whether the watchers have completed their first list (always true in passthrough).
    pub fn is_synced(&self) -> bool {
        self.watch.as_ref().is_none_or(|w| w.is_synced())
    }
}

/// Blocks (moving the current worker off the runtime) until the first lists complete.
fn wait_synced(watch: &K8sWatch, config: &K8sAttributesConfig) -> Result<(), ConfigError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let handle = Handle::try_current()
        .map_err(|_| ConfigError::new("wait_for_metadata", "needs a tokio runtime"))?;
    if handle.runtime_flavor() != RuntimeFlavor::MultiThread {
        return Err(ConfigError::new(
            "wait_for_metadata",
            "waiting for metadata at start-up needs a multi-threaded tokio runtime",
        ));
    }
    let timeout = config.wait_for_metadata_timeout;
    let synced = tokio::task::block_in_place(|| handle.block_on(watch.wait_synced(timeout)));
    if synced {
        Ok(())
    } else {
        Err(ConfigError::new(
            "wait_for_metadata_timeout",
            format!("failed to wait for caches to sync: the pod list did not complete within {timeout:?}"),
        ))
    }
}

#[async_trait::async_trait]
impl Consumer for K8sAttributesProcessor {
    fn has_room(&self) -> bool {
        self.next.has_room()
    }

    async fn consume(&self, mut batch: Batch) -> Result<(), ConsumeError> {
        let ctx = batch.context.clone();
        let payload = batch.payload_mut()?;
        {
            let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
            enrich_payload(payload, &ctx, &index, &self.rules);
        }
        self.next.consume(batch).await
    }
}
