//! The two CRDs, their Rust types and their generated `CustomResourceDefinition`s.

pub mod collector;
pub mod instrumentation;
mod schema;

pub use collector::{
    Mode, OpenTelemetryCollector, OpenTelemetryCollectorSpec, OpenTelemetryCollectorStatus,
    PortSpec,
};
pub use instrumentation::{Instrumentation, InstrumentationSpec, LanguageSpec};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of both CRDs.
pub const GROUP: &str = "opentelemetry.io";

/// Both CRDs, collector first.
pub fn definitions() -> Vec<CustomResourceDefinition> {
    vec![OpenTelemetryCollector::crd(), Instrumentation::crd()]
}

/// Both CRDs as a multi-document YAML stream, for `osprey install` and the Helm chart.
pub fn definitions_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in definitions() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_COLLECTOR: &str =
        include_str!("../../../../tests/e2e/fixtures/collector-fixed.yaml");

    #[test]
    fn crd_names_and_versions_are_upstreams() {
        let crds = definitions();
        let names: Vec<_> = crds
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        assert_eq!(
            names,
            [
                "opentelemetrycollectors.opentelemetry.io",
                "instrumentations.opentelemetry.io"
            ]
        );
        let collector = &crds[0].spec;
        assert_eq!(
            collector.names.short_names.as_deref(),
            Some(&["otelcol".to_string(), "otelcols".to_string()][..])
        );
        let version = &collector.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.served && version.storage);
        let sub = version.subresources.as_ref().expect("subresources");
        assert!(sub.status.is_some());
        assert_eq!(
            sub.scale.as_ref().map(|s| s.spec_replicas_path.as_str()),
            Some(".spec.replicas")
        );
    }

    #[test]
    fn free_form_blocks_keep_unknown_fields() {
        let yaml = definitions_yaml().expect("yaml");
        assert!(yaml.contains("x-kubernetes-preserve-unknown-fields: true"));
    }

    #[test]
    fn seed_manifests_decode() {
        let doc: serde_yaml::Value = serde_yaml::from_str(SEED_COLLECTOR).expect("yaml");
        let spec: OpenTelemetryCollectorSpec =
            serde_yaml::from_value(doc["spec"].clone()).expect("collector spec");
        assert_eq!(spec.mode, Mode::Deployment);
        assert!(spec.config.contains("receivers:"));
        let inst: Instrumentation = serde_yaml::from_str(
            "apiVersion: opentelemetry.io/v1alpha1\nkind: Instrumentation\nmetadata: {name: i}\nspec:\n  exporter: {endpoint: 'http://c:4318'}\n  propagators: [tracecontext, baggage, b3]\n  sampler: {type: parentbased_traceidratio, argument: '0.25'}\n  python: {resourceRequirements: {limits: {cpu: 500m}}}\n  java: {resources: {limits: {cpu: 500m}}}\n",
        )
        .expect("instrumentation");
        let python = inst.spec.python.as_ref().expect("python");
        assert!(python.resources().is_some());
        assert!(inst
            .spec
            .java
            .as_ref()
            .and_then(|j| j.resources())
            .is_some());
    }
}
