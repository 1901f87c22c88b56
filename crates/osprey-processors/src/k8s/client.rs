//! The kube-rs client for a `k8sattributes` config, made per `auth_type`: the pod's service
//! account, the local kubeconfig, or (`none`) the in-cluster address without credentials.

use super::config::{AuthType, K8sAttributesConfig};
use osprey_pipeline::ConfigError;

fn auth_error(auth: AuthType, detail: impl std::fmt::Display) -> ConfigError {
    ConfigError::new(
        "auth_type",
        format!(
            "cannot create a Kubernetes API client with auth_type {:?}: {detail}",
            auth.as_str()
        ),
    )
}

/// A kube client for `config.auth_type`. Must be called within a tokio runtime.
pub fn client_for(config: &K8sAttributesConfig) -> Result<kube::Client, ConfigError> {
    let auth = config.auth_type;
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(auth_error(auth, "not called within a tokio runtime"));
    }
    let kube_config = match auth {
        AuthType::ServiceAccount => kube::Config::incluster().map_err(|e| {
            auth_error(
                auth,
                format!("{e} (not running in a pod with a service account?)"),
            )
        })?,
        AuthType::KubeConfig => {
            let options = kube::config::KubeConfigOptions {
                context: (!config.context.is_empty()).then(|| config.context.clone()),
                ..Default::default()
            };
            // Loading is async in kube-rs; run it on a helper thread so that building works
            // from sync code inside or outside a runtime.
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(kube::Config::from_kubeconfig(&options))
                    .map_err(|e| e.to_string())
            })
            .join()
            .map_err(|_| auth_error(auth, "kubeconfig loader panicked"))?
            .map_err(|e| auth_error(auth, e))?
        }
        AuthType::None => {
            let host = std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default();
            let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_default();
            if host.is_empty() || port.is_empty() {
                return Err(auth_error(
                    auth,
                    "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined",
                ));
            }
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            let uri = format!("https://{host}:{port}")
                .parse()
                .map_err(|e| auth_error(auth, e))?;
            let mut c = kube::Config::new(uri);
            c.accept_invalid_certs = true;
            c
        }
        AuthType::Tls => return Err(auth_error(auth, "not supported")),
    };
    kube::Client::try_from(kube_config).map_err(|e| auth_error(auth, e))
}
