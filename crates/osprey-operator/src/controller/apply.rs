//! Server-side apply of generated objects, one request per object.

use super::ControllerError;
use crate::crd::OpenTelemetryCollector;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Resource};

/// The API resource (group, version, plural) of a generated object.
pub fn api_resource(obj: &DynamicObject) -> Result<ApiResource, ControllerError> {
    let types = obj
        .types
        .as_ref()
        .ok_or_else(|| ControllerError::BadObject("object without apiVersion/kind".into()))?;
    let gvk = GroupVersionKind::try_from(types)
        .map_err(|e| ControllerError::BadObject(format!("{}: {e}", types.api_version)))?;
    Ok(ApiResource::from_gvk(&gvk))
}

/// `Kind/name`, for logs, errors and the desired set.
pub fn key(obj: &DynamicObject) -> (String, String) {
    let kind = obj
        .types
        .as_ref()
        .map(|t| t.kind.clone())
        .unwrap_or_default();
    (kind, obj.metadata.name.clone().unwrap_or_default())
}

/// Puts `obj` in the CR's namespace and makes the CR its controller owner (unless the planner
/// already did), so deleting the CR garbage-collects it.
pub fn adopt(obj: &mut DynamicObject, cr: &OpenTelemetryCollector, namespace: &str) {
    obj.metadata.namespace = Some(namespace.to_string());
    let uid = cr.metadata.uid.clone();
    let owners = obj.metadata.owner_references.get_or_insert_with(Vec::new);
    if uid.is_some() && owners.iter().any(|o| Some(&o.uid) == uid.as_ref()) {
        return;
    }
    if let Some(owner) = cr.controller_owner_ref(&()) {
        owners.push(owner);
    }
}

/// Applies `obj` (forced, so the operator wins conflicts over the fields it sets) and returns
/// the object as the API server has it now.
pub async fn apply(
    client: &kube::Client,
    field_manager: &str,
    obj: &DynamicObject,
) -> Result<DynamicObject, ControllerError> {
    let ar = api_resource(obj)?;
    let (kind, name) = key(obj);
    let ns = obj
        .metadata
        .namespace
        .as_deref()
        .ok_or_else(|| ControllerError::NoNamespace(format!("{kind}/{name}")))?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let params = PatchParams::apply(field_manager).force();
    let applied = api.patch(&name, &params, &Patch::Apply(obj)).await?;
    tracing::debug!(%kind, %name, namespace = ns, "applied");
    Ok(applied)
}
