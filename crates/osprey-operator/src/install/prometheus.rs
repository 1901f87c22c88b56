//! Prometheus for the RED metrics the default collector derives from spans (spanmetrics
//! connector, remote write): its ConfigMap (`files/prometheus.yml`, shared with the chart), a
//! Deployment with the remote-write receiver on and a Service; and [`gated`], which drops the
//! `prometheus.enabled` blocks of the shared files when it is disabled.

use super::{container_security, labels, meta, pod_security, selector, Values, PROMETHEUS};
use serde_json::{json, Value};

const CONFIG: &str = include_str!("../../../../deploy/helm/osprey/files/prometheus.yml");
/// Prometheus's HTTP port (API, UI, `/api/v1/write`).
pub const PORT: u16 = 9090;
/// The image's user (`nobody`).
const UID: u32 = 65534;
const BEGIN: &str = "# prometheus.enabled {";
const END: &str = "# prometheus.enabled }";

/// `text` as is when Prometheus is enabled; else without the lines from each
/// `# prometheus.enabled {` line to the next `# prometheus.enabled }` line, both included (the
/// chart's `osprey.prometheusGated` does the same with a regular expression).
pub(crate) fn gated(text: &str, enabled: bool) -> String {
    if enabled {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    for line in text.split_inclusive('\n') {
        let bare = line.strip_suffix('\n').unwrap_or(line);
        if !inside && bare == BEGIN {
            inside = true;
        } else if inside && bare == END {
            inside = false;
        } else if !inside {
            out.push_str(line);
        }
    }
    out
}

/// The claim holding the TSDB when `prometheus.storage.size` is set.
fn claim(v: &Values, ns: &str) -> Option<Value> {
    let s = &v.prometheus.storage;
    if s.size.is_empty() {
        return None;
    }
    let mut spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": s.size}},
    });
    if !s.storage_class_name.is_empty() {
        spec["storageClassName"] = json!(s.storage_class_name);
    }
    Some(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(PROMETHEUS, ns, "prometheus"),
        "spec": spec,
    }))
}

fn deployment(v: &Values, ns: &str) -> Value {
    let p = &v.prometheus;
    let probe = |path: &str| json!({"httpGet": {"path": path, "port": "http"}});
    let data = if p.storage.size.is_empty() {
        json!({"name": "data", "emptyDir": {}})
    } else {
        json!({"name": "data", "persistentVolumeClaim": {"claimName": PROMETHEUS}})
    };
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(PROMETHEUS, ns, "prometheus"),
        "spec": {
            "replicas": 1,
            // One TSDB (in an emptyDir or on a ReadWriteOnce claim): never two pods at once.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector(PROMETHEUS)},
            "template": {
                "metadata": {"labels": labels(PROMETHEUS, "prometheus")},
                "spec": {
                    "automountServiceAccountToken": false,
                    "securityContext": pod_security(UID),
                    "containers": [{
                        "name": "prometheus",
                        "image": p.image,
                        "imagePullPolicy": v.image.pull_policy,
                        "args": [
                            "--config.file=/etc/prometheus/prometheus.yml",
                            "--storage.tsdb.path=/prometheus",
                            format!("--storage.tsdb.retention.time={}", p.retention),
                            "--web.enable-remote-write-receiver",
                        ],
                        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
                        "readinessProbe": probe("/-/ready"),
                        "livenessProbe": probe("/-/healthy"),
                        "resources": p.resources,
                        "securityContext": container_security(),
                        "volumeMounts": [
                            {"name": "config", "mountPath": "/etc/prometheus"},
                            {"name": "data", "mountPath": "/prometheus"},
                        ],
                    }],
                    "volumes": [
                        {"name": "config", "configMap": {"name": PROMETHEUS}},
                        data,
                    ],
                },
            },
        },
    })
}

/// In apply order.
pub(super) fn objects(v: &Values, ns: &str) -> Vec<Value> {
    let mut out: Vec<Value> = claim(v, ns).into_iter().collect();
    out.extend([
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(PROMETHEUS, ns, "prometheus"),
            "data": {"prometheus.yml": CONFIG},
        }),
        deployment(v, ns),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(PROMETHEUS, ns, "prometheus"),
            "spec": {
                "selector": selector(PROMETHEUS),
                "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
            },
        }),
    ]);
    out
}

#[cfg(test)]
mod tests {
    use super::super::{objects, Values, DEFAULT_PROMETHEUS_IMAGE};
    use super::gated;
    use serde_json::Value;

    fn names(objs: &[Value]) -> Vec<String> {
        objs.iter()
            .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
            .collect()
    }

    fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
        objs.iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind}/{name} missing"))
    }

    #[test]
    fn default_prometheus_and_span_metrics() {
        let objs = objects(&Values::default()).unwrap();
        let dep = find(&objs, "Deployment", "osprey-prometheus");
        let c = &dep["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], DEFAULT_PROMETHEUS_IMAGE);
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(
            args.contains(&"--web.enable-remote-write-receiver"),
            "{args:?}"
        );
        assert!(
            args.contains(&"--storage.tsdb.retention.time=15d"),
            "{args:?}"
        );
        let svc = find(&objs, "Service", "osprey-prometheus");
        assert_eq!(svc["spec"]["ports"][0]["port"], 9090);
        let cm = find(&objs, "ConfigMap", "osprey-prometheus");
        assert!(cm["data"]["prometheus.yml"]
            .as_str()
            .unwrap()
            .contains("global:"));

        let coll = find(&objs, "OpenTelemetryCollector", "osprey");
        let config: serde_yaml::Value =
            serde_yaml::from_str(coll["spec"]["config"].as_str().unwrap()).unwrap();
        assert_eq!(
            config["exporters"]["prometheusremotewrite"]["endpoint"].as_str(),
            Some("http://osprey-prometheus.osprey-system.svc:9090/api/v1/write")
        );
        let pipelines = &config["service"]["pipelines"];
        assert_eq!(
            serde_yaml::to_string(&pipelines["traces"]["exporters"]).unwrap(),
            "- otlp\n- spanmetrics\n"
        );
        assert!(pipelines["metrics"]["receivers"][0] == "spanmetrics");

        let ds = find(&objs, "ConfigMap", "osprey-grafana-datasources");
        let ds = ds["data"]["datasources.yaml"].as_str().unwrap();
        assert!(
            ds.contains("uid: osprey-prometheus") && ds.contains("http://osprey-prometheus:9090")
        );
    }

    #[test]
    fn tsdb_in_an_empty_dir_unless_a_size_is_set() {
        let data = |objs: &[Value]| {
            let dep = find(objs, "Deployment", "osprey-prometheus");
            dep["spec"]["template"]["spec"]["volumes"][1].clone()
        };
        let objs = objects(&Values::default()).unwrap();
        assert_eq!(
            data(&objs),
            serde_json::json!({"name": "data", "emptyDir": {}})
        );
        assert!(!names(&objs)
            .iter()
            .any(|n| n.contains("PersistentVolumeClaim")));

        let v = Values::from_yaml("prometheus: {storage: {size: 20Gi}}").unwrap();
        let objs = objects(&v).unwrap();
        assert_eq!(
            data(&objs),
            serde_json::json!({"name": "data", "persistentVolumeClaim": {"claimName": "osprey-prometheus"}})
        );
        let pvc = find(&objs, "PersistentVolumeClaim", "osprey-prometheus");
        assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "20Gi");
        assert!(pvc["spec"].get("storageClassName").is_none());
        // The claim is applied before the Deployment that mounts it.
        let at = |n: &str| names(&objs).iter().position(|x| x == n).unwrap();
        assert!(
            at("\"PersistentVolumeClaim\"/\"osprey-prometheus\"")
                < at("\"Deployment\"/\"osprey-prometheus\"")
        );
        let bad = Values::from_yaml("prometheus: {storage: {sise: 1Gi}}").unwrap_err();
        assert!(bad.to_string().contains("sise"), "{bad}");
    }

    #[test]
    fn prometheus_disabled_leaves_no_trace_of_it() {
        let v = Values::from_yaml("prometheus: {enabled: false}").unwrap();
        let objs = objects(&v).unwrap();
        assert!(!names(&objs).iter().any(|n| n.contains("prometheus")));
        let coll = find(&objs, "OpenTelemetryCollector", "osprey");
        let text = coll["spec"]["config"].as_str().unwrap();
        assert!(
            !text.lines().any(|l| l.starts_with("# prometheus.enabled")),
            "{text}"
        );
        let config: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        assert!(config.get("connectors").is_none(), "{text}");
        assert_eq!(
            serde_yaml::to_string(&config["exporters"]).unwrap(),
            "otlp:\n  endpoint: osprey.osprey-system.svc:4317\n  tls:\n    insecure: true\n"
        );
        assert_eq!(
        serde_yaml::to_string(&config["service"]["pipelines"]).unwrap(),
        "traces:\n  receivers:\n  - otlp\n  - jaeger\n  - zipkin\n  processors:\n  - memory_limiter\n  - batch\n  exporters:\n  - otlp\n"
    );
        let ds = find(&objs, "ConfigMap", "osprey-grafana-datasources");
        let ds = ds["data"]["datasources.yaml"].as_str().unwrap();
        let parsed: serde_yaml::Value = serde_yaml::from_str(ds).unwrap();
        let uids: Vec<&str> = parsed["datasources"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|d| d["uid"].as_str().unwrap())
            .collect();
        assert_eq!(uids, ["osprey-jaeger", "osprey-tempo", "osprey-sql"]);
        let dash = find(&objs, "ConfigMap", "osprey-grafana-dashboards");
        let dash = dash["data"].as_object().unwrap();
        assert_eq!(dash.len(), 5);
        assert!(!dash.contains_key("red-metrics.json"));
    }

    #[test]
    fn rbac_is_least_privilege() {
        let objs = objects(&Values::default()).unwrap();
        let cr = find(&objs, "ClusterRole", "osprey-operator");
        let text = cr.to_string();
        assert!(!text.contains("\"*\""), "no wildcards: {text}");
        assert!(
            !text.contains("secrets"),
            "secrets only in the Role: {text}"
        );
        let mwc_rule = cr["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resources"][0] == "mutatingwebhookconfigurations")
            .unwrap();
        assert_eq!(
            mwc_rule["resourceNames"],
            serde_json::json!(["osprey-operator-mutation"])
        );
        let role = find(&objs, "Role", "osprey-operator");
        assert_eq!(
            role["rules"][1]["resourceNames"],
            serde_json::json!(["osprey-operator-webhook-cert"])
        );
    }

    #[test]
    fn gated_drops_whole_blocks_only_when_disabled() {
        let text = "a:\n# prometheus.enabled {\n  b: 1\n# prometheus.enabled }\nc:\n  - x\n# prometheus.enabled {\n  - y\n# prometheus.enabled }\n";
        assert_eq!(gated(text, true), text);
        assert_eq!(gated(text, false), "a:\nc:\n  - x\n");
        // Markers must be whole lines: an indented one is an ordinary comment.
        let indented = "a:\n  # prometheus.enabled {\n  b: 1\n";
        assert_eq!(gated(indented, false), indented);
    }
}
