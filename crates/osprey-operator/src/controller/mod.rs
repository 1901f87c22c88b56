//! The collector reconciler: a kube-rs [`Controller`] over `OpenTelemetryCollector`s that
//! server-side-applies the objects [`crate::collector`] computes, deletes the ones it no longer
//! wants, and reports what it did on the CR's status (and, when something is wrong, in an Event).
//!
//! * `managementState: unmanaged` → the CR is left alone (nothing is read or written).
//! * An invalid config → no object is touched (the last good collector keeps running), the
//!   error goes to `status.messages` and to a Warning Event (reason `InvalidConfig`), and the CR
//!   is looked at again after [`INVALID_REQUEUE`].
//! * Otherwise every desired object is applied (`Patch::Apply`, forced, field manager
//!   `osprey-operator`) on every reconcile: an unchanged object is a no-op for the API server and
//!   drift (someone editing the Deployment) is corrected. Stale owned objects are deleted (see
//!   [`prune`]); the status is patched only when it changed, so a second reconcile with no change
//!   issues applies and nothing else.
//! * An object the API server refuses stops the reconcile there: `status.messages` and a
//!   Warning Event (reason `ApplyFailed`) name it with the server's message, and the error is
//!   returned so the controller retries with backoff.
//! * Deleting the CR deletes everything it owns through the owner references the objects carry
//!   (Kubernetes' garbage collector); no finalizer is needed because every object is namespaced.

mod apply;
mod plan;
pub mod prune;
mod reconcile;

#[cfg(test)]
pub(crate) mod fake_api;
#[cfg(test)]
mod tests;

pub use plan::{CollectorPlanner, Plan, PlanError, Planner};
pub use reconcile::{reconcile, Context, INVALID_REQUEUE, RESYNC};

use crate::collector::Settings;
use crate::crd::OpenTelemetryCollector;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The field manager (and Event reporter) name the operator uses by default.
pub const FIELD_MANAGER: &str = "osprey-operator";

/// The label every generated object carries (upstream's value, so objects created by the
/// upstream operator are recognised too).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// [`MANAGED_BY_LABEL`]'s value.
pub const MANAGED_BY: &str = "opentelemetry-operator";

/// Validates a collector config (YAML); the error says what is wrong.
pub type Validator = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Images, defaults and feature switches for the generated objects.
    pub settings: Settings,
    /// Reconcile only this namespace (`WATCH_NAMESPACE`); `None` = every namespace.
    pub watch_namespace: Option<String>,
    /// Server-side-apply field manager and Event reporter.
    pub field_manager: String,
}

impl ControllerConfig {
    /// Every namespace, field manager [`FIELD_MANAGER`].
    pub fn new(settings: Settings) -> Self {
        ControllerConfig {
            settings,
            watch_namespace: None,
            field_manager: FIELD_MANAGER.into(),
        }
    }
}

/// Why a reconcile (or the controller) failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the OpenTelemetryCollector CRD is not installed or not readable: {0}")]
    CrdMissing(kube::Error),
    #[error("object {0} has no namespace")]
    NoNamespace(String),
    #[error("generated object is malformed: {0}")]
    BadObject(String),
}

/// Runs the reconciler until `stop` is cancelled.
pub async fn run(
    client: kube::Client,
    cfg: ControllerConfig,
    validate: Validator,
    stop: CancellationToken,
) -> Result<(), ControllerError> {
    let planner = Arc::new(CollectorPlanner::new(cfg.settings.clone(), validate));
    let ctx = Arc::new(Context::new(client.clone(), planner, &cfg.field_manager));
    let ns = cfg.watch_namespace.as_deref();
    let crs: Api<OpenTelemetryCollector> = scoped(&client, ns);
    // Fail fast (with a clear message) when the CRD is missing or RBAC forbids reading it.
    crs.list(&kube::api::ListParams::default().limit(1))
        .await
        .map_err(ControllerError::CrdMissing)?;
    let owned = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    tracing::info!(
        namespace = ns.unwrap_or("*"),
        "collector reconciler started"
    );
    Controller::new(crs, watcher::Config::default())
        .owns(scoped::<Deployment>(&client, ns), owned.clone())
        .owns(scoped::<DaemonSet>(&client, ns), owned.clone())
        .owns(scoped::<StatefulSet>(&client, ns), owned.clone())
        .owns(scoped::<Service>(&client, ns), owned.clone())
        .owns(scoped::<ConfigMap>(&client, ns), owned.clone())
        .owns(scoped::<ServiceAccount>(&client, ns), owned.clone())
        .owns(scoped::<PodDisruptionBudget>(&client, ns), owned)
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
                Err(e) => tracing::warn!(error = %e, "reconcile failed"),
            }
        })
        .await;
    tracing::info!("collector reconciler stopped");
    Ok(())
}

/// Retry a failed reconcile after a short pause (the controller's own backoff applies on top).
fn error_policy(cr: Arc<OpenTelemetryCollector>, err: &ControllerError, _: Arc<Context>) -> Action {
    tracing::warn!(collector = %cr.metadata.name.as_deref().unwrap_or(""), error = %err, "reconcile error; retrying");
    Action::requeue(Duration::from_secs(30))
}

fn scoped<K>(client: &kube::Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}
