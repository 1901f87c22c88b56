//! The Secret and caBundle flow against the fake API server.

use super::api::read_secret;
use super::generate::{dns_names, issue, pem_certs, unix_now};
use super::*;
use crate::webhook::fake_api::FakeApi;
use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{json, Value};

const NS: &str = "osprey-system";
const SECRET: &str = "/api/v1/namespaces/osprey-system/secrets/osprey-webhook-cert";
const MWC: &str =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/osprey-webhook";

fn spec() -> CertSpec {
    CertSpec::new(
        NS,
        "osprey-webhook-cert",
        "osprey-webhook",
        vec!["osprey-webhook".into(), "absent".into()],
    )
}

fn mwc() -> Value {
    let hook = |name: &str| {
        json!({"name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None",
               "clientConfig": {"service": {"name": "osprey-webhook", "namespace": NS, "path": "/mutate-v1-pod"}}})
    };
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
           "metadata": {"name": "osprey-webhook", "resourceVersion": "7"},
           "webhooks": [hook("mpod.osprey.dev"), hook("mpod2.osprey.dev")]})
}

fn secret_json(m: &TlsMaterial, annotations: Value) -> Value {
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
           "metadata": {"name": "osprey-webhook-cert", "namespace": NS, "resourceVersion": "3", "annotations": annotations},
           "data": {"tls.crt": b(&m.cert_pem), "tls.key": b(&m.key_pem), "ca.crt": b(&m.ca_pem)}})
}

fn bundles(api: &FakeApi) -> Vec<String> {
    let cfg: MutatingWebhookConfiguration = serde_json::from_value(api.get(MWC).unwrap()).unwrap();
    cfg.webhooks
        .unwrap()
        .iter()
        .map(|w| {
            String::from_utf8(w.client_config.ca_bundle.clone().unwrap_or_default().0).unwrap()
        })
        .collect()
}

fn writes(api: &FakeApi) -> Vec<String> {
    api.calls()
        .into_iter()
        .filter(|c| !c.starts_with("GET"))
        .collect()
}

#[tokio::test]
async fn first_run_creates_the_secret_and_patches_every_webhook() {
    let (client, api) = FakeApi::start(vec![(MWC, mwc())]);
    let m = ensure(&client, &spec()).await.unwrap();
    let stored: Secret = serde_json::from_value(api.get(SECRET).unwrap()).unwrap();
    assert_eq!(stored.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(read_secret(&stored).unwrap(), m);
    let ann = stored.metadata.annotations.unwrap();
    assert_eq!(
        ann[ISSUED_FOR_ANNOTATION],
        dns_names("osprey-webhook", NS).join(",")
    );
    assert_eq!(bundles(&api), [m.ca_pem.clone(), m.ca_pem.clone()]);
    let patch = api
        .seen
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.method == "PATCH")
        .cloned()
        .unwrap();
    assert_eq!(patch.content_type, "application/strategic-merge-patch+json");
    assert_eq!(
        writes(&api),
        [
            "POST /api/v1/namespaces/osprey-system/secrets".to_string(),
            format!("PATCH {MWC}")
        ]
    );
    // A second run keeps everything and writes nothing.
    let again = ensure(&client, &spec()).await.unwrap();
    assert_eq!(again, m);
    assert_eq!(writes(&api).len(), 2);
}

#[tokio::test]
async fn expiring_material_is_replaced_and_both_cas_are_trusted_meanwhile() {
    let names = dns_names("osprey-webhook", NS);
    let old = issue(&names, unix_now() - 340 * 24 * 3600).unwrap();
    let ann = json!({ISSUED_FOR_ANNOTATION: names.join(",")});
    let mut cfg = mwc();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&old.ca_pem);
    cfg["webhooks"][0]["clientConfig"]["caBundle"] = json!(b64);
    cfg["webhooks"][1]["clientConfig"]["caBundle"] = json!(b64);
    let (client, api) = FakeApi::start(vec![(SECRET, secret_json(&old, ann)), (MWC, cfg)]);
    let m = ensure(&client, &spec()).await.unwrap();
    assert_ne!(m.ca_pem, old.ca_pem);
    let stored: Secret = serde_json::from_value(api.get(SECRET).unwrap()).unwrap();
    assert_eq!(read_secret(&stored).unwrap(), m);
    assert_eq!(writes(&api)[0], format!("PUT {SECRET}"));
    for bundle in bundles(&api) {
        let certs = pem_certs(&bundle).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0], pem_certs(&m.ca_pem).unwrap()[0]);
        assert_eq!(certs[1], pem_certs(&old.ca_pem).unwrap()[0]);
    }
}

#[tokio::test]
async fn material_issued_for_another_service_or_broken_is_replaced() {
    let other = issue(&dns_names("other", NS), unix_now()).unwrap();
    let ann = json!({ISSUED_FOR_ANNOTATION: dns_names("other", NS).join(",")});
    let (client, api) = FakeApi::start(vec![(SECRET, secret_json(&other, ann))]);
    let m = ensure(&client, &spec()).await.unwrap();
    assert_ne!(m, other);
    let mut broken = secret_json(&m, json!({}));
    broken["data"]["tls.key"] = json!("bm90IGEga2V5");
    api.put(SECRET, broken);
    let fixed = ensure(&client, &spec()).await.unwrap();
    assert_ne!(fixed, m);
    assert!(resolver::certified_key(&fixed).is_ok());
}

#[tokio::test]
async fn cert_manager_secrets_are_read_never_written() {
    let names = dns_names("osprey-webhook", NS);
    let near_expiry = issue(&names, unix_now() - 360 * 24 * 3600).unwrap();
    let ann = json!({"cert-manager.io/certificate-name": "serving-cert"});
    let (client, api) =
        FakeApi::start(vec![(SECRET, secret_json(&near_expiry, ann)), (MWC, mwc())]);
    assert_eq!(ensure(&client, &spec()).await.unwrap(), near_expiry);
    assert!(writes(&api).is_empty());

    // Declared external but missing: an error, and still nothing written.
    let (client, api) = FakeApi::start(vec![]);
    let mut ext = spec();
    ext.externally_managed = true;
    let err = ensure(&client, &ext).await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(writes(&api).is_empty());
}

#[tokio::test]
async fn api_errors_surface() {
    let (client, api) = FakeApi::start(vec![]);
    api.fail(SECRET, 500);
    assert!(matches!(
        ensure(&client, &spec()).await,
        Err(CertError::Kube(_))
    ));
}

#[tokio::test]
async fn rotate_loop_swaps_the_served_certificate() {
    let names = dns_names("osprey-webhook", NS);
    let old = issue(&names, unix_now() - 340 * 24 * 3600).unwrap();
    let ann = json!({ISSUED_FOR_ANNOTATION: names.join(",")});
    let (client, api) = FakeApi::start(vec![(SECRET, secret_json(&old, ann)), (MWC, mwc())]);
    let resolver = CertResolver::new(&old).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(rotate_loop(
        client,
        spec(),
        resolver.clone(),
        std::time::Duration::from_millis(1),
        stop.clone(),
    ));
    let old_der = pem_certs(&old.cert_pem).unwrap()[0].to_vec();
    for _ in 0..2000 {
        if resolver.current_cert_der() != old_der {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    stop.cancel();
    task.await.unwrap();
    let stored: Secret = serde_json::from_value(api.get(SECRET).unwrap()).unwrap();
    let now_served = read_secret(&stored).unwrap();
    assert_eq!(
        resolver.current_cert_der(),
        pem_certs(&now_served.cert_pem).unwrap()[0].to_vec()
    );
}
