//! What the webhook needs to know about the cluster to mutate a pod: its Namespace, its owner
//! chain (ReplicaSet → Deployment, Job → CronJob), the known Instrumentations and collectors.
//! [`ClusterView`] abstracts where that comes from: the API (see `cluster.rs`) or fixed lists
//! ([`StaticCluster`], for tests and dry runs). Events go through the view too.

use super::events::WorkloadEvent;
use crate::crd::{Instrumentation, OpenTelemetryCollector};
use crate::inject::{PodContext, WorkloadRef};
use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::ObjectMeta;
use std::sync::{Arc, Mutex};

/// How far owner references are followed (pod → ReplicaSet → Deployment needs 2).
const MAX_OWNER_DEPTH: usize = 4;

/// One owner in a pod's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: Option<String>,
}

impl Owner {
    fn from_ref(r: &OwnerReference) -> Self {
        Self {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            uid: Some(r.uid.clone()).filter(|u| !u.is_empty()),
        }
    }

    pub fn workload_ref(&self) -> WorkloadRef {
        WorkloadRef {
            kind: self.kind.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
        }
    }
}

/// Failures while gathering the context (the pod is then admitted unchanged, or denied in
/// fail-closed mode).
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("reading {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("namespace {0} not found")]
    NamespaceNotFound(String),
    #[error("{0} are not synced from the API yet")]
    NotSynced(&'static str),
}

/// The cluster as the webhook sees it.
#[async_trait]
pub trait ClusterView: Send + Sync {
    async fn namespace(&self, name: &str) -> Result<Namespace, ContextError>;
    /// The owner references of a pod's owner (`ReplicaSet`, `Job`); `None` when the object
    /// does not exist or its kind is not followed.
    async fn owner_refs(
        &self,
        owner: &Owner,
        namespace: &str,
    ) -> Result<Option<Vec<OwnerReference>>, ContextError>;
    /// Every Instrumentation, all namespaces.
    async fn instrumentations(&self) -> Result<Vec<Instrumentation>, ContextError>;
    /// Every OpenTelemetryCollector, all namespaces.
    async fn collectors(&self) -> Result<Vec<OpenTelemetryCollector>, ContextError>;
    /// Whether the view is ready to answer (caches synced).
    fn ready(&self) -> bool;
    /// Publishes (or records) an Event.
    fn record(&self, event: WorkloadEvent);
}

/// The owner a list of references names: the controller, else the first.
pub fn controller_of(refs: Option<&[OwnerReference]>) -> Option<Owner> {
    let refs = refs?;
    refs.iter()
        .find(|r| r.controller == Some(true))
        .or(refs.first())
        .map(Owner::from_ref)
}

/// The pod's owner chain, nearest first: its controller, then (for a ReplicaSet or a Job) the
/// controller of that, and so on. An owner that no longer exists ends the chain.
pub async fn owner_chain(
    view: &dyn ClusterView,
    pod: &ObjectMeta,
    namespace: &str,
) -> Result<Vec<Owner>, ContextError> {
    let mut chain = Vec::new();
    let mut next = controller_of(pod.owner_references.as_deref());
    while let Some(owner) = next.take() {
        chain.push(owner.clone());
        if chain.len() >= MAX_OWNER_DEPTH || !matches!(owner.kind.as_str(), "ReplicaSet" | "Job") {
            break;
        }
        if let Some(refs) = view.owner_refs(&owner, namespace).await? {
            next = controller_of(Some(refs.as_slice()));
        }
    }
    Ok(chain)
}

/// Everything a mutation needs, owned; [`ContextData::pod_context`] borrows it.
#[derive(Clone, Debug)]
pub struct ContextData {
    pub namespace: Namespace,
    pub instrumentations: Vec<Instrumentation>,
    pub collectors: Vec<OpenTelemetryCollector>,
    pub owners: Vec<Owner>,
    refs: Vec<WorkloadRef>,
}

impl ContextData {
    pub fn new(
        namespace: Namespace,
        instrumentations: Vec<Instrumentation>,
        collectors: Vec<OpenTelemetryCollector>,
        owners: Vec<Owner>,
    ) -> Self {
        let refs = owners.iter().map(Owner::workload_ref).collect();
        Self {
            namespace,
            instrumentations,
            collectors,
            owners,
            refs,
        }
    }

    pub fn pod_context(&self) -> PodContext<'_> {
        PodContext {
            namespace: &self.namespace,
            instrumentations: &self.instrumentations,
            collectors: &self.collectors,
            owners: &self.refs,
        }
    }
}

/// Gathers the context for `pod` in `namespace` (already fetched). Collectors are only
/// read when `with_collectors` (a sidecar was asked for).
pub async fn gather(
    view: &dyn ClusterView,
    pod: &Pod,
    namespace: Namespace,
    with_collectors: bool,
) -> Result<ContextData, ContextError> {
    let ns = namespace.metadata.name.clone().unwrap_or_default();
    let owners = owner_chain(view, &pod.metadata, &ns).await?;
    let instrumentations = view.instrumentations().await?;
    let collectors = match with_collectors {
        true => view.collectors().await?,
        false => Vec::new(),
    };
    Ok(ContextData::new(
        namespace,
        instrumentations,
        collectors,
        owners,
    ))
}

/// A fixed cluster: for tests and for running the webhook without an API server. Unknown
/// namespaces are empty Namespaces of that name; events are kept in `events`.
#[derive(Clone, Debug, Default)]
pub struct StaticCluster {
    pub namespaces: Vec<Namespace>,
    pub instrumentations: Vec<Instrumentation>,
    pub collectors: Vec<OpenTelemetryCollector>,
    /// Objects pods are owned by (`ReplicaSet`s, `Job`s), by kind, with their metadata
    /// (name, namespace, ownerReferences).
    pub workloads: Vec<(String, ObjectMeta)>,
    /// Events recorded so far.
    pub events: Arc<Mutex<Vec<WorkloadEvent>>>,
}

#[async_trait]
impl ClusterView for StaticCluster {
    async fn namespace(&self, name: &str) -> Result<Namespace, ContextError> {
        let found = self
            .namespaces
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name));
        Ok(found.cloned().unwrap_or_else(|| Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
            ..Default::default()
        }))
    }

    async fn owner_refs(
        &self,
        owner: &Owner,
        namespace: &str,
    ) -> Result<Option<Vec<OwnerReference>>, ContextError> {
        Ok(self
            .workloads
            .iter()
            .find(|(kind, m)| {
                *kind == owner.kind
                    && m.name.as_deref() == Some(owner.name.as_str())
                    && m.namespace.as_deref().unwrap_or(namespace) == namespace
            })
            .map(|(_, m)| m.owner_references.clone().unwrap_or_default()))
    }

    async fn instrumentations(&self) -> Result<Vec<Instrumentation>, ContextError> {
        Ok(self.instrumentations.clone())
    }

    async fn collectors(&self) -> Result<Vec<OpenTelemetryCollector>, ContextError> {
        Ok(self.collectors.clone())
    }

    fn ready(&self) -> bool {
        true
    }

    fn record(&self, event: WorkloadEvent) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
    }
}
