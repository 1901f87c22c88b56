//! What `osprey install` puts in a cluster, as one pure function: [`objects`] turns
//! [`Values`] into the Kubernetes objects of the whole stack, in apply order. The Helm chart
//! in `deploy/helm/osprey` renders the same objects for the same values (a test compares them),
//! so this module is the one source of truth for names, ports, RBAC and defaults.

mod grafana;
mod operator;
mod prometheus;
mod ready;
mod store;
#[cfg(test)]
mod tests;
mod validate;
mod values;
mod yaml;

pub use values::{
    Collector, Grafana, Image, InstrumentationValues, Operator, Prometheus, Sampler, Selector,
    Storage, Store, Values, Webhook, DEFAULT_GRAFANA_IMAGE, DEFAULT_NAMESPACE,
    DEFAULT_PROMETHEUS_IMAGE, DEFAULT_REPOSITORY,
};

pub use ready::{awaited, readiness, Readiness};

use serde_json::{json, Value};

/// The version of this build: the default image tag.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The operator's names (ServiceAccount, RBAC, Deployment).
pub const OPERATOR: &str = "osprey-operator";
/// The webhook's Service (the operator issues its serving certificate for it).
pub const WEBHOOK_SERVICE: &str = "osprey-operator-webhook";
/// The MutatingWebhookConfiguration whose caBundle the operator keeps current.
pub const WEBHOOK_CONFIG: &str = "osprey-operator-mutation";
/// The Secret holding the webhook's CA and serving certificate.
pub const WEBHOOK_SECRET: &str = "osprey-operator-webhook-cert";
/// The store's StatefulSet and Service, the default collector and Instrumentation.
pub const STORE: &str = "osprey";
/// Grafana's Deployment and Service.
pub const GRAFANA: &str = "osprey-grafana";
/// Prometheus's ConfigMap, Deployment and Service.
pub const PROMETHEUS: &str = "osprey-prometheus";
/// The default collector's configuration; `{{ .Release.Namespace }}` is the namespace, and its
/// `prometheus.enabled` blocks go when Prometheus is disabled (the chart does the same).
pub const COLLECTOR_CONFIG: &str =
    include_str!("../../../../deploy/helm/osprey/files/collector.yaml");

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("values: {0}")]
    Values(String),
    #[error("values: {field}: {problem}")]
    Invalid { field: String, problem: String },
}

/// Labels every object carries; `name` and `component` also select the pods.
pub fn labels(name: &str, component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "osprey",
    })
}

/// The labels a workload selects its pods by.
pub fn selector(name: &str) -> Value {
    json!({"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "osprey"})
}

/// `metadata` of a namespaced object.
pub(crate) fn meta(name: &str, namespace: &str, component: &str) -> Value {
    json!({"name": name, "namespace": namespace, "labels": labels(name, component)})
}

/// `metadata` of a cluster-scoped object.
pub(crate) fn cluster_meta(name: &str, component: &str) -> Value {
    json!({"name": name, "labels": labels(name, component)})
}

/// The Osprey image: `override_` when set, else `image.repository:tag` (tag defaults to
/// [`VERSION`]).
pub fn image(values: &Values, override_: &str) -> String {
    if !override_.is_empty() {
        return override_.to_string();
    }
    let tag = if values.image.tag.is_empty() {
        VERSION
    } else {
        &values.image.tag
    };
    format!("{}:{tag}", values.image.repository)
}

/// Pod-level security: non-root, the runtime's seccomp profile.
pub(crate) fn pod_security(uid: u32) -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// Container-level security: read-only root, no privilege escalation, no capabilities.
pub(crate) fn container_security() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]},
    })
}

/// The default OpenTelemetryCollector: OTLP, Jaeger and Zipkin in, to the store's OTLP port
/// (and span metrics to Prometheus when enabled).
fn collector(v: &Values, ns: &str) -> Value {
    let config = prometheus::gated(COLLECTOR_CONFIG, v.prometheus.enabled);
    json!({
        "apiVersion": "opentelemetry.io/v1alpha1",
        "kind": "OpenTelemetryCollector",
        "metadata": meta(STORE, ns, "collector"),
        "spec": {
            "mode": "deployment",
            "replicas": v.collector.replicas,
            "image": image(v, &v.collector.image),
            "resources": v.collector.resources,
            "config": config.replace("{{ .Release.Namespace }}", ns),
        },
    })
}

/// The default Instrumentation: SDKs export to the default collector's OTLP HTTP port.
fn instrumentation(v: &Values, ns: &str) -> Value {
    let inst = &v.instrumentation;
    let endpoint = if inst.endpoint.is_empty() {
        format!("http://{STORE}-collector.{ns}.svc:4318")
    } else {
        inst.endpoint.clone()
    };
    json!({
        "apiVersion": "opentelemetry.io/v1alpha1",
        "kind": "Instrumentation",
        "metadata": meta(STORE, ns, "instrumentation"),
        "spec": {
            "exporter": {"endpoint": endpoint},
            "propagators": inst.propagators,
            "sampler": {"type": inst.sampler.kind, "argument": inst.sampler.argument},
        },
    })
}

/// The whole stack for `values`, in apply order: Namespace, CRDs, operator (RBAC, Deployment,
/// webhook Service and configuration), store, Prometheus, default collector and
/// Instrumentation, Grafana.
pub fn objects(values: &Values) -> Result<Vec<Value>, InstallError> {
    values.validate()?;
    let ns = values.namespace();
    let mut out = vec![json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": cluster_meta(ns, "namespace"),
    })];
    let custom =
        values.operator.enabled || values.collector.enabled || values.instrumentation.enabled;
    if custom {
        for crd in crate::crd::definitions() {
            out.push(serde_json::to_value(crd).map_err(|e| InstallError::Values(e.to_string()))?);
        }
    }
    if values.operator.enabled {
        out.extend(operator::objects(values, ns));
    }
    if values.store.enabled {
        out.extend(store::objects(values, ns));
    }
    if values.prometheus.enabled {
        out.extend(prometheus::objects(values, ns));
    }
    if values.collector.enabled {
        out.push(collector(values, ns));
    }
    if values.instrumentation.enabled {
        out.push(instrumentation(values, ns));
    }
    if values.grafana.enabled {
        out.extend(grafana::objects(values, ns));
    }
    Ok(out)
}

/// The Deployment the operator creates for the default collector (`<name>-collector`), which
/// `osprey install` also waits for; `None` when either is disabled.
pub fn collector_deployment(values: &Values) -> Option<(String, String)> {
    (values.operator.enabled && values.collector.enabled)
        .then(|| (values.namespace().to_string(), format!("{STORE}-collector")))
}

/// The objects as a multi-document YAML stream (`osprey install --dry-run`), safe for YAML 1.1
/// parsers such as kubectl's.
pub fn to_yaml(objects: &[Value]) -> String {
    yaml::documents(objects)
}
