//! The collector config as the operator sees it: parsed from the CR's YAML string, its enabled
//! components (used in a pipeline / listed in `service.extensions`), upstream's defaults applied
//! (`0.0.0.0:<default port>` endpoints, a Prometheus reader for the collector's own metrics), the
//! rendered YAML and its hash, the ports, the metrics port and the `health_check` probe.

use super::components::{component_type, Kind};
use super::defaults::{apply_endpoint_default, apply_metrics_default};
use super::ports::{component_ports, container_ports, endpoint_port, port_from_endpoint, Ports};
use super::DesiredError;
use serde_yaml::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// Default port of the collector's own metrics.
pub const DEFAULT_METRICS_PORT: i32 = 8888;
const DEFAULT_HEALTH_PORT: i32 = 13133;

/// The `health_check` extension's HTTP endpoint, for the probes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthProbe {
    pub port: i32,
    pub path: String,
}

/// A parsed, defaulted collector config.
#[derive(Clone, Debug)]
pub struct CollectorConfig {
    /// The YAML the collector runs (defaults applied).
    pub rendered: String,
    /// sha256 hex of the canonical JSON form of `rendered`.
    pub hash: String,
    pub ports: Ports,
    pub health: Option<HealthProbe>,
    pub warnings: Vec<String>,
}

/// Parses and defaults `yaml`. Text that is not a YAML mapping is `InvalidConfig`.
pub fn load(yaml: &str) -> Result<CollectorConfig, DesiredError> {
    let invalid = |message: String| DesiredError::InvalidConfig { message };
    let mut root: Value = serde_yaml::from_str(yaml)
        .map_err(|e| invalid(format!("the config is not valid YAML: {e}")))?;
    if root.is_null() {
        return Err(invalid("the config is empty".into()));
    }
    if !root.is_mapping() {
        return Err(invalid(
            "the config must be a YAML mapping (receivers, exporters, service, ...)".into(),
        ));
    }
    let mut warnings = null_component_warnings(&root);
    let enabled = enabled_components(&root);
    for (kind, id) in &enabled {
        apply_endpoint_default(&mut root, *kind, id);
    }
    apply_metrics_default(&mut root);

    let mut service = Vec::new();
    let mut extension = Vec::new();
    for (kind, id) in &enabled {
        let value = component(&root, *kind, id).cloned().unwrap_or(Value::Null);
        let ports = component_ports(*kind, id, &value)?;
        match kind {
            Kind::Extension => extension.extend(ports),
            _ => service.extend(ports),
        }
    }
    service.sort_by(|a, b| a.name.cmp(&b.name));
    extension.sort_by(|a, b| a.name.cmp(&b.name));
    let metrics_port = metrics_port(&root, &mut warnings);
    let container = container_ports(&service, &extension, metrics_port, &mut warnings);
    let health = health_probe(&root);

    let rendered = serde_yaml::to_string(&root)
        .map_err(|e| invalid(format!("cannot render the config: {e}")))?;
    let json = serde_json::to_value(&root)
        .map_err(|e| invalid(format!("the config cannot be expressed as JSON: {e}")))?;
    let hash = hex::encode(Sha256::digest(canonical(&json).to_string().as_bytes()));
    Ok(CollectorConfig {
        rendered,
        hash,
        ports: Ports {
            service,
            extension,
            container,
            metrics_port,
        },
        health,
        warnings,
    })
}

/// `json` with every object's keys sorted (stable hashing whatever the map implementation).
fn canonical(json: &serde_json::Value) -> serde_json::Value {
    match json {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), canonical(&map[k]));
            }
            serde_json::Value::Object(out)
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(canonical).collect())
        }
        other => other.clone(),
    }
}

fn ids(list: Option<&Value>) -> impl Iterator<Item = String> + '_ {
    list.and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
}

/// Receivers and exporters referenced by a pipeline, extensions listed in `service.extensions`
/// (processors and connectors never open ports), sorted.
fn enabled_components(root: &Value) -> BTreeSet<(Kind, String)> {
    let mut out = BTreeSet::new();
    let service = root.get("service");
    if let Some(pipelines) = service
        .and_then(|s| s.get("pipelines"))
        .and_then(Value::as_mapping)
    {
        for pipeline in pipelines.values() {
            for id in ids(pipeline.get("receivers")) {
                if component(root, Kind::Receiver, &id).is_some() {
                    out.insert((Kind::Receiver, id));
                }
            }
            for id in ids(pipeline.get("exporters")) {
                if component(root, Kind::Exporter, &id).is_some() {
                    out.insert((Kind::Exporter, id));
                }
            }
        }
    }
    for id in ids(service.and_then(|s| s.get("extensions"))) {
        if component(root, Kind::Extension, &id).is_some() {
            out.insert((Kind::Extension, id));
        }
    }
    out
}

/// The config of component `id` of `kind`, if declared (null counts as declared).
fn component<'a>(root: &'a Value, kind: Kind, id: &str) -> Option<&'a Value> {
    root.get(kind.section())?.as_mapping()?.get(id)
}

fn null_component_warnings(root: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for section in [
        "receivers",
        "processors",
        "exporters",
        "connectors",
        "extensions",
    ] {
        if let Some(map) = root.get(section).and_then(Value::as_mapping) {
            for (id, v) in map {
                if v.is_null() {
                    let id = id.as_str().unwrap_or_default();
                    out.push(format!(
                        "{section}.{id} has no value; write `{id}: {{}}` (kustomize and kubectl edit drop null values)"
                    ));
                }
            }
        }
    }
    out
}

/// The metrics port: the `:<port>` of `address` when only that is set, else the first
/// pull/prometheus reader's port, else 8888.
fn metrics_port(root: &Value, warnings: &mut Vec<String>) -> i32 {
    let metrics = root
        .get("service")
        .and_then(|s| s.get("telemetry"))
        .and_then(|t| t.get("metrics"));
    let Some(metrics) = metrics else {
        return DEFAULT_METRICS_PORT;
    };
    if let (Some(address), None) = (metrics.get("address"), metrics.get("readers")) {
        let address = address.as_str().unwrap_or_default();
        if address.contains("${") {
            warnings.push(format!(
                "service.telemetry.metrics.address {address:?}: a port from the environment cannot be read; using {DEFAULT_METRICS_PORT}"
            ));
        }
        return port_from_endpoint(address).unwrap_or(DEFAULT_METRICS_PORT);
    }
    let readers = metrics.get("readers").and_then(Value::as_sequence);
    for reader in readers.into_iter().flatten() {
        let prometheus = reader
            .get("pull")
            .and_then(|p| p.get("exporter"))
            .and_then(|e| e.get("prometheus"));
        if let Some(p) = prometheus {
            let port = p
                .get("port")
                .and_then(Value::as_i64)
                .unwrap_or(DEFAULT_METRICS_PORT.into());
            return i32::try_from(port).unwrap_or(DEFAULT_METRICS_PORT);
        }
    }
    DEFAULT_METRICS_PORT
}

/// The first `health_check` extension listed in `service.extensions`.
fn health_probe(root: &Value) -> Option<HealthProbe> {
    let listed = root.get("service").and_then(|s| s.get("extensions"));
    ids(listed).find_map(|id| {
        if component_type(&id) != "health_check" {
            return None;
        }
        let value = component(root, Kind::Extension, &id)?;
        let path = value
            .get("path")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .unwrap_or("/");
        Some(HealthProbe {
            port: endpoint_port(value).unwrap_or(DEFAULT_HEALTH_PORT),
            path: path.to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "receivers:\n  otlp:\n    protocols:\n      grpc:\n      http:\n\
        exporters:\n  debug: {}\n\
        service:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [debug]}\n";

    #[test]
    fn defaults_endpoints_and_metrics_reader() {
        let c = load(SEED).expect("config");
        let v: Value = serde_yaml::from_str(&c.rendered).unwrap();
        assert_eq!(
            v["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"],
            "0.0.0.0:4317"
        );
        assert_eq!(
            v["receivers"]["otlp"]["protocols"]["http"]["endpoint"],
            "0.0.0.0:4318"
        );
        let reader = &v["service"]["telemetry"]["metrics"]["readers"][0];
        assert_eq!(reader["pull"]["exporter"]["prometheus"]["port"], 8888);
        assert_eq!(c.ports.metrics_port, 8888);
        assert_eq!(c.hash.len(), 64);
        assert_eq!(c.warnings.len(), 0);
    }

    #[test]
    fn hash_ignores_formatting_but_not_content() {
        let a = load(SEED).unwrap();
        let b = load(&format!("# comment\n{SEED}")).unwrap();
        assert_eq!(a.hash, b.hash);
        let c = load(&SEED.replace("debug: {}", "debug: {verbosity: detailed}")).unwrap();
        assert_ne!(a.hash, c.hash);
    }

    #[test]
    fn endpoint_host_defaults() {
        let c = load("receivers:\n  zipkin: {endpoint: ':9412'}\n  statsd: {endpoint: 'localhost:8125'}\n\
                      service:\n  pipelines:\n    traces: {receivers: [zipkin, statsd], exporters: []}\n")
            .unwrap();
        let v: Value = serde_yaml::from_str(&c.rendered).unwrap();
        assert_eq!(v["receivers"]["zipkin"]["endpoint"], "0.0.0.0:9412");
        assert_eq!(v["receivers"]["statsd"]["endpoint"], "localhost:8125");
    }

    #[test]
    fn unused_components_are_left_alone() {
        let c = load(&SEED.replace("exporters:\n", "  zipkin: {}\nexporters:\n")).unwrap();
        let v: Value = serde_yaml::from_str(&c.rendered).unwrap();
        assert!(v["receivers"]["zipkin"].get("endpoint").is_none());
        assert!(c.ports.service.iter().all(|p| p.port != 9411));
    }

    #[test]
    fn metrics_port_sources() {
        let with = |m: &str| {
            load(&format!("{SEED}  telemetry:\n    metrics: {m}\n"))
                .unwrap()
                .ports
                .metrics_port
        };
        assert_eq!(with("{address: '0.0.0.0:9999'}"), 9999);
        assert_eq!(with("{address: 'localhost'}"), 8888);
        assert_eq!(
            with("{readers: [{pull: {exporter: {prometheus: {host: '0.0.0.0', port: 7777}}}}]}"),
            7777
        );
    }

    #[test]
    fn health_check_probe() {
        let y = format!(
            "extensions:\n  health_check/x: {{endpoint: '0.0.0.0:13200', path: /health}}\n{}  extensions: [health_check/x]\n",
            SEED
        );
        let c = load(&y).unwrap();
        assert_eq!(
            c.health,
            Some(HealthProbe {
                port: 13200,
                path: "/health".into()
            })
        );
        assert_eq!(c.ports.extension[0].name.as_deref(), Some("health-check-x"));
    }

    #[test]
    fn not_yaml_or_not_a_mapping() {
        let e = load("receivers: [unclosed").unwrap_err();
        assert!(
            matches!(e, DesiredError::InvalidConfig { ref message } if message.contains("not valid YAML")),
            "{e}"
        );
        assert!(matches!(
            load("").unwrap_err(),
            DesiredError::InvalidConfig { .. }
        ));
        assert!(matches!(
            load("- a\n- b\n").unwrap_err(),
            DesiredError::InvalidConfig { .. }
        ));
    }
}
