//! What the webhook would have done for a pod: the effective annotation values (pod over
//! namespace, upstream's rule), the Instrumentation or collector they name, the containers
//! injection marks, and the env values the current Instrumentation gives.

use crate::crd::instrumentation::LanguageSpec;
use crate::crd::{Instrumentation, Mode, OpenTelemetryCollector};
use crate::inject::annotations::annotation_value;
use k8s_openapi::api::core::v1::{Container, EnvVar, Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;

// The names the injector and the reconciler use, so that the diagnosis cannot drift from them.
pub use crate::collector::sidecar::INJECT_ANNOTATION as SIDECAR_ANNOTATION;
pub use crate::collector::CONTAINER_NAME as SIDECAR_CONTAINER;
pub use crate::inject::annotations::PREFIX;
use crate::inject::annotations::{language_container_names, CONTAINER_NAMES};
use crate::inject::{Language, WELL_KNOWN_PROXIES};

/// The value that applies to a pod for `key`: the injector's pod-over-namespace rule
/// ([`annotation_value`]); `None` when neither sets it.
pub fn effective(pod: &Pod, ns: Option<&Namespace>, key: &str) -> Option<String> {
    let empty = ObjectMeta::default();
    let ns_meta = ns.map_or(&empty, |n| &n.metadata);
    let v = annotation_value(ns_meta, &pod.metadata, key);
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// Whether an annotation value asks for injection.
pub fn requested(value: &str) -> bool {
    !value.is_empty() && !value.eq_ignore_ascii_case("false")
}

/// `(namespace, name)` a value names; `None` for `true`.
fn named<'v>(value: &'v str, pod_ns: &'v str) -> Option<(&'v str, &'v str)> {
    if value.eq_ignore_ascii_case("true") {
        return None;
    }
    Some(value.split_once('/').unwrap_or((pod_ns, value)))
}

fn in_namespace<'a, T: Resource>(all: &'a [T], ns: &str) -> Vec<&'a T> {
    all.iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(ns))
        .collect()
}

/// The Instrumentation an annotation value selects, or why none is.
pub fn instrumentation<'a>(
    value: &str,
    pod_ns: &str,
    all: &'a [Instrumentation],
) -> Result<&'a Instrumentation, String> {
    match named(value, pod_ns) {
        Some((ns, name)) => in_namespace(all, ns)
            .into_iter()
            .find(|i| i.metadata.name.as_deref() == Some(name))
            .ok_or_else(|| format!("Instrumentation {ns}/{name} does not exist")),
        None => {
            let found = in_namespace(all, pod_ns);
            match found.as_slice() {
                [one] => Ok(*one),
                [] => Err(format!("no Instrumentation in namespace {pod_ns}")),
                _ => Err(format!(
                    "{} Instrumentations in namespace {pod_ns}; name one in the annotation",
                    found.len()
                )),
            }
        }
    }
}

/// The sidecar-mode collector an annotation value selects, or why none is.
pub fn collector<'a>(
    value: &str,
    pod_ns: &str,
    all: &'a [OpenTelemetryCollector],
) -> Result<&'a OpenTelemetryCollector, String> {
    match named(value, pod_ns) {
        Some((ns, name)) => {
            let c = in_namespace(all, ns)
                .into_iter()
                .find(|c| c.metadata.name.as_deref() == Some(name))
                .ok_or_else(|| format!("OpenTelemetryCollector {ns}/{name} does not exist"))?;
            if c.spec.mode != Mode::Sidecar {
                return Err(format!(
                    "OpenTelemetryCollector {ns}/{name} is in {} mode, not sidecar",
                    c.spec.mode.as_str()
                ));
            }
            Ok(c)
        }
        None => {
            let mut found = in_namespace(all, pod_ns);
            found.retain(|c| c.spec.mode == Mode::Sidecar);
            match found.as_slice() {
                [one] => Ok(*one),
                [] => Err(format!(
                    "no sidecar-mode OpenTelemetryCollector in namespace {pod_ns}"
                )),
                _ => Err(format!(
                    "{} sidecar-mode OpenTelemetryCollectors in namespace {pod_ns}; name one",
                    found.len()
                )),
            }
        }
    }
}

/// The settings of `lang` in an Instrumentation.
pub fn language<'a>(inst: &'a Instrumentation, lang: &str) -> Option<&'a LanguageSpec> {
    let s = &inst.spec;
    match lang {
        "java" => s.java.as_ref(),
        "nodejs" => s.nodejs.as_ref(),
        "python" => s.python.as_ref(),
        "dotnet" => s.dotnet.as_ref(),
        "go" => s.go.as_ref(),
        "apache-httpd" => s.apache_httpd.as_ref(),
        "nginx" => s.nginx.as_ref(),
        _ => None,
    }
}

/// The container the injector adds for `lang` (its presence marks the pod as instrumented),
/// or `None` for `sdk`, which only sets env.
pub fn marker(pod: &Pod, lang: &str) -> Option<Option<Container>> {
    let spec = pod.spec.as_ref()?;
    let init = |name: &str| {
        spec.init_containers
            .iter()
            .flatten()
            .find(|c| c.name == name)
            .cloned()
    };
    Some(match lang {
        "java" | "nodejs" | "python" | "dotnet" => {
            init(&format!("opentelemetry-auto-instrumentation-{lang}"))
        }
        "go" => spec
            .containers
            .iter()
            .find(|c| c.name == "opentelemetry-auto-instrumentation")
            .cloned(),
        "apache-httpd" => init("otel-agent-attach-apache"),
        "nginx" => init("otel-agent-attach-nginx"),
        _ => return None,
    })
}

/// The containers a language targets: its `*-container-names` annotation, else
/// `container-names`, else the first container that is not a mesh proxy.
pub fn targets(pod: &Pod, ns: Option<&Namespace>, lang: &str) -> Vec<Container> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let names = Language::ALL
        .into_iter()
        .find(|l| l.as_str() == lang)
        .and_then(|l| effective(pod, ns, &language_container_names(l)))
        .or_else(|| effective(pod, ns, CONTAINER_NAMES));
    let all = || {
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
    };
    match names {
        Some(names) => names
            .split(',')
            .map(str::trim)
            .filter_map(|n| all().find(|c| c.name == n).cloned())
            .collect(),
        None => spec
            .containers
            .iter()
            .find(|c| !WELL_KNOWN_PROXIES.contains(&c.name.as_str()))
            .cloned()
            .into_iter()
            .collect(),
    }
}

/// A literal env value (`valueFrom` values are unknown here).
pub fn env_value<'a>(env: Option<&'a Vec<EnvVar>>, name: &str) -> Option<&'a str> {
    env?.iter().find(|e| e.name == name)?.value.as_deref()
}

/// What the current Instrumentation gives `name` in a `lang` container (language env, then
/// common env, then the value computed from the spec), when it gives anything.
pub fn expected_env(inst: &Instrumentation, lang: &str, name: &str) -> Option<String> {
    let lang_env = language(inst, lang).and_then(|l| l.env.as_ref());
    if let Some(v) = env_value(lang_env, name).or_else(|| env_value(inst.spec.env.as_ref(), name)) {
        return Some(v.to_string());
    }
    let s = &inst.spec;
    match name {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => s.exporter.as_ref()?.endpoint.clone(),
        "OTEL_TRACES_SAMPLER" => Some(s.sampler.as_ref()?.type_?.as_str().to_string()),
        "OTEL_TRACES_SAMPLER_ARG" => s.sampler.as_ref()?.argument.clone(),
        "OTEL_PROPAGATORS" => {
            let p = s.propagators.as_ref().filter(|p| !p.is_empty())?;
            Some(p.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(","))
        }
        _ => None,
    }
}

/// When an object's spec last changed, as far as the API server recorded it: the newest of
/// its creation and the `managedFields` times of writes that own spec fields. `None` when the
/// object carries no `managedFields` (then nothing is known about later changes).
pub fn spec_changed_at(meta: &ObjectMeta) -> Option<Timestamp> {
    if meta.managed_fields.as_ref().is_none_or(|m| m.is_empty()) {
        return None;
    }
    let writes = meta.managed_fields.iter().flatten().filter(|m| {
        m.subresource.as_deref().unwrap_or("").is_empty()
            && m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.get("f:spec").is_some())
    });
    writes
        .filter_map(|m| m.time.as_ref().map(|t| t.0))
        .chain(meta.creation_timestamp.as_ref().map(|t| t.0))
        .max()
}
