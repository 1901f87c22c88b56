//! The API half of certificate management: reading and writing the TLS Secret (optimistic
//! concurrency: a replica that loses a write race re-reads and keeps the winner's material)
//! and patching `caBundle` into the webhook configurations (strategic merge by webhook name,
//! only when the bundle does not already trust the CA).

use super::generate::{self, unix_now, Verdict};
use super::{CertError, CertSpec, TlsMaterial, ISSUED_FOR_ANNOTATION, MANAGED_BY_ANNOTATION};
use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::{Api, Client};
use std::collections::BTreeMap;

const TLS_CRT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";
const CA_CRT: &str = "ca.crt";
const WRITE_ATTEMPTS: usize = 3;

/// Whether someone else manages this Secret.
fn external(secret: Option<&Secret>, spec: &CertSpec) -> bool {
    spec.externally_managed
        || secret
            .and_then(|s| s.metadata.annotations.as_ref())
            .is_some_and(|a| a.keys().any(|k| k.starts_with("cert-manager.io/")))
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    let data = secret.data.as_ref()?.get(key)?;
    String::from_utf8(data.0.clone()).ok()
}

/// The material in a Secret (`ca.crt` may be missing).
pub(crate) fn read_secret(secret: &Secret) -> Result<TlsMaterial, String> {
    let missing = |k: &str| format!("has no {k}");
    Ok(TlsMaterial {
        cert_pem: text(secret, TLS_CRT).ok_or_else(|| missing(TLS_CRT))?,
        key_pem: text(secret, TLS_KEY).ok_or_else(|| missing(TLS_KEY))?,
        ca_pem: text(secret, CA_CRT).unwrap_or_default(),
    })
}

fn build_secret(spec: &CertSpec, m: &TlsMaterial, resource_version: Option<String>) -> Secret {
    let data = [
        (TLS_CRT, &m.cert_pem),
        (TLS_KEY, &m.key_pem),
        (CA_CRT, &m.ca_pem),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
    .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(spec.secret_name.clone()),
            namespace: Some(spec.namespace.clone()),
            resource_version,
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "osprey-operator".to_string(),
            )])),
            annotations: Some(BTreeMap::from([
                (
                    ISSUED_FOR_ANNOTATION.to_string(),
                    spec.dns_names().join(","),
                ),
                (
                    MANAGED_BY_ANNOTATION.to_string(),
                    "osprey-operator".to_string(),
                ),
            ])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".to_string()),
        data: Some(data),
        ..Default::default()
    }
}

fn lost_race(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_conflict() || s.is_already_exists())
}

pub(super) async fn ensure(client: &Client, spec: &CertSpec) -> Result<TlsMaterial, CertError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &spec.namespace);
    let ext_err = |problem: String| CertError::External {
        namespace: spec.namespace.clone(),
        name: spec.secret_name.clone(),
        problem,
    };
    for _ in 0..WRITE_ATTEMPTS {
        let existing = secrets.get_opt(&spec.secret_name).await?;
        if external(existing.as_ref(), spec) {
            let secret = existing.ok_or_else(|| ext_err("does not exist".into()))?;
            let material = read_secret(&secret).map_err(ext_err)?;
            super::resolver::certified_key(&material).map_err(|e| ext_err(e.to_string()))?;
            warn_if_expiring(spec, &material);
            return Ok(material);
        }
        let current = existing.as_ref().map(read_secret);
        let issued_for = existing
            .as_ref()
            .and_then(|s| s.metadata.annotations.as_ref())
            .and_then(|a| a.get(ISSUED_FOR_ANNOTATION))
            .map(String::as_str);
        let now = unix_now();
        let verdict = match &current {
            None => Verdict::Renew("secret does not exist".into()),
            Some(Err(problem)) => Verdict::Renew(format!("secret {problem}")),
            Some(Ok(m)) => {
                generate::verdict(m, &spec.dns_names(), issued_for, now, spec.renew_before)
            }
        };
        if let (Verdict::Keep, Some(Ok(m))) = (&verdict, &current) {
            patch_ca_bundles(client, spec, &m.ca_pem, BundleMode::Contains).await?;
            return Ok(m.clone());
        }
        if let Verdict::Renew(reason) = &verdict {
            tracing::info!(secret = %spec.secret_name, namespace = %spec.namespace, %reason, "issuing webhook certificates");
        }
        let fresh = generate::issue(&spec.dns_names(), now)?;
        let rv = existing
            .as_ref()
            .and_then(|s| s.metadata.resource_version.clone());
        let secret = build_secret(spec, &fresh, rv);
        let written = match existing {
            Some(_) => {
                secrets
                    .replace(&spec.secret_name, &PostParams::default(), &secret)
                    .await
            }
            None => secrets.create(&PostParams::default(), &secret).await,
        };
        match written {
            Ok(_) => {}
            Err(e) if lost_race(&e) => continue,
            Err(e) => return Err(e.into()),
        }
        let previous = current.and_then(Result::ok).map(|m| m.ca_pem);
        let bundle = generate::ca_bundle(&fresh.ca_pem, previous.as_deref(), now);
        patch_ca_bundles(client, spec, &bundle, BundleMode::Exact).await?;
        return Ok(fresh);
    }
    Err(CertError::Conflict {
        namespace: spec.namespace.clone(),
        name: spec.secret_name.clone(),
    })
}

fn warn_if_expiring(spec: &CertSpec, m: &TlsMaterial) {
    let horizon = unix_now() + spec.renew_before.as_secs() as i64;
    if let Ok((_, not_after)) =
        generate::pem_certs(&m.cert_pem).and_then(|c| generate::validity(&c[0]))
    {
        if not_after <= horizon {
            tracing::warn!(secret = %spec.secret_name, not_after, "externally managed webhook certificate expires soon");
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BundleMode {
    /// Leave a bundle that already contains the CA (it may hold other CAs too).
    Contains,
    /// Set exactly this bundle.
    Exact,
}

fn wants_patch(current: Option<&ByteString>, bundle: &str, mode: BundleMode) -> bool {
    let current = current
        .map(|b| String::from_utf8_lossy(&b.0).to_string())
        .unwrap_or_default();
    match mode {
        BundleMode::Exact => current != bundle,
        BundleMode::Contains => match generate::pem_certs(bundle) {
            Ok(want) => {
                let have = generate::pem_certs(&current).unwrap_or_default();
                !want.iter().all(|w| have.contains(w))
            }
            Err(_) => false,
        },
    }
}

async fn patch_ca_bundles(
    client: &Client,
    spec: &CertSpec,
    bundle: &str,
    mode: BundleMode,
) -> Result<(), CertError> {
    if bundle.is_empty() {
        return Ok(());
    }
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let encoded = base64::engine::general_purpose::STANDARD.encode(bundle.as_bytes());
    for name in &spec.webhook_configs {
        let Some(cfg) = api.get_opt(name).await? else {
            tracing::warn!(config = %name, "MutatingWebhookConfiguration not found; caBundle not set");
            continue;
        };
        let stale: Vec<serde_json::Value> = cfg
            .webhooks
            .unwrap_or_default()
            .iter()
            .filter(|w| wants_patch(w.client_config.ca_bundle.as_ref(), bundle, mode))
            .map(|w| serde_json::json!({"name": w.name, "clientConfig": {"caBundle": encoded}}))
            .collect();
        if stale.is_empty() {
            continue;
        }
        let patch = serde_json::json!({ "webhooks": stale });
        api.patch(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await?;
        tracing::info!(config = %name, webhooks = stale.len(), "caBundle updated");
    }
    Ok(())
}
