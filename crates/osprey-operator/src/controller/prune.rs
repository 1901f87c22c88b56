//! Deleting what a CR owns but no longer wants: objects of the kinds the operator creates,
//! carrying its `managed-by` label and an owner reference to the CR, that are not in the
//! desired set. Old hashed ConfigMaps (`<name>-collector-<hash8>`) are kept for rollbacks like
//! upstream does: the newest [`CONFIG_VERSIONS`] of them stay besides the current one.

use super::apply::key;
use super::{ControllerError, MANAGED_BY, MANAGED_BY_LABEL};
use crate::crd::OpenTelemetryCollector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Preconditions,
};
use kube::Api;
use std::collections::BTreeSet;

/// Old config versions kept besides the current one (upstream's `configVersions` default).
pub const CONFIG_VERSIONS: usize = 3;

/// The kinds the reconciler creates, hence the kinds it prunes.
pub fn owned_kinds() -> Vec<ApiResource> {
    [
        ("apps", "v1", "Deployment"),
        ("apps", "v1", "DaemonSet"),
        ("apps", "v1", "StatefulSet"),
        ("", "v1", "Service"),
        ("", "v1", "ConfigMap"),
        ("", "v1", "ServiceAccount"),
        ("policy", "v1", "PodDisruptionBudget"),
    ]
    .iter()
    .map(|(g, v, k)| ApiResource::from_gvk(&GroupVersionKind::gvk(g, v, k)))
    .collect()
}

/// An object found in the cluster, with the resource it was listed from (list items do not
/// always carry their `kind`).
#[derive(Clone, Debug)]
pub struct Owned {
    pub resource: ApiResource,
    pub object: DynamicObject,
}

impl Owned {
    fn key(&self) -> (String, String) {
        (
            self.resource.kind.clone(),
            self.object.metadata.name.clone().unwrap_or_default(),
        )
    }
}

/// Of `owned` (already filtered to this CR), the objects to delete: everything not in
/// `desired` (`(kind, name)` pairs), except the `keep_configs` newest undesired ConfigMaps.
pub fn stale(
    owned: &[Owned],
    desired: &BTreeSet<(String, String)>,
    keep_configs: usize,
) -> Vec<Owned> {
    let mut out = Vec::new();
    let mut old_configs = Vec::new();
    for o in owned.iter().filter(|o| !desired.contains(&o.key())) {
        if o.resource.kind == "ConfigMap" {
            old_configs.push(o.clone());
        } else {
            out.push(o.clone());
        }
    }
    // Newest first; equal (or missing) timestamps fall back to the name, for determinism.
    old_configs.sort_by(|a, b| {
        let t = |o: &Owned| o.object.metadata.creation_timestamp.clone();
        t(b).cmp(&t(a)).then_with(|| a.key().cmp(&b.key()))
    });
    out.extend(old_configs.into_iter().skip(keep_configs));
    out
}

/// Whether `obj` is controlled by (or at least owned by) the CR with `uid`.
pub fn owned_by(obj: &DynamicObject, uid: &str) -> bool {
    obj.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid)
}

/// Lists the objects of [`owned_kinds`] in the CR's namespace that the CR owns.
pub async fn list_owned(
    client: &kube::Client,
    cr: &OpenTelemetryCollector,
    namespace: &str,
) -> Result<Vec<Owned>, ControllerError> {
    let Some(uid) = cr.metadata.uid.as_deref() else {
        return Ok(Vec::new());
    };
    let lp = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let mut out = Vec::new();
    for resource in owned_kinds() {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        for object in api.list(&lp).await?.items {
            if owned_by(&object, uid) {
                out.push(Owned {
                    resource: resource.clone(),
                    object,
                });
            }
        }
    }
    Ok(out)
}

/// Deletes the stale objects of `cr` given the desired objects; returns `Kind/name` of each
/// object deleted. An object already gone is not an error.
pub async fn prune(
    client: &kube::Client,
    cr: &OpenTelemetryCollector,
    namespace: &str,
    desired: &[DynamicObject],
) -> Result<Vec<String>, ControllerError> {
    let owned = list_owned(client, cr, namespace).await?;
    let desired: BTreeSet<_> = desired.iter().map(key).collect();
    let mut deleted = Vec::new();
    for o in stale(&owned, &desired, CONFIG_VERSIONS) {
        let (kind, name) = o.key();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &o.resource);
        // The uid precondition keeps a same-named object created meanwhile from being deleted.
        let dp = DeleteParams {
            preconditions: o.object.metadata.uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => {}
            // Gone already, or replaced by a new object of the same name (uid precondition).
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
        tracing::info!(%kind, %name, namespace, "deleted stale object");
        deleted.push(format!("{kind}/{name}"));
    }
    Ok(deleted)
}

/// A creation timestamp, for tests and callers building objects.
pub fn time(rfc3339: &str) -> Option<Time> {
    rfc3339.parse().ok().map(Time)
}
