//! The install's knobs: [`Values`], read from YAML with the same keys as the Helm chart's
//! `values.yaml`, with defaults for every key and a validation that names the bad field.

use super::InstallError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The namespace everything goes to unless `--namespace` or `namespace:` say otherwise.
pub const DEFAULT_NAMESPACE: &str = "osprey-system";
/// The image repository of every Osprey role (store, operator, collector).
pub const DEFAULT_REPOSITORY: &str = "ghcr.io/osprey-observability/osprey";
/// Grafana's image.
pub const DEFAULT_GRAFANA_IMAGE: &str = "docker.io/grafana/grafana:11.3.0";
/// Prometheus's image.
pub const DEFAULT_PROMETHEUS_IMAGE: &str = "docker.io/prom/prometheus:v2.53.2";

/// Every knob of `osprey install` and of the chart.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Values {
    /// Where the stack lives; empty means [`DEFAULT_NAMESPACE`] (the chart uses its release
    /// namespace).
    pub namespace: String,
    pub image: Image,
    pub operator: Operator,
    pub store: Store,
    pub collector: Collector,
    pub instrumentation: InstrumentationValues,
    pub grafana: Grafana,
    pub prometheus: Prometheus,
}

/// The Osprey image (all roles run the one binary).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Image {
    pub repository: String,
    /// Empty: the version of this `osprey` (the chart's `appVersion`).
    pub tag: String,
    pub pull_policy: String,
}

impl Default for Image {
    fn default() -> Self {
        Image {
            repository: DEFAULT_REPOSITORY.into(),
            tag: String::new(),
            pull_policy: "IfNotPresent".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Operator {
    pub enabled: bool,
    pub replicas: u32,
    /// Full image reference overriding `image.repository:tag` for the operator.
    pub image: String,
    pub resources: Value,
    pub webhook: Webhook,
}

impl Default for Operator {
    fn default() -> Self {
        Operator {
            enabled: true,
            replicas: 1,
            image: String::new(),
            resources: resources("50m", "64Mi", "256Mi"),
            webhook: Webhook::default(),
        }
    }
}

/// Which pods the mutating webhook sees. kube-system and the install's namespace are always
/// excluded; these selectors narrow it further.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Webhook {
    pub namespace_selector: Selector,
    pub object_selector: Selector,
}

/// A Kubernetes label selector.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Selector {
    pub match_labels: Map<String, Value>,
    pub match_expressions: Vec<Value>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Store {
    pub enabled: bool,
    /// 0 or 1: the store is a single node.
    pub replicas: u32,
    pub image: String,
    /// Spans older than this are dropped (`osprey up --retention`).
    pub retention: String,
    pub storage: Storage,
    pub resources: Value,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            enabled: true,
            replicas: 1,
            image: String::new(),
            retention: "7d".into(),
            storage: Storage::default(),
            resources: resources("250m", "512Mi", "2Gi"),
        }
    }
}

/// The store's PersistentVolumeClaim.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Storage {
    pub size: String,
    /// Empty: the cluster's default StorageClass.
    pub storage_class_name: String,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            size: "10Gi".into(),
            storage_class_name: String::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Collector {
    pub enabled: bool,
    pub replicas: u32,
    pub image: String,
    pub resources: Value,
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            enabled: true,
            replicas: 1,
            image: String::new(),
            resources: resources("100m", "128Mi", "512Mi"),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct InstrumentationValues {
    pub enabled: bool,
    /// Empty: the default collector's OTLP HTTP port in the install's namespace.
    pub endpoint: String,
    pub propagators: Vec<String>,
    pub sampler: Sampler,
}

impl Default for InstrumentationValues {
    fn default() -> Self {
        InstrumentationValues {
            enabled: true,
            endpoint: String::new(),
            propagators: vec!["tracecontext".into(), "baggage".into(), "b3".into()],
            sampler: Sampler::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Sampler {
    #[serde(rename = "type")]
    pub kind: String,
    pub argument: String,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler {
            kind: "parentbased_traceidratio".into(),
            argument: "1".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Grafana {
    pub enabled: bool,
    pub replicas: u32,
    pub image: String,
    pub resources: Value,
}

impl Default for Grafana {
    fn default() -> Self {
        Grafana {
            enabled: true,
            replicas: 1,
            image: DEFAULT_GRAFANA_IMAGE.into(),
            resources: resources("100m", "128Mi", "512Mi"),
        }
    }
}

/// Prometheus, fed by the default collector's spanmetrics over remote write; when disabled the
/// collector, Grafana's data sources and the dashboards leave it out.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Prometheus {
    pub enabled: bool,
    pub image: String,
    /// How long samples are kept (`--storage.tsdb.retention.time`).
    pub retention: String,
    pub storage: PrometheusStorage,
    pub resources: Value,
}

impl Default for Prometheus {
    fn default() -> Self {
        Prometheus {
            enabled: true,
            image: DEFAULT_PROMETHEUS_IMAGE.into(),
            retention: "15d".into(),
            storage: PrometheusStorage::default(),
            resources: resources("100m", "256Mi", "1Gi"),
        }
    }
}

/// Where Prometheus keeps its TSDB: an emptyDir (lost with the pod) unless `size` is set, then
/// a PersistentVolumeClaim `osprey-prometheus` of that size.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PrometheusStorage {
    /// Empty: an emptyDir.
    pub size: String,
    /// Empty: the cluster's default StorageClass.
    pub storage_class_name: String,
}

fn resources(cpu: &str, memory: &str, memory_limit: &str) -> Value {
    serde_json::json!({
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"memory": memory_limit},
    })
}

impl Values {
    /// Parses a values file; unknown keys are errors (a typo must not be ignored).
    pub fn from_yaml(text: &str) -> Result<Values, InstallError> {
        if text.trim().is_empty() {
            return Ok(Values::default());
        }
        // Parsed once as given, for errors that point at the file's lines and keys...
        let _: Values =
            serde_yaml::from_str(text).map_err(|e| InstallError::Values(e.to_string()))?;
        // ...then merged over the defaults as Helm coalesces values: maps merge key by key
        // (so `resources: {limits: ...}` keeps the default requests), lists and scalars
        // replace, null removes.
        let given: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| InstallError::Values(e.to_string()))?;
        let mut merged = serde_yaml::to_value(Values::default())
            .map_err(|e| InstallError::Values(e.to_string()))?;
        coalesce(&mut merged, given);
        serde_yaml::from_value(merged).map_err(|e| InstallError::Values(e.to_string()))
    }

    /// The namespace to install into.
    pub fn namespace(&self) -> &str {
        if self.namespace.is_empty() {
            DEFAULT_NAMESPACE
        } else {
            &self.namespace
        }
    }
}

/// Helm's coalescing of user values over chart defaults.
fn coalesce(base: &mut serde_yaml::Value, given: serde_yaml::Value) {
    use serde_yaml::Value as Y;
    match (base, given) {
        (Y::Mapping(b), Y::Mapping(g)) => {
            for (k, v) in g {
                if v.is_null() {
                    b.remove(&k);
                } else if let Some(slot) = b.get_mut(&k) {
                    coalesce(slot, v);
                } else {
                    b.insert(k, v);
                }
            }
        }
        (slot, g) => *slot = g,
    }
}
