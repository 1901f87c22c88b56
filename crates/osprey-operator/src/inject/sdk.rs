//! The `OTEL_*` env every instrumented container gets (upstream §3.5), in upstream's order:
//! `OTEL_NODE_IP`/`OTEL_POD_IP` prepended, the CR's `env`, then (after the language's own
//! variables) the service name, exporter endpoint and TLS files, the downward-API pod/node
//! names, `OTEL_RESOURCE_ATTRIBUTES`, propagators and sampler. Existing values always win;
//! only `OTEL_RESOURCE_ATTRIBUTES` is merged.

use super::resource::{self, ResourceInput};
use crate::crd::instrumentation::{ExporterTls, InstrumentationSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, EnvVar, EnvVarSource, ObjectFieldSelector,
    SecretVolumeSource, Volume, VolumeMount,
};

pub(super) const POD_NAME: &str = "OTEL_RESOURCE_ATTRIBUTES_POD_NAME";
pub(super) const POD_UID: &str = "OTEL_RESOURCE_ATTRIBUTES_POD_UID";
pub(super) const NODE_NAME: &str = "OTEL_RESOURCE_ATTRIBUTES_NODE_NAME";
pub(super) const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";

pub(super) fn env_index(env: &[EnvVar], name: &str) -> Option<usize> {
    env.iter().position(|e| e.name == name)
}

pub(super) fn has_env(c: &Container, name: &str) -> bool {
    c.env
        .as_deref()
        .is_some_and(|e| env_index(e, name).is_some())
}

pub(super) fn literal(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        value_from: None,
    }
}

pub(super) fn field_ref(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_string(),
                api_version: None,
            }),
            ..Default::default()
        }),
    }
}

/// Appends each variable whose name the container does not define yet.
pub(super) fn append_if_absent<'a>(c: &mut Container, vars: impl IntoIterator<Item = &'a EnvVar>) {
    let env = c.env.get_or_insert_with(Vec::new);
    for v in vars {
        if env_index(env, &v.name).is_none() {
            env.push(v.clone());
        }
    }
}

/// Sets a literal variable unless the container defines it.
pub(super) fn set_if_absent(c: &mut Container, name: &str, value: &str) {
    append_if_absent(c, [&literal(name, value)]);
}

/// Err(reason) when one of `names` is set with `valueFrom` (the value cannot be merged).
pub(super) fn no_value_from(c: &Container, names: &[&str]) -> Result<(), String> {
    for e in c.env.iter().flatten() {
        if names.contains(&e.name.as_str()) && e.value_from.is_some() {
            return Err(format!(
                "the container defines env var value via ValueFrom, envVar: {}",
                e.name
            ));
        }
    }
    Ok(())
}

/// `OTEL_NODE_IP` and `OTEL_POD_IP` in front (if absent), then the CR's common `env`.
pub(super) fn inject_common_env(c: &mut Container, spec: &InstrumentationSpec) {
    let env = c.env.get_or_insert_with(Vec::new);
    if env_index(env, "OTEL_POD_IP").is_none() {
        env.insert(0, field_ref("OTEL_POD_IP", "status.podIP"));
    }
    if env_index(env, "OTEL_NODE_IP").is_none() {
        env.insert(0, field_ref("OTEL_NODE_IP", "status.hostIP"));
    }
    append_if_absent(c, spec.env.iter().flatten());
}

/// Service name, exporter, downward-API names, resource attributes, propagators, sampler.
/// `c` receives the env; `input.app` is the container whose telemetry it describes (they
/// differ only for Go's agent sidecar). Returns volumes the pod needs (exporter TLS).
pub(super) fn inject_sdk_config(c: &mut Container, input: &ResourceInput) -> Vec<Volume> {
    let spec = &input.inst.spec;
    let existing = resource::existing_keys(input.app);
    let mut res = resource::resource_map(input, &existing);
    if !has_env(c, "OTEL_SERVICE_NAME") {
        let name = resource::service_name(input, &res);
        set_if_absent(c, "OTEL_SERVICE_NAME", &name);
    }
    let volumes = configure_exporter(c, spec);

    append_if_absent(c, [&field_ref(POD_NAME, "metadata.name")]);
    let mut put = |key: &str, value: String| {
        if !existing.contains(key) {
            res.insert(key.to_string(), value);
        }
    };
    put("k8s.pod.name", format!("$({POD_NAME})"));
    let add_uids = spec
        .resource
        .as_ref()
        .and_then(|r| r.add_k8s_uid_attributes)
        .unwrap_or(false);
    let pod_uid_known = input
        .pod
        .metadata
        .uid
        .as_deref()
        .is_some_and(|u| !u.is_empty());
    if add_uids && !pod_uid_known {
        append_if_absent(c, [&field_ref(POD_UID, "metadata.uid")]);
        put("k8s.pod.uid", format!("$({POD_UID})"));
    }
    let user_attrs = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == RESOURCE_ATTRIBUTES);
    if user_attrs.is_none_or(|e| !e.value.as_deref().unwrap_or("").contains("service.version")) {
        if let Some(v) = resource::service_version(input) {
            put("service.version", v);
        }
    }
    let node_known = input
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    if !node_known {
        append_if_absent(c, [&field_ref(NODE_NAME, "spec.nodeName")]);
        put("k8s.node.name", format!("$({NODE_NAME})"));
    }

    let joined = res
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let env = c.env.get_or_insert_with(Vec::new);
    match env_index(env, RESOURCE_ATTRIBUTES) {
        None => env.push(literal(RESOURCE_ATTRIBUTES, joined)),
        Some(i) if !joined.is_empty() => {
            let value = env[i].value.get_or_insert_with(String::new);
            if !value.is_empty() && !value.ends_with(',') {
                value.push(',');
            }
            value.push_str(&joined);
        }
        Some(_) => {}
    }

    let propagators: Vec<&str> = spec
        .propagators
        .iter()
        .flatten()
        .map(|p| p.as_str())
        .collect();
    if !propagators.is_empty() {
        set_if_absent(c, "OTEL_PROPAGATORS", &propagators.join(","));
    }
    let sampler = spec.sampler.as_ref();
    if let Some(kind) = sampler.and_then(|s| s.type_) {
        if !has_env(c, "OTEL_TRACES_SAMPLER") && !has_env(c, "OTEL_TRACES_SAMPLER_ARG") {
            set_if_absent(c, "OTEL_TRACES_SAMPLER", kind.as_str());
            if let Some(arg) = sampler
                .and_then(|s| s.argument.as_deref())
                .filter(|a| !a.is_empty())
            {
                set_if_absent(c, "OTEL_TRACES_SAMPLER_ARG", arg);
            }
        }
    }

    // Last, so that its `$(VAR)` references resolve.
    let env = c.env.get_or_insert_with(Vec::new);
    if let Some(i) = env_index(env, RESOURCE_ATTRIBUTES) {
        let v = env.remove(i);
        env.push(v);
    }
    volumes
}

/// `OTEL_EXPORTER_OTLP_ENDPOINT` and, with TLS, the certificate paths plus their read-only
/// Secret / ConfigMap mounts.
fn configure_exporter(c: &mut Container, spec: &InstrumentationSpec) -> Vec<Volume> {
    let Some(exporter) = &spec.exporter else {
        return Vec::new();
    };
    if let Some(endpoint) = exporter.endpoint.as_deref().filter(|e| !e.is_empty()) {
        set_if_absent(c, "OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
    }
    let Some(tls) = &exporter.tls else {
        return Vec::new();
    };
    let secret = tls.secret_name.as_deref().unwrap_or("");
    let config_map = tls.config_map_name.as_deref().unwrap_or("");
    let secret_path = format!("/otel-auto-instrumentation-secret-{secret}");
    let config_map_path = format!("/otel-auto-instrumentation-configmap-{config_map}");
    let path_of = |file: &str, dir: &str| {
        if file.starts_with('/') {
            file.to_string()
        } else {
            format!("{dir}/{file}")
        }
    };
    let ca_dir = if config_map.is_empty() {
        &secret_path
    } else {
        &config_map_path
    };
    let files: [(&str, &Option<String>, &str); 3] = [
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", &tls.ca_file, ca_dir),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            &tls.cert_file,
            &secret_path,
        ),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &tls.key_file, &secret_path),
    ];
    for (name, file, dir) in files {
        if let Some(file) = file.as_deref().filter(|f| !f.is_empty()) {
            set_if_absent(c, name, &path_of(file, dir));
        }
    }
    tls_volumes(c, tls, &secret_path, &config_map_path)
}

fn tls_volumes(
    c: &mut Container,
    tls: &ExporterTls,
    secret_path: &str,
    cm_path: &str,
) -> Vec<Volume> {
    let mut volumes = Vec::new();
    let mut mount = |c: &mut Container, volume: Volume, path: &str| {
        let mounts = c.volume_mounts.get_or_insert_with(Vec::new);
        if !mounts.iter().any(|m| m.name == volume.name) {
            mounts.push(VolumeMount {
                name: volume.name.clone(),
                mount_path: path.to_string(),
                read_only: Some(true),
                ..Default::default()
            });
        }
        volumes.push(volume);
    };
    if let Some(secret) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) {
        let volume = Volume {
            name: truncate_name(&format!("otel-auto-secret-{secret}")),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        mount(c, volume, secret_path);
    }
    if let Some(cm) = tls.config_map_name.as_deref().filter(|s| !s.is_empty()) {
        let volume = Volume {
            name: truncate_name(&format!("otel-auto-configmap-{cm}")),
            config_map: Some(ConfigMapVolumeSource {
                name: cm.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        };
        mount(c, volume, cm_path);
    }
    volumes
}

/// Kubernetes names are at most 63 characters and end alphanumeric.
fn truncate_name(name: &str) -> String {
    let cut: String = name.chars().take(63).collect();
    cut.trim_end_matches(|ch: char| !ch.is_ascii_alphanumeric())
        .to_string()
}
