//! Tests of the API side against a fake API server: kube's client over a `tower_test` mock
//! service that answers list requests with object lists and the first watch on each path with
//! a stream of watch events, as the Kubernetes API does.

use super::fixtures::*;
use super::K8sAttributesProcessor;
use crate::testutil::Sink;
use http::{Request, Response};
use kube::client::Body;
use osprey_pipeline::{Batch, Consumer, Context, SharedConsumer};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower_test::mock;

type Handle = mock::Handle<Request<Body>, Response<Body>>;

/// One request the fake API server saw.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: BTreeMap<String, String>,
}

impl Seen {
    fn is_watch(&self) -> bool {
        self.query.get("watch").map(String::as_str) == Some("true")
    }
}

/// Answers list requests from `lists` (by path) and the first watch on a path with
/// `watches[path]` (newline-delimited watch events); later watches stay open and silent.
async fn fake_api(
    handle: Handle,
    lists: HashMap<&'static str, String>,
    watches: HashMap<&'static str, String>,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let mut handle = std::pin::pin!(handle);
    let mut held = Vec::new();
    let mut watched = HashSet::new();
    while let Some((req, send)) = handle.next_request().await {
        let path = req.uri().path().to_string();
        let query = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        let s = Seen { path, query };
        seen.lock().unwrap().push(s.clone());
        let reply = |body: String| {
            Response::builder()
                .status(200)
                .body(Body::from(body.into_bytes()))
                .unwrap()
        };
        if !s.is_watch() {
            match lists.get(s.path.as_str()) {
                Some(list) => send.send_response(reply(list.clone())),
                None => send.send_response(
                    Response::builder()
                        .status(404)
                        .body(Body::from(br#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#.to_vec()))
                        .unwrap(),
                ),
            }
        } else if watched.insert(s.path.clone()) {
            send.send_response(reply(
                watches.get(s.path.as_str()).cloned().unwrap_or_default(),
            ));
        } else {
            held.push(send);
        }
    }
}

/// A list response (`PodList`, `NamespaceList`, ...) holding `items` (fixture JSON).
fn list(kind: &str, resource_version: &str, items: &[&str]) -> String {
    let items: Vec<serde_json::Value> = items
        .iter()
        .map(|i| serde_json::from_str(i).unwrap())
        .collect();
    serde_json::json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": resource_version}, "items": items})
        .to_string()
}

/// One watch event line.
fn event(kind: &str, object: &str) -> String {
    let object: serde_json::Value = serde_json::from_str(object).unwrap();
    format!("{}\n", serde_json::json!({"type": kind, "object": object}))
}

fn batch_from(ip: &str) -> Batch {
    let mut b = Batch::traces(request(&[]));
    b.context = Arc::new(Context {
        client_addr: Some(ip.parse::<IpAddr>().unwrap()),
        ..Default::default()
    });
    b
}

/// Polls `cond` every 10 ms; panics after 10 s (a generous bound, not a timing assertion).
async fn wait_until(mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_lists_then_watches_with_the_filter_selectors() {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let path = "/api/v1/namespaces/shop/pods";
    let lists = HashMap::from([(path, list("PodList", "48500", &[WEB_POD]))]);
    let mut db = pod(DB_POD);
    db.metadata.resource_version = Some("48501".into());
    let watches = HashMap::from([(path, event("ADDED", &serde_json::to_string(&db).unwrap()))]);
    tokio::spawn(fake_api(handle, lists, watches, seen.clone()));
    let client = kube::Client::new(service, "default");
    let cfg = config(
        "wait_for_metadata: true
filter:
  namespace: shop
  node: node-1
  labels: [{key: app, value: web}, {key: tier, op: does-not-exist}]
  fields: [{key: status.phase, value: Running}]",
    );
    let sink = Arc::new(Sink::default());
    // Blocks until the first list is in.
    let p = K8sAttributesProcessor::with_client(cfg, client, sink.clone()).unwrap();
    assert!(p.is_synced());
    let mut b = batch_from("10.1.2.3");
    b.encoded = Some(bytes::Bytes::from_static(b"stale"));
    p.consume(b).await.unwrap();
    let got = sink.take();
    assert!(got[0].encoded.is_none());
    let attrs = attrs_of(got[0].trace_request().unwrap());
    assert_eq!(attrs["k8s.pod.name"], "web-7d9f8c6b5d-x2k4p");
    assert_eq!(attrs["k8s.deployment.name"], "web");
    // The pod the watch stream added.
    wait_until(|| p.index().read().unwrap().pod_count() == 2).await;
    p.consume(batch_from("10.1.2.4")).await.unwrap();
    let attrs = attrs_of(sink.take()[0].trace_request().unwrap());
    assert_eq!(attrs["k8s.pod.name"], "db-0");
    assert_eq!(attrs["k8s.namespace.name"], "shop");

    let seen = seen.lock().unwrap().clone();
    let (list_req, watch_req) = (&seen[0], &seen[1]);
    for r in [list_req, watch_req] {
        assert_eq!(r.path, path);
        assert_eq!(r.query["labelSelector"], "app=web,!tier");
        assert_eq!(
            r.query["fieldSelector"],
            "status.phase=Running,spec.nodeName=node-1"
        );
    }
    assert!(!list_req.is_watch());
    assert!(watch_req.is_watch());
    assert_eq!(watch_req.query["resourceVersion"], "48500");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_and_nodes_are_watched_when_rules_need_them() {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let lists = HashMap::from([
        ("/api/v1/pods", list("PodList", "10", &[WEB_POD, DB_POD])),
        (
            "/api/v1/namespaces",
            list(
                "NamespaceList",
                "11",
                &[SHOP_NAMESPACE, KUBE_SYSTEM_NAMESPACE],
            ),
        ),
        ("/api/v1/nodes", list("NodeList", "12", &[NODE_1])),
    ]);
    let watches = HashMap::from([("/api/v1/pods", event("DELETED", DB_POD))]);
    tokio::spawn(fake_api(handle, lists, watches, seen.clone()));
    let client = kube::Client::new(service, "default");
    let cfg = config(
        "wait_for_metadata: true
filter: {node: node-1}
extract:
  metadata: [k8s.pod.name, k8s.node.uid, k8s.cluster.uid]
  labels: [{key: team, from: namespace}]",
    );
    let sink = Arc::new(Sink::default());
    let p = K8sAttributesProcessor::with_client(cfg, client, sink.clone()).unwrap();
    p.consume(batch_from("10.1.2.3")).await.unwrap();
    let attrs = attrs_of(sink.take()[0].trace_request().unwrap());
    let want: BTreeMap<String, String> = [
        ("k8s.pod.name", "web-7d9f8c6b5d-x2k4p"),
        ("k8s.namespace.labels.team", "payments"),
        ("k8s.cluster.uid", "c1a5e7e0-0000-4000-8000-0000000c1a5e"),
        ("k8s.node.uid", "0d0d0d0d-1111-4222-8333-444444444444"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(attrs, want);
    // The deleted pod is still used during the grace period.
    wait_until(|| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == "/api/v1/pods" && s.is_watch())
            .count()
            == 2
    })
    .await;
    p.consume(batch_from("10.1.2.4")).await.unwrap();
    assert_eq!(
        attrs_of(sink.take()[0].trace_request().unwrap())["k8s.pod.name"],
        "db-0"
    );

    let seen = seen.lock().unwrap().clone();
    let first = |path: &str| {
        seen.iter()
            .find(|s| s.path == path && !s.is_watch())
            .cloned()
            .unwrap()
    };
    assert!(!first("/api/v1/pods").query.contains_key("labelSelector"));
    assert_eq!(
        first("/api/v1/pods").query["fieldSelector"],
        "spec.nodeName=node-1"
    );
    assert!(
        !first("/api/v1/namespaces")
            .query
            .contains_key("fieldSelector"),
        "every namespace"
    );
    assert_eq!(
        first("/api/v1/nodes").query["fieldSelector"],
        "metadata.name=node-1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_metadata_fails_when_the_list_never_completes() {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    // The fake server takes requests but never answers.
    let hold = tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        let mut held = Vec::new();
        while let Some((_, send)) = handle.next_request().await {
            held.push(send);
        }
    });
    let client = kube::Client::new(service, "default");
    let cfg = config("wait_for_metadata: true\nwait_for_metadata_timeout: 50ms");
    let next: SharedConsumer = Arc::new(Sink::default());
    let e = K8sAttributesProcessor::with_client(cfg, client, next)
        .err()
        .unwrap();
    assert_eq!(e.path, "wait_for_metadata_timeout");
    hold.abort();
}

#[tokio::test]
async fn wait_for_metadata_needs_a_multi_threaded_runtime() {
    let (service, _handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let next: SharedConsumer = Arc::new(Sink::default());
    let e = K8sAttributesProcessor::with_client(config("wait_for_metadata: true"), client, next)
        .err()
        .unwrap();
    assert!(e.message.contains("multi-threaded"), "{e}");
}

#[tokio::test]
async fn building_outside_a_cluster_fails_naming_auth_type() {
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return; // running inside a cluster: the in-cluster config may well work
    }
    let next: SharedConsumer = Arc::new(Sink::default());
    let e = crate::build("k8sattributes", &serde_yaml::Value::Null, next.clone())
        .unwrap()
        .err()
        .unwrap();
    assert_eq!(e.path, "auth_type");
    assert!(e.message.contains("serviceAccount"), "{e}");
    let none: serde_yaml::Value = serde_yaml::from_str("auth_type: none").unwrap();
    let e = crate::build("k8s_attributes", &none, next)
        .unwrap()
        .err()
        .unwrap();
    assert!(e.message.contains("KUBERNETES_SERVICE_HOST"), "{e}");
}

#[test]
fn building_outside_a_runtime_fails() {
    let next: SharedConsumer = Arc::new(Sink::default());
    let e = crate::build("k8sattributes", &serde_yaml::Value::Null, next)
        .unwrap()
        .err()
        .unwrap();
    assert!(e.message.contains("tokio runtime"), "{e}");
}

#[tokio::test]
async fn tls_client_stack_initialises() {
    // What `auth_type: none` builds (an https client that skips certificate checks); makes
    // sure the rustls crypto provider resolves in this build.
    let mut config = kube::Config::new("https://127.0.0.1:6443".parse().unwrap());
    config.accept_invalid_certs = true;
    assert!(kube::Client::try_from(config).is_ok());
}
