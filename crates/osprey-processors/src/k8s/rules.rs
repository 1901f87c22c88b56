//! A `k8sattributes` config compiled into what matching and extraction need: the metadata
//! fields to add, label/annotation rules with their compiled `key_regex`, the pod association
//! rules and the excluded pod-name patterns.

use super::config::{K8sAttributesConfig, MAX_SOURCES};
use osprey_pipeline::ConfigError;
use regex::Regex;
use std::collections::BTreeMap;

/// Which metadata fields (`extract.metadata`) are added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub namespace: bool,
    pub pod_name: bool,
    pub pod_uid: bool,
    pub pod_hostname: bool,
    pub pod_ip: bool,
    pub start_time: bool,
    pub deployment_name: bool,
    pub replicaset_name: bool,
    pub replicaset_uid: bool,
    pub daemonset_name: bool,
    pub daemonset_uid: bool,
    pub statefulset_name: bool,
    pub statefulset_uid: bool,
    pub job_name: bool,
    pub job_uid: bool,
    pub cronjob_name: bool,
    pub node: bool,
    pub node_uid: bool,
    pub cluster_uid: bool,
    pub container_name: bool,
    pub container_id: bool,
    pub container_image_name: bool,
    pub container_image_tag: bool,
}

impl Metadata {
    /// Whether per-container data must be kept for each pod.
    pub fn needs_containers(&self) -> bool {
        self.container_name
            || self.container_id
            || self.container_image_name
            || self.container_image_tag
    }

    /// Whether owner references matter.
    pub fn needs_owners(&self) -> bool {
        self.deployment_name
            || self.replicaset_name
            || self.replicaset_uid
            || self.daemonset_name
            || self.daemonset_uid
            || self.statefulset_name
            || self.statefulset_uid
            || self.job_name
            || self.job_uid
            || self.cronjob_name
    }

    fn set(&mut self, field: &str) -> Result<(), String> {
        let flag = match field {
            "k8s.namespace.name" => &mut self.namespace,
            "k8s.pod.name" => &mut self.pod_name,
            "k8s.pod.uid" => &mut self.pod_uid,
            "k8s.pod.hostname" => &mut self.pod_hostname,
            "k8s.pod.ip" => &mut self.pod_ip,
            "k8s.pod.start_time" => &mut self.start_time,
            "k8s.deployment.name" => &mut self.deployment_name,
            "k8s.replicaset.name" => &mut self.replicaset_name,
            "k8s.replicaset.uid" => &mut self.replicaset_uid,
            "k8s.daemonset.name" => &mut self.daemonset_name,
            "k8s.daemonset.uid" => &mut self.daemonset_uid,
            "k8s.statefulset.name" => &mut self.statefulset_name,
            "k8s.statefulset.uid" => &mut self.statefulset_uid,
            "k8s.job.name" => &mut self.job_name,
            "k8s.job.uid" => &mut self.job_uid,
            "k8s.cronjob.name" => &mut self.cronjob_name,
            "k8s.node.name" => &mut self.node,
            "k8s.node.uid" => &mut self.node_uid,
            "k8s.cluster.uid" => &mut self.cluster_uid,
            "k8s.container.name" => &mut self.container_name,
            "container.id" => &mut self.container_id,
            "container.image.name" => &mut self.container_image_name,
            "container.image.tag" => &mut self.container_image_tag,
            "k8s.deployment.uid"
            | "k8s.cronjob.uid"
            | "container.image.repo_digests"
            | "container.image.tags"
            | "service.name"
            | "service.namespace"
            | "service.version"
            | "service.instance.id" => {
                return Err(format!(
                    "metadata field \"{field}\" is not supported by this implementation"
                ))
            }
            other => return Err(format!("\"{other}\" is not a supported metadata field")),
        };
        *flag = true;
        Ok(())
    }
}

/// Where a label/annotation rule reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Pod,
    Namespace,
    Node,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Pod => "pod",
            Origin::Namespace => "namespace",
            Origin::Node => "node",
        }
    }
}

/// A compiled `extract.labels[]` / `extract.annotations[]` rule.
#[derive(Debug, Clone)]
pub struct FieldRule {
    /// The attribute name (a template when `key_regex` has capture groups; unused when it has
    /// none).
    pub name: String,
    pub key: String,
    pub key_regex: Option<Regex>,
    pub from: Origin,
    /// `labels` or `annotations`: the default attribute name is `k8s.<from>.<kind>.<key>`.
    pub kind: &'static str,
}

impl FieldRule {
    /// Adds what this rule takes from `map` (an object's labels or annotations) to `tags`.
    pub fn extract(&self, map: &BTreeMap<String, String>, tags: &mut BTreeMap<String, String>) {
        match &self.key_regex {
            Some(re) => {
                for (k, v) in map {
                    if v.is_empty() {
                        continue;
                    }
                    let Some(caps) = re.captures(k) else { continue };
                    let name = if re.captures_len() > 1 && !self.name.is_empty() {
                        let mut out = String::new();
                        caps.expand(&self.name, &mut out);
                        out
                    } else {
                        format!("k8s.{}.{}.{k}", self.from.as_str(), self.kind)
                    };
                    tags.insert(name, v.clone());
                }
            }
            None => {
                if let Some(v) = map.get(&self.key) {
                    tags.insert(self.name.clone(), v.clone());
                }
            }
        }
    }
}

/// One source of a pod association.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// The client's IP address (matched against the pod IP).
    Connection,
    /// A resource attribute's string value.
    Resource(String),
}

/// Everything matching and extraction need, compiled from a config.
#[derive(Debug, Clone)]
pub struct Rules {
    pub passthrough: bool,
    pub metadata: Metadata,
    pub labels: Vec<FieldRule>,
    pub annotations: Vec<FieldRule>,
    /// `pod_association`: each rule is a list of sources that must all resolve.
    pub associations: Vec<Vec<Source>>,
    pub excludes: Vec<Regex>,
}

/// The annotation prefix `otel_annotations` maps to resource attributes.
pub const OTEL_ANNOTATION_PREFIX: &str = "resource.opentelemetry.io/";

impl Rules {
    /// Compiles `config`; errors name the key path.
    pub fn compile(config: &K8sAttributesConfig) -> Result<Rules, ConfigError> {
        let mut metadata = Metadata::default();
        for (i, field) in config.extract.metadata.iter().enumerate() {
            metadata
                .set(field)
                .map_err(|m| ConfigError::new(format!("extract.metadata[{i}]"), m))?;
        }
        let labels = field_rules(&config.extract.labels, "labels")?;
        let mut annotations = field_rules(&config.extract.annotations, "annotations")?;
        if config.extract.otel_annotations {
            let pattern = format!("^(?:{}(.+))$", regex::escape(OTEL_ANNOTATION_PREFIX));
            let re = Regex::new(&pattern)
                .map_err(|e| ConfigError::new("extract.otel_annotations", e.to_string()))?;
            annotations.push(FieldRule {
                name: "$1".into(),
                key: String::new(),
                key_regex: Some(re),
                from: Origin::Pod,
                kind: "annotations",
            });
        }
        let mut associations = Vec::new();
        for (i, a) in config.pod_association.iter().enumerate() {
            let path = format!("pod_association[{i}].sources");
            if a.sources.len() > MAX_SOURCES {
                return Err(ConfigError::new(
                    path,
                    format!("too many association sources. limit is {MAX_SOURCES}"),
                ));
            }
            let mut sources = Vec::new();
            for (j, s) in a.sources.iter().enumerate() {
                sources.push(match s.from.as_str() {
                    "connection" => Source::Connection,
                    "resource_attribute" if s.name.is_empty() => {
                        return Err(ConfigError::new(
                            format!("{path}[{j}].name"),
                            "`from: resource_attribute` needs the attribute `name`",
                        ))
                    }
                    "resource_attribute" => Source::Resource(s.name.clone()),
                    other => {
                        return Err(ConfigError::new(
                            format!("{path}[{j}].from"),
                            format!("{other:?} is not a valid association source (expected connection or resource_attribute)"),
                        ))
                    }
                });
            }
            associations.push(sources);
        }
        let mut excludes = Vec::new();
        for (i, p) in config.exclude.pods.iter().enumerate() {
            excludes.push(
                Regex::new(&p.name).map_err(|e| {
                    ConfigError::new(format!("exclude.pods[{i}].name"), e.to_string())
                })?,
            );
        }
        Ok(Rules {
            passthrough: config.passthrough,
            metadata,
            labels,
            annotations,
            associations,
            excludes,
        })
    }

    /// Whether some rule reads namespace labels/annotations, or the cluster uid (the
    /// `kube-system` namespace's uid) is wanted: then namespaces are watched.
    pub fn needs_namespaces(&self) -> bool {
        self.metadata.cluster_uid || self.reads_from(Origin::Namespace)
    }

    /// Whether only the `kube-system` namespace is needed.
    pub fn needs_kube_system_only(&self) -> bool {
        self.metadata.cluster_uid && !self.reads_from(Origin::Namespace)
    }

    /// Whether some rule reads node labels/annotations, or the node uid is wanted.
    pub fn needs_nodes(&self) -> bool {
        self.metadata.node_uid || self.reads_from(Origin::Node)
    }

    pub fn reads_from(&self, from: Origin) -> bool {
        self.labels
            .iter()
            .chain(&self.annotations)
            .any(|r| r.from == from)
    }
}

fn field_rules(
    fields: &[super::config::FieldExtractConfig],
    kind: &'static str,
) -> Result<Vec<FieldRule>, ConfigError> {
    let mut out = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        let path = format!("extract.{kind}[{i}]");
        if !f.key.is_empty() && !f.key_regex.is_empty() {
            return Err(ConfigError::new(
                path,
                format!("Out of Key or KeyRegex only one option is expected to be configured at a time, currently Key:{} and KeyRegex:{}", f.key, f.key_regex),
            ));
        }
        if f.key.is_empty() && f.key_regex.is_empty() {
            return Err(ConfigError::new(
                path,
                "one of `key` or `key_regex` is required",
            ));
        }
        let from = match f.from.as_str() {
            "" | "pod" => Origin::Pod,
            "namespace" => Origin::Namespace,
            "node" => Origin::Node,
            other => {
                return Err(ConfigError::new(
                    format!("{path}.from"),
                    format!(
                    "{other} is not a valid choice for From. Must be one of: pod, namespace, node"
                ),
                ))
            }
        };
        let key_regex = if f.key_regex.is_empty() {
            None
        } else {
            Some(
                Regex::new(&format!("^(?:{})$", f.key_regex))
                    .map_err(|e| ConfigError::new(format!("{path}.key_regex"), e.to_string()))?,
            )
        };
        let name = if f.tag_name.is_empty() && !f.key.is_empty() {
            format!("k8s.{}.{kind}.{}", from.as_str(), f.key)
        } else {
            f.tag_name.clone()
        };
        out.push(FieldRule {
            name,
            key: f.key.clone(),
            key_regex,
            from,
            kind,
        });
    }
    Ok(out)
}
