//! What the processor keeps of one Kubernetes Pod: the resource attributes extracted from it by
//! the rules (names, uids, owners, start time, labels, annotations), its containers, and the
//! identifiers it is found by (pod IP, pod UID, and whatever the association rules ask for).

use super::rules::{Origin, Rules, Source};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// Pods carrying this annotation with value `true` are never used for enrichment.
pub const IGNORE_ANNOTATION: &str = "opentelemetry.io/k8s-processor/ignore";

/// One part of a pod identifier: where the value came from, and the value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdPart {
    pub source: Source,
    pub value: String,
}

/// How a pod is looked up: the resolved sources of one association rule, in order.
pub type PodId = Vec<IdPart>;

/// One container of a pod, as far as the rules need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Set only when `k8s.container.name` is extracted.
    pub name: String,
    pub image_name: String,
    pub image_tag: String,
    /// Container id (runtime prefix removed) by restart count.
    pub ids_by_restart: BTreeMap<i64, String>,
}

/// A pod's containers by name, and container id -> container name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Containers {
    pub by_name: BTreeMap<String, ContainerInfo>,
    pub by_id: BTreeMap<String, String>,
}

/// What the index keeps of one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    /// `status.podIP` ("" while unassigned).
    pub ip: String,
    pub host_network: bool,
    pub node_name: String,
    /// `status.startTime`: when two pods claim one identifier, the later one wins.
    pub start_time: Option<Timestamp>,
    /// Excluded by name or by the ignore annotation: found, but never used.
    pub ignore: bool,
    /// The resource attributes this pod contributes.
    pub attributes: BTreeMap<String, String>,
    pub containers: Containers,
}

impl PodInfo {
    /// Extracts what `rules` ask for from `pod`.
    pub fn from_pod(pod: &Pod, rules: &Rules) -> PodInfo {
        let meta = &pod.metadata;
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let mut info = PodInfo {
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            ip: status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            node_name: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            start_time: status.and_then(|s| s.start_time.as_ref()).map(|t| t.0),
            ..Default::default()
        };
        let annotations = meta.annotations.clone().unwrap_or_default();
        let ignored_by_annotation = annotations
            .get(IGNORE_ANNOTATION)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if ignored_by_annotation || rules.excludes.iter().any(|re| re.is_match(&info.name)) {
            info.ignore = true;
            return info;
        }
        info.attributes = pod_attributes(pod, &info, rules, &annotations);
        if rules.metadata.needs_containers() {
            info.containers = containers(pod, rules);
        }
        info
    }

    /// The identifiers this pod is found by: one per association rule whose sources all
    /// resolve for it (one per container id for a `container.id` source), plus its UID, and
    /// its IP (as a connection and as `k8s.pod.ip`) unless it uses the host network.
    pub fn identifiers(&self, rules: &Rules) -> Vec<PodId> {
        let mut ids = Vec::new();
        'assoc: for sources in &rules.associations {
            let mut id = Vec::with_capacity(sources.len());
            let mut container_slot = None;
            for source in sources {
                let value = match source {
                    Source::Connection if self.ip.is_empty() || self.host_network => {
                        continue 'assoc
                    }
                    Source::Connection => self.ip.clone(),
                    Source::Resource(name) => match name.as_str() {
                        "k8s.namespace.name" => self.namespace.clone(),
                        "k8s.pod.name" => self.name.clone(),
                        "k8s.pod.uid" => self.uid.clone(),
                        "host.name" | "k8s.pod.ip" => self.ip.clone(),
                        "container.id" => {
                            container_slot = Some(id.len());
                            String::new()
                        }
                        other => self.attributes.get(other).cloned().unwrap_or_default(),
                    },
                };
                if value.is_empty() && container_slot != Some(id.len()) {
                    continue 'assoc;
                }
                id.push(IdPart {
                    source: source.clone(),
                    value,
                });
            }
            match container_slot {
                Some(slot) => {
                    for cid in self.containers.by_id.keys() {
                        let mut with_container = id.clone();
                        with_container[slot].value = cid.clone();
                        ids.push(with_container);
                    }
                }
                None => ids.push(id),
            }
        }
        if !self.uid.is_empty() {
            ids.push(vec![IdPart {
                source: Source::Resource("k8s.pod.uid".into()),
                value: self.uid.clone(),
            }]);
        }
        if !self.ip.is_empty() && !self.host_network {
            ids.push(vec![IdPart {
                source: Source::Connection,
                value: self.ip.clone(),
            }]);
            ids.push(vec![IdPart {
                source: Source::Resource("k8s.pod.ip".into()),
                value: self.ip.clone(),
            }]);
        }
        ids
    }
}

/// The deployment that owns ReplicaSet `replicaset`: its name minus `-<pod-template-hash>`,
/// the hash coming from the pod's `pod-template-hash` label (set by the Deployment
/// controller). `None` for a ReplicaSet not made by a Deployment.
pub fn deployment_name(replicaset: &str, pod_template_hash: Option<&str>) -> Option<String> {
    let hash = pod_template_hash.filter(|h| !h.is_empty())?;
    let base = replicaset.strip_suffix(hash)?.strip_suffix('-')?;
    (!base.is_empty()).then(|| base.to_string())
}

/// The CronJob that owns Job `job`: the job name minus its `-<schedule time>` suffix.
pub fn cronjob_name(job: &str) -> Option<String> {
    static RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(.*)-\d+$").expect("valid"));
    RE.captures(job).map(|c| c[1].to_string())
}

fn pod_attributes(
    pod: &Pod,
    info: &PodInfo,
    rules: &Rules,
    annotations: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let m = &rules.metadata;
    let meta = &pod.metadata;
    let mut tags = BTreeMap::new();
    let mut put = |on: bool, key: &str, value: &str| {
        if on {
            tags.insert(key.to_string(), value.to_string());
        }
    };
    put(m.pod_name, "k8s.pod.name", &info.name);
    let hostname = pod.spec.as_ref().and_then(|s| s.hostname.clone());
    put(
        m.pod_hostname,
        "k8s.pod.hostname",
        hostname.as_deref().unwrap_or(""),
    );
    put(m.pod_ip, "k8s.pod.ip", &info.ip);
    put(m.namespace, "k8s.namespace.name", &info.namespace);
    if let Some(created) = &meta.creation_timestamp {
        put(m.start_time, "k8s.pod.start_time", &created.0.to_string());
    }
    put(m.pod_uid, "k8s.pod.uid", &info.uid);
    let labels = meta.labels.clone().unwrap_or_default();
    if m.needs_owners() {
        for owner in meta.owner_references.iter().flatten() {
            match owner.kind.as_str() {
                "ReplicaSet" => {
                    put(m.replicaset_uid, "k8s.replicaset.uid", &owner.uid);
                    put(m.replicaset_name, "k8s.replicaset.name", &owner.name);
                    let hash = labels.get("pod-template-hash").map(String::as_str);
                    if let Some(d) = deployment_name(&owner.name, hash) {
                        put(m.deployment_name, "k8s.deployment.name", &d);
                    }
                }
                "DaemonSet" => {
                    put(m.daemonset_uid, "k8s.daemonset.uid", &owner.uid);
                    put(m.daemonset_name, "k8s.daemonset.name", &owner.name);
                }
                "StatefulSet" => {
                    put(m.statefulset_uid, "k8s.statefulset.uid", &owner.uid);
                    put(m.statefulset_name, "k8s.statefulset.name", &owner.name);
                }
                "Job" => {
                    put(m.job_uid, "k8s.job.uid", &owner.uid);
                    put(m.job_name, "k8s.job.name", &owner.name);
                    if let Some(c) = cronjob_name(&owner.name) {
                        put(m.cronjob_name, "k8s.cronjob.name", &c);
                    }
                }
                _ => {}
            }
        }
    }
    put(m.node, "k8s.node.name", &info.node_name);
    for r in rules.labels.iter().filter(|r| r.from == Origin::Pod) {
        r.extract(&labels, &mut tags);
    }
    for r in rules.annotations.iter().filter(|r| r.from == Origin::Pod) {
        r.extract(annotations, &mut tags);
    }
    tags
}

fn containers(pod: &Pod, rules: &Rules) -> Containers {
    let m = &rules.metadata;
    let mut out = Containers::default();
    if m.container_image_name || m.container_image_tag {
        let spec = pod.spec.as_ref();
        let specs = spec
            .map(|s| s.containers.iter())
            .into_iter()
            .flatten()
            .chain(
                spec.and_then(|s| s.init_containers.as_ref())
                    .into_iter()
                    .flatten(),
            );
        for c in specs {
            let mut info = ContainerInfo::default();
            if let Some(image) = c.image.as_deref().and_then(parse_image) {
                if m.container_image_name {
                    info.image_name = image.repository;
                }
                if m.container_image_tag {
                    info.image_tag = image.tag;
                }
            }
            out.by_name.insert(c.name.clone(), info);
        }
    }
    let status = pod.status.as_ref();
    let statuses = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .chain(
            status
                .and_then(|s| s.init_container_statuses.as_ref())
                .into_iter()
                .flatten(),
        );
    for st in statuses {
        let entry = out.by_name.entry(st.name.clone()).or_default();
        if m.container_name {
            entry.name = st.name.clone();
        }
        let raw = st.container_id.as_deref().unwrap_or("");
        let id = raw.split_once("://").map_or(raw, |(_, id)| id).to_string();
        if m.container_id {
            entry
                .ids_by_restart
                .insert(i64::from(st.restart_count), id.clone());
        }
        if !id.is_empty() {
            out.by_id.insert(id, st.name.clone());
        }
    }
    out
}

/// A container image reference split as the Collector does (Docker's normalization:
/// `nginx:1.25` is `docker.io/library/nginx` tag `1.25`; no tag and no digest means `latest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub repository: String,
    pub tag: String,
    pub digest: String,
}

/// Parses `image`; `None` when it is not a valid reference.
pub fn parse_image(image: &str) -> Option<ImageRef> {
    let (name_tag, digest) = match image.split_once('@') {
        Some((n, d)) if !d.is_empty() && d.contains(':') => (n, d.to_string()),
        Some(_) => return None,
        None => (image, String::new()),
    };
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => {
            let at = last_slash + i;
            (&name_tag[..at], name_tag[at + 1..].to_string())
        }
        None => (name_tag, String::new()),
    };
    let valid_tag = tag
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if name.is_empty() || (tag.is_empty() && name_tag.ends_with(':')) || !valid_tag {
        return None;
    }
    if name.chars().any(|c| c.is_whitespace()) {
        return None;
    }
    let (domain, path) = match name.split_once('/') {
        Some((d, rest)) if d.contains('.') || d.contains(':') || d == "localhost" => {
            (d.to_string(), rest.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    if path.is_empty() || path.chars().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let tag = if tag.is_empty() && digest.is_empty() {
        "latest".to_string()
    } else {
        tag
    };
    Some(ImageRef {
        repository: format!("{domain}/{path}"),
        tag,
        digest,
    })
}
