//! Focused assertions on pod mutation, independent of the golden files: upstream's env
//! order and values, service-name derivation per owner kind, Instrumentation selection
//! errors, merging with an existing `OTEL_RESOURCE_ATTRIBUTES`.

use super::owner;
use crate::crd::Instrumentation;
use crate::inject::*;
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

fn pod(annotations: &[(&str, &str)], containers: &[&str]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            namespace: Some("apps".into()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: containers
                .iter()
                .map(|n| Container {
                    name: n.to_string(),
                    image: Some("acme/app:1.2.3".into()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn inst(ns: &str, name: &str) -> Instrumentation {
    let mut i: Instrumentation = serde_yaml::from_str(&format!(
        "apiVersion: opentelemetry.io/v1alpha1\nkind: Instrumentation\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  exporter: {{endpoint: 'http://collector:4318'}}\n  propagators: [tracecontext, baggage]\n  sampler: {{type: parentbased_traceidratio, argument: '0.5'}}\n  env: [{{name: OTEL_EXPORTER_OTLP_TIMEOUT, value: '20'}}]\n  python: {{env: [{{name: OTEL_LOG_LEVEL, value: debug}}]}}\n"
    ))
    .expect("inst");
    i.metadata.namespace = Some(ns.to_string());
    i
}

fn mutate_with(
    p: &Pod,
    insts: &[Instrumentation],
    owners: &[WorkloadRef],
) -> Result<Mutation, InjectError> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("apps".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let ctx = PodContext {
        namespace: &ns,
        instrumentations: insts,
        collectors: &[],
        owners,
    };
    mutate(p, &ctx, &InjectConfig::default())
}

fn env_of(c: &Container) -> Vec<(String, String)> {
    c.env
        .iter()
        .flatten()
        .map(|e: &EnvVar| {
            let v = e.value.clone().unwrap_or_else(|| {
                let f = e.value_from.as_ref().and_then(|f| f.field_ref.as_ref());
                format!(
                    "fieldRef:{}",
                    f.map(|f| f.field_path.as_str()).unwrap_or("?")
                )
            });
            (e.name.clone(), v)
        })
        .collect()
}

#[test]
fn python_env_order_and_values_match_upstream() {
    let p = pod(
        &[("instrumentation.opentelemetry.io/inject-python", "true")],
        &["app"],
    );
    let owners = [owner("ReplicaSet/web-5d8f7"), owner("Deployment/web")];
    let m = mutate_with(&p, &[inst("apps", "i")], &owners).expect("mutate");
    let spec = m.pod.spec.expect("spec");
    let env = env_of(&spec.containers[0]);
    let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "OTEL_NODE_IP",
            "OTEL_POD_IP",
            "OTEL_LOG_LEVEL",
            "PYTHONPATH",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_TRACES_EXPORTER",
            "OTEL_METRICS_EXPORTER",
            "OTEL_LOGS_EXPORTER",
            "OTEL_SERVICE_NAME",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_RESOURCE_ATTRIBUTES_POD_NAME",
            "OTEL_RESOURCE_ATTRIBUTES_NODE_NAME",
            "OTEL_PROPAGATORS",
            "OTEL_TRACES_SAMPLER",
            "OTEL_TRACES_SAMPLER_ARG",
            "OTEL_RESOURCE_ATTRIBUTES",
        ]
    );
    let get = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    assert_eq!(get("OTEL_SERVICE_NAME"), "web");
    assert_eq!(get("OTEL_NODE_IP"), "fieldRef:status.hostIP");
    assert_eq!(
        get("PYTHONPATH"),
        "/otel-auto-instrumentation-python/opentelemetry/instrumentation/auto_instrumentation:/otel-auto-instrumentation-python"
    );
    assert_eq!(get("OTEL_PROPAGATORS"), "tracecontext,baggage");
    assert_eq!(
        get("OTEL_RESOURCE_ATTRIBUTES"),
        "k8s.container.name=app,k8s.deployment.name=web,k8s.namespace.name=apps,\
         k8s.node.name=$(OTEL_RESOURCE_ATTRIBUTES_NODE_NAME),k8s.pod.name=$(OTEL_RESOURCE_ATTRIBUTES_POD_NAME),\
         k8s.replicaset.name=web-5d8f7,service.instance.id=apps.$(OTEL_RESOURCE_ATTRIBUTES_POD_NAME).app,\
         service.namespace=apps,service.version=1.2.3"
    );
    let init = &spec.init_containers.expect("init")[0];
    assert_eq!(init.name, "opentelemetry-auto-instrumentation-python");
    assert_eq!(
        init.command.as_deref().expect("command"),
        [
            "cp",
            "-r",
            "/autoinstrumentation/.",
            "/otel-auto-instrumentation-python"
        ]
    );
    let sc = init.security_context.as_ref().expect("securityContext");
    assert_eq!(
        (sc.run_as_non_root, sc.run_as_user),
        (Some(true), Some(65532))
    );
    let vol = &spec.volumes.expect("volumes")[0];
    assert_eq!(
        vol.empty_dir
            .as_ref()
            .and_then(|e| e.size_limit.as_ref())
            .map(|q| q.0.as_str()),
        Some("200Mi")
    );
    assert_eq!(m.applied.len(), 1);
    assert_eq!(m.applied[0].instrumentation, "apps/i");
}

#[test]
fn service_name_per_owner_kind() {
    let p = pod(
        &[("instrumentation.opentelemetry.io/inject-sdk", "true")],
        &["main"],
    );
    let cases: [(&[&str], &str); 8] = [
        (&["ReplicaSet/rs-1", "Deployment/dep"], "dep"),
        (&["ReplicaSet/rs-1"], "rs-1"),
        (&["StatefulSet/sts"], "sts"),
        (&["DaemonSet/ds"], "ds"),
        (&["Job/job-123", "CronJob/cron"], "cron"),
        (&["Job/job-123"], "job-123"),
        (&["Rollout/ignored"], "main"),
        (&[], "main"),
    ];
    for (chain, want) in cases {
        let owners: Vec<WorkloadRef> = chain.iter().map(|s| owner(s)).collect();
        let m = mutate_with(&p, &[inst("apps", "i")], &owners).expect("mutate");
        let env = env_of(&m.pod.spec.expect("spec").containers[0]);
        let got = env
            .iter()
            .find(|(n, _)| n == "OTEL_SERVICE_NAME")
            .map(|(_, v)| v.clone());
        assert_eq!(got.as_deref(), Some(want), "{chain:?}");
    }
    let mut named = p.clone();
    named.metadata.name = Some("standalone".into());
    let m = mutate_with(&named, &[inst("apps", "i")], &[]).expect("mutate");
    let env = env_of(&m.pod.spec.expect("spec").containers[0]);
    assert!(env.contains(&("OTEL_SERVICE_NAME".into(), "standalone".into())));
    let mut annotated = p.clone();
    let annotations = annotated
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    annotations.insert(
        "resource.opentelemetry.io/service.name".into(),
        "checkout".into(),
    );
    let m =
        mutate_with(&annotated, &[inst("apps", "i")], &[owner("Deployment/dep")]).expect("mutate");
    let env = env_of(&m.pod.spec.expect("spec").containers[0]);
    assert!(env.contains(&("OTEL_SERVICE_NAME".into(), "checkout".into())));
}

#[test]
fn instrumentation_selection_errors() {
    let p = pod(
        &[("instrumentation.opentelemetry.io/inject-python", "true")],
        &["app"],
    );
    let err = mutate_with(&p, &[inst("other", "i")], &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("no OpenTelemetry Instrumentation instances available"),
        "{err}"
    );
    let err = mutate_with(&p, &[inst("apps", "a"), inst("apps", "b")], &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("multiple OpenTelemetry Instrumentation instances available, cannot determine which one to select"),
        "{err}"
    );
    let named = pod(
        &[(
            "instrumentation.opentelemetry.io/inject-python",
            "other/missing",
        )],
        &["app"],
    );
    let err = mutate_with(&named, &[inst("apps", "missing")], &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"missing\" not found in namespace \"other\""),
        "{err}"
    );
    let cross = pod(
        &[("instrumentation.opentelemetry.io/inject-python", "other/i")],
        &["app"],
    );
    let m = mutate_with(&cross, &[inst("other", "i"), inst("apps", "j")], &[])
        .expect("cross-namespace");
    assert_eq!(m.applied[0].instrumentation, "other/i");
    let off = pod(
        &[("instrumentation.opentelemetry.io/inject-python", "False")],
        &["app"],
    );
    let m = mutate_with(&off, &[], &[]).expect("off");
    assert_eq!(m.pod, off);
}

#[test]
fn existing_resource_attributes_are_kept_and_extended() {
    let mut p = pod(
        &[("instrumentation.opentelemetry.io/inject-python", "true")],
        &["app"],
    );
    let c = &mut p.spec.as_mut().expect("spec").containers[0];
    c.env = Some(vec![EnvVar {
        name: "OTEL_RESOURCE_ATTRIBUTES".into(),
        value: Some("service.version=9,k8s.namespace.name=mine".into()),
        value_from: None,
    }]);
    let m = mutate_with(&p, &[inst("apps", "i")], &[]).expect("mutate");
    let env = env_of(&m.pod.spec.expect("spec").containers[0]);
    let (name, value) = env.last().expect("env");
    assert_eq!(name, "OTEL_RESOURCE_ATTRIBUTES");
    assert!(
        value.starts_with("service.version=9,k8s.namespace.name=mine,k8s.container.name=app,"),
        "{value}"
    );
    assert!(
        !value.contains("k8s.namespace.name=apps") && !value.contains("service.version=1.2.3"),
        "{value}"
    );
}
