//! The API-backed cluster view against the fake API server: owner chains (ReplicaSet →
//! Deployment, Job → CronJob) read from the API, Instrumentations from the reflector, and the
//! Warning Event published on the Deployment when injection fails.

use super::context::gather;
use super::fake_api::FakeApi;
use super::tests::{admit, instrumentation, material, pod, python_pod, review, rs_meta, start, NS};
use super::*;
use crate::certs::resolver;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use std::time::Duration;

fn api_objects() -> Vec<(&'static str, Value)> {
    vec![
        (
            "/api/v1/namespaces/shop",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        ),
        (
            "/apis/apps/v1/namespaces/shop/replicasets/web-7d9f8c6b5d",
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": serde_json::to_value(rs_meta()).unwrap()}),
        ),
        (
            "/apis/batch/v1/namespaces/shop/jobs/nightly-29000000",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "nightly-29000000", "namespace": NS,
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": "cj-uid", "controller": true}]}}),
        ),
        (
            "/apis/opentelemetry.io/v1alpha1/namespaces/shop/instrumentations/python",
            instrumentation(),
        ),
    ]
}

async fn wait_until(mut cond: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not reached");
}

#[tokio::test]
async fn api_view_follows_owners_and_lists_instrumentations() {
    let (client, api) = FakeApi::start(api_objects());
    let stop = CancellationToken::new();
    let view = ApiCluster::start(client, &stop);
    let ns = view.namespace(NS).await.unwrap();
    let p: Pod = serde_json::from_value(python_pod()).unwrap();
    let data = gather(view.as_ref(), &p, ns.clone(), false).await.unwrap();
    let chain: Vec<_> = data
        .owners
        .iter()
        .map(|o| format!("{}/{}", o.kind, o.name))
        .collect();
    assert_eq!(chain, ["ReplicaSet/web-7d9f8c6b5d", "Deployment/web"]);
    assert_eq!(data.instrumentations.len(), 1);
    assert_eq!(data.pod_context().owners[1].uid.as_deref(), Some("dep-uid"));
    assert!(view.ready());

    let job_pod: Pod = serde_json::from_value(json!({"metadata": {"name": "nightly-29000000-x", "ownerReferences": [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "nightly-29000000", "uid": "job-uid", "controller": true}]}}))
    .unwrap();
    let data = gather(view.as_ref(), &job_pod, ns.clone(), false)
        .await
        .unwrap();
    let chain: Vec<_> = data.owners.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(chain, ["Job", "CronJob"]);

    // A vanished ReplicaSet ends the chain; an API error is an error.
    let orphan: Pod = serde_json::from_value(pod(json!({}))).unwrap();
    let mut gone = orphan.clone();
    gone.metadata.owner_references.as_mut().unwrap()[0].name = "web-gone".into();
    assert_eq!(
        gather(view.as_ref(), &gone, ns.clone(), false)
            .await
            .unwrap()
            .owners
            .len(),
        1
    );
    api.fail(
        "/apis/apps/v1/namespaces/shop/replicasets/web-7d9f8c6b5d",
        500,
    );
    assert!(gather(view.as_ref(), &orphan, ns, false).await.is_err());
    assert!(matches!(
        view.namespace("nowhere").await,
        Err(ContextError::NamespaceNotFound(_))
    ));

    let calls = api.calls();
    assert!(
        calls.contains(&"GET /apis/opentelemetry.io/v1alpha1/instrumentations".to_string()),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"GET /apis/apps/v1/namespaces/shop/replicasets/web-7d9f8c6b5d".to_string())
    );
    assert!(calls.contains(&"GET /apis/batch/v1/namespaces/shop/jobs/nightly-29000000".to_string()));
    stop.cancel();
}

#[tokio::test]
async fn api_view_failure_publishes_an_event_on_the_deployment() {
    let mut objects = api_objects();
    objects.retain(|(p, _)| !p.contains("instrumentations"));
    let (client, api) = FakeApi::start(objects);
    let m = material();
    let run = start(
        WebhookConfig::default(),
        resolver::CertResolver::new(&m).unwrap(),
        Cluster::Api(client),
    )
    .await;
    let resp = admit(&run, &m.ca_pem, &review(&python_pod(), NS)).await;
    assert_eq!(resp["allowed"], true);
    assert!(
        resp["status"]["message"]
            .as_str()
            .unwrap()
            .contains("no OpenTelemetry Instrumentation"),
        "{resp}"
    );
    let posted = || {
        api.seen
            .lock()
            .unwrap()
            .iter()
            .find(|s| {
                s.method == "POST" && s.path == "/apis/events.k8s.io/v1/namespaces/shop/events"
            })
            .cloned()
    };
    wait_until(|| posted().is_some()).await;
    let ev = posted().unwrap().body.unwrap();
    assert_eq!(ev["reason"], events::REASON_FAILED);
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["regarding"]["kind"], "Deployment");
    assert_eq!(ev["regarding"]["name"], "web");
}
