//! The cluster read through the Kubernetes API: Namespaces and owners fetched per request
//! (metadata only for owners), Instrumentations and OpenTelemetryCollectors kept in
//! kube-runtime reflector stores watched across all namespaces, Events published with
//! kube-runtime's recorder.

use super::context::{ClusterView, ContextError, Owner};
use super::events::{EventSink, WorkloadEvent};
use crate::crd::{Instrumentation, OpenTelemetryCollector};
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a request waits for the Instrumentation/collector caches after start-up.
pub const SYNC_WAIT: Duration = Duration::from_secs(5);

/// The API-backed [`ClusterView`].
pub struct ApiCluster {
    client: Client,
    instrumentations: Store<Instrumentation>,
    collectors: Store<OpenTelemetryCollector>,
    events: EventSink,
    sync_wait: Duration,
}

/// Watches every `K` into a store until `stop`; watch errors are logged and retried with
/// backoff (e.g. while the CRD is not installed yet).
fn watch_all<K>(client: &Client, stop: &CancellationToken) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(Api::<K>::all(client.clone()), watcher::Config::default()).default_backoff(),
    );
    let stop = stop.clone();
    tokio::spawn(async move {
        let drive = stream.for_each(|ev| {
            if let Err(e) = ev {
                tracing::warn!(error = %e, kind = %K::kind(&()), "watch failed; retrying");
            }
            futures::future::ready(())
        });
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = drive => {}
        }
    });
    store
}

impl ApiCluster {
    /// Starts the watches (they end with `stop`).
    pub fn start(client: Client, stop: &CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            instrumentations: watch_all(&client, stop),
            collectors: watch_all(&client, stop),
            events: EventSink::new(client.clone()),
            client,
            sync_wait: SYNC_WAIT,
        })
    }

    async fn synced<K>(&self, store: &Store<K>, what: &'static str) -> Result<Vec<K>, ContextError>
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        match tokio::time::timeout(self.sync_wait, store.wait_until_ready()).await {
            Ok(Ok(())) => Ok(store.state().iter().map(|k| (**k).clone()).collect()),
            _ => Err(ContextError::NotSynced(what)),
        }
    }
}

fn api_err(what: String) -> impl FnOnce(kube::Error) -> ContextError {
    move |source| ContextError::Api { what, source }
}

#[async_trait]
impl ClusterView for ApiCluster {
    async fn namespace(&self, name: &str) -> Result<Namespace, ContextError> {
        Api::<Namespace>::all(self.client.clone())
            .get_opt(name)
            .await
            .map_err(api_err(format!("namespace {name}")))?
            .ok_or_else(|| ContextError::NamespaceNotFound(name.to_string()))
    }

    async fn owner_refs(
        &self,
        owner: &Owner,
        namespace: &str,
    ) -> Result<Option<Vec<OwnerReference>>, ContextError> {
        let what = format!("{} {namespace}/{}", owner.kind, owner.name);
        let meta = match owner.kind.as_str() {
            "ReplicaSet" => Api::<ReplicaSet>::namespaced(self.client.clone(), namespace)
                .get_metadata_opt(&owner.name)
                .await
                .map_err(api_err(what))?
                .map(|m| m.metadata),
            "Job" => Api::<Job>::namespaced(self.client.clone(), namespace)
                .get_metadata_opt(&owner.name)
                .await
                .map_err(api_err(what))?
                .map(|m| m.metadata),
            _ => None,
        };
        Ok(meta.map(|m| m.owner_references.unwrap_or_default()))
    }

    async fn instrumentations(&self) -> Result<Vec<Instrumentation>, ContextError> {
        self.synced(&self.instrumentations, "Instrumentations")
            .await
    }

    async fn collectors(&self) -> Result<Vec<OpenTelemetryCollector>, ContextError> {
        self.synced(&self.collectors, "OpenTelemetryCollectors")
            .await
    }

    fn ready(&self) -> bool {
        let ready = |f: Option<Result<(), _>>| matches!(f, Some(Ok(())));
        ready(self.instrumentations.wait_until_ready().now_or_never())
            && ready(self.collectors.wait_until_ready().now_or_never())
    }

    fn record(&self, event: WorkloadEvent) {
        self.events.publish(event);
    }
}
