//! Tests of pod extraction: owner names, containers, host-network pods, IP reuse, image
//! references, no-overwrite, and the processor over every signal.

use super::fixtures::*;
use super::index::PodIndex;
use super::pod::{cronjob_name, deployment_name, parse_image, ImageRef};
use super::K8sAttributesProcessor;
use crate::testutil::Sink;
use osprey_pipeline::{Batch, Consumer, Context, Payload};
use std::sync::Arc;

#[test]
fn deployment_and_cronjob_names_from_owners() {
    assert_eq!(
        deployment_name("web-7d9f8c6b5d", Some("7d9f8c6b5d")).as_deref(),
        Some("web")
    );
    assert_eq!(
        deployment_name("my-api-v2-5c9b7f6d8", Some("5c9b7f6d8")).as_deref(),
        Some("my-api-v2")
    );
    assert_eq!(
        deployment_name("standalone-rs", None),
        None,
        "a bare ReplicaSet"
    );
    assert_eq!(deployment_name("web-7d9f8c6b5d", Some("abcdef")), None);
    assert_eq!(cronjob_name("report-28571520").as_deref(), Some("report"));
    assert_eq!(cronjob_name("migrate"), None);
}

#[test]
fn existing_attributes_are_not_overwritten() {
    let (rules, index) = setup("");
    let got = enrich(
        &rules,
        &index,
        &ctx("10.1.2.3"),
        &[
            ("k8s.pod.name", "custom"),
            ("k8s.namespace.name", ""),
            ("k8s.deployment.name", "mine"),
        ],
    );
    assert_eq!(got["k8s.pod.name"], "custom");
    assert_eq!(got["k8s.deployment.name"], "mine");
    assert_eq!(
        got["k8s.namespace.name"], "shop",
        "an empty value is filled in"
    );
}

#[test]
fn containers_and_owners() {
    let (rules, index) = setup(
        "extract: {metadata: [k8s.pod.hostname, k8s.statefulset.name, k8s.statefulset.uid, k8s.container.name, container.id, container.image.name, container.image.tag, k8s.node.uid, k8s.cluster.uid]}
pod_association:
  - sources: [{from: resource_attribute, name: container.id}]
  - sources: [{from: connection}]",
    );
    let base = [
        ("k8s.pod.hostname", "db-0"),
        ("k8s.statefulset.name", "db"),
        (
            "k8s.statefulset.uid",
            "1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6",
        ),
        ("k8s.cluster.uid", "c1a5e7e0-0000-4000-8000-0000000c1a5e"),
    ];
    let with = |extra: &[(&str, &str)]| {
        let mut m = map(&base);
        m.extend(map(extra));
        m
    };
    // Two containers and none named: pod-level attributes only.
    assert_eq!(enrich(&rules, &index, &ctx("10.1.2.4"), &[]), with(&[]));
    let got = enrich(
        &rules,
        &index,
        &ctx("10.1.2.4"),
        &[("k8s.container.name", "exporter")],
    );
    assert_eq!(
        got,
        with(&[
            ("k8s.container.name", "exporter"),
            (
                "container.image.name",
                "quay.io/prometheuscommunity/postgres-exporter"
            ),
            ("container.image.tag", "v0.15.0"),
            ("container.id", "exp0000000002"),
        ])
    );
    // Found by container id alone (no connection).
    let got = enrich(
        &rules,
        &index,
        &Context::default(),
        &[("container.id", "db0000000001")],
    );
    assert_eq!(
        got,
        with(&[
            ("container.id", "db0000000001"),
            ("k8s.container.name", "db"),
            ("container.image.name", "docker.io/library/postgres"),
            ("container.image.tag", "16"),
        ])
    );
    // A restart count that has no container id recorded adds none.
    let got = enrich(
        &rules,
        &index,
        &ctx("10.1.2.4"),
        &[
            ("k8s.container.name", "exporter"),
            ("k8s.container.restart_count", "0"),
        ],
    );
    assert!(!got.contains_key("container.id"));
    // Node metadata (node-1 is watched; the web pod runs there).
    let (rules, index) = setup("extract: {metadata: [k8s.node.name, k8s.node.uid, k8s.replicaset.name, k8s.job.name, k8s.cronjob.name, k8s.daemonset.name]}");
    let got = enrich(&rules, &index, &ctx("10.1.2.3"), &[]);
    assert_eq!(
        got,
        map(&[
            ("k8s.node.name", "node-1"),
            ("k8s.node.uid", "0d0d0d0d-1111-4222-8333-444444444444"),
            ("k8s.replicaset.name", "web-7d9f8c6b5d")
        ])
    );
    let got = enrich(&rules, &index, &ctx("10.1.2.5"), &[]);
    assert_eq!(
        (
            got["k8s.job.name"].as_str(),
            got["k8s.cronjob.name"].as_str()
        ),
        ("report-28571520", "report")
    );
}

#[test]
fn host_network_pods_and_ip_reuse() {
    let (rules, index) = setup("");
    assert!(
        enrich(&rules, &index, &ctx("192.168.0.10"), &[]).is_empty(),
        "host-network pods share the node IP"
    );
    // An old pod's late update does not take back an IP a newer pod now has.
    let newer = pod(WEB_POD);
    let mut older = pod(REPORT_POD);
    older.status.as_mut().unwrap().pod_ip = Some("10.1.2.3".into());
    let mut index = PodIndex::from_pods(rules.clone(), [&newer]);
    index.upsert_pod(&older);
    assert_eq!(
        enrich(&rules, &index, &ctx("10.1.2.3"), &[])["k8s.pod.name"],
        "web-7d9f8c6b5d-x2k4p"
    );
    assert_eq!(
        index.pod_count(),
        2,
        "the old pod is still found by its uid"
    );
    index.remove_pod(&newer);
    assert!(enrich(&rules, &index, &ctx("10.1.2.3"), &[]).is_empty());
}

#[test]
fn image_references_parse_like_docker() {
    let p = |s: &str| parse_image(s).map(|r| (r.repository, r.tag));
    let s = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
    assert_eq!(p("alpine"), s("docker.io/library/alpine", "latest"));
    assert_eq!(p("alpine:v1.0.0"), s("docker.io/library/alpine", "v1.0.0"));
    assert_eq!(
        p("alpine/alpine:2.0.0"),
        s("docker.io/alpine/alpine", "2.0.0")
    );
    assert_eq!(
        p("example.com:3000/alpine/alpine"),
        s("example.com:3000/alpine/alpine", "latest")
    );
    assert_eq!(p("localhost/app:dev"), s("localhost/app", "dev"));
    let digest = "sha256:22eeed9e66facc651d4344ef7d9ce912fccff5bb3969e745eed3ab953f309534";
    assert_eq!(
        parse_image(&format!("alpine@{digest}")),
        Some(ImageRef {
            repository: "docker.io/library/alpine".into(),
            tag: String::new(),
            digest: digest.into()
        })
    );
    assert_eq!(
        p(&format!("alpine:test@{digest}")),
        s("docker.io/library/alpine", "test")
    );
    assert_eq!(p(""), None);
    assert_eq!(p("aaa:"), None);
    assert_eq!(p("Upper/Case"), None);
}

#[tokio::test]
async fn passthrough_processor_handles_every_signal() {
    let cfg = config("passthrough: true");
    let sink = Arc::new(Sink::default());
    let p = K8sAttributesProcessor::new(cfg, sink.clone()).unwrap();
    assert!(p.is_synced());
    let context = Arc::new(ctx("10.1.2.3"));
    let mut traces = Batch::traces(request(&[]));
    traces.encoded = Some(bytes::Bytes::from_static(b"stale"));
    traces.context = context.clone();
    let mut metrics = Batch::metrics(Default::default());
    metrics.payload = Payload::Metrics(osprey_pipeline::MetricsRequest {
        resource_metrics: vec![Default::default()],
    });
    metrics.context = context.clone();
    let mut logs = Batch::logs(osprey_pipeline::LogsRequest {
        resource_logs: vec![Default::default()],
    });
    logs.context = context;
    for b in [traces, metrics, logs] {
        p.consume(b).await.unwrap();
    }
    let got = sink.take();
    assert!(got[0].encoded.is_none(), "the stale encoding is dropped");
    assert_eq!(
        attrs_of(got[0].trace_request().unwrap())["k8s.pod.ip"],
        "10.1.2.3"
    );
    let Payload::Metrics(m) = &got[1].payload else {
        panic!()
    };
    let attrs = &m.resource_metrics[0].resource.as_ref().unwrap().attributes;
    assert_eq!(
        crate::attrs::get(attrs, "k8s.pod.ip"),
        Some(&crate::attrs::str_value("10.1.2.3"))
    );
    let Payload::Logs(l) = &got[2].payload else {
        panic!()
    };
    let attrs = &l.resource_logs[0].resource.as_ref().unwrap().attributes;
    assert_eq!(
        crate::attrs::get(attrs, "k8s.pod.ip"),
        Some(&crate::attrs::str_value("10.1.2.3"))
    );
}
