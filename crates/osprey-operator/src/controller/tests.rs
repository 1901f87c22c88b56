//! Reconciler tests against the fake API server ([`super::fake_api`]), with a fake planner so
//! that only the API-facing behaviour is under test here.

use super::fake_api::{self, list, seen, standard, Seen};
use super::plan::{Plan, PlanError, Planner};
use super::prune::{stale, time, Owned, CONFIG_VERSIONS};
use super::reconcile::merge_body;
use super::{reconcile, Context, INVALID_REQUEUE, RESYNC};
use crate::crd::collector::{ManagementState, ScaleStatus};
use crate::crd::{
    OpenTelemetryCollector, OpenTelemetryCollectorSpec, OpenTelemetryCollectorStatus,
};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::controller::Action;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

const HASH: &str = "aaaaaaaa0123456789";
const NS: &str = "/api/v1/namespaces/shop";
const CR_PATH: &str =
    "/apis/opentelemetry.io/v1alpha1/namespaces/shop/opentelemetrycollectors/demo";

fn cr() -> OpenTelemetryCollector {
    let mut cr = OpenTelemetryCollector::new(
        "demo",
        OpenTelemetryCollectorSpec {
            config: "receivers: {}".into(),
            ..Default::default()
        },
    );
    cr.metadata.namespace = Some("shop".into());
    cr.metadata.uid = Some("uid-1".into());
    cr
}

fn object(api_version: &str, kind: &str, name: &str) -> DynamicObject {
    let mut v = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name,
        "labels": {"app.kubernetes.io/managed-by": "opentelemetry-operator"}}});
    if kind == "Deployment" {
        v["spec"] = json!({"replicas": 2, "template": {"spec": {"containers": [{"name": "otc-container", "image": "osprey:1"}]}}});
    }
    serde_json::from_value(v).unwrap()
}

/// Plans a fixed object set (or fails), and reports image and replicas of the workload.
struct FakePlanner(Result<Vec<DynamicObject>, String>);

impl Planner for FakePlanner {
    fn plan(&self, _: &OpenTelemetryCollector) -> Result<Plan, PlanError> {
        match &self.0 {
            Ok(objects) => Ok(Plan {
                objects: objects.clone(),
                config_hash: HASH.into(),
                warnings: vec![],
            }),
            Err(e) => Err(PlanError::InvalidConfig(e.clone())),
        }
    }
    fn status(
        &self,
        _: &OpenTelemetryCollector,
        w: Option<&DynamicObject>,
    ) -> OpenTelemetryCollectorStatus {
        let w = w.map(|w| &w.data);
        OpenTelemetryCollectorStatus {
            version: Some("0.1.0".into()),
            image: w.and_then(|w| {
                w.pointer("/spec/template/spec/containers/0/image")?
                    .as_str()
                    .map(String::from)
            }),
            scale: Some(ScaleStatus {
                replicas: w
                    .and_then(|w| w.pointer("/spec/replicas")?.as_i64())
                    .map(|r| r as i32),
                selector: None,
                status_replicas: Some("0/2".into()),
            }),
            ..Default::default()
        }
    }
}

fn desired() -> Vec<DynamicObject> {
    vec![
        object("v1", "ConfigMap", "demo-collector-aaaaaaaa"),
        object("v1", "ServiceAccount", "demo-collector"),
        object("v1", "Service", "demo-collector"),
        object("apps/v1", "Deployment", "demo-collector"),
    ]
}

async fn run(
    cr: OpenTelemetryCollector,
    planner: FakePlanner,
    gets: HashMap<String, Value>,
) -> (Action, Vec<Seen>) {
    let status_of = serde_json::to_value(&cr).unwrap();
    let (client, log) = fake_api::client(standard(gets, status_of));
    let ctx = Arc::new(Context::new(client, Arc::new(planner), "osprey-operator"));
    let action = reconcile(Arc::new(cr), ctx).await.expect("reconcile");
    (action, seen(&log))
}

fn writes(seen: &[Seen]) -> Vec<(String, String)> {
    seen.iter()
        .filter(|s| s.is_write())
        .map(|s| (s.method.clone(), s.path.clone()))
        .collect()
}

#[tokio::test]
async fn first_reconcile_applies_every_object_then_writes_status() {
    let (action, seen) = run(cr(), FakePlanner(Ok(desired())), HashMap::new()).await;
    assert_eq!(action, Action::requeue(RESYNC));
    let w = writes(&seen);
    let p = |s: &str| ("PATCH".to_string(), s.to_string());
    assert_eq!(
        w,
        vec![
            p(&format!("{NS}/configmaps/demo-collector-aaaaaaaa")),
            p(&format!("{NS}/serviceaccounts/demo-collector")),
            p(&format!("{NS}/services/demo-collector")),
            p("/apis/apps/v1/namespaces/shop/deployments/demo-collector"),
            p(&format!("{CR_PATH}/status")),
        ]
    );
    let apply = &seen[0];
    assert!(
        apply.query.contains("fieldManager=osprey-operator"),
        "{}",
        apply.query
    );
    assert!(apply.query.contains("force=true"), "{}", apply.query);
    assert_eq!(apply.content_type, "application/apply-patch+yaml");
    assert_eq!(apply.body["kind"], "ConfigMap");
    assert_eq!(apply.body["metadata"]["namespace"], "shop");
    let owner = &apply.body["metadata"]["ownerReferences"][0];
    assert_eq!(owner["uid"], "uid-1");
    assert_eq!(owner["kind"], "OpenTelemetryCollector");
    assert_eq!(owner["controller"], true);
    // Stale objects are looked for among the owned kinds, by the managed-by label.
    let lists: Vec<_> = seen.iter().filter(|s| s.method == "GET").collect();
    assert_eq!(lists.len(), 7);
    assert!(lists.iter().all(|s| s
        .query
        .contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dopentelemetry-operator")));
    let status_patch = seen.last().unwrap();
    assert_eq!(status_patch.content_type, "application/merge-patch+json");
    let status = &status_patch.body["status"];
    assert_eq!(status["appliedConfigHash"], HASH);
    assert_eq!(status["image"], "osprey:1");
    assert_eq!(status["scale"]["replicas"], 2);
}

#[tokio::test]
async fn second_reconcile_without_change_only_applies() {
    let (_, first) = run(cr(), FakePlanner(Ok(desired())), HashMap::new()).await;
    let status = first.last().unwrap().body["status"].clone();
    let mut again = cr();
    again.status = Some(serde_json::from_value(status).unwrap());
    let (_, seen) = run(again, FakePlanner(Ok(desired())), HashMap::new()).await;
    let w = writes(&seen);
    assert_eq!(w.len(), 4, "{w:?}");
    assert!(w
        .iter()
        .all(|(m, p)| m == "PATCH" && !p.ends_with("/status")));
}

#[tokio::test]
async fn invalid_config_touches_nothing_and_reports() {
    let mut cr = cr();
    cr.status = Some(OpenTelemetryCollectorStatus {
        applied_config_hash: Some(HASH.into()),
        image: Some("osprey:1".into()),
        ..Default::default()
    });
    let planner = || FakePlanner(Err("receiver \"otlp\": unknown protocol \"grcp\"".into()));
    let (action, seen) = run(cr.clone(), planner(), HashMap::new()).await;
    assert_eq!(action, Action::requeue(INVALID_REQUEUE));
    let w = writes(&seen);
    assert_eq!(
        w,
        vec![
            (
                "POST".to_string(),
                "/apis/events.k8s.io/v1/namespaces/shop/events".to_string()
            ),
            ("PATCH".to_string(), format!("{CR_PATH}/status")),
        ]
    );
    assert!(
        seen.iter().all(|s| s.method != "GET"),
        "no object was even read"
    );
    let event = &seen[0].body;
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "InvalidConfig");
    assert_eq!(event["regarding"]["name"], "demo");
    assert_eq!(event["regarding"]["kind"], "OpenTelemetryCollector");
    assert!(event["note"].as_str().unwrap().contains("unknown protocol"));
    let status = &seen[1].body["status"];
    let msg = status["messages"][0].as_str().unwrap();
    assert!(msg.contains("unknown protocol"), "{msg}");
    assert!(
        msg.contains("the last good config (aaaaaaaa) keeps running"),
        "{msg}"
    );
    assert_eq!(
        status["appliedConfigHash"], HASH,
        "the last good hash stays"
    );

    // The same error again (requeue, or the watch event of the status write): no new report.
    cr.status = Some(serde_json::from_value(status.clone()).unwrap());
    let (_, again) = run(cr, planner(), HashMap::new()).await;
    assert!(again.is_empty(), "{again:#?}");
}

#[tokio::test]
async fn rejected_apply_is_reported_on_the_cr_and_retried() {
    let deploy = "/apis/apps/v1/namespaces/shop/deployments/demo-collector";
    let mut standard = standard(HashMap::new(), serde_json::to_value(cr()).unwrap());
    let responder = move |s: &Seen| {
        if s.method == "PATCH" && s.path == deploy {
            let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "Invalid", "code": 422,
                "message": "Deployment.apps \"demo-collector\" is invalid: spec.replicas: Invalid value: -1"});
            return (422, status);
        }
        standard(s)
    };
    let (client, log) = fake_api::client(responder);
    let ctx = Arc::new(Context::new(
        client,
        Arc::new(FakePlanner(Ok(desired()))),
        "osprey-operator",
    ));
    let err = reconcile(Arc::new(cr()), ctx)
        .await
        .expect_err("the rejected apply fails the reconcile (so it is retried)");
    assert!(err.to_string().contains("spec.replicas"), "{err}");
    let seen = seen(&log);
    let w = writes(&seen);
    assert_eq!(w[3], ("PATCH".to_string(), deploy.to_string()));
    assert_eq!(
        w[4],
        (
            "POST".to_string(),
            "/apis/events.k8s.io/v1/namespaces/shop/events".to_string()
        )
    );
    assert_eq!(w[5], ("PATCH".to_string(), format!("{CR_PATH}/status")));
    assert_eq!(w.len(), 6, "nothing is applied after the failure: {w:?}");
    let event = seen.iter().find(|s| s.method == "POST").unwrap();
    assert_eq!(event.body["reason"], "ApplyFailed");
    let status = &seen.last().unwrap().body["status"];
    let msg = status["messages"][0].as_str().unwrap();
    assert!(
        msg.starts_with("applying Deployment demo-collector failed:")
            && msg.contains("spec.replicas"),
        "{msg}"
    );
}

#[tokio::test]
async fn unmanaged_collector_issues_no_request() {
    let mut cr = cr();
    cr.spec.management_state = Some(ManagementState::Unmanaged);
    let (action, seen) = run(cr, FakePlanner(Ok(desired())), HashMap::new()).await;
    assert_eq!(action, Action::await_change());
    assert!(seen.is_empty(), "{seen:?}");
}

fn listed(kind: &str, name: &str, owner_uid: &str, created: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "shop", "uid": format!("{name}-uid"),
        "creationTimestamp": created,
        "labels": {"app.kubernetes.io/managed-by": "opentelemetry-operator"},
        "ownerReferences": [{"apiVersion": "opentelemetry.io/v1alpha1", "kind": "OpenTelemetryCollector",
            "name": "demo", "uid": owner_uid, "controller": true}]}, "kind": kind})
}

#[tokio::test]
async fn stale_objects_are_deleted_and_recent_configs_kept() {
    let cms = list(vec![
        listed(
            "ConfigMap",
            "demo-collector-aaaaaaaa",
            "uid-1",
            "2026-01-01T00:00:00Z",
        ),
        listed(
            "ConfigMap",
            "demo-collector-11111111",
            "uid-1",
            "2026-01-01T01:00:00Z",
        ),
        listed(
            "ConfigMap",
            "demo-collector-22222222",
            "uid-1",
            "2026-01-01T02:00:00Z",
        ),
        listed(
            "ConfigMap",
            "demo-collector-33333333",
            "uid-1",
            "2026-01-01T03:00:00Z",
        ),
        listed(
            "ConfigMap",
            "demo-collector-44444444",
            "uid-1",
            "2026-01-01T04:00:00Z",
        ),
        listed(
            "ConfigMap",
            "demo-collector-55555555",
            "uid-1",
            "2026-01-01T05:00:00Z",
        ),
        listed(
            "ConfigMap",
            "other-collector-00000000",
            "uid-2",
            "2025-01-01T00:00:00Z",
        ),
    ]);
    let svcs = list(vec![
        listed("Service", "demo-collector", "uid-1", "2026-01-01T00:00:00Z"),
        listed(
            "Service",
            "demo-collector-monitoring",
            "uid-1",
            "2026-01-01T00:00:00Z",
        ),
    ]);
    let gets = HashMap::from([
        (format!("{NS}/configmaps"), cms),
        (format!("{NS}/services"), svcs),
    ]);
    let (_, seen) = run(cr(), FakePlanner(Ok(desired())), gets).await;
    let deletes: Vec<_> = seen.iter().filter(|s| s.method == "DELETE").collect();
    let paths: Vec<_> = deletes.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            format!("{NS}/services/demo-collector-monitoring"),
            format!("{NS}/configmaps/demo-collector-22222222"),
            format!("{NS}/configmaps/demo-collector-11111111"),
        ]
    );
    // Deleted only if it is still the object that was listed.
    assert_eq!(
        deletes[1].body["preconditions"]["uid"],
        "demo-collector-22222222-uid"
    );
}

#[test]
fn stale_keeps_desired_and_the_newest_old_configs() {
    let cm = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"));
    let owned: Vec<Owned> = (0..6)
        .map(|i| {
            let mut o = object("v1", "ConfigMap", &format!("c-{i}"));
            o.metadata.creation_timestamp = time(&format!("2026-01-0{}T00:00:00Z", i + 1));
            Owned {
                resource: cm.clone(),
                object: o,
            }
        })
        .collect();
    let desired = BTreeSet::from([("ConfigMap".to_string(), "c-0".to_string())]);
    let names: Vec<_> = stale(&owned, &desired, CONFIG_VERSIONS)
        .into_iter()
        .map(|o| o.object.metadata.name.unwrap())
        .collect();
    assert_eq!(
        names,
        ["c-2", "c-1"],
        "c-0 is current; c-5, c-4, c-3 are the 3 kept"
    );
}

#[test]
fn status_merge_body_removes_what_is_gone() {
    let old = OpenTelemetryCollectorStatus {
        messages: Some(vec!["bad".into()]),
        scale: Some(ScaleStatus {
            selector: Some("a=b".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let new = OpenTelemetryCollectorStatus {
        scale: Some(ScaleStatus {
            replicas: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        merge_body(&old, &new),
        json!({"messages": null, "scale": {"replicas": 1, "selector": null}})
    );
}

const SEED_COLLECTOR: &str = include_str!("../../../../tests/e2e/fixtures/collector-fixed.yaml");

fn seed_cr() -> OpenTelemetryCollector {
    let mut cr: OpenTelemetryCollector = serde_yaml::from_str(SEED_COLLECTOR).unwrap();
    cr.metadata.uid = Some("uid-seed".into());
    cr
}

fn real_planner(validate: fn(&str) -> Result<(), String>) -> super::CollectorPlanner {
    super::CollectorPlanner::new(crate::collector::Settings::default(), Arc::new(validate))
}

#[tokio::test]
async fn seed_collector_is_applied_with_upstream_names_and_paths() {
    let cr = seed_cr();
    let status_of = serde_json::to_value(&cr).unwrap();
    let (client, log) = fake_api::client(standard(HashMap::new(), status_of));
    let ctx = Arc::new(Context::new(
        client,
        Arc::new(real_planner(|_| Ok(()))),
        "osprey-operator",
    ));
    reconcile(Arc::new(cr), ctx).await.expect("reconcile");
    let seen = seen(&log);
    let applied: Vec<&str> = seen
        .iter()
        .filter(|s| s.content_type == "application/apply-patch+yaml")
        .map(|s| s.path.as_str())
        .collect();
    let name = "tobs-tobs-opentelemetry-collector";
    for want in [
        format!("/api/v1/namespaces/default/serviceaccounts/{name}"),
        format!("/api/v1/namespaces/default/services/{name}"),
        format!("/api/v1/namespaces/default/services/{name}-headless"),
        format!("/api/v1/namespaces/default/services/{name}-monitoring"),
        format!("/apis/apps/v1/namespaces/default/deployments/{name}"),
        format!("/apis/policy/v1/namespaces/default/poddisruptionbudgets/{name}"),
    ] {
        assert!(
            applied.contains(&want.as_str()),
            "{want} not in {applied:#?}"
        );
    }
    let cm = applied[0];
    assert!(
        cm.starts_with(&format!("/api/v1/namespaces/default/configmaps/{name}-")),
        "{cm}"
    );
    assert!(seen
        .iter()
        .filter(|s| s.is_write())
        .all(|s| s.method == "PATCH"));
    let status = &seen.last().unwrap().body["status"];
    assert!(status["appliedConfigHash"]
        .as_str()
        .unwrap()
        .starts_with(cm.rsplit('-').next().unwrap()));
    assert!(status["scale"]["selector"]
        .as_str()
        .unwrap()
        .contains("app.kubernetes.io/instance=default.tobs-tobs-opentelemetry"));
    assert!(status["version"].is_string());
}

#[tokio::test]
async fn seed_collector_rejected_by_the_validator_is_not_applied() {
    let cr = seed_cr();
    let status_of = serde_json::to_value(&cr).unwrap();
    let (client, log) = fake_api::client(standard(HashMap::new(), status_of));
    let planner = real_planner(|_| Err("exporter \"logging\": unknown type".into()));
    let ctx = Arc::new(Context::new(client, Arc::new(planner), "osprey-operator"));
    let action = reconcile(Arc::new(cr), ctx).await.expect("reconcile");
    assert_eq!(action, Action::requeue(INVALID_REQUEUE));
    let seen = seen(&log);
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(seen[0].body["reason"], "InvalidConfig");
    assert!(seen[0].body["note"]
        .as_str()
        .unwrap()
        .contains("unknown type"));
    assert!(seen[1]
        .path
        .ends_with("/opentelemetrycollectors/tobs-tobs-opentelemetry/status"));
}
