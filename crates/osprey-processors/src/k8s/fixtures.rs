//! Test fixtures: Pod, Namespace and Node objects in the JSON the Kubernetes API returns
//! (`GET /api/v1/.../pods`), OTLP resources to enrich, and helpers to enrich them.

use super::config::K8sAttributesConfig;
use super::enrich::enrich_traces;
use super::index::PodIndex;
use super::rules::Rules;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use osprey_model::otlp::common::v1::KeyValue;
use osprey_model::otlp::resource::v1::Resource;
use osprey_model::otlp::trace::v1::ResourceSpans;
use osprey_model::TraceRequest;
use osprey_pipeline::{decode_config, Context};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// A Deployment's pod: owned by ReplicaSet `web-7d9f8c6b5d`, one container.
pub const WEB_POD: &str = r#"{
  "kind": "Pod",
  "apiVersion": "v1",
  "metadata": {
    "name": "web-7d9f8c6b5d-x2k4p",
    "generateName": "web-7d9f8c6b5d-",
    "namespace": "shop",
    "uid": "0b6a1f8e-3c2d-4f5a-9e7b-1a2b3c4d5e6f",
    "resourceVersion": "48213",
    "creationTimestamp": "2024-05-01T10:00:00Z",
    "labels": {
      "app": "web",
      "app.kubernetes.io/component": "frontend",
      "app.kubernetes.io/version": "1.4.2",
      "pod-template-hash": "7d9f8c6b5d"
    },
    "annotations": {
      "git-sha": "abc123",
      "resource.opentelemetry.io/service.name": "web-frontend",
      "kubectl.kubernetes.io/restartedAt": "2024-05-01T09:59:00Z"
    },
    "ownerReferences": [
      {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "web-7d9f8c6b5d",
        "uid": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
        "controller": true,
        "blockOwnerDeletion": true
      }
    ]
  },
  "spec": {
    "containers": [
      {
        "name": "web",
        "image": "ghcr.io/acme/web:1.4.2",
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "resources": {},
        "imagePullPolicy": "IfNotPresent"
      }
    ],
    "restartPolicy": "Always",
    "serviceAccountName": "default",
    "nodeName": "node-1"
  },
  "status": {
    "phase": "Running",
    "hostIP": "192.168.0.10",
    "podIP": "10.1.2.3",
    "podIPs": [{"ip": "10.1.2.3"}],
    "startTime": "2024-05-01T10:00:02Z",
    "containerStatuses": [
      {
        "name": "web",
        "state": {"running": {"startedAt": "2024-05-01T10:00:05Z"}},
        "ready": true,
        "restartCount": 0,
        "image": "ghcr.io/acme/web:1.4.2",
        "imageID": "ghcr.io/acme/web@sha256:3f1b2c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809",
        "containerID": "containerd://4c1f0a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a",
        "started": true
      }
    ],
    "qosClass": "BestEffort"
  }
}"#;

/// A StatefulSet's pod with two containers; the exporter restarted once.
pub const DB_POD: &str = r#"{
  "kind": "Pod",
  "apiVersion": "v1",
  "metadata": {
    "name": "db-0",
    "generateName": "db-",
    "namespace": "shop",
    "uid": "7c3d2e1f-0a9b-4c8d-b7e6-f5a4b3c2d1e0",
    "resourceVersion": "48300",
    "creationTimestamp": "2024-05-01T09:00:00Z",
    "labels": {"app": "db", "statefulset.kubernetes.io/pod-name": "db-0"},
    "ownerReferences": [
      {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
       "uid": "1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6", "controller": true, "blockOwnerDeletion": true}
    ]
  },
  "spec": {
    "containers": [
      {"name": "db", "image": "postgres:16"},
      {"name": "exporter", "image": "quay.io/prometheuscommunity/postgres-exporter:v0.15.0"}
    ],
    "hostname": "db-0",
    "subdomain": "db",
    "nodeName": "node-2"
  },
  "status": {
    "phase": "Running",
    "podIP": "10.1.2.4",
    "startTime": "2024-05-01T09:00:01Z",
    "containerStatuses": [
      {"name": "db", "ready": true, "restartCount": 0, "image": "docker.io/library/postgres:16",
       "imageID": "docker.io/library/postgres@sha256:aa", "containerID": "containerd://db0000000001", "started": true,
       "state": {"running": {"startedAt": "2024-05-01T09:00:03Z"}}},
      {"name": "exporter", "ready": true, "restartCount": 1,
       "image": "quay.io/prometheuscommunity/postgres-exporter:v0.15.0",
       "imageID": "quay.io/prometheuscommunity/postgres-exporter@sha256:bb",
       "containerID": "containerd://exp0000000002", "started": true,
       "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "containerID": "containerd://exp0000000001",
         "startedAt": "2024-05-01T09:00:03Z", "finishedAt": "2024-05-01T09:01:00Z"}},
       "state": {"running": {"startedAt": "2024-05-01T09:01:02Z"}}}
    ]
  }
}"#;

/// A CronJob's pod (Job `report-28571520`).
pub const REPORT_POD: &str = r#"{
  "kind": "Pod", "apiVersion": "v1",
  "metadata": {
    "name": "report-28571520-q8zfm", "namespace": "batch", "uid": "c0ffee00-0000-4000-8000-000000000001",
    "creationTimestamp": "2024-05-01T10:00:00Z",
    "labels": {"batch.kubernetes.io/job-name": "report-28571520", "job-name": "report-28571520"},
    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "report-28571520",
      "uid": "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9", "controller": true, "blockOwnerDeletion": true}]
  },
  "spec": {"containers": [{"name": "report", "image": "acme/report"}], "nodeName": "node-1"},
  "status": {"phase": "Running", "podIP": "10.1.2.5", "startTime": "2024-05-01T10:00:01Z"}
}"#;

/// A DaemonSet's pod named like the default exclusions.
pub const JAEGER_POD: &str = r#"{
  "kind": "Pod", "apiVersion": "v1",
  "metadata": {
    "name": "jaeger-agent-5f7c9", "namespace": "tracing", "uid": "aaaa0000-0000-4000-8000-00000000000a",
    "creationTimestamp": "2024-05-01T08:00:00Z",
    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "jaeger-agent",
      "uid": "dddd0000-0000-4000-8000-00000000000d", "controller": true}]
  },
  "spec": {"containers": [{"name": "agent", "image": "jaegertracing/jaeger-agent:1.57"}], "nodeName": "node-1"},
  "status": {"phase": "Running", "podIP": "10.1.2.6", "startTime": "2024-05-01T08:00:01Z"}
}"#;

/// A host-network DaemonSet pod: its IP is the node's.
pub const HOSTNET_POD: &str = r#"{
  "kind": "Pod", "apiVersion": "v1",
  "metadata": {
    "name": "node-exporter-7xk2d", "namespace": "monitoring", "uid": "bbbb0000-0000-4000-8000-00000000000b",
    "creationTimestamp": "2024-05-01T07:00:00Z",
    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "node-exporter",
      "uid": "eeee0000-0000-4000-8000-00000000000e", "controller": true}]
  },
  "spec": {"hostNetwork": true, "containers": [{"name": "node-exporter", "image": "prom/node-exporter:v1.8.0"}],
    "nodeName": "node-1"},
  "status": {"phase": "Running", "podIP": "192.168.0.10", "hostIP": "192.168.0.10", "startTime": "2024-05-01T07:00:01Z"}
}"#;

pub const SHOP_NAMESPACE: &str = r#"{
  "kind": "Namespace", "apiVersion": "v1",
  "metadata": {"name": "shop", "uid": "11111111-2222-4333-8444-555555555555",
    "creationTimestamp": "2024-01-01T00:00:00Z",
    "labels": {"kubernetes.io/metadata.name": "shop", "team": "payments"},
    "annotations": {"owner": "payments@acme.example"}},
  "spec": {"finalizers": ["kubernetes"]},
  "status": {"phase": "Active"}
}"#;

pub const KUBE_SYSTEM_NAMESPACE: &str = r#"{
  "kind": "Namespace", "apiVersion": "v1",
  "metadata": {"name": "kube-system", "uid": "c1a5e7e0-0000-4000-8000-0000000c1a5e",
    "labels": {"kubernetes.io/metadata.name": "kube-system"}},
  "status": {"phase": "Active"}
}"#;

pub const NODE_1: &str = r#"{
  "kind": "Node", "apiVersion": "v1",
  "metadata": {"name": "node-1", "uid": "0d0d0d0d-1111-4222-8333-444444444444",
    "labels": {"kubernetes.io/hostname": "node-1", "topology.kubernetes.io/zone": "eu-west-1a"}},
  "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.10"}]}
}"#;

pub fn pod(json: &str) -> Pod {
    serde_json::from_str(json).expect("pod fixture")
}

pub fn namespace(json: &str) -> Namespace {
    serde_json::from_str(json).expect("namespace fixture")
}

pub fn node(json: &str) -> Node {
    serde_json::from_str(json).expect("node fixture")
}

pub fn all_pods() -> Vec<Pod> {
    [WEB_POD, DB_POD, REPORT_POD, JAEGER_POD, HOSTNET_POD]
        .into_iter()
        .map(pod)
        .collect()
}

/// A one-resource trace request whose resource has `attrs` (string values).
pub fn request(attrs: &[(&str, &str)]) -> TraceRequest {
    TraceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: attrs
                    .iter()
                    .map(|(k, v)| KeyValue {
                        key: k.to_string(),
                        value: Some(crate::attrs::str_value(*v)),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            scope_spans: vec![],
            ..Default::default()
        }],
    }
}

/// The string attributes of the first resource, sorted.
pub fn attrs_of(req: &TraceRequest) -> std::collections::BTreeMap<String, String> {
    req.resource_spans[0]
        .resource
        .as_ref()
        .map(|r| {
            r.attributes
                .iter()
                .map(|kv| {
                    let v = kv.value.as_ref().map(crate::attrs::as_string);
                    (kv.key.clone(), v.unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn config(yaml: &str) -> K8sAttributesConfig {
    let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    let c: K8sAttributesConfig = decode_config(&v).unwrap();
    c.validate().unwrap();
    c
}

pub fn setup(yaml: &str) -> (Arc<Rules>, PodIndex) {
    let rules = Arc::new(Rules::compile(&config(yaml)).unwrap());
    let pods = all_pods();
    let mut index = PodIndex::from_pods(rules.clone(), &pods);
    index.upsert_namespace(&namespace(SHOP_NAMESPACE));
    index.upsert_namespace(&namespace(KUBE_SYSTEM_NAMESPACE));
    index.upsert_node(&node(NODE_1));
    (rules, index)
}

pub fn ctx(ip: &str) -> Context {
    Context {
        client_addr: Some(ip.parse::<IpAddr>().unwrap()),
        ..Default::default()
    }
}

/// Enriches a one-resource request and returns its attributes.
pub fn enrich(
    rules: &Rules,
    index: &PodIndex,
    c: &Context,
    attrs: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut req = request(attrs);
    enrich_traces(&mut req, c, index, rules);
    attrs_of(&req)
}

pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
