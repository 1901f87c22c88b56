//! Processors of the collector pipeline that look at or change the data itself, with the
//! OpenTelemetry Collector(-contrib) components' config keys, defaults and semantics:
//! `attributes`, `resource`, `filter`, `probabilistic_sampler`, `tail_sampling` and
//! `k8sattributes` (also under its newer name `k8s_attributes`). Each is
//! a [`osprey_pipeline::Consumer`] that hands what it keeps to the next consumer; the data
//! transformations are plain functions over the OTLP requests.
//!
//! The pipeline builder uses [`build`] / [`build_for`] (construct), [`validate`] (check a
//! config without building) and [`signals`] (which pipelines a type supports).

pub mod attraction;
pub mod attributes;
pub mod attrs;
pub mod filter;
pub mod k8s;
pub mod matching;
pub mod ottl;
pub mod probabilistic;
pub mod resource;
pub mod tail;

#[cfg(test)]
pub(crate) mod testutil;

pub use attributes::{AttributesConfig, AttributesProcessor};
pub use filter::{FilterConfig, FilterProcessor};
pub use k8s::{K8sAttributesConfig, K8sAttributesProcessor};
pub use probabilistic::{ProbabilisticSamplerConfig, ProbabilisticSamplerProcessor};
pub use resource::{ResourceConfig, ResourceProcessor};
pub use tail::{TailSamplingConfig, TailSamplingProcessor};

use osprey_pipeline::{decode_config, ConfigError, SharedConsumer, Signal};
use std::sync::Arc;

/// The component type of an id such as `attributes/strip` (`attributes`).
fn base(type_name: &str) -> &str {
    type_name.split('/').next().unwrap_or(type_name)
}

/// The pipeline signals a processor type supports (empty: not a type of this crate).
pub fn signals(type_name: &str) -> &'static [Signal] {
    match base(type_name) {
        "attributes" | "resource" | "k8sattributes" | "k8s_attributes" => &Signal::ALL,
        "filter" => &[Signal::Traces, Signal::Logs],
        "probabilistic_sampler" | "tail_sampling" => &[Signal::Traces],
        _ => &[],
    }
}

/// Checks `config` for processor type `type_name` without building it; `None` when the type
/// is not one of this crate's.
pub fn validate(type_name: &str, config: &serde_yaml::Value) -> Option<Result<(), ConfigError>> {
    Some(match base(type_name) {
        "attributes" => decode_config::<AttributesConfig>(config).and_then(|c| c.validate()),
        "resource" => decode_config::<ResourceConfig>(config).and_then(|c| c.validate()),
        "filter" => decode_config::<FilterConfig>(config).and_then(|c| c.validate()),
        "probabilistic_sampler" => {
            decode_config::<ProbabilisticSamplerConfig>(config).and_then(|c| c.validate())
        }
        "tail_sampling" => decode_config::<TailSamplingConfig>(config).and_then(|c| c.validate()),
        "k8sattributes" | "k8s_attributes" => {
            decode_config::<K8sAttributesConfig>(config).and_then(|c| c.validate())
        }
        _ => return None,
    })
}

/// Builds processor `type_name` in front of `next`; `None` when the type is not one of this
/// crate's. Must be called within a tokio runtime for `tail_sampling` to tick (its ticker
/// starts with the first batch) and for `k8sattributes` (which starts its API watchers).
pub fn build(
    type_name: &str,
    config: &serde_yaml::Value,
    next: SharedConsumer,
) -> Option<Result<SharedConsumer, ConfigError>> {
    fn arc<T: osprey_pipeline::Consumer>(
        r: Result<T, ConfigError>,
    ) -> Result<SharedConsumer, ConfigError> {
        r.map(|p| Arc::new(p) as SharedConsumer)
    }
    Some(match base(type_name) {
        "attributes" => arc(decode_config(config).and_then(|c| AttributesProcessor::new(c, next))),
        "resource" => arc(decode_config(config).and_then(|c| ResourceProcessor::new(c, next))),
        "filter" => arc(decode_config(config).and_then(|c| FilterProcessor::new(c, next))),
        "probabilistic_sampler" => {
            arc(decode_config(config).and_then(|c| ProbabilisticSamplerProcessor::new(c, next)))
        }
        "tail_sampling" => {
            arc(decode_config(config).and_then(|c| TailSamplingProcessor::new(c, next)))
        }
        "k8sattributes" | "k8s_attributes" => {
            arc(decode_config(config).and_then(|c| K8sAttributesProcessor::new(c, next)))
        }
        _ => return None,
    })
}

/// Like [`build`], for a pipeline of `signal`: also rejects a type that does not support
/// the signal, and `attributes` include/exclude properties that do not apply to it.
pub fn build_for(
    type_name: &str,
    signal: Signal,
    config: &serde_yaml::Value,
    next: SharedConsumer,
) -> Option<Result<SharedConsumer, ConfigError>> {
    let supported = signals(type_name);
    if supported.is_empty() {
        return None;
    }
    if !supported.contains(&signal) {
        return Some(Err(ConfigError::new(
            "",
            format!(
                "processor {:?} does not support {signal} pipelines",
                base(type_name)
            ),
        )));
    }
    if base(type_name) == "attributes" {
        return Some(
            decode_config(config)
                .and_then(|c| AttributesProcessor::new_for(c, signal, next))
                .map(|p| Arc::new(p) as SharedConsumer),
        );
    }
    build(type_name, config, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch() {
        let next: SharedConsumer = Arc::new(testutil::Sink::default());
        let yaml = |s: &str| serde_yaml::from_str::<serde_yaml::Value>(s).unwrap();
        assert!(build("k8s_tagger", &serde_yaml::Value::Null, next.clone()).is_none());
        assert!(build(
            "k8sattributes/agent",
            &yaml("passthrough: true"),
            next.clone()
        )
        .unwrap()
        .is_ok());
        assert_eq!(signals("k8s_attributes"), &Signal::ALL);
        assert!(signals("batch").is_empty());
        assert_eq!(signals("tail_sampling/x"), &[Signal::Traces]);
        assert!(build(
            "resource/r",
            &yaml("attributes: [{key: a, value: b, action: insert}]"),
            next.clone()
        )
        .unwrap()
        .is_ok());
        let e = validate("attributes", &yaml("actions: [{key: a, action: insert}]"))
            .unwrap()
            .unwrap_err();
        assert_eq!(e.path, "actions[0].value");
        let e = validate("filter", &yaml("traces: {span: ['bogus(']}"))
            .unwrap()
            .unwrap_err();
        assert_eq!(e.path, "traces.span[0]");
        let e = validate(
            "tail_sampling",
            &yaml("decision_wait: 10s\npolicies: [{name: a, type: always_sample, extra: 1}]"),
        )
        .unwrap()
        .unwrap_err();
        assert!(e.path.starts_with("policies[0]"), "{e}");
        assert!(validate("probabilistic_sampler", &serde_yaml::Value::Null)
            .unwrap()
            .is_ok());
        assert!(build_for(
            "probabilistic_sampler",
            Signal::Logs,
            &serde_yaml::Value::Null,
            next.clone()
        )
        .unwrap()
        .is_err());
        assert!(build_for(
            "attributes",
            Signal::Logs,
            &yaml(
                "include: {match_type: strict, services: [a]}\nactions: [{key: a, action: delete}]"
            ),
            next
        )
        .unwrap()
        .is_err());
    }
}
