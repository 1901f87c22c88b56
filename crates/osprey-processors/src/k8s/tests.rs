//! Tests of the pure core: config defaults and checks, association rules, label and
//! annotation extraction, exclusion and passthrough, with Pod objects as the Kubernetes API
//! returns them.

use super::config::K8sAttributesConfig;
use super::fixtures::*;
use super::index::PodIndex;
use super::AuthType;
use osprey_pipeline::{decode_config, Context};
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn defaults_match_upstream() {
    let c: K8sAttributesConfig = decode_config(&serde_yaml::Value::Null).unwrap();
    assert_eq!(c.auth_type, AuthType::ServiceAccount);
    assert_eq!(c.wait_for_metadata_timeout, Duration::from_secs(10));
    assert!(!c.passthrough && !c.wait_for_metadata && c.pod_association.is_empty());
    let excluded: Vec<_> = c.exclude.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(excluded, ["jaeger-agent", "jaeger-collector"]);
    assert_eq!(
        c.extract.metadata[..6],
        [
            "k8s.namespace.name",
            "k8s.pod.name",
            "k8s.pod.uid",
            "k8s.pod.start_time",
            "k8s.deployment.name",
            "k8s.node.name"
        ]
    );
    c.validate().unwrap();
    let c = config("auth_type: kubeConfig\ncontext: prod\nwait_for_metadata_timeout: 2s");
    assert_eq!(
        (c.auth_type, c.context.as_str(), c.wait_for_metadata_timeout),
        (AuthType::KubeConfig, "prod", Duration::from_secs(2))
    );
}

#[test]
fn config_errors_name_the_key() {
    let err = |yaml: &str| {
        let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        decode_config::<K8sAttributesConfig>(&v)
            .and_then(|c| c.validate())
            .unwrap_err()
    };
    assert_eq!(err("auth_type: token").path, "auth_type");
    assert!(err("auth_type: tls").message.contains("not supported"));
    assert_eq!(
        err("extract: {metadata: [k8s.pod.nam]}").path,
        "extract.metadata[0]"
    );
    let e = err("extract: {metadata: [k8s.deployment.uid]}");
    assert!(
        e.message.contains("not supported by this implementation"),
        "{e}"
    );
    let e = err("extract: {labels: [{key: a, key_regex: b}]}");
    assert_eq!(e.path, "extract.labels[0]");
    assert_eq!(
        err("extract: {annotations: [{key: a, from: deployment}]}").path,
        "extract.annotations[0].from"
    );
    assert_eq!(
        err("extract: {labels: [{key_regex: '('}]}").path,
        "extract.labels[0].key_regex"
    );
    let e = err("pod_association: [{sources: [{from: connection}, {from: connection}, {from: connection}, {from: connection}, {from: connection}]}]");
    assert_eq!(e.path, "pod_association[0].sources");
    assert!(e.message.contains("limit is 4"));
    assert_eq!(
        err("pod_association: [{sources: [{from: resource_attribute}]}]").path,
        "pod_association[0].sources[0].name"
    );
    assert_eq!(
        err("pod_association: [{sources: [{from: header}]}]").path,
        "pod_association[0].sources[0].from"
    );
    assert_eq!(
        err("filter: {labels: [{key: a, op: in}]}").path,
        "filter.labels[0].op"
    );
    assert_eq!(
        err("filter: {fields: [{key: a, op: exists}]}").path,
        "filter.fields[0].op"
    );
    assert_eq!(
        err("filter: {node_from_env_var: OSPREY_TEST_SURELY_UNSET_VAR}").path,
        "filter.node_from_env_var"
    );
    assert_eq!(
        err("exclude: {pods: [{name: '['}]}").path,
        "exclude.pods[0].name"
    );
    assert!(err("pod_associations: []")
        .message
        .contains("unknown field"));
}

#[test]
fn default_rules_associate_by_connection_ip() {
    let (rules, index) = setup("");
    let got = enrich(&rules, &index, &ctx("10.1.2.3"), &[("service.name", "web")]);
    assert_eq!(
        got,
        map(&[
            ("service.name", "web"),
            ("k8s.namespace.name", "shop"),
            ("k8s.pod.name", "web-7d9f8c6b5d-x2k4p"),
            ("k8s.pod.uid", "0b6a1f8e-3c2d-4f5a-9e7b-1a2b3c4d5e6f"),
            ("k8s.pod.start_time", "2024-05-01T10:00:00Z"),
            ("k8s.deployment.name", "web"),
            ("k8s.node.name", "node-1"),
            ("container.image.name", "ghcr.io/acme/web"),
            ("container.image.tag", "1.4.2"),
        ])
    );
    // Without rules, a `k8s.pod.ip` attribute wins over the connection (an agent forwarded it).
    let got = enrich(
        &rules,
        &index,
        &ctx("10.1.2.3"),
        &[("k8s.pod.ip", "10.1.2.5")],
    );
    assert_eq!(got["k8s.pod.name"], "report-28571520-q8zfm");
    // ...and `host.name` counts only when it is an IP address.
    let got = enrich(
        &rules,
        &index,
        &Context::default(),
        &[("host.name", "10.1.2.4")],
    );
    assert_eq!(got["k8s.pod.name"], "db-0");
    let got = enrich(
        &rules,
        &index,
        &Context::default(),
        &[("host.name", "db-0")],
    );
    assert!(!got.contains_key("k8s.pod.name"));
    // An IPv4 client seen on a dual-stack socket.
    let got = enrich(&rules, &index, &ctx("::ffff:10.1.2.3"), &[]);
    assert_eq!(got["k8s.pod.name"], "web-7d9f8c6b5d-x2k4p");
    // Unknown client: nothing added.
    assert!(enrich(&rules, &index, &ctx("10.9.9.9"), &[]).is_empty());
}

const ASSOCIATIONS: &str = "pod_association:
  - sources: [{from: resource_attribute, name: k8s.pod.ip}]
  - sources: [{from: resource_attribute, name: k8s.pod.uid}]
  - sources: [{from: resource_attribute, name: k8s.pod.name}, {from: resource_attribute, name: k8s.namespace.name}]
  - sources: [{from: connection}]
";

#[test]
fn association_rules_in_order() {
    let (rules, index) = setup(ASSOCIATIONS);
    let none = Context::default();
    let name = |got: BTreeMap<String, String>| got.get("k8s.pod.name").cloned();
    assert_eq!(
        name(enrich(&rules, &index, &none, &[("k8s.pod.ip", "10.1.2.4")])).as_deref(),
        Some("db-0")
    );
    let by_uid = enrich(
        &rules,
        &index,
        &none,
        &[("k8s.pod.uid", "7c3d2e1f-0a9b-4c8d-b7e6-f5a4b3c2d1e0")],
    );
    assert_eq!(name(by_uid).as_deref(), Some("db-0"));
    let by_name = enrich(
        &rules,
        &index,
        &none,
        &[
            ("k8s.pod.name", "report-28571520-q8zfm"),
            ("k8s.namespace.name", "batch"),
        ],
    );
    assert_eq!(
        by_name["k8s.pod.uid"],
        "c0ffee00-0000-4000-8000-000000000001"
    );
    // The name alone does not resolve that rule; the connection rule then applies.
    let got = enrich(
        &rules,
        &index,
        &ctx("10.1.2.3"),
        &[("k8s.pod.name", "db-0")],
    );
    assert_eq!(got["k8s.pod.uid"], "0b6a1f8e-3c2d-4f5a-9e7b-1a2b3c4d5e6f");
    assert_eq!(got["k8s.pod.name"], "db-0", "present attributes are kept");
    // The first rule that resolves decides, even if it finds no pod.
    let got = enrich(
        &rules,
        &index,
        &ctx("10.1.2.3"),
        &[("k8s.pod.ip", "10.9.9.9")],
    );
    assert_eq!(got, map(&[("k8s.pod.ip", "10.9.9.9")]));
}

#[test]
fn labels_and_annotations() {
    let (rules, index) = setup(
        r#"extract:
  metadata: [k8s.pod.name]
  otel_annotations: true
  labels:
    - {tag_name: component, key: app.kubernetes.io/component}
    - {tag_name: "app.$1", key_regex: 'app\.kubernetes\.io/(.*)'}
    - {key_regex: 'pod-template-.*'}
    - {key: team, from: namespace}
    - {key: topology.kubernetes.io/zone, tag_name: zone, from: node}
  annotations:
    - {key: git-sha}
    - {key: owner, tag_name: ns.owner, from: namespace}
"#,
    );
    let got = enrich(&rules, &index, &ctx("10.1.2.3"), &[]);
    assert_eq!(
        got,
        map(&[
            ("k8s.pod.name", "web-7d9f8c6b5d-x2k4p"),
            ("component", "frontend"),
            ("app.component", "frontend"),
            ("app.version", "1.4.2"),
            ("k8s.pod.labels.pod-template-hash", "7d9f8c6b5d"),
            ("k8s.pod.annotations.git-sha", "abc123"),
            ("service.name", "web-frontend"),
            ("k8s.namespace.labels.team", "payments"),
            ("ns.owner", "payments@acme.example"),
            ("zone", "eu-west-1a"),
        ])
    );
    // Namespace metadata applies by the resource's own `k8s.namespace.name` when no pod matches.
    let got = enrich(
        &rules,
        &index,
        &Context::default(),
        &[("k8s.namespace.name", "shop")],
    );
    assert_eq!(got["k8s.namespace.labels.team"], "payments");
}

#[test]
fn excluded_and_ignored_pods_are_skipped() {
    let (rules, index) = setup("");
    assert!(
        enrich(&rules, &index, &ctx("10.1.2.6"), &[]).is_empty(),
        "jaeger-agent is excluded by default"
    );
    let (rules, index) = setup("exclude: {pods: [{name: '^db-'}]}");
    assert!(enrich(&rules, &index, &ctx("10.1.2.4"), &[]).is_empty());
    assert!(
        !enrich(&rules, &index, &ctx("10.1.2.6"), &[]).is_empty(),
        "a custom list replaces the defaults"
    );
    let mut ignored = pod(WEB_POD);
    ignored
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(super::pod::IGNORE_ANNOTATION.into(), " True ".into());
    let index = PodIndex::from_pods(rules.clone(), [&ignored]);
    assert!(enrich(&rules, &index, &ctx("10.1.2.3"), &[]).is_empty());
}

#[test]
fn passthrough_only_tags_the_pod_ip() {
    let (rules, index) = setup("passthrough: true");
    let got = enrich(&rules, &index, &ctx("10.1.2.3"), &[("service.name", "web")]);
    assert_eq!(
        got,
        map(&[("service.name", "web"), ("k8s.pod.ip", "10.1.2.3")])
    );
    let got = enrich(
        &rules,
        &index,
        &ctx("10.1.2.3"),
        &[("k8s.pod.ip", "10.0.0.1")],
    );
    assert_eq!(got, map(&[("k8s.pod.ip", "10.0.0.1")]), "not overwritten");
    assert!(enrich(&rules, &index, &Context::default(), &[]).is_empty());
    // Outside passthrough, `k8s.pod.ip` comes from the connection only when extracted.
    let (rules, index) = setup(
        "extract: {metadata: [k8s.pod.ip]}\npod_association: [{sources: [{from: connection}]}]",
    );
    assert_eq!(
        enrich(&rules, &index, &ctx("10.1.2.4"), &[]),
        map(&[("k8s.pod.ip", "10.1.2.4")])
    );
}
