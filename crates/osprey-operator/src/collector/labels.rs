//! Labels and annotations of the generated objects, as upstream sets them: immutable selector
//! labels, the full label set (CR labels + selector + version + name), object annotations (the
//! CR's, minus kubectl's last-applied copy) and pod-template annotations (podAnnotations, CR
//! annotations, Prometheus scrape hints, config hash).

use super::naming::{instance_label, truncate, MAX_NAME};
use super::CONFIG_HASH_ANNOTATION;
use crate::crd::OpenTelemetryCollector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// `app.kubernetes.io/component` of every collector object.
pub const COMPONENT: &str = "opentelemetry-collector";
/// Service-type label (`base`, `headless`, `monitoring`, `extension`).
pub const SERVICE_TYPE_LABEL: &str = "operator.opentelemetry.io/collector-service-type";
pub const HEADLESS_LABEL: &str = "operator.opentelemetry.io/collector-headless-service";
pub const MONITORING_LABEL: &str = "operator.opentelemetry.io/collector-monitoring-service";
pub const PROMETHEUS_MARKER: &str = "operator.opentelemetry.io/prometheus-annotations-added";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

type Map = BTreeMap<String, String>;

/// The immutable labels used as workload and Service selector.
pub fn selector_labels(cr: &ObjectMeta) -> Map {
    let ns = cr.namespace.as_deref().unwrap_or_default();
    let name = cr.name.as_deref().unwrap_or_default();
    Map::from([
        (
            "app.kubernetes.io/managed-by".into(),
            "opentelemetry-operator".into(),
        ),
        (
            "app.kubernetes.io/instance".into(),
            instance_label(ns, name),
        ),
        ("app.kubernetes.io/part-of".into(), "opentelemetry".into()),
        ("app.kubernetes.io/component".into(), COMPONENT.into()),
    ])
}

/// The full label set of an object called `name`: the CR's labels, the selector labels,
/// `app.kubernetes.io/version` (the tag of `spec.image`, `latest` without one) and
/// `app.kubernetes.io/name` (unless the CR already sets it).
pub fn labels(cr: &ObjectMeta, name: &str, spec_image: Option<&str>) -> Map {
    let mut out = cr.labels.clone().unwrap_or_default();
    out.extend(selector_labels(cr));
    out.insert(
        "app.kubernetes.io/version".into(),
        version_label(spec_image.unwrap_or_default()),
    );
    out.entry("app.kubernetes.io/name".into())
        .or_insert_with(|| name.to_string());
    out
}

/// The tag of an image reference (`repo:tag`, `repo:tag@sha256:…`), `latest` without a tag.
pub fn version_label(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or_default();
    let last_segment = without_digest.rsplit('/').next().unwrap_or_default();
    match last_segment.rsplit_once(':') {
        Some((_, tag)) if !tag.is_empty() => truncate("{}", MAX_NAME, &[tag]),
        _ => "latest".to_string(),
    }
}

/// The CR's annotations minus `kubectl.kubernetes.io/last-applied-configuration`.
pub fn annotations(cr: &ObjectMeta) -> Map {
    let mut out = cr.annotations.clone().unwrap_or_default();
    out.remove(LAST_APPLIED);
    out
}

/// Pod-template annotations: `spec.podAnnotations`, then the CR's annotations (podAnnotations wins),
/// the Prometheus scrape hints unless disabled (never overriding), and the config hash.
pub fn pod_annotations(cr: &OpenTelemetryCollector, config_hash: &str) -> Map {
    let mut out = cr.spec.pod_annotations.clone().unwrap_or_default();
    out.remove(LAST_APPLIED);
    for (k, v) in annotations(&cr.metadata) {
        out.entry(k).or_insert(v);
    }
    if !prometheus_annotations_disabled(cr) {
        for (k, v) in [
            ("prometheus.io/scrape", "true"),
            ("prometheus.io/port", "8888"),
            ("prometheus.io/path", "/metrics"),
            (PROMETHEUS_MARKER, "true"),
        ] {
            out.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
    }
    out.insert(CONFIG_HASH_ANNOTATION.into(), config_hash.into());
    out
}

/// `spec.observability.metrics.DisablePrometheusAnnotations` (v1alpha1 key; the v1beta1 spelling
/// `disablePrometheusAnnotations` is accepted too).
pub fn prometheus_annotations_disabled(cr: &OpenTelemetryCollector) -> bool {
    let Some(metrics) = cr
        .spec
        .observability
        .as_ref()
        .and_then(|o| o.get("metrics"))
    else {
        return false;
    };
    [
        "DisablePrometheusAnnotations",
        "disablePrometheusAnnotations",
    ]
    .iter()
    .any(|k| metrics.get(*k).and_then(serde_json::Value::as_bool) == Some(true))
}

/// A label set as a selector string (`k=v,k=v`, keys sorted), as `status.scale.selector` shows it.
pub fn selector_string(labels: &Map) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ObjectMeta {
        ObjectMeta {
            name: Some("tobs".into()),
            namespace: Some("default".into()),
            labels: Some(Map::from([("team".into(), "a".into())])),
            annotations: Some(Map::from([
                ("owner".into(), "me".into()),
                (LAST_APPLIED.into(), "{}".into()),
            ])),
            ..Default::default()
        }
    }

    #[test]
    fn full_labels() {
        let l = labels(&meta(), "tobs-collector", None);
        assert_eq!(l["app.kubernetes.io/instance"], "default.tobs");
        assert_eq!(l["app.kubernetes.io/version"], "latest");
        assert_eq!(l["app.kubernetes.io/name"], "tobs-collector");
        assert_eq!(l["team"], "a");
        let mut m = meta();
        m.labels = Some(Map::from([(
            "app.kubernetes.io/name".into(),
            "mine".into(),
        )]));
        assert_eq!(labels(&m, "x", None)["app.kubernetes.io/name"], "mine");
    }

    #[test]
    fn version_from_image() {
        assert_eq!(version_label("otel/col:0.98.0"), "0.98.0");
        assert_eq!(version_label("otel/col:0.98.0@sha256:abc"), "0.98.0");
        assert_eq!(version_label("otel/col"), "latest");
        assert_eq!(version_label("registry:5000/otel/col"), "latest");
        assert_eq!(version_label("registry:5000/otel/col:1.2"), "1.2");
        assert_eq!(version_label(""), "latest");
    }

    #[test]
    fn annotations_drop_last_applied() {
        let a = annotations(&meta());
        assert_eq!(a.len(), 1);
        assert_eq!(a["owner"], "me");
    }

    #[test]
    fn selector_string_is_sorted() {
        let s = selector_string(&selector_labels(&meta()));
        assert_eq!(
            s,
            "app.kubernetes.io/component=opentelemetry-collector,app.kubernetes.io/instance=default.tobs,\
             app.kubernetes.io/managed-by=opentelemetry-operator,app.kubernetes.io/part-of=opentelemetry"
        );
    }
}
