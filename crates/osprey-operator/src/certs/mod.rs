//! Webhook certificates without cert-manager. [`ensure`] keeps a CA and a serving certificate
//! for the webhook Service in a `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`, `ca.crt`),
//! issuing new ones when they are missing, unusable, issued for other names or expire within
//! 30 days, and publishes the CA as the `caBundle` of every webhook in the named
//! `MutatingWebhookConfiguration`s. A Secret managed by cert-manager (any `cert-manager.io/`
//! annotation) or declared external is only read, never written. [`rotate_loop`] repeats the
//! check and swaps the certificate the server presents ([`CertResolver`]).

mod api;
pub mod generate;
pub mod resolver;
#[cfg(test)]
mod tests;

pub use generate::{Verdict, RENEW_BEFORE};
pub use resolver::CertResolver;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Annotation on the Secret recording the DNS names the certificate was issued for.
pub const ISSUED_FOR_ANNOTATION: &str = "osprey.dev/issued-for";
/// Annotation on the Secret naming its manager (`osprey-operator`).
pub const MANAGED_BY_ANNOTATION: &str = "osprey.dev/managed-by";
/// How often [`rotate_loop`] re-checks by default.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// A serving certificate (chain), its private key and the CA that issued it, all PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsMaterial {
    pub cert_pem: String,
    pub key_pem: String,
    /// Empty when unknown (an external Secret without `ca.crt`).
    pub ca_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("cert_pem", &self.cert_pem.len())
            .field("key_pem", &"<redacted>")
            .field("ca_pem", &self.ca_pem.len())
            .finish()
    }
}

impl TlsMaterial {
    /// Reads `tls.crt`, `tls.key` and (if present) `ca.crt` from a directory, as a mounted
    /// Secret lays them out.
    pub fn from_dir(dir: &Path) -> Result<Self, CertError> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| CertError::Invalid(format!("{}: {e}", dir.join(name).display())))
        };
        Ok(Self {
            cert_pem: read("tls.crt")?,
            key_pem: read("tls.key")?,
            ca_pem: read("ca.crt").unwrap_or_default(),
        })
    }

    /// A self-signed CA and a serving certificate for `dns_names`, valid from now on.
    pub fn self_signed(dns_names: &[String]) -> Result<Self, CertError> {
        generate::issue(dns_names, generate::unix_now())
    }
}

/// Where the certificates live and whom they serve.
#[derive(Clone, Debug)]
pub struct CertSpec {
    /// The operator's namespace (Secret and Service).
    pub namespace: String,
    pub secret_name: String,
    /// The webhook Service; the certificate covers `<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc`
    /// and `<svc>.<ns>.svc.cluster.local`.
    pub service_name: String,
    /// `MutatingWebhookConfiguration`s whose webhooks get the `caBundle`.
    pub webhook_configs: Vec<String>,
    /// Certificates are provided by someone else (cert-manager, Helm, the user): only read.
    pub externally_managed: bool,
    /// Renew when the CA or the serving certificate expires sooner than this.
    pub renew_before: Duration,
}

impl CertSpec {
    pub fn new(
        namespace: impl Into<String>,
        secret_name: impl Into<String>,
        service_name: impl Into<String>,
        webhook_configs: Vec<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            secret_name: secret_name.into(),
            service_name: service_name.into(),
            webhook_configs,
            externally_managed: false,
            renew_before: RENEW_BEFORE,
        }
    }

    /// The DNS names the serving certificate must cover.
    pub fn dns_names(&self) -> Vec<String> {
        generate::dns_names(&self.service_name, &self.namespace)
    }
}

/// Certificate errors.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid certificate material: {0}")]
    Invalid(String),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("secret {namespace}/{name} is managed externally but {problem}")]
    External {
        namespace: String,
        name: String,
        problem: String,
    },
    #[error("secret {namespace}/{name} kept changing while it was being written")]
    Conflict { namespace: String, name: String },
}

/// Makes sure the Secret holds usable material for the webhook Service and that the named
/// webhook configurations trust its CA; returns the material to serve.
pub async fn ensure(client: &kube::Client, spec: &CertSpec) -> Result<TlsMaterial, CertError> {
    api::ensure(client, spec).await
}

/// Re-runs [`ensure`] every `interval` until `stop`, and hands changed material to
/// `resolver` (the running server presents it from the next handshake on). Errors are
/// logged and retried at the next tick; the current certificate keeps being served.
pub async fn rotate_loop(
    client: kube::Client,
    spec: CertSpec,
    resolver: Arc<CertResolver>,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        match ensure(&client, &spec).await {
            Ok(material) => {
                let served = resolver.current_cert_der();
                let fresh = generate::pem_certs(&material.cert_pem)
                    .map(|c| c[0].to_vec())
                    .unwrap_or_default();
                if fresh != served {
                    match resolver.swap(&material) {
                        Ok(()) => {
                            tracing::info!(secret = %spec.secret_name, "webhook certificate reloaded")
                        }
                        Err(e) => tracing::error!(error = %e, "new webhook certificate not loaded"),
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, secret = %spec.secret_name, "webhook certificate check failed")
            }
        }
    }
}
