//! Doctor tests: the pure diagnosis over fixture objects, restart targets and patches, and
//! `collect`/`rollout` against the fake API server.

use super::resolve::effective;
use super::*;
use crate::controller::fake_api::{self, list, not_found, seen};
use crate::crd::{Instrumentation, OpenTelemetryCollector};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use serde_json::{json, Value};

const PY_INIT: &str = "opentelemetry-auto-instrumentation-python";

fn inst() -> Instrumentation {
    serde_json::from_value(json!({
        "apiVersion": "opentelemetry.io/v1alpha1", "kind": "Instrumentation",
        "metadata": {"name": "default", "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [
                {"manager": "kubectl", "operation": "Update", "time": "2026-01-02T00:00:00Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:exporter": {}}}},
                {"manager": "osprey-operator", "operation": "Update", "subresource": "status",
                 "time": "2026-02-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
        "spec": {"exporter": {"endpoint": "http://osprey:4318"}, "propagators": ["tracecontext", "baggage"],
            "sampler": {"type": "parentbased_traceidratio", "argument": "0.25"},
            "python": {"image": "py:2"}}
    }))
    .unwrap()
}

fn sidecar_collector() -> OpenTelemetryCollector {
    serde_json::from_value(json!({
        "apiVersion": "opentelemetry.io/v1alpha1", "kind": "OpenTelemetryCollector",
        "metadata": {"name": "side", "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"mode": "sidecar", "image": "osprey:2", "config": "receivers: {otlp: {}}"}
    }))
    .unwrap()
}

fn namespace(name: &str, annotations: Value) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name, "annotations": annotations}})).unwrap()
}

/// A pod of `owner` (`ReplicaSet:web-7d9f8c6b5d`, ...), created at `created`.
fn pod(name: &str, owner: &str, created: &str, annotations: Value, spec: Value) -> Pod {
    let (kind, owner_name) = owner.split_once(':').unwrap();
    let hash = owner_name.rsplit('-').next().unwrap();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created,
            "labels": {"pod-template-hash": hash}, "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": owner_name, "uid": "u", "controller": true}]},
        "spec": spec,
        "status": {"phase": "Running"}
    }))
    .unwrap()
}

fn app(env: Value) -> Value {
    json!({"name": "app", "image": "shop/web:1.2", "env": env})
}

fn instrumented(init_image: &str, env: Value) -> Value {
    json!({"initContainers": [{"name": PY_INIT, "image": init_image}], "containers": [app(env)]})
}

fn good_env() -> Value {
    json!([{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://osprey:4318"},
        {"name": "OTEL_PROPAGATORS", "value": "tracecontext,baggage"},
        {"name": "OTEL_TRACES_SAMPLER", "value": "parentbased_traceidratio"},
        {"name": "OTEL_TRACES_SAMPLER_ARG", "value": "0.25"}])
}

fn py(v: &str) -> Value {
    json!({"instrumentation.opentelemetry.io/inject-python": v})
}

fn fixture_pods() -> Vec<Pod> {
    let plain = json!({"containers": [app(json!([]))]});
    let mut done = pod(
        "done",
        "Job:batch-1",
        "2025-01-01T00:00:00Z",
        py("true"),
        plain.clone(),
    );
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    vec![
        pod(
            "web-1",
            "ReplicaSet:web-7d9f8c6b5d",
            "2025-12-31T00:00:00Z",
            py("true"),
            plain.clone(),
        ),
        pod(
            "api-1",
            "ReplicaSet:api-5c4b",
            "2026-01-03T00:00:00Z",
            py("default"),
            instrumented("py:2", good_env()),
        ),
        pod(
            "worker-0",
            "StatefulSet:worker-0",
            "2026-01-01T12:00:00Z",
            py("shop/default"),
            instrumented("py:2", good_env()),
        ),
        pod(
            "agent-x",
            "DaemonSet:agent-x",
            "2026-01-03T00:00:00Z",
            py("true"),
            instrumented("py:1", good_env()),
        ),
        pod(
            "batch-1-abc",
            "Job:batch-1",
            "2026-01-03T00:00:00Z",
            py("missing"),
            plain.clone(),
        ),
        pod(
            "off-1",
            "ReplicaSet:off-1a2b",
            "2026-01-03T00:00:00Z",
            py("false"),
            plain.clone(),
        ),
        done,
        pod(
            "side-1",
            "ReplicaSet:side-9f9f",
            "2026-01-03T00:00:00Z",
            json!({"sidecar.opentelemetry.io/inject": "true"}),
            plain,
        ),
    ]
}

fn problems(findings: &[Finding]) -> Vec<(String, String, &'static str)> {
    findings
        .iter()
        .map(|f| (f.pod.clone(), f.language.clone(), f.problem.label()))
        .collect()
}

#[test]
fn diagnose_finds_missing_stale_and_misconfigured_pods() {
    let found = diagnose(
        &fixture_pods(),
        &[namespace("shop", json!({}))],
        &[inst()],
        &[sidecar_collector()],
    );
    let s = |p: &str, l: &str, k| (p.to_string(), l.to_string(), k);
    assert_eq!(
        problems(&found),
        vec![
            s("web-1", "python", "not instrumented"),
            s("worker-0", "python", "stale"),
            s("agent-x", "python", "stale"),
            s("batch-1-abc", "python", "misconfigured"),
            s("side-1", "sidecar", "not instrumented"),
        ]
    );
    let why = |i: usize| found[i].problem.reason().to_string();
    assert!(
        why(0).contains("before Instrumentation shop/default existed"),
        "{}",
        why(0)
    );
    assert!(
        why(1).contains("changed at 2026-01-02T00:00:00Z, after the pod was created"),
        "{}",
        why(1)
    );
    assert!(
        why(2).contains("agent image is py:1, the Instrumentation now gives py:2"),
        "{}",
        why(2)
    );
    assert!(
        why(3).contains("Instrumentation shop/missing does not exist"),
        "{}",
        why(3)
    );
    assert!(
        why(4).contains("not mutated although OpenTelemetryCollector shop/side existed"),
        "{}",
        why(4)
    );
    let web = found[0].workload.as_ref().unwrap();
    assert_eq!(
        (web.kind.clone(), web.name.as_str()),
        (WorkloadKind::Deployment, "web")
    );
}

#[test]
fn env_differences_are_listed_and_own_settings_are_not_stale() {
    let mut old_env = good_env();
    old_env[0]["value"] = json!("http://old:4317");
    // Created before the change: stale, with the differing value named.
    let before = pod(
        "w-0",
        "StatefulSet:w",
        "2026-01-01T12:00:00Z",
        py("true"),
        instrumented("py:2", old_env.clone()),
    );
    // Created after the change: the container sets its own endpoint; not stale.
    let after = pod(
        "w-1",
        "StatefulSet:w",
        "2026-01-05T00:00:00Z",
        py("true"),
        instrumented("py:2", old_env.clone()),
    );
    let found = diagnose(&[before.clone(), after], &[], &[inst()], &[]);
    assert_eq!(found.len(), 1);
    let why = found[0].problem.reason();
    assert!(
        why.contains(
            "OTEL_EXPORTER_OTLP_ENDPOINT is http://old:4317 in app (now http://osprey:4318)"
        ),
        "{why}"
    );
    // Without managedFields the change time is unknown: a difference alone makes it stale.
    let mut unknown = inst();
    unknown.metadata.managed_fields = None;
    let found = diagnose(&[before], &[], &[unknown], &[]);
    assert!(
        found[0].problem.reason().contains("gives other values now"),
        "{:?}",
        found[0]
    );
}

#[test]
fn the_first_container_skips_the_proxies_the_injector_skips() {
    // An envoy sidecar listed first: the injector instruments `app`, so the doctor looks there.
    let mut old_env = good_env();
    old_env[0]["value"] = json!("http://old:4317");
    let spec = json!({"initContainers": [{"name": PY_INIT, "image": "py:2"}],
        "containers": [{"name": "envoy", "image": "envoyproxy/envoy:v1.31"}, app(old_env)]});
    let before = pod(
        "m-0",
        "StatefulSet:m",
        "2026-01-01T12:00:00Z",
        py("true"),
        spec,
    );
    let found = diagnose(&[before], &[], &[inst()], &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    let why = found[0].problem.reason();
    assert!(
        why.contains("OTEL_EXPORTER_OTLP_ENDPOINT is http://old:4317 in app"),
        "{why}"
    );
}

#[test]
fn namespace_annotations_apply_with_the_upstream_fallback_rule() {
    let p = |v: Option<&str>| {
        let a = v.map_or(json!({}), |v| json!({"k": v}));
        pod(
            "p",
            "ReplicaSet:p-1",
            "2026-01-01T00:00:00Z",
            a,
            json!({"containers": []}),
        )
    };
    let ns = |v: &str| namespace("shop", json!({"k": v}));
    let eff = |pv, nv: Option<&str>| effective(&p(pv), nv.map(ns).as_ref(), "k");
    assert_eq!(eff(None, Some("inst")), Some("inst".into()));
    assert_eq!(eff(Some("mine"), Some("inst")), Some("mine".into()));
    assert_eq!(eff(Some("false"), Some("true")), Some("false".into()));
    assert_eq!(eff(Some("true"), Some("inst")), Some("inst".into()));
    assert_eq!(eff(Some("true"), Some("false")), Some("true".into()));
    assert_eq!(eff(None, None), None);
    // A namespace-wide annotation with no Instrumentation there.
    let plain = pod(
        "a",
        "ReplicaSet:a-1",
        "2026-01-01T00:00:00Z",
        json!({}),
        json!({"containers": [app(json!([]))]}),
    );
    let ann = json!({"instrumentation.opentelemetry.io/inject-java": "true"});
    let found = diagnose(&[plain], &[namespace("shop", ann)], &[], &[]);
    assert_eq!(found[0].language, "java");
    assert!(found[0]
        .problem
        .reason()
        .contains("no Instrumentation in namespace shop"));
}

#[test]
fn current_sidecar_is_fine_and_changed_image_is_stale() {
    let spec = |image: &str| {
        json!({"containers": [app(json!([])), {"name": "otc-container", "image": image,
        "env": [{"name": "OTEL_CONFIG", "value": "receivers:\n  otlp: {}\n"}]}]})
    };
    let ann = json!({"sidecar.opentelemetry.io/inject": "side"});
    let ok = pod(
        "s-1",
        "ReplicaSet:s-1a",
        "2026-01-03T00:00:00Z",
        ann.clone(),
        spec("osprey:2"),
    );
    let old = pod(
        "s-2",
        "ReplicaSet:s-1a",
        "2026-01-03T00:00:00Z",
        ann,
        spec("osprey:1"),
    );
    let found = diagnose(&[ok, old], &[], &[], &[sidecar_collector()]);
    assert_eq!(
        problems(&found),
        vec![("s-2".to_string(), "sidecar".to_string(), "stale")]
    );
    assert!(found[0]
        .problem
        .reason()
        .contains("sidecar image is osprey:1"));
}

#[test]
fn restart_targets_are_distinct_restartable_workloads() {
    let mut pods = fixture_pods();
    pods.push(pod(
        "web-2",
        "ReplicaSet:web-7d9f8c6b5d",
        "2025-12-31T00:00:00Z",
        py("true"),
        json!({"containers": [app(json!([]))]}),
    ));
    let found = diagnose(&pods, &[], &[inst()], &[sidecar_collector()]);
    let targets: Vec<String> = restart_targets(&found)
        .iter()
        .map(|w| w.to_string())
        .collect();
    // The Job's finding is misconfigured (and a Job is not restartable anyway).
    assert_eq!(
        targets,
        [
            "deployment/side",
            "deployment/web",
            "statefulset/worker-0",
            "daemonset/agent-x"
        ]
    );
    // A ReplicaSet whose name does not end in the pod's template hash is no Deployment's.
    let mut rs = pod(
        "x",
        "ReplicaSet:no-hash-here",
        "2026-01-01T00:00:00Z",
        json!({}),
        json!({}),
    );
    rs.metadata.labels = None;
    assert_eq!(workload_of(&rs).unwrap().kind, WorkloadKind::ReplicaSet);
}

#[test]
fn rollout_patch_sets_restarted_at_on_the_pod_template() {
    assert_eq!(
        rollout_patch_at("2026-01-01T00:00:00Z"),
        json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}}}})
    );
    let now = rollout_patch();
    let at = now
        .pointer("/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt")
        .unwrap();
    let at = at.as_str().unwrap();
    assert!(at.ends_with('Z') && !at.contains('.'), "{at}");
}

#[test]
fn table_aligns_columns() {
    let found = diagnose(&fixture_pods()[..1], &[], &[inst()], &[]);
    let t = table(&found);
    let lines: Vec<_> = t.lines().collect();
    assert!(
        lines[0].starts_with("NAMESPACE  POD    WORKLOAD        LANGUAGE  PROBLEM           WHY"),
        "{t}"
    );
    assert!(
        lines[1].starts_with(
            "shop       web-1  deployment/web  python    not instrumented  created at"
        ),
        "{t}"
    );
}

#[tokio::test]
async fn collect_reads_the_namespace_and_tolerates_a_missing_crd() {
    let pods: Vec<Value> = fixture_pods()[..2]
        .iter()
        .map(|p| serde_json::to_value(p).unwrap())
        .collect();
    let (client, log) = fake_api::client(move |s| match s.path.as_str() {
        "/api/v1/namespaces/shop/pods" => (200, list(pods.clone())),
        "/api/v1/namespaces/shop" => (
            200,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        ),
        "/apis/opentelemetry.io/v1alpha1/instrumentations" => {
            (200, list(vec![serde_json::to_value(inst()).unwrap()]))
        }
        _ => not_found(),
    });
    let found = collect(&client, Some("shop")).await.expect("collect");
    assert_eq!(
        problems(&found),
        vec![(
            "web-1".to_string(),
            "python".to_string(),
            "not instrumented"
        )]
    );
    let paths: Vec<_> = seen(&log).into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/namespaces/shop/pods",
            "/api/v1/namespaces/shop",
            "/apis/opentelemetry.io/v1alpha1/instrumentations",
            "/apis/opentelemetry.io/v1alpha1/opentelemetrycollectors",
        ]
    );
}

#[tokio::test]
async fn rollout_patches_each_workload_once() {
    let found = diagnose(&fixture_pods(), &[], &[inst()], &[sidecar_collector()]);
    let (client, log) = fake_api::client(|s| {
        if s.path.ends_with("/deployments/side") {
            not_found()
        } else {
            let kind = match s.path.split('/').nth(6) {
                Some("statefulsets") => "StatefulSet",
                Some("daemonsets") => "DaemonSet",
                _ => "Deployment",
            };
            let name = s.path.rsplit('/').next().unwrap();
            (
                200,
                json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}}),
            )
        }
    });
    let done = rollout(&client, &found).await.expect("rollout");
    assert_eq!(
        done,
        [
            "deployment/shop/web",
            "statefulset/shop/worker-0",
            "daemonset/shop/agent-x"
        ]
    );
    let seen = seen(&log);
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter()
            .all(|s| s.method == "PATCH"
                && s.content_type == "application/strategic-merge-patch+json")
    );
    assert_eq!(
        seen[1].path,
        "/apis/apps/v1/namespaces/shop/deployments/web"
    );
    assert!(seen[1]
        .body
        .pointer("/spec/template/metadata/annotations")
        .is_some());
}
