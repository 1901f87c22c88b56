//! The dispatcher for the Collector's basic exporters: `otlp` (alias `otlp_grpc`), `otlphttp`
//! (alias `otlp_http`), `debug`, `logging` and `file`. It decodes a component's YAML body and
//! builds the exporter; `None` means "not one of these types".

use crate::debug::{DebugConfig, DebugExporter, LoggingConfig};
use crate::file::{FileConfig, FileExporter};
use crate::otlp::{OtlpConfig, OtlpExporter};
use crate::otlphttp::{OtlpHttpConfig, OtlpHttpExporter};
use osprey_pipeline::{decode_config, ConfigError, SharedConsumer};
use std::sync::Arc;

/// The exporter types [`build_basic`] knows.
pub const BASIC_TYPES: &[&str] = &[
    "otlp",
    "otlp_grpc",
    "otlphttp",
    "otlp_http",
    "debug",
    "logging",
    "file",
];

/// Checks a config body without side effects (the file exporter does not open its file).
pub fn validate_basic(
    type_name: &str,
    config: &serde_yaml::Value,
) -> Option<Result<(), ConfigError>> {
    Some(match type_name {
        "otlp" | "otlp_grpc" => decode_config::<OtlpConfig>(config).and_then(|c| c.validate()),
        "otlphttp" | "otlp_http" => {
            decode_config::<OtlpHttpConfig>(config).and_then(|c| c.validate())
        }
        "debug" => decode_config::<DebugConfig>(config).and_then(|c| c.validate()),
        "logging" => decode_config::<LoggingConfig>(config).and_then(|c| c.validate()),
        "file" => decode_config::<FileConfig>(config).and_then(|c| c.validate()),
        _ => return None,
    })
}

/// Builds the exporter. Build each exporter id once and share it between its pipelines (the
/// file exporter opens, and by default truncates, its file here). Needs no Tokio runtime: the
/// gRPC channel is created on first use.
pub fn build_basic(
    type_name: &str,
    config: &serde_yaml::Value,
) -> Option<Result<SharedConsumer, ConfigError>> {
    fn shared<T: osprey_pipeline::Consumer>(
        r: Result<T, ConfigError>,
    ) -> Result<SharedConsumer, ConfigError> {
        r.map(|e| Arc::new(e) as SharedConsumer)
    }
    Some(match type_name {
        "otlp" | "otlp_grpc" => shared(decode_config(config).and_then(OtlpExporter::new)),
        "otlphttp" | "otlp_http" => shared(decode_config(config).and_then(OtlpHttpExporter::new)),
        "debug" => shared(decode_config(config).and_then(DebugExporter::new)),
        "logging" => shared(decode_config(config).and_then(DebugExporter::new_logging)),
        "file" => shared(decode_config(config).and_then(FileExporter::new)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> serde_yaml::Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn dispatches_by_type() {
        assert!(build_basic("prometheusremotewrite", &yaml("{}")).is_none());
        assert!(validate_basic("kafka", &yaml("{}")).is_none());
        assert!(build_basic("debug", &serde_yaml::Value::Null)
            .unwrap()
            .is_ok());
        assert!(build_basic("logging", &yaml("loglevel: debug"))
            .unwrap()
            .is_ok());
        assert!(
            build_basic("otlp", &yaml("endpoint: h:4317\ntls: {insecure: true}"))
                .unwrap()
                .is_ok()
        );
        assert!(build_basic("otlphttp", &yaml("endpoint: http://h:4318"))
            .unwrap()
            .is_ok());
        let e = validate_basic("otlp", &yaml("tls: {insecure: true}"))
            .unwrap()
            .unwrap_err();
        assert_eq!(e.path, "endpoint");
        let e = validate_basic("file", &serde_yaml::Value::Null)
            .unwrap()
            .unwrap_err();
        assert_eq!(e.path, "path");
        let e = build_basic("debug", &yaml("verbosity: loud"))
            .unwrap()
            .err()
            .unwrap();
        assert_eq!(e.path, "verbosity");
    }

    #[tokio::test]
    async fn a_built_file_exporter_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let e = build_basic("file", &yaml(&format!("path: {}", path.display())))
            .unwrap()
            .unwrap();
        e.consume(osprey_pipeline::Batch::default()).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"resourceSpans\":[]}\n"
        );
    }
}
