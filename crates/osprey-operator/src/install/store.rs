//! The Osprey store: `osprey up` as a StatefulSet with its data directory on a PVC, and the
//! Service `osprey` exposing every port of interfaces.md.

use super::{container_security, image, labels, meta, pod_security, selector, Values, STORE};
use serde_json::{json, Value};

/// `(name, port)` of every listener, as interfaces.md lists them.
pub const PORTS: [(&str, u16); 8] = [
    ("otlp-grpc", 4317),
    ("otlp-http", 4318),
    ("http", 9201),
    ("grpc", 9202),
    ("jaeger-thrift", 14268),
    ("jaeger-grpc", 14250),
    ("zipkin", 9411),
    ("postgres", 5433),
];

fn service(ns: &str) -> Value {
    let ports: Vec<Value> = PORTS
        .iter()
        .map(|(name, port)| json!({"name": name, "port": port, "targetPort": name, "protocol": "TCP"}))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(STORE, ns, "store"),
        "spec": {"selector": selector(STORE), "ports": ports},
    })
}

fn statefulset(v: &Values, ns: &str) -> Value {
    let s = &v.store;
    let ports: Vec<Value> = PORTS
        .iter()
        .map(|(name, port)| json!({"name": name, "containerPort": port, "protocol": "TCP"}))
        .collect();
    let probe = |path: &str| json!({"httpGet": {"path": path, "port": "http"}});
    let mut claim_spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": s.storage.size}},
    });
    if !s.storage.storage_class_name.is_empty() {
        claim_spec["storageClassName"] = json!(s.storage.storage_class_name);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta(STORE, ns, "store"),
        "spec": {
            "serviceName": STORE,
            "replicas": s.replicas,
            "selector": {"matchLabels": selector(STORE)},
            "template": {
                "metadata": {"labels": labels(STORE, "store")},
                "spec": {
                    "automountServiceAccountToken": false,
                    "securityContext": pod_security(65532),
                    "containers": [{
                        "name": "osprey",
                        "image": image(v, &s.image),
                        "imagePullPolicy": v.image.pull_policy,
                        "args": ["up", "--data-dir=/data", "--listen-all", format!("--retention={}", s.retention)],
                        "ports": ports,
                        "readinessProbe": probe("/readyz"),
                        "livenessProbe": probe("/healthz"),
                        "resources": s.resources,
                        "securityContext": container_security(),
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data", "labels": labels(STORE, "store")},
                "spec": claim_spec,
            }],
        },
    })
}

/// In apply order.
pub(super) fn objects(v: &Values, ns: &str) -> Vec<Value> {
    vec![service(ns), statefulset(v, ns)]
}
