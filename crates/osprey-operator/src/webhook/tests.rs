//! The webhook over real HTTPS (a self-signed CA, a raw HTTP/1.1 client over tokio-rustls):
//! AdmissionReview JSON in, the JSONPatch out applied to the pod gives what `inject::mutate`
//! gives; fail-open and fail-closed answers, events, metrics, 400s, certificate swaps.
//! The helpers are shared with `api_tests.rs`.

use super::context::{ContextData, Owner};
use super::*;
use crate::certs::generate::{dns_names, pem_certs};
use crate::certs::{resolver, TlsMaterial};
use crate::crd::Instrumentation;
use base64::Engine;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::core::ObjectMeta;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(super) const NS: &str = "shop";

pub(super) fn pod(annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "web-7d9f8c6b5d-", "namespace": NS,
            "labels": {"app": "web", "pod-template-hash": "7d9f8c6b5d"},
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8c6b5d",
                "uid": "rs-uid", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"containers": [{"name": "web", "image": "shop/web:1.4.2", "ports": [{"containerPort": 8080}]}]}})
}

pub(super) fn python_pod() -> Value {
    pod(json!({"instrumentation.opentelemetry.io/inject-python": "true"}))
}

pub(super) fn review(pod: &Value, namespace: &str) -> Vec<u8> {
    json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
        "request": {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod, "oldObject": null, "dryRun": false}})
    .to_string()
    .into_bytes()
}

pub(super) fn instrumentation() -> Value {
    json!({"apiVersion": "opentelemetry.io/v1alpha1", "kind": "Instrumentation",
        "metadata": {"name": "python", "namespace": NS, "uid": "inst-uid"},
        "spec": {"exporter": {"endpoint": "http://otel-collector.observability:4318"},
                 "propagators": ["tracecontext", "baggage"]}})
}

pub(super) fn rs_meta() -> ObjectMeta {
    serde_json::from_value(json!({"name": "web-7d9f8c6b5d", "namespace": NS,
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "dep-uid", "controller": true}]}))
    .unwrap()
}

fn cluster() -> StaticCluster {
    StaticCluster {
        instrumentations: vec![serde_json::from_value(instrumentation()).unwrap()],
        workloads: vec![("ReplicaSet".into(), rs_meta())],
        ..Default::default()
    }
}

pub(super) fn material() -> TlsMaterial {
    TlsMaterial::self_signed(&dns_names("osprey-webhook", "osprey-system")).unwrap()
}

pub(super) struct Running {
    pub(super) addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub(super) async fn start(
    cfg: WebhookConfig,
    tls: Arc<crate::certs::CertResolver>,
    cluster: Cluster,
) -> Running {
    let stop = CancellationToken::new();
    let cfg = WebhookConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..cfg
    };
    let hook = Webhook::bind(cfg, tls, cluster, stop.clone())
        .await
        .unwrap();
    let (addr, metrics) = (hook.local_addr(), hook.metrics());
    tokio::spawn(hook.run());
    Running {
        addr,
        metrics,
        stop,
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + size]);
        body = &body[eol + 4 + size..];
    }
}

/// One HTTPS request trusting only `ca_pem`; `(status, body)`, or the connection error.
pub(super) async fn https(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pem_certs(ca_pem).unwrap()[0].clone()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(resolver::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("osprey-webhook.osprey-system.svc").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: osprey-webhook.osprey-system.svc\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await?;
    tls.write_all(body).await?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tls.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = &raw[split + 4..];
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

pub(super) async fn admit(run: &Running, ca: &str, body: &[u8]) -> Value {
    let (status, body) = https(run.addr, ca, "POST", "/mutate-v1-pod", body)
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(v["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    v["response"].clone()
}

#[tokio::test]
async fn https_admission_patch_gives_the_mutated_pod() {
    let m = material();
    let run = start(
        WebhookConfig::default(),
        resolver::CertResolver::new(&m).unwrap(),
        Cluster::Static(cluster()),
    )
    .await;
    let resp = admit(&run, &m.ca_pem, &review(&python_pod(), NS)).await;
    assert_eq!(resp["allowed"], true);
    assert_eq!(resp["patchType"], "JSONPatch");
    let patch: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(resp["patch"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let mut patched = python_pod();
    crate::inject::apply_patch(&mut patched, &patch).unwrap();

    // What the same code gives directly, with the owner chain the webhook resolves.
    let original: Pod = serde_json::from_value(python_pod()).unwrap();
    let owners = vec![
        Owner {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web-7d9f8c6b5d".into(),
            uid: Some("rs-uid".into()),
        },
        Owner {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            uid: Some("dep-uid".into()),
        },
    ];
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    let insts: Vec<Instrumentation> = vec![serde_json::from_value(instrumentation()).unwrap()];
    let data = ContextData::new(ns, insts, vec![], owners);
    let expected =
        crate::inject::mutate(&original, &data.pod_context(), &Default::default()).unwrap();
    assert_eq!(patched, serde_json::to_value(&expected.pod).unwrap());

    let c = &patched["spec"]["containers"][0];
    let env = c["env"].as_array().unwrap();
    let service = env
        .iter()
        .find(|e| e["name"] == "OTEL_SERVICE_NAME")
        .unwrap();
    assert_eq!(service["value"], "web", "service name from the Deployment");
    assert!(patched["spec"]["initContainers"][0]["name"]
        .as_str()
        .unwrap()
        .contains("python"));

    assert_eq!(run.metrics.get(metrics::Outcome::Attempted, "python"), 1);
    assert_eq!(run.metrics.get(metrics::Outcome::Applied, "python"), 1);
    let (status, text) = https(run.addr, &m.ca_pem, "GET", "/metrics", b"")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("osprey_webhook_mutations_applied_total{language=\"python\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("osprey_webhook_requests_total{result=\"patched\"} 1"),
        "{text}"
    );
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            https(run.addr, &m.ca_pem, "GET", path, b"")
                .await
                .unwrap()
                .0,
            200
        );
    }
}

#[tokio::test]
async fn bad_bodies_are_400() {
    let m = material();
    let run = start(
        WebhookConfig::default(),
        resolver::CertResolver::new(&m).unwrap(),
        Cluster::Static(cluster()),
    )
    .await;
    let (status, body) = https(run.addr, &m.ca_pem, "POST", "/mutate-v1-pod", b"{not json")
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("cannot decode AdmissionReview"));
    let empty = br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#;
    assert_eq!(
        https(run.addr, &m.ca_pem, "POST", "/mutate-v1-pod", empty)
            .await
            .unwrap()
            .0,
        400
    );
    assert_eq!(run.metrics.requests(metrics::RequestResult::Invalid), 2);
}

#[tokio::test]
async fn ignored_namespaces_and_plain_pods_pass_unchanged() {
    let m = material();
    let cfg = WebhookConfig::default().ignoring("osprey-system");
    let run = start(
        cfg,
        resolver::CertResolver::new(&m).unwrap(),
        Cluster::Static(StaticCluster::default()),
    )
    .await;
    for (p, ns) in [
        (python_pod(), "kube-system"),
        (python_pod(), "osprey-system"),
        (pod(json!({})), NS),
    ] {
        let resp = admit(&run, &m.ca_pem, &review(&p, ns)).await;
        assert_eq!(resp["allowed"], true);
        assert!(
            resp.get("patch").is_none() && resp.get("warnings").is_none(),
            "{resp}"
        );
    }
    assert_eq!(run.metrics.get(metrics::Outcome::Attempted, "python"), 0);
}

#[tokio::test]
async fn failures_are_admitted_with_a_warning_and_an_event() {
    let m = material();
    let c = cluster();
    let events = c.events.clone();
    let run = start(
        WebhookConfig::default(),
        resolver::CertResolver::new(&m).unwrap(),
        Cluster::Static(c),
    )
    .await;
    let p = pod(json!({"instrumentation.opentelemetry.io/inject-python": "missing"}));
    let resp = admit(&run, &m.ca_pem, &review(&p, NS)).await;
    assert_eq!(resp["allowed"], true);
    assert!(resp.get("patch").is_none());
    let msg = resp["status"]["message"].as_str().unwrap();
    assert!(msg.contains("not found"), "{msg}");
    assert!(resp["warnings"][0].as_str().unwrap().contains("not found"));
    assert_eq!(run.metrics.get(metrics::Outcome::Failed, "python"), 1);
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, events::REASON_FAILED);
    assert_eq!(
        (events[0].owner.kind.as_str(), events[0].owner.name.as_str()),
        ("Deployment", "web")
    );
    assert_eq!(events[0].namespace, NS);
}

#[tokio::test]
async fn fail_closed_denies() {
    let m = material();
    let cfg = WebhookConfig {
        fail_closed: true,
        ..Default::default()
    };
    let run = start(
        cfg,
        resolver::CertResolver::new(&m).unwrap(),
        Cluster::Static(cluster()),
    )
    .await;
    let p = pod(json!({"instrumentation.opentelemetry.io/inject-python": "missing"}));
    let resp = admit(&run, &m.ca_pem, &review(&p, NS)).await;
    assert_eq!(resp["allowed"], false);
    assert!(resp["status"]["message"]
        .as_str()
        .unwrap()
        .contains("auto-instrumentation failed"));
    assert_eq!(run.metrics.requests(metrics::RequestResult::Denied), 1);
}

#[tokio::test]
async fn a_swapped_certificate_serves_new_connections() {
    let (a, b) = (material(), material());
    let tls = resolver::CertResolver::new(&a).unwrap();
    let run = start(
        WebhookConfig::default(),
        tls.clone(),
        Cluster::Static(cluster()),
    )
    .await;
    assert_eq!(
        https(run.addr, &a.ca_pem, "GET", "/healthz", b"")
            .await
            .unwrap()
            .0,
        200
    );
    assert!(https(run.addr, &b.ca_pem, "GET", "/healthz", b"")
        .await
        .is_err());
    tls.swap(&b).unwrap();
    assert_eq!(
        https(run.addr, &b.ca_pem, "GET", "/healthz", b"")
            .await
            .unwrap()
            .0,
        200
    );
    assert!(https(run.addr, &a.ca_pem, "GET", "/healthz", b"")
        .await
        .is_err());
}
