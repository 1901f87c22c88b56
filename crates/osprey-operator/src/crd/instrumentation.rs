//! `Instrumentation` (`opentelemetry.io/v1alpha1`): how pods annotated with
//! `instrumentation.opentelemetry.io/inject-<language>` are auto-instrumented. JSON keys are
//! upstream's, quirks included (`java.resources` but `python.resourceRequirements`,
//! snake_case TLS file keys, `resource.resourceAttributes`).

use k8s_openapi::api::core::v1::{
    EnvVar, PersistentVolumeClaimTemplate, ResourceRequirements, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Context propagation formats (`OTEL_PROPAGATORS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Propagator {
    Tracecontext,
    Baggage,
    B3,
    B3multi,
    Jaeger,
    Xray,
    Ottrace,
    None,
}

impl Propagator {
    pub fn as_str(self) -> &'static str {
        match self {
            Propagator::Tracecontext => "tracecontext",
            Propagator::Baggage => "baggage",
            Propagator::B3 => "b3",
            Propagator::B3multi => "b3multi",
            Propagator::Jaeger => "jaeger",
            Propagator::Xray => "xray",
            Propagator::Ottrace => "ottrace",
            Propagator::None => "none",
        }
    }
}

/// Sampler types (`OTEL_TRACES_SAMPLER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SamplerType {
    AlwaysOn,
    AlwaysOff,
    Traceidratio,
    ParentbasedAlwaysOn,
    ParentbasedAlwaysOff,
    ParentbasedTraceidratio,
    JaegerRemote,
    Xray,
}

impl SamplerType {
    pub fn as_str(self) -> &'static str {
        match self {
            SamplerType::AlwaysOn => "always_on",
            SamplerType::AlwaysOff => "always_off",
            SamplerType::Traceidratio => "traceidratio",
            SamplerType::ParentbasedAlwaysOn => "parentbased_always_on",
            SamplerType::ParentbasedAlwaysOff => "parentbased_always_off",
            SamplerType::ParentbasedTraceidratio => "parentbased_traceidratio",
            SamplerType::JaegerRemote => "jaeger_remote",
            SamplerType::Xray => "xray",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Sampler {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<SamplerType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argument: Option<String>,
}

/// TLS material for the exporter; the Secret and ConfigMap live in the pod's namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExporterTls {
    #[serde(
        default,
        rename = "secretName",
        skip_serializing_if = "Option::is_none"
    )]
    pub secret_name: Option<String>,
    #[serde(
        default,
        rename = "configMapName",
        skip_serializing_if = "Option::is_none"
    )]
    pub config_map_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Exporter {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ExporterTls>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_attributes: Option<BTreeMap<String, String>>,
    #[serde(
        default,
        rename = "addK8sUIDAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    pub add_k8s_uid_attributes: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Defaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_labels_for_resource_attributes: Option<bool>,
}

/// A Java agent extension: its JARs are copied from `dir` in `image`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JavaExtension {
    pub image: String,
    pub dir: String,
}

/// Settings of one language. Java's resources key is `resources`; every other language's
/// is `resourceRequirements` (both are read through [`LanguageSpec::resources`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LanguageSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_claim_template: Option<PersistentVolumeClaimTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_limit_size: Option<Quantity>,
    /// Java only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Every language but Java.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_requirements: Option<ResourceRequirements>,
    /// Java only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Vec<JavaExtension>>,
    /// Go only: replaces the default (privileged, runAsUser 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Apache httpd / nginx: extra directives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attrs: Option<Vec<EnvVar>>,
    /// Apache httpd: `2.2` or `2.4` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Apache httpd: default `/usr/local/apache2/conf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_path: Option<String>,
    /// nginx: default `/etc/nginx/nginx.conf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<String>,
}

impl LanguageSpec {
    /// The init container's resources, whichever key the manifest used.
    pub fn resources(&self) -> Option<&ResourceRequirements> {
        self.resources
            .as_ref()
            .or(self.resource_requirements.as_ref())
    }
}

/// How to instrument pods. See the upstream operator's documentation for each field.
// kube-derive repeats `printcolumn(...)`/`shortname`; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "opentelemetry.io",
    version = "v1alpha1",
    kind = "Instrumentation",
    plural = "instrumentations",
    singular = "instrumentation",
    shortname = "otelinst",
    shortname = "otelinsts",
    namespaced,
    status = "InstrumentationStatus",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".spec.exporter.endpoint"
    ),
    printcolumn(name = "Sampler", type_ = "string", json_path = ".spec.sampler.type"),
    printcolumn(
        name = "Sampler Arg",
        type_ = "string",
        json_path = ".spec.sampler.argument"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct InstrumentationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter: Option<Exporter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagators: Option<Vec<Propagator>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler: Option<Sampler>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Defaults>,
    /// Env for every language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Applied to the injected init containers (default: non-root, see the injector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_container_security_context: Option<SecurityContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub java: Option<LanguageSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodejs: Option<LanguageSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<LanguageSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dotnet: Option<LanguageSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go: Option<LanguageSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apache_httpd: Option<LanguageSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<LanguageSpec>,
    /// Osprey: restart annotated workloads when this Instrumentation changes (opt-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_on_change: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstrumentationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_blocked_versions: Option<BTreeMap<String, String>>,
}
