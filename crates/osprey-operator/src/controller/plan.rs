//! The seam between the reconciler and the pure desired-state functions of
//! [`crate::collector`]: a [`Planner`] turns a CR into the objects to apply and, given the
//! applied workload, into its status. [`CollectorPlanner`] is the real one; tests use small
//! fakes so that the API-facing code is tested apart from the object builders.

use super::Validator;
use crate::collector::{self, DesiredError, ManagedObject, Settings};
use crate::crd::{OpenTelemetryCollector, OpenTelemetryCollectorStatus};
use kube::api::DynamicObject;

/// What one CR should look like in the cluster.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// The objects to apply, each with `apiVersion`, `kind` and `metadata.name`.
    pub objects: Vec<DynamicObject>,
    /// The hash of the (validated) config, reported as `status.appliedConfigHash`.
    pub config_hash: String,
    /// Problems that do not stop the reconcile (reported in `status.messages`).
    pub warnings: Vec<String>,
}

/// Why no plan could be made; nothing is applied then.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The collector config does not validate (Event reason `InvalidConfig`).
    #[error("invalid collector config: {0}")]
    InvalidConfig(String),
    /// Any other problem with the CR (Event reason `InvalidSpec`).
    #[error("{0}")]
    InvalidSpec(String),
}

impl PlanError {
    /// The Event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            PlanError::InvalidConfig(_) => "InvalidConfig",
            PlanError::InvalidSpec(_) => "InvalidSpec",
        }
    }
}

/// Computes desired objects and status for a CR.
pub trait Planner: Send + Sync {
    fn plan(&self, cr: &OpenTelemetryCollector) -> Result<Plan, PlanError>;
    /// The status for `cr`, given its workload as the API server returned it after the apply
    /// (`None` in sidecar mode).
    fn status(
        &self,
        cr: &OpenTelemetryCollector,
        workload: Option<&DynamicObject>,
    ) -> OpenTelemetryCollectorStatus;
}

/// The planner backed by [`crate::collector`] and the collector's own config validator.
pub struct CollectorPlanner {
    settings: Settings,
    validate: Validator,
}

impl CollectorPlanner {
    pub fn new(settings: Settings, validate: Validator) -> Self {
        CollectorPlanner { settings, validate }
    }
}

impl Planner for CollectorPlanner {
    fn plan(&self, cr: &OpenTelemetryCollector) -> Result<Plan, PlanError> {
        let validate = |yaml: &str| (self.validate)(yaml);
        let desired = collector::desired_objects(cr, &self.settings, &validate)?;
        let objects = desired.dynamic_objects()?;
        Ok(Plan {
            objects,
            config_hash: desired.config_hash,
            warnings: desired.warnings,
        })
    }

    fn status(
        &self,
        cr: &OpenTelemetryCollector,
        workload: Option<&DynamicObject>,
    ) -> OpenTelemetryCollectorStatus {
        let typed = workload.and_then(ManagedObject::from_dynamic).and_then(|r| match r {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the applied workload; status without it");
                None
            }
        });
        collector::status_from(cr, typed.as_ref())
    }
}

impl From<DesiredError> for PlanError {
    fn from(e: DesiredError) -> Self {
        match e {
            DesiredError::InvalidConfig { message } => PlanError::InvalidConfig(message),
            other => PlanError::InvalidSpec(other.to_string()),
        }
    }
}
