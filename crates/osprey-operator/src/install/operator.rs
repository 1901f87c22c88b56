//! The operator's objects: ServiceAccount, least-privilege RBAC, Deployment, the webhook
//! Service and the MutatingWebhookConfiguration (its caBundle is left to the operator).
//!
//! The rules cover exactly what `osprey operator` does: the collector reconciler (CRs and
//! their status, the workloads, Services, ConfigMaps, ServiceAccounts and PDBs it owns), the
//! webhook (Instrumentation/collector watches, namespace and owner lookups, Events on
//! workloads in any namespace) and the certificate flow (its Secret, its webhook config).

use super::{
    cluster_meta, container_security, image, meta, pod_security, selector, Values, OPERATOR,
    WEBHOOK_CONFIG, WEBHOOK_SECRET, WEBHOOK_SERVICE,
};
use serde_json::{json, Value};

const READ: [&str; 3] = ["get", "list", "watch"];
const MANAGE: [&str; 7] = [
    "get", "list", "watch", "create", "update", "patch", "delete",
];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn cluster_role() -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": cluster_meta(OPERATOR, "operator"),
        "rules": [
            rule(&["opentelemetry.io"], &["opentelemetrycollectors", "instrumentations"], &READ),
            rule(&["opentelemetry.io"], &["opentelemetrycollectors/status"], &["get", "patch", "update"]),
            rule(&["opentelemetry.io"], &["opentelemetrycollectors/finalizers"], &["update"]),
            rule(&["apps"], &["deployments", "daemonsets", "statefulsets"], &MANAGE),
            rule(&[""], &["services", "configmaps", "serviceaccounts"], &MANAGE),
            rule(&["policy"], &["poddisruptionbudgets"], &MANAGE),
            rule(&[""], &["pods", "namespaces"], &READ),
            rule(&["apps"], &["replicasets"], &READ),
            rule(&["batch"], &["jobs"], &READ),
            rule(&["", "events.k8s.io"], &["events"], &["create", "patch"]),
            {
                "apiGroups": ["admissionregistration.k8s.io"],
                "resources": ["mutatingwebhookconfigurations"],
                "resourceNames": [WEBHOOK_CONFIG],
                "verbs": ["get", "patch"],
            },
        ],
    })
}

/// Its own namespace: the webhook certificate Secret (create cannot be limited by name).
fn role(ns: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(OPERATOR, ns, "operator"),
        "rules": [
            rule(&[""], &["secrets"], &["create"]),
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": [WEBHOOK_SECRET],
                "verbs": ["get", "update", "patch"],
            },
        ],
    })
}

fn binding(kind: &str, ns: &str) -> Value {
    let metadata = if kind == "ClusterRoleBinding" {
        cluster_meta(OPERATOR, "operator")
    } else {
        meta(OPERATOR, ns, "operator")
    };
    let role_kind = kind.trim_end_matches("Binding");
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": OPERATOR},
        "subjects": [{"kind": "ServiceAccount", "name": OPERATOR, "namespace": ns}],
    })
}

fn deployment(v: &Values, ns: &str) -> Value {
    let img = image(v, &v.operator.image);
    let probe =
        |path: &str| json!({"httpGet": {"path": path, "port": "webhook", "scheme": "HTTPS"}});
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(OPERATOR, ns, "operator"),
        "spec": {
            "replicas": v.operator.replicas,
            "selector": {"matchLabels": selector(OPERATOR)},
            "template": {
                "metadata": {"labels": super::labels(OPERATOR, "operator")},
                "spec": {
                    "serviceAccountName": OPERATOR,
                    "securityContext": pod_security(65532),
                    "containers": [{
                        "name": "operator",
                        "image": img,
                        "imagePullPolicy": v.image.pull_policy,
                        "args": ["operator", format!("--collector-image={}", image(v, &v.collector.image))],
                        "env": [{
                            "name": "OSPREY_NAMESPACE",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                        }],
                        "ports": [{"name": "webhook", "containerPort": 9443, "protocol": "TCP"}],
                        "readinessProbe": probe("/readyz"),
                        "livenessProbe": probe("/healthz"),
                        "resources": v.operator.resources,
                        "securityContext": container_security(),
                    }],
                },
            },
        },
    })
}

fn webhook_service(ns: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(WEBHOOK_SERVICE, ns, "operator"),
        "spec": {
            "selector": selector(OPERATOR),
            "ports": [{"name": "https", "port": 443, "targetPort": "webhook", "protocol": "TCP"}],
        },
    })
}

fn webhook_config(v: &Values, ns: &str) -> Value {
    let sel = &v.operator.webhook;
    let mut expressions = vec![json!({
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": ["kube-system", ns],
    })];
    expressions.extend(sel.namespace_selector.match_expressions.iter().cloned());
    let mut namespace_selector = json!({"matchExpressions": expressions});
    if !sel.namespace_selector.match_labels.is_empty() {
        namespace_selector["matchLabels"] =
            Value::Object(sel.namespace_selector.match_labels.clone());
    }
    let mut hook = json!({
        "name": "mpod.osprey.opentelemetry.io",
        "admissionReviewVersions": ["v1"],
        "clientConfig": {
            "service": {"name": WEBHOOK_SERVICE, "namespace": ns, "path": "/mutate-v1-pod", "port": 443},
        },
        "failurePolicy": "Ignore",
        "sideEffects": "None",
        "timeoutSeconds": 10,
        "rules": [{
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }],
        "namespaceSelector": namespace_selector,
    });
    let obj = &sel.object_selector;
    if !obj.match_labels.is_empty() || !obj.match_expressions.is_empty() {
        let mut s = json!({});
        if !obj.match_labels.is_empty() {
            s["matchLabels"] = Value::Object(obj.match_labels.clone());
        }
        if !obj.match_expressions.is_empty() {
            s["matchExpressions"] = Value::Array(obj.match_expressions.clone());
        }
        hook["objectSelector"] = s;
    }
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": cluster_meta(WEBHOOK_CONFIG, "operator"),
        "webhooks": [hook],
    })
}

/// In apply order.
pub(super) fn objects(v: &Values, ns: &str) -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta(OPERATOR, ns, "operator"),
        }),
        cluster_role(),
        binding("ClusterRoleBinding", ns),
        role(ns),
        binding("RoleBinding", ns),
        deployment(v, ns),
        webhook_service(ns),
        webhook_config(v, ns),
    ]
}
