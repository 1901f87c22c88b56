//! What the cluster should hold for an `OpenTelemetryCollector`: the pure functions that turn a CR
//! into its ConfigMap, ServiceAccount, Services, workload and PodDisruptionBudget (with upstream's
//! names, labels and annotations), derive ports from the collector config, compute the CR status
//! from the live workload, and inject the collector as a pod sidecar.
//!
//! **Osprey difference**: the collector container runs Osprey, not the Go collector. The image's
//! entrypoint is the `osprey` binary, so the container sets only `args`:
//! `["collector", "--config=/conf/collector.yaml", <sorted --k=v from spec.args>]` (sidecars:
//! `--config=env:OTEL_CONFIG`). No `GOMEMLIMIT`/`GOMAXPROCS` env (there is no Go runtime).
//!
//! Config defaults are applied here (upstream does it in its defaulting webhook): enabled
//! components with a known default port listen on `0.0.0.0:<port>`, and the collector's own
//! metrics get a Prometheus reader on `0.0.0.0:8888`. The ConfigMap holds that rendered YAML; its
//! sha256 (over the canonical JSON form) names the ConfigMap and rolls the pods when it changes.

mod components;
mod config;
mod container;
mod defaults;
mod desired;
mod labels;
mod naming;
mod objects;
mod ports;
pub mod sidecar;
mod status;

#[cfg(test)]
mod tests;

pub use desired::desired_objects;
pub use labels::{selector_labels, COMPONENT};
pub use naming::{collector_name, config_map_name};
pub use objects::ManagedObject;
pub use ports::{derive_ports, Ports};
pub use status::status_from;

/// The image that runs the collector when `spec.image` is empty: Osprey's own image.
pub const COLLECTOR_IMAGE_DEFAULT: &str = concat!(
    "ghcr.io/osprey-observability/osprey:",
    env!("CARGO_PKG_VERSION")
);

/// The collector version reported in `status.version`.
pub const COLLECTOR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The name of the collector container (reserved; upstream's name).
pub const CONTAINER_NAME: &str = "otc-container";

/// The ConfigMap key holding the collector YAML.
pub const CONFIG_KEY: &str = "collector.yaml";

/// Pod template annotation carrying the full config hash.
pub const CONFIG_HASH_ANNOTATION: &str = "opentelemetry-operator-config/sha256";

/// Operator-wide settings that shape the desired objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Image used when `spec.image` is empty.
    pub default_image: String,
    /// Put sidecars in `initContainers` with `restartPolicy: Always` (Kubernetes >= 1.29; the
    /// operator detects the server version). Default false: works on every version.
    pub native_sidecars: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_image: COLLECTOR_IMAGE_DEFAULT.to_string(),
            native_sidecars: false,
        }
    }
}

/// The objects one `OpenTelemetryCollector` should own, in apply order.
#[derive(Clone, Debug)]
pub struct Desired {
    /// ConfigMap, ServiceAccount, Services, workload, PodDisruptionBudget (those that apply).
    pub objects: Vec<ManagedObject>,
    /// sha256 hex of the rendered config (the ConfigMap name carries its first 8 characters).
    pub config_hash: String,
    /// Things worth telling the user (dropped ports, null components, ...); nothing fatal.
    pub warnings: Vec<String>,
}

impl Desired {
    /// The objects as `DynamicObject`s (apiVersion and kind set), for server-side apply.
    pub fn dynamic_objects(&self) -> Result<Vec<kube::core::DynamicObject>, DesiredError> {
        self.objects.iter().map(ManagedObject::to_dynamic).collect()
    }

    /// The name of the hashed ConfigMap among the objects.
    pub fn config_map_name(&self) -> Option<&str> {
        self.objects.iter().find_map(|o| match o {
            ManagedObject::ConfigMap(cm) => cm.metadata.name.as_deref(),
            _ => None,
        })
    }
}

/// Why no objects could be built for a CR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DesiredError {
    /// The collector config does not parse, or the collector's validator rejected it.
    #[error("invalid collector configuration: {message}")]
    InvalidConfig { message: String },
    /// A spec field (or a part of the config the operator interprets) is unusable.
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
}
