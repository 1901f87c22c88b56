//! The typed objects a collector owns, with their kind, name and a `DynamicObject` form for
//! server-side apply, plus the conversion back from a `DynamicObject` read from the cluster.

use super::DesiredError;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Resource;
use kube::core::{ApiResource, DynamicObject};
use serde::Serialize;

/// One object owned by an `OpenTelemetryCollector`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ManagedObject {
    ConfigMap(ConfigMap),
    ServiceAccount(ServiceAccount),
    Service(Service),
    Deployment(Deployment),
    DaemonSet(DaemonSet),
    StatefulSet(StatefulSet),
    PodDisruptionBudget(PodDisruptionBudget),
}

macro_rules! each {
    ($self:expr, $o:ident => $body:expr) => {
        match $self {
            ManagedObject::ConfigMap($o) => $body,
            ManagedObject::ServiceAccount($o) => $body,
            ManagedObject::Service($o) => $body,
            ManagedObject::Deployment($o) => $body,
            ManagedObject::DaemonSet($o) => $body,
            ManagedObject::StatefulSet($o) => $body,
            ManagedObject::PodDisruptionBudget($o) => $body,
        }
    };
}

fn kind_of<K: Resource>(_: &K) -> &'static str {
    K::KIND
}
fn api_version_of<K: Resource>(_: &K) -> &'static str {
    K::API_VERSION
}
fn api_resource_of<K: Resource + kube::Resource<DynamicType = ()>>(_: &K) -> ApiResource {
    ApiResource::erase::<K>(&())
}

impl ManagedObject {
    /// `ConfigMap`, `Deployment`, ...
    pub fn kind(&self) -> &'static str {
        each!(self, o => kind_of(o))
    }

    /// `v1`, `apps/v1`, `policy/v1`.
    pub fn api_version(&self) -> &'static str {
        each!(self, o => api_version_of(o))
    }

    pub fn metadata(&self) -> &ObjectMeta {
        each!(self, o => &o.metadata)
    }

    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The API resource (group, version, plural), for `Api::<DynamicObject>`.
    pub fn api_resource(&self) -> ApiResource {
        each!(self, o => api_resource_of(o))
    }

    /// The object as a `DynamicObject` (apiVersion and kind set).
    pub fn to_dynamic(&self) -> Result<DynamicObject, DesiredError> {
        let value = serde_json::to_value(self).map_err(|e| self.error(e))?;
        serde_json::from_value(value).map_err(|e| self.error(e))
    }

    /// The typed object for a `DynamicObject` of one of the owned kinds (`None` for other kinds).
    pub fn from_dynamic(obj: &DynamicObject) -> Option<Result<ManagedObject, DesiredError>> {
        let kind = obj.types.as_ref()?.kind.as_str();
        let value = match serde_json::to_value(obj) {
            Ok(v) => v,
            Err(e) => return Some(Err(parse_error(kind, e))),
        };
        fn parse<K: serde::de::DeserializeOwned>(
            kind: &str,
            v: serde_json::Value,
            wrap: fn(K) -> ManagedObject,
        ) -> Option<Result<ManagedObject, DesiredError>> {
            Some(
                serde_json::from_value(v)
                    .map(wrap)
                    .map_err(|e| parse_error(kind, e)),
            )
        }
        match kind {
            "ConfigMap" => parse(kind, value, ManagedObject::ConfigMap),
            "ServiceAccount" => parse(kind, value, ManagedObject::ServiceAccount),
            "Service" => parse(kind, value, ManagedObject::Service),
            "Deployment" => parse(kind, value, ManagedObject::Deployment),
            "DaemonSet" => parse(kind, value, ManagedObject::DaemonSet),
            "StatefulSet" => parse(kind, value, ManagedObject::StatefulSet),
            "PodDisruptionBudget" => parse(kind, value, ManagedObject::PodDisruptionBudget),
            _ => None,
        }
    }

    fn error(&self, e: serde_json::Error) -> DesiredError {
        DesiredError::Invalid {
            field: format!("{}/{}", self.kind(), self.name()),
            message: e.to_string(),
        }
    }
}

fn parse_error(kind: &str, e: serde_json::Error) -> DesiredError {
    DesiredError::Invalid {
        field: kind.to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_round_trip() {
        let cm = ManagedObject::ConfigMap(ConfigMap {
            metadata: ObjectMeta {
                name: Some("c".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        let d = cm.to_dynamic().expect("dynamic");
        let types = d.types.as_ref().expect("types");
        assert_eq!(
            (types.api_version.as_str(), types.kind.as_str()),
            ("v1", "ConfigMap")
        );
        let back = ManagedObject::from_dynamic(&d)
            .expect("known")
            .expect("parse");
        assert_eq!(back, cm);
        assert_eq!(cm.api_resource().plural, "configmaps");
        assert_eq!(cm.kind(), "ConfigMap");
    }
}
