//! The `otc-container` (shared by the workloads and the sidecar) and the pod volumes it needs.
//! The container runs Osprey: `args` start with the `collector` subcommand of the image's
//! `osprey` entrypoint.

use super::config::{CollectorConfig, HealthProbe};
use super::naming::{config_map_name, extra_config_map_volume};
use super::ports::merge_container_ports;
use super::{Settings, CONFIG_KEY, CONTAINER_NAME};
use crate::crd::collector::ProbeTuning;
use crate::crd::OpenTelemetryCollector;
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, EnvVar, EnvVarSource, HTTPGetAction, KeyToPath,
    ObjectFieldSelector, Probe, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The volume holding the hashed ConfigMap, mounted at `/conf`.
pub const CONFIG_VOLUME: &str = "otc-internal";

/// How the container gets its config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// `/conf/collector.yaml` from the ConfigMap volume (deployment, daemonset, statefulset).
    Mounted,
    /// The `OTEL_CONFIG` env var (sidecar).
    Env,
}

/// The collector container for `cr`.
pub fn collector_container(
    cr: &OpenTelemetryCollector,
    settings: &Settings,
    config: &CollectorConfig,
    source: ConfigSource,
    warnings: &mut Vec<String>,
) -> Container {
    let spec = &cr.spec;
    let image = effective_image(cr, settings);
    let mut args = vec!["collector".to_string()];
    let mut mounts = Vec::new();
    match source {
        ConfigSource::Mounted => {
            args.push(format!("--config=/conf/{CONFIG_KEY}"));
            mounts.push(VolumeMount {
                name: CONFIG_VOLUME.into(),
                mount_path: "/conf".into(),
                ..Default::default()
            });
        }
        ConfigSource::Env => args.push("--config=env:OTEL_CONFIG".into()),
    }
    for (k, v) in spec.args.iter().flatten() {
        if k == "config" {
            warnings.push("spec.args.config is ignored: the operator sets --config".into());
            continue;
        }
        args.push(format!("--{k}={v}"));
    }
    args[2..].sort(); // `collector`, `--config=…`, then the sorted `--k=v` strings
    mounts.extend(spec.volume_mounts.iter().flatten().cloned());
    for cm in spec.configmaps.iter().flatten() {
        let volume = extra_config_map_volume(&cm.name);
        let mount_path = join_path(&["/var/conf", &cm.mountpath, &volume]);
        mounts.push(VolumeMount {
            name: volume,
            mount_path,
            ..Default::default()
        });
    }

    let mut env = spec.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.name == "POD_NAME") {
        env.push(field_env("POD_NAME", "metadata.name"));
    }

    let user_ports = spec.ports.clone().unwrap_or_default();
    let ports = merge_container_ports(&user_ports, &config.ports.container, warnings);
    let probe =
        |tuning: Option<&ProbeTuning>| config.health.as_ref().map(|h| health_probe(h, tuning));
    Container {
        name: CONTAINER_NAME.into(),
        image: Some(image),
        image_pull_policy: spec.image_pull_policy.clone(),
        args: Some(args),
        ports: (!ports.is_empty()).then_some(ports),
        env: Some(env),
        env_from: spec.env_from.clone(),
        resources: spec.resources.clone(),
        security_context: spec.security_context.clone(),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        liveness_probe: probe(spec.liveness_probe.as_ref()),
        readiness_probe: probe(spec.readiness_probe.as_ref()),
        startup_probe: probe(None),
        lifecycle: spec.lifecycle.clone(),
        ..Default::default()
    }
}

/// `spec.image`, else the operator's default image.
pub fn effective_image(cr: &OpenTelemetryCollector, settings: &Settings) -> String {
    cr.spec
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| settings.default_image.clone())
}

/// An env var read from the pod through the downward API.
pub fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn health_probe(h: &HealthProbe, tuning: Option<&ProbeTuning>) -> Probe {
    let mut p = Probe {
        http_get: Some(HTTPGetAction {
            path: Some(h.path.clone()),
            port: IntOrString::Int(h.port),
            ..Default::default()
        }),
        ..Default::default()
    };
    if let Some(t) = tuning {
        p.initial_delay_seconds = t.initial_delay_seconds;
        p.timeout_seconds = t.timeout_seconds;
        p.period_seconds = t.period_seconds;
        p.success_threshold = t.success_threshold;
        p.failure_threshold = t.failure_threshold;
        p.termination_grace_period_seconds = t.termination_grace_period_seconds;
    }
    p
}

/// The workload pod's volumes: the hashed ConfigMap, then `spec.volumes` and `spec.configmaps`.
pub fn workload_volumes(cr: &OpenTelemetryCollector, config_hash: &str) -> Vec<Volume> {
    let name = cr.metadata.name.as_deref().unwrap_or_default();
    let mut volumes = vec![Volume {
        name: CONFIG_VOLUME.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map_name(name, config_hash),
            items: Some(vec![KeyToPath {
                key: CONFIG_KEY.into(),
                path: CONFIG_KEY.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }];
    volumes.extend(extra_volumes(cr));
    volumes
}

/// `spec.volumes` and one volume per `spec.configmaps` entry (what a sidecar pod also gets).
pub fn extra_volumes(cr: &OpenTelemetryCollector) -> Vec<Volume> {
    let mut volumes: Vec<Volume> = cr.spec.volumes.clone().unwrap_or_default();
    for cm in cr.spec.configmaps.iter().flatten() {
        volumes.push(Volume {
            name: extra_config_map_volume(&cm.name),
            config_map: Some(ConfigMapVolumeSource {
                name: cm.name.clone(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    volumes
}

/// Joins path segments like Go's `path.Join` (single slashes, no trailing slash).
fn join_path(parts: &[&str]) -> String {
    let segments: Vec<&str> = parts
        .iter()
        .flat_map(|p| p.split('/'))
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    format!("/{}", segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_cleanly() {
        assert_eq!(
            join_path(&["/var/conf", "", "configmap-a"]),
            "/var/conf/configmap-a"
        );
        assert_eq!(
            join_path(&["/var/conf", "/x/", "configmap-a"]),
            "/var/conf/x/configmap-a"
        );
    }
}
