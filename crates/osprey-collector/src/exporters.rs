//! Exporter settings common to every exporter (`sending_queue`, `retry_on_failure`), the
//! per-type dispatch to the exporter crates, and the `osprey` exporter (the embedded store).

use crate::sending::{QueueConfig, RetryConfig};
use osprey_pipeline::{decode_config, ConfigError, SharedConsumer};
use serde_yaml::Value;
use std::path::PathBuf;
use std::sync::Arc;

/// The helper settings every exporter accepts, read apart from its own keys.
pub fn helper_settings(
    type_name: &str,
    body: &Value,
) -> Result<(QueueConfig, RetryConfig), ConfigError> {
    let get = |k: &str| body.get(k).cloned().unwrap_or(Value::Null);
    if type_name == "prometheusremotewrite" {
        // Its own queue keys: `remote_write_queue {enabled, queue_size, num_consumers}`, and
        // upstream's faster first retry (50 ms).
        let rwq = get("remote_write_queue");
        let field = |k: &str, d: u64| rwq.get(k).and_then(Value::as_u64).unwrap_or(d) as usize;
        let q = QueueConfig {
            enabled: rwq.get("enabled").and_then(Value::as_bool).unwrap_or(true),
            queue_size: field("queue_size", 10000),
            num_consumers: field("num_consumers", 5),
            ..QueueConfig::default()
        };
        q.validate().map_err(|e| e.under("remote_write_queue"))?;
        let mut r: RetryConfig =
            decode_config(&get("retry_on_failure")).map_err(|e| e.under("retry_on_failure"))?;
        if get("retry_on_failure").get("initial_interval").is_none() {
            r.initial_interval = std::time::Duration::from_millis(50);
        }
        r.validate().map_err(|e| e.under("retry_on_failure"))?;
        return Ok((q, r));
    }
    let mut q: QueueConfig =
        decode_config(&get("sending_queue")).map_err(|e| e.under("sending_queue"))?;
    if type_name == "osprey" && get("sending_queue").get("enabled").is_none() {
        // The store's write-ahead log is already a durable queue: without an in-memory queue in
        // front, a receiver's acknowledgement means the spans are on disk.
        q.enabled = false;
    }
    q.validate().map_err(|e| e.under("sending_queue"))?;
    let r: RetryConfig =
        decode_config(&get("retry_on_failure")).map_err(|e| e.under("retry_on_failure"))?;
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
        "prometheusremotewrite" => {
            decode_config::<osprey_exporters::prw::PrwConfig>(body)?.validate()?;
        }
        t if osprey_exporters::validate_basic(t, body).is_some() => {
            osprey_exporters::validate_basic(t, body).unwrap_or(Ok(()))?;
        }
        _ => {
            return Err(ConfigError::new(
                "",
                crate::factories::unknown_type(crate::config::Kind::Exporter, type_name),
            ))
        }
    }
    helper_settings(type_name, body).map(|_| ())
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
        "prometheusremotewrite" => {
            let cfg: osprey_exporters::prw::PrwConfig = decode_config(body)?;
            Ok((
                Arc::new(osprey_exporters::prw::PrwExporter::new(cfg)?),
                None,
            ))
        }
        other => match osprey_exporters::build_basic(other, body) {
            Some(built) => Ok((built?, None)),
            None => Err(ConfigError::new(
                "",
                crate::factories::unknown_type(crate::config::Kind::Exporter, other),
            )),
        },
    }
}
