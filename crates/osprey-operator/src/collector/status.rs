//! `status` of an `OpenTelemetryCollector` from its live workload (upstream §1.3): version, image
//! of the collector container, and the scale subresource view (`replicas`, `selector`,
//! `statusReplicas` = `"<ready>/<total>"`).

use super::labels::{labels, selector_string};
use super::naming::collector_name;
use super::{ManagedObject, COLLECTOR_VERSION, CONTAINER_NAME};
use crate::crd::collector::ScaleStatus;
use crate::crd::{Mode, OpenTelemetryCollector, OpenTelemetryCollectorStatus};
use k8s_openapi::api::core::v1::PodTemplateSpec;

/// The status to write for `cr`, given its workload as read from the cluster (`None` when it does
/// not exist yet: scale and image are then kept as they were). `messages` and
/// `appliedConfigHash` are kept from the current status (the controller owns them).
pub fn status_from(
    cr: &OpenTelemetryCollector,
    workload: Option<&ManagedObject>,
) -> OpenTelemetryCollectorStatus {
    let mut status = cr.status.clone().unwrap_or_default();
    if status.version.as_deref().unwrap_or_default().is_empty() {
        status.version = Some(COLLECTOR_VERSION.to_string());
    }
    if cr.spec.mode == Mode::Sidecar {
        status.scale = Some(ScaleStatus {
            replicas: Some(0),
            selector: None,
            status_replicas: None,
        });
        status.replicas = Some(0);
        return status;
    }
    let counts = workload.and_then(|w| match w {
        ManagedObject::Deployment(d) => {
            let total = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let ready = d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            Some((total, ready, d.spec.as_ref().map(|s| &s.template)))
        }
        ManagedObject::StatefulSet(s) => {
            let total = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let ready = s
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            Some((total, ready, s.spec.as_ref().map(|s| &s.template)))
        }
        ManagedObject::DaemonSet(d) => {
            let st = d.status.as_ref();
            let total = st.map_or(0, |s| s.desired_number_scheduled);
            let ready = st.map_or(0, |s| s.number_ready);
            Some((total, ready, d.spec.as_ref().map(|s| &s.template)))
        }
        _ => None,
    });
    let Some((total, ready, template)) = counts else {
        return status;
    };
    if let Some(image) = template.and_then(collector_image) {
        status.image = Some(image);
    }
    let name = cr.metadata.name.as_deref().unwrap_or_default();
    let selector = selector_string(&labels(
        &cr.metadata,
        &collector_name(name),
        cr.spec.image.as_deref(),
    ));
    status.scale = Some(ScaleStatus {
        replicas: Some(total),
        selector: Some(selector),
        status_replicas: Some(format!("{ready}/{total}")),
    });
    status.replicas = Some(total);
    status
}

/// The image of `otc-container`, else of the first container.
fn collector_image(template: &PodTemplateSpec) -> Option<String> {
    let containers = &template.spec.as_ref()?.containers;
    containers
        .iter()
        .find(|c| c.name == CONTAINER_NAME)
        .or_else(|| containers.first())
        .and_then(|c| c.image.clone())
}
