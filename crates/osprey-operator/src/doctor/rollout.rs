//! The cluster side of the doctor: reading pods, namespaces, Instrumentations and collectors,
//! and restarting workloads the way `kubectl rollout restart` does (a `restartedAt` pod
//! template annotation, so the workload's own rollout strategy applies).

use super::{diagnose, DoctorError, Finding, WorkloadKind, WorkloadRef};
use crate::crd::{Instrumentation, OpenTelemetryCollector};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fmt::Debug;

/// The annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// The workload owning `pod`. A pod owned by ReplicaSet `<d>-<pod-template-hash>` belongs to
/// Deployment `<d>` (the name rule the Deployment controller uses).
pub fn workload_of(pod: &Pod) -> Option<WorkloadRef> {
    let owners = pod.metadata.owner_references.as_deref().unwrap_or_default();
    let owner = owners
        .iter()
        .find(|o| o.controller == Some(true))
        .or(owners.first())?;
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let hash = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"));
    let (kind, name) = match owner.kind.as_str() {
        "ReplicaSet" => match hash.and_then(|h| owner.name.strip_suffix(&format!("-{h}"))) {
            Some(d) if !d.is_empty() => (WorkloadKind::Deployment, d.to_string()),
            _ => (WorkloadKind::ReplicaSet, owner.name.clone()),
        },
        "StatefulSet" => (WorkloadKind::StatefulSet, owner.name.clone()),
        "DaemonSet" => (WorkloadKind::DaemonSet, owner.name.clone()),
        "Job" => (WorkloadKind::Job, owner.name.clone()),
        other => (WorkloadKind::Other(other.to_string()), owner.name.clone()),
    };
    Some(WorkloadRef {
        kind,
        namespace,
        name,
    })
}

/// The distinct workloads whose restart fixes a finding (Deployments, StatefulSets and
/// DaemonSets of pods that are not instrumented or stale), sorted.
pub fn restart_targets(findings: &[Finding]) -> Vec<WorkloadRef> {
    let set: BTreeSet<_> = findings
        .iter()
        .filter(|f| f.problem.fixed_by_restart())
        .filter_map(|f| f.workload.clone())
        .filter(WorkloadRef::restartable)
        .collect();
    set.into_iter().collect()
}

/// The strategic-merge patch that restarts a workload, stamped `at` (RFC 3339).
pub fn rollout_patch_at(at: &str) -> Value {
    json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}}})
}

/// [`rollout_patch_at`] now (whole seconds, as kubectl writes it).
pub fn rollout_patch() -> Value {
    let now = Timestamp::now();
    let at = Timestamp::from_second(now.as_second()).unwrap_or(now);
    rollout_patch_at(&at.to_string())
}

/// Restarts the workloads of `findings` ([`restart_targets`]); returns them as
/// `kind/namespace/name`. A workload that no longer exists is skipped.
pub async fn rollout(
    client: &kube::Client,
    findings: &[Finding],
) -> Result<Vec<String>, DoctorError> {
    let patch = rollout_patch();
    let mut done = Vec::new();
    for w in restart_targets(findings) {
        let res = match w.kind {
            WorkloadKind::Deployment => restart::<Deployment>(client, &w, &patch).await,
            WorkloadKind::StatefulSet => restart::<StatefulSet>(client, &w, &patch).await,
            WorkloadKind::DaemonSet => restart::<DaemonSet>(client, &w, &patch).await,
            _ => continue,
        };
        let label = format!("{}/{}/{}", w.kind.as_str(), w.namespace, w.name);
        match res {
            Ok(()) => {
                tracing::info!(workload = %label, "restarted");
                done.push(label);
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                tracing::warn!(workload = %label, "gone; not restarted");
            }
            Err(source) => {
                return Err(DoctorError::Restart {
                    workload: label,
                    source,
                })
            }
        }
    }
    Ok(done)
}

async fn restart<K>(
    client: &kube::Client,
    w: &WorkloadRef,
    patch: &Value,
) -> Result<(), kube::Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &w.namespace);
    api.patch(&w.name, &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    Ok(())
}

/// A client for the current kube context (kubeconfig or in-cluster).
pub async fn connect() -> Result<kube::Client, DoctorError> {
    Ok(kube::Client::try_default().await?)
}

/// Reads what [`diagnose`] needs (pods of `namespace`, or of every namespace) and diagnoses.
/// Instrumentations and collectors are read from every namespace (annotations may name
/// `ns/name`), falling back to `namespace` when listing cluster-wide is forbidden; a CRD that
/// is not installed counts as no objects.
pub async fn collect(
    client: &kube::Client,
    namespace: Option<&str>,
) -> Result<Vec<Finding>, DoctorError> {
    let lp = ListParams::default();
    let (pods, namespaces): (Vec<Pod>, Vec<Namespace>) = match namespace {
        Some(ns) => {
            let pods = Api::<Pod>::namespaced(client.clone(), ns)
                .list(&lp)
                .await?
                .items;
            let namespace = Api::<Namespace>::all(client.clone()).get_opt(ns).await?;
            (pods, namespace.into_iter().collect())
        }
        None => (
            Api::<Pod>::all(client.clone()).list(&lp).await?.items,
            Api::<Namespace>::all(client.clone()).list(&lp).await?.items,
        ),
    };
    let instrumentations: Vec<Instrumentation> = list_custom(client, namespace).await?;
    let collectors: Vec<OpenTelemetryCollector> = list_custom(client, namespace).await?;
    Ok(diagnose(&pods, &namespaces, &instrumentations, &collectors))
}

async fn list_custom<K>(
    client: &kube::Client,
    namespace: Option<&str>,
) -> Result<Vec<K>, DoctorError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let lp = ListParams::default();
    let absent = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 404);
    match Api::<K>::all(client.clone()).list(&lp).await {
        Ok(l) => Ok(l.items),
        Err(e) if absent(&e) => Ok(Vec::new()),
        Err(kube::Error::Api(s)) if s.code == 403 && namespace.is_some() => {
            let ns = namespace.unwrap_or_default();
            match Api::<K>::namespaced(client.clone(), ns).list(&lp).await {
                Ok(l) => Ok(l.items),
                Err(e) if absent(&e) => Ok(Vec::new()),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}
