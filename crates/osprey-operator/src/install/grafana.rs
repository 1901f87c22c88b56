//! Grafana, provisioned with Osprey's data sources and APM dashboards (the files under
//! `deploy/helm/osprey/files/grafana/`, shared with the chart): three ConfigMaps, a Deployment
//! and its Service. Without Prometheus, its data source and dashboard are left out.

use super::prometheus::gated;
use super::{container_security, labels, meta, pod_security, selector, Values, GRAFANA};
use serde_json::{json, Map, Value};

const DATASOURCES: &str =
    include_str!("../../../../deploy/helm/osprey/files/grafana/datasources.yaml");
const PROVIDER: &str = include_str!("../../../../deploy/helm/osprey/files/grafana/dashboards.yaml");
/// The dashboards, by file name (sorted, as the chart's `.Files.Glob` lists them).
const DASHBOARDS: [(&str, &str); 6] = [
    (
        "operation.json",
        include_str!("../../../../deploy/helm/osprey/files/grafana/dashboards/operation.json"),
    ),
    (
        "overview.json",
        include_str!("../../../../deploy/helm/osprey/files/grafana/dashboards/overview.json"),
    ),
    (
        "red-metrics.json",
        include_str!("../../../../deploy/helm/osprey/files/grafana/dashboards/red-metrics.json"),
    ),
    (
        "service-map.json",
        include_str!("../../../../deploy/helm/osprey/files/grafana/dashboards/service-map.json"),
    ),
    (
        "service.json",
        include_str!("../../../../deploy/helm/osprey/files/grafana/dashboards/service.json"),
    ),
    (
        "traces.json",
        include_str!("../../../../deploy/helm/osprey/files/grafana/dashboards/traces.json"),
    ),
];
/// The dashboards that query Prometheus (left out when it is disabled).
const PROMETHEUS_DASHBOARDS: [&str; 1] = ["red-metrics.json"];
/// Where the dashboard provider (`dashboards.yaml`) expects the JSON files.
pub const DASHBOARDS_DIR: &str = "/var/lib/grafana/dashboards/osprey";

fn config_map(name: &str, ns: &str, data: &[(&str, &str)]) -> Value {
    let data: Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, ns, "grafana"), "data": data})
}

fn deployment(v: &Values, ns: &str) -> Value {
    let env = |k: &str, val: &str| json!({"name": k, "value": val});
    let mount = |name: &str, path: &str| json!({"name": name, "mountPath": path});
    let cm_volume = |name: &str, cm: &str| json!({"name": name, "configMap": {"name": cm}});
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(GRAFANA, ns, "grafana"),
        "spec": {
            "replicas": v.grafana.replicas,
            "selector": {"matchLabels": selector(GRAFANA)},
            "template": {
                "metadata": {"labels": labels(GRAFANA, "grafana")},
                "spec": {
                    "automountServiceAccountToken": false,
                    "securityContext": pod_security(472),
                    "containers": [{
                        "name": "grafana",
                        "image": v.grafana.image,
                        "imagePullPolicy": v.image.pull_policy,
                        "env": [
                            env("GF_AUTH_ANONYMOUS_ENABLED", "true"),
                            env("GF_AUTH_ANONYMOUS_ORG_ROLE", "Viewer"),
                            env("GF_LOG_MODE", "console"),
                            env("GF_PATHS_DATA", "/var/lib/grafana"),
                        ],
                        "ports": [{"name": "http", "containerPort": 3000, "protocol": "TCP"}],
                        "readinessProbe": {"httpGet": {"path": "/api/health", "port": "http"}},
                        "livenessProbe": {"httpGet": {"path": "/api/health", "port": "http"}},
                        "resources": v.grafana.resources,
                        "securityContext": container_security(),
                        "volumeMounts": [
                            mount("data", "/var/lib/grafana"),
                            mount("tmp", "/tmp"),
                            mount("datasources", "/etc/grafana/provisioning/datasources"),
                            mount("provider", "/etc/grafana/provisioning/dashboards"),
                            mount("dashboards", DASHBOARDS_DIR),
                        ],
                    }],
                    "volumes": [
                        {"name": "data", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                        cm_volume("datasources", &format!("{GRAFANA}-datasources")),
                        cm_volume("provider", &format!("{GRAFANA}-dashboard-provider")),
                        cm_volume("dashboards", &format!("{GRAFANA}-dashboards")),
                    ],
                },
            },
        },
    })
}

/// In apply order.
pub(super) fn objects(v: &Values, ns: &str) -> Vec<Value> {
    let with_prometheus = v.prometheus.enabled;
    let datasources = gated(DATASOURCES, with_prometheus);
    let dashboards: Vec<(&str, &str)> = DASHBOARDS
        .into_iter()
        .filter(|(name, _)| with_prometheus || !PROMETHEUS_DASHBOARDS.contains(name))
        .collect();
    vec![
        config_map(
            &format!("{GRAFANA}-datasources"),
            ns,
            &[("datasources.yaml", &datasources)],
        ),
        config_map(
            &format!("{GRAFANA}-dashboard-provider"),
            ns,
            &[("dashboards.yaml", PROVIDER)],
        ),
        config_map(&format!("{GRAFANA}-dashboards"), ns, &dashboards),
        deployment(v, ns),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(GRAFANA, ns, "grafana"),
            "spec": {
                "selector": selector(GRAFANA),
                "ports": [{"name": "http", "port": 3000, "targetPort": "http", "protocol": "TCP"}],
            },
        }),
    ]
}
