//! Exporter settings common to every exporter (`sending_queue`, `retry_on_failure`), the
//! per-type dispatch to the exporter crates, and the `osprey` exporter (the embedded store).

use crate::sending::{QueueConfig, RetryConfig};
use osprey_pipeline::{decode_config, ConfigError, SharedConsumer};
use serde_yaml::Value;
use std::path::PathBuf;
use std::sync::Arc;

/// The helper settings every exporter accepts, read apart from its own keys.
pub fn helper_settings(body: &Value) -> Result<(QueueConfig, RetryConfig), ConfigError> {
    let get = |k: &str| body.get(k).cloned().unwrap_or(Value::Null);
    let q: QueueConfig = decode_config(&get("sending_queue")).map_err(|e| e.under("sending_queue"))?;
    q.validate().map_err(|e| e.under("sending_queue"))?;
    let r: RetryConfig = decode_config(&get("retry_on_failure")).map_err(|e| e.under("retry_on_failure"))?;
    r.validate().map_err(|e| e.under("retry_on_failure"))?;
    Ok((q, r))
}

/// The `osprey` exporter: writes traces into an embedded store in `data_dir`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OspreyExporterConfig {
    pub data_dir: PathBuf,
    pub sending_queue: Value,
    pub retry_on_failure: Value,
}

impl Default for OspreyExporterConfig {
    fn default() -> Self {
        OspreyExporterConfig {
            data_dir: PathBuf::from("./osprey-data"),
            sending_queue: Value::Null,
            retry_on_failure: Value::Null,
        }
    }
}

/// Checks an exporter's settings (its own keys, then the helper keys).
pub fn validate(type_name: &str, body: &Value) -> Result<(), ConfigError> {
    match type_name {
        "osprey" => {
            decode_config::<OspreyExporterConfig>(body)?;
        }
        _ => {
            return Err(ConfigError::new(
                "",
                crate::factories::unknown_type(crate::config::Kind::Exporter, type_name),
            ))
        }
    }
    helper_settings(body).map(|_| ())
}

/// Builds the bare exporter (no queue). The store behind an `osprey` exporter is returned too,
/// so the service can run its background work and close it.
pub fn build(
    type_name: &str,
    body: &Value,
) -> Result<(SharedConsumer, Option<osprey_store::Store>), ConfigError> {
    match type_name {
        "osprey" => {
            let cfg: OspreyExporterConfig = decode_config(body)?;
            let store = osprey_store::Store::open(osprey_store::StoreConfig::new(&cfg.data_dir))
                .map_err(|e| ConfigError::new("data_dir", format!("cannot open the store: {e}")))?;
            let exporter = osprey_exporters::store::StoreExporter::new(store.clone());
            Ok((Arc::new(exporter), Some(store)))
        }
        other => Err(ConfigError::new(
            "",
            crate::factories::unknown_type(crate::config::Kind::Exporter, other),
        )),
    }
}
