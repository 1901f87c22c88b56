//! Upstream's config defaults (its defaulting webhook applies them; Osprey applies them when
//! rendering): enabled components with a known default port listen on `0.0.0.0:<port>`, and the
//! collector's own metrics get a Prometheus pull reader on `0.0.0.0:8888`.

use super::components::{component_type, parser_for, Kind, Parser};
use super::config::DEFAULT_METRICS_PORT;
use serde_yaml::{Mapping, Value};

const ANY_HOST: &str = "0.0.0.0";

/// Sets `endpoint: 0.0.0.0:<port>` where a component with a known default port has none, and
/// `0.0.0.0` as host where the endpoint is only a port (`:4317`, `4317`).
pub fn apply_endpoint_default(root: &mut Value, kind: Kind, id: &str) {
    let parser = parser_for(kind, component_type(id));
    if !parser.has_default_port() {
        return;
    }
    let Some(section) = root.get_mut(kind.section()).and_then(Value::as_mapping_mut) else {
        return;
    };
    let Some(value) = section.get_mut(id) else {
        return;
    };
    match parser {
        Parser::Single(d) => default_endpoint(value, d.port),
        Parser::Multi(table) => {
            let map = ensure_mapping(value);
            let protocols = map.entry(Value::from("protocols")).or_insert(Value::Null);
            let protocols = ensure_mapping(protocols);
            if protocols.is_empty() {
                for (name, _) in table {
                    protocols.insert(Value::from(*name), Value::Null);
                }
            }
            for (key, proto) in protocols.iter_mut() {
                let key = key.as_str().unwrap_or_default();
                if let Some((_, d)) = table.iter().find(|(name, _)| *name == key) {
                    default_endpoint(proto, d.port);
                }
            }
        }
        Parser::Silent | Parser::None => {}
    }
}

fn ensure_mapping(value: &mut Value) -> &mut Mapping {
    if !value.is_mapping() {
        *value = Value::Mapping(Mapping::new());
    }
    match value {
        Value::Mapping(m) => m,
        _ => unreachable!("just made a mapping"),
    }
}

fn default_endpoint(value: &mut Value, port: i32) {
    if !(value.is_null() || value.is_mapping()) {
        return; // not a component body the operator understands; the validator will say so
    }
    let map = ensure_mapping(value);
    if map.get("listen_address").is_some() {
        return;
    }
    let key = Value::from("endpoint");
    let current = map.get(&key).and_then(Value::as_str).map(str::to_string);
    let new = match current.as_deref() {
        None | Some("") => Some(format!("{ANY_HOST}:{port}")),
        Some(e) if e.starts_with(':') => Some(format!("{ANY_HOST}{e}")),
        Some(e) if !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()) => {
            Some(format!("{ANY_HOST}:{e}"))
        }
        Some(_) => None,
    };
    if let Some(new) = new {
        map.insert(key, Value::from(new));
    }
}

/// Adds `readers: [{pull: {exporter: {prometheus: {host: 0.0.0.0, port: 8888}}}}]` to
/// `service.telemetry.metrics` when it has neither `address` nor `readers` (and is not `level: none`).
pub fn apply_metrics_default(root: &mut Value) {
    let Some(root_map) = root.as_mapping_mut() else {
        return;
    };
    let service = root_map
        .entry(Value::from("service"))
        .or_insert(Value::Null);
    if !(service.is_null() || service.is_mapping()) {
        return;
    }
    let telemetry = ensure_mapping(service)
        .entry(Value::from("telemetry"))
        .or_insert(Value::Null);
    if !(telemetry.is_null() || telemetry.is_mapping()) {
        return;
    }
    let metrics = ensure_mapping(telemetry)
        .entry(Value::from("metrics"))
        .or_insert(Value::Null);
    if !(metrics.is_null() || metrics.is_mapping()) {
        return;
    }
    let metrics = ensure_mapping(metrics);
    if metrics.get("address").is_some()
        || metrics.get("readers").is_some()
        || metrics.get("level").and_then(Value::as_str) == Some("none")
    {
        return;
    }
    let reader: Value = serde_yaml::from_str(&format!(
        "pull: {{exporter: {{prometheus: {{host: '{ANY_HOST}', port: {DEFAULT_METRICS_PORT}}}}}}}"
    ))
    .unwrap_or(Value::Null);
    metrics.insert(Value::from("readers"), Value::Sequence(vec![reader]));
}
