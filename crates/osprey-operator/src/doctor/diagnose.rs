//! The pure diagnosis: for every pod asking for instrumentation or a collector sidecar (by its
//! own or its namespace's annotations), whether it got it, and whether what it got is what the
//! current Instrumentation or collector would give.
//!
//! "Stale" needs evidence: an agent/collector image that differs from the one the spec names;
//! or the spec changed (per the API server's `managedFields` times) after the pod was created
//! — then the differing env values are listed; or, when the change time is unknown, env values
//! that differ (exporter endpoint, sampler, propagators, sidecar config). An env difference on a
//! pod created after the last change is the container's own setting (it wins over the
//! Instrumentation), not staleness.

use super::resolve::{self, *};
use super::{workload_of, Finding, Problem};
use crate::crd::{Instrumentation, OpenTelemetryCollector};
use crate::inject::annotations::inject as inject_key;
use crate::inject::Language;
use k8s_openapi::api::core::v1::{Container, Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Env vars compared between a pod and its Instrumentation.
const COMPARED_ENV: [&str; 4] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_PROPAGATORS",
];

/// Findings for `pods`, in pod order (languages in [`Language::ALL`] order, then the sidecar).
/// Pods being deleted or finished, and pods in `kube-system`, are not looked at.
pub fn diagnose(
    pods: &[Pod],
    namespaces: &[Namespace],
    instrumentations: &[Instrumentation],
    collectors: &[OpenTelemetryCollector],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for pod in pods.iter().filter(|p| !skipped(p)) {
        let pod_ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let ns = namespaces
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(pod_ns));
        let finding = |language: &str, problem| Finding {
            namespace: pod_ns.to_string(),
            pod: pod.metadata.name.clone().unwrap_or_default(),
            workload: workload_of(pod),
            language: language.to_string(),
            problem,
        };
        for language in Language::ALL {
            let key = inject_key(language);
            let lang = language.as_str();
            let Some(value) = effective(pod, ns, &key).filter(|v| requested(v)) else {
                continue;
            };
            if let Some(p) = check_language(pod, ns, lang, &value, instrumentations) {
                out.push(finding(lang, p));
            }
        }
        if let Some(value) = effective(pod, ns, SIDECAR_ANNOTATION).filter(|v| requested(v)) {
            if let Some(p) = check_sidecar(pod, &value, collectors) {
                out.push(finding("sidecar", p));
            }
        }
    }
    out
}

fn skipped(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_some()
        || matches!(phase, Some("Succeeded" | "Failed"))
        || pod.metadata.namespace.as_deref() == Some("kube-system")
}

fn id(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

fn check_language(
    pod: &Pod,
    ns: Option<&Namespace>,
    lang: &str,
    value: &str,
    all: &[Instrumentation],
) -> Option<Problem> {
    let pod_ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let asked = format!("{PREFIX}inject-{lang}={value}");
    let injected = match marker(pod, lang) {
        Some(found) => found.is_some(),
        None => targets(pod, ns, lang).iter().any(has_sdk_env),
    };
    match (resolve::instrumentation(value, pod_ns, all), injected) {
        (Err(why), false) => Some(Problem::Misconfigured { reason: format!("{asked}, but {why}") }),
        (Err(why), true) => Some(Problem::Misconfigured {
            reason: format!(
                "instrumented, but {asked} now selects nothing ({why}): a new pod would not be instrumented"
            ),
        }),
        (Ok(inst), false) => Some(Problem::NotInstrumented {
            reason: not_mutated(pod, &inst.metadata, "Instrumentation"),
        }),
        (Ok(inst), true) => {
            stale_language(pod, ns, lang, inst).map(|reason| Problem::Stale { reason })
        }
    }
}

/// Upstream's marker of an SDK-only (or any) injection: the node-name helper variable.
fn has_sdk_env(c: &Container) -> bool {
    c.env
        .iter()
        .flatten()
        .any(|e| e.name == "OTEL_RESOURCE_ATTRIBUTES_NODE_NAME")
}

fn not_mutated(pod: &Pod, owner: &ObjectMeta, what: &str) -> String {
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let existed = owner.creation_timestamp.as_ref().map(|t| t.0);
    match (created, existed) {
        (Some(p), Some(o)) if p < o => {
            format!(
                "created at {p}, before {what} {} existed ({o}); restart it",
                id(owner)
            )
        }
        _ => format!(
            "not mutated although {what} {} existed: the operator was not running, its webhook \
             was unreachable, or it skipped the pod (see the Events of the pod's owner)",
            id(owner)
        ),
    }
}

/// `Some(true)` when the spec changed after the pod was created, `None` when unknown.
fn changed_since(pod: &Pod, owner: &ObjectMeta) -> (Option<bool>, String) {
    let started = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    match (spec_changed_at(owner), started) {
        (Some(c), Some(s)) => (
            Some(s < c),
            format!("changed at {c}, after the pod was created ({s})"),
        ),
        _ => (None, String::new()),
    }
}

/// The reasons (joined) why an instrumented pod is stale, if it is.
fn stale_language(
    pod: &Pod,
    ns: Option<&Namespace>,
    lang: &str,
    inst: &Instrumentation,
) -> Option<String> {
    let injected = marker(pod, lang).flatten();
    let mut image = None;
    let want = language(inst, lang).and_then(|l| l.image.as_deref());
    if let (Some(want), Some(c)) = (want, injected.as_ref()) {
        if c.image.as_deref() != Some(want) {
            let have = c.image.as_deref().unwrap_or("none");
            image = Some(format!(
                "agent image is {have}, the Instrumentation now gives {want}"
            ));
        }
    }
    let containers = match lang {
        "go" => injected.into_iter().collect(),
        "apache-httpd" | "nginx" => Vec::new(),
        _ => targets(pod, ns, lang),
    };
    let mut diffs = Vec::new();
    for c in &containers {
        for var in COMPARED_ENV {
            let Some(want) = expected_env(inst, lang, var) else {
                continue;
            };
            let set = c.env.iter().flatten().find(|e| e.name == var);
            if set.is_some_and(|e| e.value_from.is_some()) {
                continue;
            }
            let have = set.and_then(|e| e.value.as_deref());
            if have != Some(want.as_str()) {
                diffs.push(format!(
                    "{var} is {} in {} (now {want})",
                    have.unwrap_or("unset"),
                    c.name
                ));
            }
        }
    }
    let (changed, when) = changed_since(pod, &inst.metadata);
    verdict(
        format!("Instrumentation {}", id(&inst.metadata)),
        image,
        diffs,
        changed,
        when,
    )
}

fn verdict(
    what: String,
    image: Option<String>,
    diffs: Vec<String>,
    changed: Option<bool>,
    when: String,
) -> Option<String> {
    let mut why: Vec<String> = image.into_iter().collect();
    match changed {
        Some(true) => {
            why.push(format!("{what} {when}"));
            why.extend(diffs);
        }
        None if !diffs.is_empty() => {
            why.push(format!("{what} gives other values now"));
            why.extend(diffs);
        }
        _ => {}
    }
    (!why.is_empty()).then(|| why.join("; "))
}

fn check_sidecar(pod: &Pod, value: &str, all: &[OpenTelemetryCollector]) -> Option<Problem> {
    let pod_ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let asked = format!("{SIDECAR_ANNOTATION}={value}");
    let sidecar = pod.spec.as_ref().and_then(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .find(|c| c.name == SIDECAR_CONTAINER)
    });
    match (resolve::collector(value, pod_ns, all), sidecar) {
        (Err(why), None) => Some(Problem::Misconfigured {
            reason: format!("{asked}, but {why}"),
        }),
        (Err(why), Some(_)) => Some(Problem::Misconfigured {
            reason: format!("has a sidecar, but {asked} now selects nothing ({why})"),
        }),
        (Ok(c), None) => Some(Problem::NotInstrumented {
            reason: not_mutated(pod, &c.metadata, "OpenTelemetryCollector"),
        }),
        (Ok(c), Some(container)) => {
            stale_sidecar(pod, c, container).map(|reason| Problem::Stale { reason })
        }
    }
}

fn stale_sidecar(pod: &Pod, c: &OpenTelemetryCollector, container: &Container) -> Option<String> {
    let image = match (c.spec.image.as_deref(), container.image.as_deref()) {
        (Some(want), have) if have != Some(want) => Some(format!(
            "sidecar image is {}, the collector now gives {want}",
            have.unwrap_or("none")
        )),
        _ => None,
    };
    let mut diffs = Vec::new();
    let running = env_value(container.env.as_ref(), "OTEL_CONFIG");
    if let Some(running) = running {
        let parse = |s: &str| serde_yaml::from_str::<serde_yaml::Value>(s).ok();
        if parse(running) != parse(&c.spec.config) {
            diffs.push("the sidecar runs another config (OTEL_CONFIG)".to_string());
        }
    }
    let (changed, when) = changed_since(pod, &c.metadata);
    verdict(
        format!("OpenTelemetryCollector {}", id(&c.metadata)),
        image,
        diffs,
        changed,
        when,
    )
}
