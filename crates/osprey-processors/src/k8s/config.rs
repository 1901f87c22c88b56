//! The `k8sattributes` processor's YAML config, with the keys and defaults of the Collector's
//! `k8sattributesprocessor` (`auth_type`, `context`, `passthrough`, `extract`, `filter`,
//! `pod_association`, `exclude`, `wait_for_metadata`, `wait_for_metadata_timeout`), and its
//! semantic checks. Compiling a config into matching rules lives in `rules.rs`.

use osprey_pipeline::{go_duration, ConfigError};
use std::time::Duration;

/// How the processor authenticates to the Kubernetes API server (`auth_type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub enum AuthType {
    /// The pod's service account (token and CA under
    /// `/var/run/secrets/kubernetes.io/serviceaccount`, API address from
    /// `KUBERNETES_SERVICE_HOST` / `KUBERNETES_SERVICE_PORT`).
    #[default]
    #[serde(rename = "serviceAccount")]
    ServiceAccount,
    /// The local kubeconfig (`$KUBECONFIG` or `~/.kube/config`), with `context` overriding the
    /// current context.
    #[serde(rename = "kubeConfig")]
    KubeConfig,
    /// No credentials: the in-cluster API address over TLS without certificate verification
    /// (as upstream). Meant for tests, proxies that add credentials, and `passthrough` agents.
    #[serde(rename = "none")]
    None,
    /// Client-certificate auth: accepted by the decoder so the error can say it is not
    /// supported.
    #[serde(rename = "tls")]
    Tls,
}

impl AuthType {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::ServiceAccount => "serviceAccount",
            AuthType::KubeConfig => "kubeConfig",
            AuthType::None => "none",
            AuthType::Tls => "tls",
        }
    }
}

/// `processors.k8sattributes` config.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct K8sAttributesConfig {
    pub auth_type: AuthType,
    /// With `auth_type: kubeConfig`: the kubeconfig context to use instead of the current one.
    pub context: String,
    /// Only tag resources with `k8s.pod.ip` from the connection; no API access.
    pub passthrough: bool,
    pub extract: ExtractConfig,
    pub filter: FilterConfig,
    pub pod_association: Vec<PodAssociationConfig>,
    pub exclude: ExcludeConfig,
    /// Block start-up until the pod list has been fetched.
    pub wait_for_metadata: bool,
    #[serde(with = "go_duration")]
    pub wait_for_metadata_timeout: Duration,
}

impl Default for K8sAttributesConfig {
    fn default() -> Self {
        K8sAttributesConfig {
            auth_type: AuthType::ServiceAccount,
            context: String::new(),
            passthrough: false,
            extract: ExtractConfig::default(),
            filter: FilterConfig::default(),
            pod_association: Vec::new(),
            exclude: ExcludeConfig::default(),
            wait_for_metadata: false,
            wait_for_metadata_timeout: Duration::from_secs(10),
        }
    }
}

/// The metadata fields extracted when `extract.metadata` is not given (upstream's
/// `metadata.yaml` defaults).
pub const DEFAULT_METADATA: [&str; 8] = [
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.pod.uid",
    "k8s.pod.start_time",
    "k8s.deployment.name",
    "k8s.node.name",
    "container.image.name",
    "container.image.tag",
];

/// `extract`: what to add to matched resources.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtractConfig {
    pub metadata: Vec<String>,
    pub annotations: Vec<FieldExtractConfig>,
    pub labels: Vec<FieldExtractConfig>,
    /// Pod annotations `resource.opentelemetry.io/<key>` become resource attribute `<key>`.
    pub otel_annotations: bool,
    /// Accepted for compatibility: the deployment name is always derived from the owning
    /// ReplicaSet's name (this implementation never watches ReplicaSets).
    pub deployment_name_from_replicaset: bool,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        ExtractConfig {
            metadata: DEFAULT_METADATA.iter().map(|s| s.to_string()).collect(),
            annotations: Vec::new(),
            labels: Vec::new(),
            otel_annotations: false,
            deployment_name_from_replicaset: false,
        }
    }
}

/// One `extract.labels[]` / `extract.annotations[]` rule.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldExtractConfig {
    /// Attribute name; with `key_regex`, may refer to capture groups (`$1`, `${name}`).
    pub tag_name: String,
    pub key: String,
    pub key_regex: String,
    /// `pod` (default), `namespace` or `node`.
    pub from: String,
}

/// `filter`: which pods to watch.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    pub node: String,
    pub node_from_env_var: String,
    pub namespace: String,
    pub fields: Vec<FieldFilterConfig>,
    pub labels: Vec<FieldFilterConfig>,
}

/// One `filter.fields[]` / `filter.labels[]` selector term.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldFilterConfig {
    pub key: String,
    pub value: String,
    /// `equals` (default), `not-equals`; labels also `exists`, `does-not-exist`.
    pub op: String,
}

/// One `pod_association[]` rule: all sources must resolve for it to apply.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PodAssociationConfig {
    pub sources: Vec<PodAssociationSourceConfig>,
}

/// `{from: connection}` or `{from: resource_attribute, name: k8s.pod.ip}`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PodAssociationSourceConfig {
    pub from: String,
    pub name: String,
}

/// `exclude`: pods never used for enrichment (names are regular expressions).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExcludeConfig {
    pub pods: Vec<ExcludePodConfig>,
}

impl Default for ExcludeConfig {
    fn default() -> Self {
        ExcludeConfig {
            pods: vec![
                ExcludePodConfig {
                    name: "jaeger-agent".into(),
                },
                ExcludePodConfig {
                    name: "jaeger-collector".into(),
                },
            ],
        }
    }
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExcludePodConfig {
    pub name: String,
}

/// At most this many sources per association (upstream's `PodIdentifierMaxLength`).
pub const MAX_SOURCES: usize = 4;

impl K8sAttributesConfig {
    /// Semantic checks, with the failing key's path. Also compiles every rule, so a config
    /// that validates always builds (except for reaching the API server).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.auth_type == AuthType::Tls {
            return Err(ConfigError::new(
                "auth_type",
                "auth_type \"tls\" is not supported (use serviceAccount, kubeConfig or none)",
            ));
        }
        if !self.filter.node_from_env_var.is_empty()
            && std::env::var_os(&self.filter.node_from_env_var).is_none()
        {
            return Err(ConfigError::new(
                "filter.node_from_env_var",
                format!(
                    "`node_from_env_var` is configured but envvar {:?} is not set",
                    self.filter.node_from_env_var
                ),
            ));
        }
        for (i, f) in self.filter.labels.iter().enumerate() {
            if !matches!(
                f.op.as_str(),
                "" | "equals" | "not-equals" | "exists" | "does-not-exist"
            ) {
                return Err(ConfigError::new(
                    format!("filter.labels[{i}].op"),
                    format!("'{}' is not a valid label filter operation for key={}, value={} (expected equals, not-equals, exists or does-not-exist)", f.op, f.key, f.value),
                ));
            }
            if f.key.is_empty() {
                return Err(ConfigError::new(
                    format!("filter.labels[{i}].key"),
                    "a label filter needs a key",
                ));
            }
        }
        for (i, f) in self.filter.fields.iter().enumerate() {
            if !matches!(f.op.as_str(), "" | "equals" | "not-equals") {
                return Err(ConfigError::new(
                    format!("filter.fields[{i}].op"),
                    format!("'{}' is not a valid field filter operation for key={}, value={} (expected equals or not-equals)", f.op, f.key, f.value),
                ));
            }
            if f.key.is_empty() {
                return Err(ConfigError::new(
                    format!("filter.fields[{i}].key"),
                    "a field filter needs a key",
                ));
            }
        }
        super::rules::Rules::compile(self).map(|_| ())
    }

    /// The node pods are filtered by: `filter.node_from_env_var`'s value, else `filter.node`.
    pub fn node_filter(&self) -> String {
        if !self.filter.node_from_env_var.is_empty() {
            return std::env::var(&self.filter.node_from_env_var).unwrap_or_default();
        }
        self.filter.node.clone()
    }
}
