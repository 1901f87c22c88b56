//! Which component types Osprey has, which signals each takes, how each one's settings are
//! checked, and how each is built. Types the OpenTelemetry Collector has but Osprey does not yet
//! are named as such, so a config using them fails validation clearly.

use crate::config::Kind;
use osprey_pipeline::{ConfigError, Signal};
use serde_yaml::Value;

const T: &[Signal] = &[Signal::Traces];
const TML: &[Signal] = &[Signal::Traces, Signal::Metrics, Signal::Logs];
const M: &[Signal] = &[Signal::Metrics];
const TL: &[Signal] = &[Signal::Traces, Signal::Logs];

/// A component type Osprey implements.
pub struct Spec {
    pub kind: Kind,
    pub type_name: &'static str,
    /// Signals it takes (for connectors: the input side).
    pub signals: &'static [Signal],
}

const fn spec(kind: Kind, type_name: &'static str, signals: &'static [Signal]) -> Spec {
    Spec {
        kind,
        type_name,
        signals,
    }
}

pub static SPECS: &[Spec] = &[
    spec(Kind::Receiver, "otlp", TML),
    spec(Kind::Receiver, "jaeger", T),
    spec(Kind::Receiver, "zipkin", T),
    spec(Kind::Processor, "batch", TML),
    spec(Kind::Processor, "memory_limiter", TML),
    spec(Kind::Processor, "attributes", TML),
    spec(Kind::Processor, "resource", TML),
    spec(Kind::Processor, "filter", TL),
    spec(Kind::Processor, "probabilistic_sampler", T),
    spec(Kind::Processor, "tail_sampling", T),
    spec(Kind::Processor, "k8sattributes", TML),
    spec(Kind::Processor, "k8s_attributes", TML),
    spec(Kind::Exporter, "osprey", T),
    spec(Kind::Exporter, "otlp", TML),
    spec(Kind::Exporter, "otlphttp", TML),
    spec(Kind::Exporter, "otlp_grpc", TML),
    spec(Kind::Exporter, "otlp_http", TML),
    spec(Kind::Exporter, "debug", TML),
    spec(Kind::Exporter, "logging", TML),
    spec(Kind::Exporter, "file", TML),
    spec(Kind::Exporter, "prometheusremotewrite", M),
    spec(Kind::Connector, "forward", TML),
    spec(Kind::Connector, "spanmetrics", T),
    spec(Kind::Extension, "health_check", &[]),
    spec(Kind::Extension, "file_storage", &[]),
];

/// Component types of the Collector (core and contrib) that Osprey does not have yet.
static NOT_YET: &[(Kind, &str)] = &[
    (Kind::Receiver, "prometheus"),
    (Kind::Receiver, "kafka"),
    (Kind::Receiver, "hostmetrics"),
    (Kind::Receiver, "filelog"),
    (Kind::Receiver, "k8s_cluster"),
    (Kind::Receiver, "kubeletstats"),
    (Kind::Receiver, "opencensus"),
    (Kind::Receiver, "fluentforward"),
    (Kind::Processor, "transform"),
    (Kind::Processor, "span"),
    (Kind::Processor, "groupbytrace"),
    (Kind::Processor, "routing"),
    (Kind::Processor, "resourcedetection"),
    (Kind::Processor, "cumulativetodelta"),
    (Kind::Exporter, "prometheus"),
    (Kind::Exporter, "kafka"),
    (Kind::Exporter, "loadbalancing"),
    (Kind::Exporter, "zipkin"),
    (Kind::Exporter, "jaeger"),
    (Kind::Exporter, "elasticsearch"),
    (Kind::Connector, "servicegraph"),
    (Kind::Connector, "count"),
    (Kind::Connector, "routing"),
    (Kind::Extension, "zpages"),
    (Kind::Extension, "pprof"),
    (Kind::Extension, "basicauth"),
    (Kind::Extension, "bearertokenauth"),
    (Kind::Extension, "oauth2client"),
    (Kind::Extension, "k8s_observer"),
];

pub fn find(kind: Kind, type_name: &str) -> Option<&'static Spec> {
    SPECS
        .iter()
        .find(|s| s.kind == kind && s.type_name == type_name)
}

/// The error for a type Osprey does not implement, telling "not yet" apart from "unknown".
pub fn unknown_type(kind: Kind, type_name: &str) -> String {
    let have: Vec<&str> = SPECS
        .iter()
        .filter(|s| s.kind == kind)
        .map(|s| s.type_name)
        .collect();
    if NOT_YET.iter().any(|(k, t)| *k == kind && *t == type_name) {
        format!(
            "the {type_name} {} of the OpenTelemetry Collector is not supported by osprey yet (osprey has: {})",
            kind.singular(),
            have.join(", ")
        )
    } else {
        format!(
            "unknown {} type {type_name:?} (osprey has: {})",
            kind.singular(),
            have.join(", ")
        )
    }
}

/// For a connector: the (input, output) signal pairs it supports.
pub fn connector_supports(type_name: &str, from: Signal, to: Signal) -> bool {
    match type_name {
        "forward" => from == to,
        "spanmetrics" => from == Signal::Traces && to == Signal::Metrics,
        _ => false,
    }
}

/// Checks one component's settings. Paths in the error are relative to the component.
pub fn validate_body(kind: Kind, type_name: &str, body: &Value) -> Result<(), ConfigError> {
    use osprey_pipeline::decode_config;
    match (kind, type_name) {
        (Kind::Receiver, "otlp") => crate::otlp_receiver::parse(body).map(|_| ()),
        (Kind::Receiver, "jaeger") => {
            decode_config::<osprey_receivers::jaeger::JaegerConfig>(body)?.validate()
        }
        (Kind::Receiver, "zipkin") => {
            decode_config::<osprey_receivers::zipkin::ZipkinConfig>(body)?.validate()
        }
        (Kind::Processor, "batch") => decode_config::<crate::batch::BatchConfig>(body)?.validate(),
        (Kind::Processor, "memory_limiter") => {
            decode_config::<crate::memory_limiter::MemoryLimiterConfig>(body)?.validate()
        }
        (Kind::Processor, _) => osprey_processors::validate(type_name, body)
            .unwrap_or_else(|| Err(ConfigError::new("", unknown_type(kind, type_name)))),
        (Kind::Exporter, _) => crate::exporters::validate(type_name, body),
        (Kind::Connector, "forward") => decode_config::<Empty>(body).map(|_| ()),
        (Kind::Connector, "spanmetrics") => osprey_connectors::spanmetrics::validate(body),
        (Kind::Extension, "health_check") => {
            decode_config::<crate::extensions::HealthCheckConfig>(body)?.validate()
        }
        (Kind::Extension, "file_storage") => {
            decode_config::<crate::extensions::FileStorageConfig>(body)?.validate()
        }
        _ => Err(ConfigError::new("", unknown_type(kind, type_name))),
    }
}

/// A component without settings.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_not_yet_are_told_apart() {
        assert!(unknown_type(Kind::Receiver, "kafka").contains("not supported by osprey yet"));
        assert!(unknown_type(Kind::Receiver, "otlq").contains("unknown receiver type \"otlq\""));
        assert!(unknown_type(Kind::Receiver, "otlq").contains("otlp"));
    }
}
