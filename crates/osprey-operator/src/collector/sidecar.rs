//! Collector sidecar injection (`sidecar.opentelemetry.io/inject`, upstream §1.10): which
//! collector a pod asks for (pod annotation, namespace annotation as fallback), removal on
//! `"false"`, idempotency, and the injected `otc-container` (config in `OTEL_CONFIG`, k8s resource
//! attributes, the CR's init containers and volumes), as a native sidecar when asked.
//!
//! `k8s.deployment.name` needs the ReplicaSet → Deployment lookup upstream does against the API.
//! Here the pod is all we have: the name is the ReplicaSet owner's name minus its
//! `-<pod-template-hash>` suffix (when the pod carries that label), and `k8s.deployment.uid` is
//! not set.

use super::config;
use super::container::{collector_container, extra_volumes, field_env, ConfigSource};
use super::{Settings, COLLECTOR_IMAGE_DEFAULT, CONTAINER_NAME};
use crate::crd::{Mode, OpenTelemetryCollector};
use k8s_openapi::api::core::v1::{Container, EnvVar, Namespace, Pod};
use std::collections::BTreeMap;

/// The pod (or namespace) annotation asking for a sidecar.
pub const INJECT_ANNOTATION: &str = "sidecar.opentelemetry.io/inject";
/// The label on injected pods: `<collector-namespace>.<collector-name>`.
pub const INJECTED_LABEL: &str = "sidecar.opentelemetry.io/injected";

/// What sidecar injection did to a pod.
#[derive(Clone, Debug)]
pub struct SidecarOutcome {
    /// The pod after injection (unchanged when nothing applied).
    pub pod: Pod,
    /// Why nothing was injected (or what was removed), for `osprey inject` and events.
    pub notes: Vec<String>,
}

/// Errors that stop sidecar injection (the pod is still admitted unchanged).
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error("{0}")]
    Invalid(String),
}

/// Injects the collector sidecar the pod (or its namespace) asks for. `collectors` are all
/// known `OpenTelemetryCollector`s (any namespace); `native_sidecars` puts the container in
/// `initContainers` with `restartPolicy: Always` (Kubernetes >= 1.29).
pub fn inject_sidecar(
    pod: &Pod,
    namespace: &Namespace,
    collectors: &[OpenTelemetryCollector],
    native_sidecars: bool,
) -> Result<SidecarOutcome, SidecarError> {
    let settings = Settings {
        default_image: COLLECTOR_IMAGE_DEFAULT.to_string(),
        native_sidecars,
    };
    inject_sidecar_with(pod, namespace, collectors, &settings)
}

/// [`inject_sidecar`] with explicit settings (the operator's default image).
pub fn inject_sidecar_with(
    pod: &Pod,
    namespace: &Namespace,
    collectors: &[OpenTelemetryCollector],
    settings: &Settings,
) -> Result<SidecarOutcome, SidecarError> {
    let unchanged = |note: String| SidecarOutcome {
        pod: pod.clone(),
        notes: vec![note],
    };
    let annotation = |m: &Option<BTreeMap<String, String>>| {
        m.as_ref().and_then(|a| a.get(INJECT_ANNOTATION)).cloned()
    };
    let value = effective_value(
        annotation(&pod.metadata.annotations).as_deref(),
        annotation(&namespace.metadata.annotations).as_deref(),
    );
    let Some(value) = value else {
        return Ok(SidecarOutcome {
            pod: pod.clone(),
            notes: Vec::new(),
        });
    };
    if value.eq_ignore_ascii_case("false") {
        return Ok(remove(pod));
    }
    if has_sidecar(pod) {
        return Ok(unchanged(format!(
            "the pod already has a {CONTAINER_NAME} container"
        )));
    }
    let pod_ns = pod
        .metadata
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| namespace.metadata.name.clone())
        .unwrap_or_default();
    let collector = if value.eq_ignore_ascii_case("true") {
        let candidates: Vec<_> = collectors
            .iter()
            .filter(|c| {
                c.metadata.namespace.as_deref() == Some(pod_ns.as_str())
                    && c.spec.mode == Mode::Sidecar
            })
            .collect();
        match candidates.as_slice() {
            [one] => *one,
            [] => return Ok(unchanged(format!(
                "no sidecar-mode OpenTelemetryCollector in namespace {pod_ns:?}; nothing injected"
            ))),
            many => return Ok(unchanged(format!(
                "{} sidecar-mode OpenTelemetryCollectors in namespace {pod_ns:?}; name one in {INJECT_ANNOTATION}",
                many.len()
            ))),
        }
    } else {
        let (ns, name) = value
            .split_once('/')
            .unwrap_or((pod_ns.as_str(), value.as_str()));
        let found = collectors.iter().find(|c| {
            c.metadata.namespace.as_deref() == Some(ns) && c.metadata.name.as_deref() == Some(name)
        });
        let Some(found) = found else {
            return Err(SidecarError::Invalid(format!(
                "OpenTelemetryCollector {ns}/{name} (from {INJECT_ANNOTATION}) not found"
            )));
        };
        if found.spec.mode != Mode::Sidecar {
            return Ok(unchanged(format!(
                "OpenTelemetryCollector {ns}/{name} is in {} mode, not sidecar; nothing injected",
                found.spec.mode.as_str()
            )));
        }
        found
    };
    add(pod, &pod_ns, collector, settings)
}

/// The annotation value that applies: upstream's pod-over-namespace rule.
pub fn effective_value(pod: Option<&str>, namespace: Option<&str>) -> Option<String> {
    let pod = pod.map(str::trim).filter(|v| !v.is_empty());
    let ns = namespace.map(str::trim).filter(|v| !v.is_empty());
    let chosen = match (pod, ns) {
        (p, None) => p,
        (None, n) => n,
        (Some(p), _) if !p.eq_ignore_ascii_case("true") => Some(p),
        (Some(p), Some(n)) if n.eq_ignore_ascii_case("false") => Some(p),
        (Some(_), n) => n,
    };
    chosen.map(str::to_string)
}

fn has_sidecar(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let named = |list: Option<&Vec<Container>>| {
        list.is_some_and(|l| l.iter().any(|c| c.name == CONTAINER_NAME))
    };
    named(spec.map(|s| &s.containers)) || named(spec.and_then(|s| s.init_containers.as_ref()))
}

fn remove(pod: &Pod) -> SidecarOutcome {
    if !has_sidecar(pod) {
        return SidecarOutcome {
            pod: pod.clone(),
            notes: Vec::new(),
        };
    }
    let mut pod = pod.clone();
    if let Some(spec) = pod.spec.as_mut() {
        spec.containers.retain(|c| c.name != CONTAINER_NAME);
        if let Some(init) = spec.init_containers.as_mut() {
            init.retain(|c| c.name != CONTAINER_NAME);
            if init.is_empty() {
                spec.init_containers = None;
            }
        }
    }
    if let Some(labels) = pod.metadata.labels.as_mut() {
        labels.remove(INJECTED_LABEL);
    }
    let note = format!("{INJECT_ANNOTATION} is false: removed the {CONTAINER_NAME} container");
    SidecarOutcome {
        pod,
        notes: vec![note],
    }
}

fn add(
    pod: &Pod,
    pod_ns: &str,
    collector: &OpenTelemetryCollector,
    settings: &Settings,
) -> Result<SidecarOutcome, SidecarError> {
    let col_ns = collector.metadata.namespace.clone().unwrap_or_default();
    let col_name = collector.metadata.name.clone().unwrap_or_default();
    let config = config::load(&collector.spec.config).map_err(|e| {
        SidecarError::Invalid(format!("OpenTelemetryCollector {col_ns}/{col_name}: {e}"))
    })?;
    let mut notes = Vec::new();
    let mut container =
        collector_container(collector, settings, &config, ConfigSource::Env, &mut notes);
    let env = container.env.get_or_insert_with(Vec::new);
    env.push(EnvVar {
        name: "OTEL_CONFIG".into(),
        value: Some(config.rendered.clone()),
        ..Default::default()
    });
    if !env.iter().any(|e| e.name == "OTEL_RESOURCE_ATTRIBUTES") {
        env.extend(resource_attribute_env(pod, pod_ns));
    }
    let mut pod = pod.clone();
    let spec = pod.spec.get_or_insert_with(Default::default);
    let mut init = spec.init_containers.take().unwrap_or_default();
    if settings.native_sidecars {
        container.restart_policy = Some("Always".into());
        if container.startup_probe.is_none() {
            container.startup_probe = container.readiness_probe.clone();
        }
        // First, so that the other init containers can already send telemetry.
        init.insert(0, container);
    } else {
        spec.containers.push(container);
    }
    init.extend(collector.spec.init_containers.iter().flatten().cloned());
    spec.init_containers = (!init.is_empty()).then_some(init);
    let volumes = extra_volumes(collector);
    if !volumes.is_empty() {
        spec.volumes.get_or_insert_with(Vec::new).extend(volumes);
    }
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(INJECTED_LABEL.into(), format!("{col_ns}.{col_name}"));
    let how = if settings.native_sidecars {
        "native sidecar (init container)"
    } else {
        "sidecar container"
    };
    notes.insert(
        0,
        format!("injected OpenTelemetryCollector {col_ns}/{col_name} as a {how}"),
    );
    Ok(SidecarOutcome { pod, notes })
}

/// `OTEL_RESOURCE_ATTRIBUTES_{POD_NAME,POD_UID,NODE_NAME}` (downward API) and
/// `OTEL_RESOURCE_ATTRIBUTES` with the k8s.* attributes, keys sorted.
fn resource_attribute_env(pod: &Pod, pod_ns: &str) -> Vec<EnvVar> {
    let mut attrs = BTreeMap::from([
        ("k8s.namespace.name", pod_ns.to_string()),
        (
            "k8s.node.name",
            "$(OTEL_RESOURCE_ATTRIBUTES_NODE_NAME)".to_string(),
        ),
        (
            "k8s.pod.name",
            "$(OTEL_RESOURCE_ATTRIBUTES_POD_NAME)".to_string(),
        ),
        (
            "k8s.pod.uid",
            "$(OTEL_RESOURCE_ATTRIBUTES_POD_UID)".to_string(),
        ),
    ]);
    let mut owners = pod.metadata.owner_references.iter().flatten();
    if let Some(rs) = owners.find(|o| o.kind == "ReplicaSet") {
        attrs.insert("k8s.replicaset.name", rs.name.clone());
        attrs.insert("k8s.replicaset.uid", rs.uid.clone());
        let hash = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash"));
        if let Some(deployment) = hash.and_then(|h| rs.name.strip_suffix(&format!("-{h}"))) {
            attrs.insert("k8s.deployment.name", deployment.to_string());
        }
    }
    let value = attrs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        field_env("OTEL_RESOURCE_ATTRIBUTES_POD_NAME", "metadata.name"),
        field_env("OTEL_RESOURCE_ATTRIBUTES_POD_UID", "metadata.uid"),
        field_env("OTEL_RESOURCE_ATTRIBUTES_NODE_NAME", "spec.nodeName"),
        EnvVar {
            name: "OTEL_RESOURCE_ATTRIBUTES".into(),
            value: Some(value),
            ..Default::default()
        },
    ]
}
