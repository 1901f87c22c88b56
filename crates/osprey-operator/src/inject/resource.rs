//! `OTEL_SERVICE_NAME` and the `OTEL_RESOURCE_ATTRIBUTES` pairs (upstream §3.5): the CR's
//! attributes, the k8s.* attributes of the pod and its owners, `resource.opentelemetry.io/*`
//! pod annotations, `service.namespace`, `service.version` (from the image tag) and
//! `service.instance.id`. Keys the container already sets in `OTEL_RESOURCE_ATTRIBUTES` are
//! never overridden.

use super::annotations::RESOURCE_PREFIX;
use super::sdk::{POD_NAME, RESOURCE_ATTRIBUTES};
use super::WorkloadRef;
use crate::crd::Instrumentation;
use k8s_openapi::api::core::v1::{Container, Pod};
use std::collections::{BTreeMap, HashSet};

/// What the attributes are computed from.
pub(super) struct ResourceInput<'a> {
    pub pod: &'a Pod,
    /// The pod's namespace name.
    pub namespace: &'a str,
    pub inst: &'a Instrumentation,
    /// Owner chain, nearest first.
    pub owners: &'a [WorkloadRef],
    /// The application container the telemetry describes.
    pub app: &'a Container,
}

impl ResourceInput<'_> {
    fn use_labels(&self) -> bool {
        let defaults = self.inst.spec.defaults.as_ref();
        defaults
            .and_then(|d| d.use_labels_for_resource_attributes)
            .unwrap_or(false)
    }

    fn add_uids(&self) -> bool {
        let resource = self.inst.spec.resource.as_ref();
        resource
            .and_then(|r| r.add_k8s_uid_attributes)
            .unwrap_or(false)
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        let annotations = self.pod.metadata.annotations.as_ref()?;
        annotations
            .get(&format!("{RESOURCE_PREFIX}{key}"))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn label(&self, key: &str) -> Option<&str> {
        let labels = self.pod.metadata.labels.as_ref()?;
        labels
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The annotation `resource.opentelemetry.io/<attribute>`, then (opt-in) the labels.
    fn annotation_or_label(&self, attribute: &str, labels: &[&str]) -> Option<String> {
        if let Some(v) = self.annotation(attribute) {
            return Some(v.to_string());
        }
        if self.use_labels() {
            return labels
                .iter()
                .find_map(|l| self.label(l))
                .map(str::to_string);
        }
        None
    }
}

/// Keys already present in the container's own `OTEL_RESOURCE_ATTRIBUTES`.
pub(super) fn existing_keys(c: &Container) -> HashSet<String> {
    let value = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == RESOURCE_ATTRIBUTES)
        .and_then(|e| e.value.as_deref())
        .unwrap_or("");
    value
        .split(',')
        .filter_map(|kv| {
            let parts: Vec<&str> = kv.trim().split('=').collect();
            (parts.len() == 2).then(|| parts[0].to_string())
        })
        .collect()
}

/// The attribute map before the downward-API values (pod name, node name, uid) are added.
pub(super) fn resource_map(
    input: &ResourceInput,
    existing: &HashSet<String>,
) -> BTreeMap<String, String> {
    let mut res = BTreeMap::new();
    let spec_attrs = input
        .inst
        .spec
        .resource
        .as_ref()
        .and_then(|r| r.resource_attributes.as_ref());
    for (k, v) in spec_attrs.into_iter().flatten() {
        if !existing.contains(k) {
            res.insert(k.clone(), v.clone());
        }
    }

    let pod = input.pod;
    let instance_id = input
        .annotation("service.instance.id")
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}.$({POD_NAME}).{}", input.namespace, input.app.name));
    let mut k8s: Vec<(&str, String)> = vec![
        ("k8s.namespace.name", input.namespace.to_string()),
        ("k8s.container.name", input.app.name.clone()),
        (
            "k8s.pod.name",
            pod.metadata.name.clone().unwrap_or_default(),
        ),
        ("k8s.pod.uid", pod.metadata.uid.clone().unwrap_or_default()),
        (
            "k8s.node.name",
            pod.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default(),
        ),
        ("service.instance.id", instance_id),
    ];
    for owner in input.owners {
        let (name_key, uid_key) = match owner.kind.to_ascii_lowercase().as_str() {
            "replicaset" => ("k8s.replicaset.name", "k8s.replicaset.uid"),
            "deployment" => ("k8s.deployment.name", "k8s.deployment.uid"),
            "statefulset" => ("k8s.statefulset.name", "k8s.statefulset.uid"),
            "daemonset" => ("k8s.daemonset.name", "k8s.daemonset.uid"),
            "job" => ("k8s.job.name", "k8s.job.uid"),
            "cronjob" => ("k8s.cronjob.name", "k8s.cronjob.uid"),
            _ => continue,
        };
        k8s.push((name_key, owner.name.clone()));
        if input.add_uids() {
            k8s.push((uid_key, owner.uid.clone().unwrap_or_default()));
        }
    }
    for (k, v) in k8s {
        if !v.is_empty() && !existing.contains(k) {
            res.insert(k.to_string(), v);
        }
    }

    let annotations = pod.metadata.annotations.iter().flatten();
    for (k, v) in annotations {
        if let Some(key) = k.strip_prefix(RESOURCE_PREFIX) {
            if key != "service.name" && !existing.contains(key) {
                res.insert(key.to_string(), v.clone());
            }
        }
    }
    let service_namespace = input
        .annotation("service.namespace")
        .unwrap_or(input.namespace);
    if !service_namespace.is_empty() && !existing.contains("service.namespace") {
        res.insert(
            "service.namespace".to_string(),
            service_namespace.to_string(),
        );
    }
    res
}

/// `OTEL_SERVICE_NAME`: the annotation, (opt-in) the instance/name labels, the owning
/// workload (Deployment, ReplicaSet, StatefulSet, DaemonSet, CronJob, Job), the pod name,
/// and finally the container name.
pub(super) fn service_name(input: &ResourceInput, res: &BTreeMap<String, String>) -> String {
    let labels = ["app.kubernetes.io/instance", "app.kubernetes.io/name"];
    if let Some(name) = input.annotation_or_label("service.name", &labels) {
        return name;
    }
    let keys = [
        "k8s.deployment.name",
        "k8s.replicaset.name",
        "k8s.statefulset.name",
        "k8s.daemonset.name",
        "k8s.cronjob.name",
        "k8s.job.name",
        "k8s.pod.name",
    ];
    keys.iter()
        .find_map(|k| res.get(*k).filter(|v| !v.is_empty()))
        .cloned()
        .unwrap_or_else(|| input.app.name.clone())
}

/// `service.version`: the annotation, (opt-in) the `app.kubernetes.io/version` label, else
/// the application image's tag (`tag@digest` when both are present).
pub(super) fn service_version(input: &ResourceInput) -> Option<String> {
    input
        .annotation_or_label("service.version", &["app.kubernetes.io/version"])
        .or_else(|| version_from_image(input.app.image.as_deref()?))
}

/// The tag and/or digest of an image reference; `None` when it has neither or is malformed.
pub(super) fn version_from_image(image: &str) -> Option<String> {
    let (named, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last_segment_start = named.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match named[last_segment_start..].rfind(':') {
        Some(i) => (
            &named[..last_segment_start + i],
            Some(&named[last_segment_start + i + 1..]),
        ),
        None => (named, None),
    };
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c))
        && !name.starts_with('/')
        && !name.ends_with('/');
    let tag_ok = tag.is_none_or(|t| {
        !t.is_empty()
            && t.len() <= 128
            && !t.starts_with(['.', '-'])
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    });
    let digest_ok = digest.is_none_or(|d| {
        d.split_once(':').is_some_and(|(algo, hex)| {
            !algo.is_empty() && hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
        })
    });
    if !(name_ok && tag_ok && digest_ok) {
        return None;
    }
    match (tag, digest) {
        (Some(t), Some(d)) => Some(format!("{t}@{d}")),
        (None, Some(d)) => Some(d.to_string()),
        (Some(t), None) => Some(t.to_string()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::version_from_image;

    #[test]
    fn versions_from_images() {
        let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let (tagged, digested) = (format!("app:1.0@{digest}"), format!("app@{digest}"));
        let cases = [
            ("python:3.12-slim", Some("3.12-slim".to_string())),
            ("ghcr.io/acme/app:1.4.2", Some("1.4.2".to_string())),
            ("localhost:5000/app:v2", Some("v2".to_string())),
            ("localhost:5000/app", None),
            ("nginx", None),
            ("", None),
            ("Upper/Case:1", None),
            (tagged.as_str(), Some(format!("1.0@{digest}"))),
            (digested.as_str(), Some(digest.to_string())),
            ("app@sha256:nothex", None),
        ];
        for (image, want) in cases {
            assert_eq!(version_from_image(image), want, "{image}");
        }
    }
}
