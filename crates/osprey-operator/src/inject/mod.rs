//! Pod mutation for auto-instrumentation: given a pod, its namespace and the known
//! `Instrumentation`s and collectors, [`mutate`] returns the pod as the upstream OpenTelemetry
//! Operator's webhook would admit it (collector sidecar first, then the per-language init
//! containers, volumes and env), plus a note for every container it instrumented or skipped.
//!
//! Everything here is a pure function: the webhook and `osprey inject` call the same code.
//! Layout: [`annotations`] (names, pod/namespace fallback), `select` (which Instrumentation,
//! which containers), `lang` (one file per language), `sdk` and `resource` (the common
//! `OTEL_*` env), [`patch`] (RFC 6902 diff for the admission response).

pub mod annotations;
mod lang;
pub mod patch;
mod resource;
mod sdk;
mod select;
#[cfg(test)]
mod tests;

use crate::collector::sidecar::{inject_sidecar, SidecarError};
use crate::crd::{Instrumentation, OpenTelemetryCollector};
use std::fmt;

/// The Kubernetes types in this API, re-exported for callers without `k8s-openapi`.
pub use k8s_openapi::api::core::v1::{Namespace, Pod};

pub use patch::{apply_patch, json_patch, PatchError};
pub use select::WELL_KNOWN_PROXIES;

/// The upstream operator release whose default auto-instrumentation images Osprey uses.
pub const UPSTREAM_IMAGES_RELEASE: &str = "0.160.0";

const IMAGE_REPO: &str = "ghcr.io/open-telemetry/opentelemetry-operator";

/// An auto-instrumentation kind, in the order upstream processes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    Java,
    NodeJs,
    Python,
    DotNet,
    Go,
    ApacheHttpd,
    Nginx,
    /// `inject-sdk`: the common `OTEL_*` env only, no agent.
    Sdk,
}

impl Language {
    /// Every language, in upstream's processing order.
    pub const ALL: [Language; 8] = [
        Language::Java,
        Language::NodeJs,
        Language::Python,
        Language::DotNet,
        Language::Go,
        Language::ApacheHttpd,
        Language::Nginx,
        Language::Sdk,
    ];

    /// The annotation suffix: `inject-<as_str>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Java => "java",
            Language::NodeJs => "nodejs",
            Language::Python => "python",
            Language::DotNet => "dotnet",
            Language::Go => "go",
            Language::ApacheHttpd => "apache-httpd",
            Language::Nginx => "nginx",
            Language::Sdk => "sdk",
        }
    }

    /// The name upstream uses in its "support for X auto instrumentation is not enabled" message.
    fn display_name(self) -> &'static str {
        match self {
            Language::Java => "Java",
            Language::NodeJs => "NodeJS",
            Language::Python => "Python",
            Language::DotNet => ".NET",
            Language::Go => "Go",
            Language::ApacheHttpd => "Apache HTTPD",
            Language::Nginx => "Nginx",
            Language::Sdk => "SDK",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which languages the operator injects (`--enable-<lang>-instrumentation`). `inject-sdk` is
/// always allowed, as upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LanguageToggles {
    pub java: bool,
    pub nodejs: bool,
    pub python: bool,
    pub dotnet: bool,
    pub go: bool,
    pub apache_httpd: bool,
    pub nginx: bool,
}

impl Default for LanguageToggles {
    fn default() -> Self {
        LanguageToggles {
            java: true,
            nodejs: true,
            python: true,
            dotnet: true,
            go: false,
            apache_httpd: false,
            nginx: false,
        }
    }
}

impl LanguageToggles {
    pub fn enabled(&self, language: Language) -> bool {
        match language {
            Language::Java => self.java,
            Language::NodeJs => self.nodejs,
            Language::Python => self.python,
            Language::DotNet => self.dotnet,
            Language::Go => self.go,
            Language::ApacheHttpd => self.apache_httpd,
            Language::Nginx => self.nginx,
            Language::Sdk => true,
        }
    }
}

/// The image each language's init container (Go: sidecar) uses when the Instrumentation
/// does not name one (`--auto-instrumentation-<lang>-image`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultImages {
    pub java: String,
    pub nodejs: String,
    pub python: String,
    pub dotnet: String,
    pub go: String,
    pub apache_httpd: String,
    pub nginx: String,
}

impl Default for DefaultImages {
    /// Upstream's defaults as of operator [`UPSTREAM_IMAGES_RELEASE`].
    fn default() -> Self {
        let op = |lang: &str, v: &str| format!("{IMAGE_REPO}/autoinstrumentation-{lang}:{v}");
        DefaultImages {
            java: op("java", "2.31.1"),
            nodejs: op("nodejs", "0.78.0"),
            python: op("python", "0.66b0"),
            dotnet: op("dotnet", "1.17.0"),
            go: "ghcr.io/open-telemetry/opentelemetry-go-instrumentation/autoinstrumentation-go:v0.24.0"
                .to_string(),
            apache_httpd: op("apache-httpd", "1.0.4"),
            // Upstream's nginx injection reuses the apache-httpd image.
            nginx: op("apache-httpd", "1.0.4"),
        }
    }
}

impl DefaultImages {
    pub fn for_language(&self, language: Language) -> Option<&str> {
        Some(match language {
            Language::Java => &self.java,
            Language::NodeJs => &self.nodejs,
            Language::Python => &self.python,
            Language::DotNet => &self.dotnet,
            Language::Go => &self.go,
            Language::ApacheHttpd => &self.apache_httpd,
            Language::Nginx => &self.nginx,
            Language::Sdk => return None,
        })
    }
}

/// Operator settings that shape the mutation. `Default` is upstream's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectConfig {
    pub languages: LanguageToggles,
    pub images: DefaultImages,
    /// `--enable-multi-instrumentation` (upstream default: true): per-language
    /// `<lang>-container-names` annotations are honoured and checked.
    pub multi_instrumentation: bool,
    /// Put the collector sidecar in `initContainers` with `restartPolicy: Always`
    /// (Kubernetes >= 1.29).
    pub native_sidecars: bool,
}

impl Default for InjectConfig {
    fn default() -> Self {
        InjectConfig {
            languages: LanguageToggles::default(),
            images: DefaultImages::default(),
            multi_instrumentation: true,
            native_sidecars: true,
        }
    }
}

/// A resolved owner of the pod: Deployment, StatefulSet, DaemonSet, Job, CronJob, ReplicaSet
/// (other kinds are carried but do not name anything).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadRef {
    pub kind: String,
    pub name: String,
    pub uid: Option<String>,
}

/// What the mutation may look at besides the pod.
#[derive(Clone, Copy, Debug)]
pub struct PodContext<'a> {
    /// The pod's namespace (its annotations are the fallback for the pod's).
    pub namespace: &'a Namespace,
    /// All known Instrumentations, any namespace; `mutate` filters.
    pub instrumentations: &'a [Instrumentation],
    /// All known collectors, for sidecar injection.
    pub collectors: &'a [OpenTelemetryCollector],
    /// The owner chain, nearest first (e.g. ReplicaSet, then Deployment). Empty: the pod's
    /// own `ownerReferences` are used.
    pub owners: &'a [WorkloadRef],
}

/// The result of [`mutate`].
#[derive(Clone, Debug, PartialEq)]
pub struct Mutation {
    pub pod: Pod,
    pub applied: Vec<Applied>,
    pub skipped: Vec<Skip>,
}

/// One language injected into one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub language: Language,
    pub container: String,
    /// `namespace/name` of the Instrumentation used.
    pub instrumentation: String,
}

/// Something asked for and not done, with the reason. Pod-level notes (collector sidecar
/// notes, prefixed `sidecar: `, and reasons the whole pod was left uninstrumented) carry no
/// language and no container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    pub language: Option<Language>,
    pub container: Option<String>,
    pub reason: String,
}

impl Skip {
    fn new(language: Option<Language>, container: Option<&str>, reason: impl Into<String>) -> Skip {
        Skip {
            language,
            container: container.map(str::to_string),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "injected {} into container {:?} (Instrumentation {})",
            self.language, self.container, self.instrumentation
        )
    }
}

impl fmt::Display for Skip {
    /// `skipped <lang> in container "<c>": <reason>`; a pod-level note (no language, no
    /// container) is its reason alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.language.is_none() && self.container.is_none() {
            return f.write_str(&self.reason);
        }
        f.write_str("skipped")?;
        if let Some(l) = self.language {
            write!(f, " {l}")?;
        }
        if let Some(c) = &self.container {
            write!(f, " in container {c:?}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Why a pod could not be mutated at all. The webhook still admits the pod unchanged.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("no OpenTelemetry Instrumentation instances available in namespace {namespace:?} (for annotation {annotation})")]
    NoInstances {
        namespace: String,
        annotation: String,
    },
    #[error("multiple OpenTelemetry Instrumentation instances available, cannot determine which one to select (namespace {namespace:?} has {names}; name one in annotation {annotation})")]
    MultipleInstances {
        namespace: String,
        names: String,
        annotation: String,
    },
    #[error("instrumentations.opentelemetry.io {name:?} not found in namespace {namespace:?} (annotation {annotation})")]
    NotFound {
        namespace: String,
        name: String,
        annotation: String,
    },
    #[error("not valid characters included in the instrumentation container annotation {annotation}: {value:?}")]
    InvalidContainerNames { annotation: String, value: String },
    #[error("collector sidecar injection failed: {0}")]
    Sidecar(#[from] SidecarError),
}

/// Mutates `pod` as the webhook admits it: the collector sidecar (`sidecar.opentelemetry.io/inject`),
/// then auto-instrumentation for every `instrumentation.opentelemetry.io/inject-*` annotation
/// of the pod or its namespace. An error means the pod is admitted unchanged.
pub fn mutate(pod: &Pod, ctx: &PodContext, cfg: &InjectConfig) -> Result<Mutation, InjectError> {
    let sidecar = inject_sidecar(pod, ctx.namespace, ctx.collectors, cfg.native_sidecars)?;
    let mut out = Mutation {
        pod: sidecar.pod,
        applied: Vec::new(),
        skipped: sidecar
            .notes
            .into_iter()
            .map(|n| Skip::new(None, None, format!("sidecar: {n}")))
            .collect(),
    };
    let Some(plan) = select::plan(&out.pod, ctx, cfg, &mut out.skipped)? else {
        return Ok(out);
    };
    for target in &plan.targets {
        lang::inject(&mut out, target, &plan, ctx, cfg);
    }
    Ok(out)
}
