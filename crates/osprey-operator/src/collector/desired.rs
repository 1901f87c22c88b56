//! The object set for one `OpenTelemetryCollector`, per mode (upstream §1.5): ConfigMap and
//! ServiceAccount always; Services, the workload and (deployment/statefulset) a
//! PodDisruptionBudget unless the mode is `sidecar`.

use super::config::{self, CollectorConfig};
use super::container::{collector_container, workload_volumes, ConfigSource};
use super::labels::{annotations, labels, pod_annotations, selector_labels};
use super::labels::{HEADLESS_LABEL, MONITORING_LABEL, SERVICE_TYPE_LABEL};
use super::naming::{self, collector_name, config_map_name};
use super::ports::merge_service_ports;
use super::{Desired, DesiredError, ManagedObject, Settings, CONFIG_KEY};
use crate::crd::{Mode, OpenTelemetryCollector};
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, PodSpec, PodTemplateSpec, Service, ServiceAccount, ServicePort, ServiceSpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// Builds every object `cr` should own. The config must parse and `validate` (the collector's
/// own validator) must accept the rendered config; otherwise nothing is built.
pub fn desired_objects(
    cr: &OpenTelemetryCollector,
    settings: &Settings,
    validate: &dyn Fn(&str) -> Result<(), String>,
) -> Result<Desired, DesiredError> {
    let name = cr.metadata.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        return Err(DesiredError::Invalid {
            field: "metadata.name".into(),
            message: "the collector has no name".into(),
        });
    }
    let config = config::load(&cr.spec.config)?;
    validate(&config.rendered).map_err(|message| DesiredError::InvalidConfig { message })?;
    let mut b = Builder {
        cr,
        name,
        config: &config,
        warnings: config.warnings.clone(),
    };
    if let Some(image) = cr.spec.image.as_deref().filter(|i| !i.contains("osprey")) {
        b.warnings.push(format!(
            "spec.image {image:?} does not look like an Osprey image; the container runs it with `collector --config=…` arguments"
        ));
    }

    let mut objects = vec![ManagedObject::ConfigMap(b.config_map())];
    if cr
        .spec
        .service_account
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        objects.push(ManagedObject::ServiceAccount(b.service_account()));
    }
    if cr.spec.mode != Mode::Sidecar {
        if let Some(base) = b.base_service() {
            let headless = headless(&base, name);
            objects.push(ManagedObject::Service(base));
            objects.push(ManagedObject::Service(headless));
        }
        objects.push(ManagedObject::Service(b.monitoring_service()));
        if let Some(ext) = b.extension_service() {
            objects.push(ManagedObject::Service(ext));
        }
        let template = b.pod_template(settings);
        objects.push(b.workload(template)?);
        if matches!(cr.spec.mode, Mode::Deployment | Mode::StatefulSet) {
            objects.push(ManagedObject::PodDisruptionBudget(b.pdb()?));
        }
    }
    Ok(Desired {
        objects,
        config_hash: config.hash.clone(),
        warnings: b.warnings,
    })
}

struct Builder<'a> {
    cr: &'a OpenTelemetryCollector,
    name: &'a str,
    config: &'a CollectorConfig,
    warnings: Vec<String>,
}

impl Builder<'_> {
    /// Metadata of an owned object called `name`, with the full labels for `label_name`.
    fn meta(&self, name: String, label_name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: self.cr.metadata.namespace.clone(),
            labels: Some(labels(
                &self.cr.metadata,
                label_name,
                self.cr.spec.image.as_deref(),
            )),
            annotations: Some(annotations(&self.cr.metadata)).filter(|a| !a.is_empty()),
            owner_references: owner_reference(self.cr).map(|o| vec![o]),
            ..Default::default()
        }
    }

    fn config_map(&self) -> ConfigMap {
        ConfigMap {
            metadata: self.meta(
                config_map_name(self.name, &self.config.hash),
                &collector_name(self.name),
            ),
            data: Some(BTreeMap::from([(
                CONFIG_KEY.to_string(),
                self.config.rendered.clone(),
            )])),
            ..Default::default()
        }
    }

    fn service_account(&self) -> ServiceAccount {
        let name = collector_name(self.name);
        ServiceAccount {
            metadata: self.meta(name.clone(), &name),
            ..Default::default()
        }
    }

    fn service(
        &self,
        name: String,
        label_name: &str,
        kind: &str,
        ports: Vec<ServicePort>,
    ) -> Service {
        let mut metadata = self.meta(name, label_name);
        if let Some(l) = metadata.labels.as_mut() {
            l.insert(SERVICE_TYPE_LABEL.into(), kind.into());
        }
        Service {
            metadata,
            spec: Some(ServiceSpec {
                selector: Some(selector_labels(&self.cr.metadata)),
                ports: Some(ports),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// `<name>-collector`: receiver/exporter ports merged with `spec.ports`; none without ports.
    fn base_service(&mut self) -> Option<Service> {
        let user = self.cr.spec.ports.clone().unwrap_or_default();
        let ports = merge_service_ports(&user, &self.config.ports.service, &mut self.warnings);
        if ports.is_empty() {
            return None;
        }
        let name = collector_name(self.name);
        let mut svc = self.service(name.clone(), &name, "base", ports);
        if let Some(spec) = svc.spec.as_mut() {
            let local = self.cr.spec.mode == Mode::DaemonSet;
            spec.internal_traffic_policy = Some(if local { "Local" } else { "Cluster" }.into());
        }
        Some(svc)
    }

    fn monitoring_service(&self) -> Service {
        let name = naming::monitoring_service_name(self.name);
        let port = ServicePort {
            name: Some("monitoring".into()),
            port: self.config.ports.metrics_port,
            ..Default::default()
        };
        let mut svc = self.service(name.clone(), &name, "monitoring", vec![port]);
        if let Some(l) = svc.metadata.labels.as_mut() {
            l.insert(MONITORING_LABEL.into(), "Exists".into());
        }
        svc
    }

    fn extension_service(&self) -> Option<Service> {
        let ports = self.config.ports.extension.clone();
        if ports.is_empty() {
            return None;
        }
        let name = naming::extension_service_name(self.name);
        Some(self.service(name.clone(), &name, "extension", ports))
    }

    fn pod_template(&mut self, settings: &Settings) -> PodTemplateSpec {
        let spec = &self.cr.spec;
        let container = collector_container(
            self.cr,
            settings,
            self.config,
            ConfigSource::Mounted,
            &mut self.warnings,
        );
        let mut containers = vec![container];
        containers.extend(spec.additional_containers.iter().flatten().cloned());
        let has_nameservers = spec
            .pod_dns_config
            .as_ref()
            .is_some_and(|d| d.nameservers.as_ref().is_some_and(|n| !n.is_empty()));
        let dns_policy = spec.dns_policy.clone().unwrap_or_else(|| {
            if spec.host_network == Some(true) {
                "ClusterFirstWithHostNet"
            } else if has_nameservers {
                "None"
            } else {
                "ClusterFirst"
            }
            .into()
        });
        let service_account = spec
            .service_account
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| collector_name(self.name));
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels(
                    &self.cr.metadata,
                    &collector_name(self.name),
                    spec.image.as_deref(),
                )),
                annotations: Some(pod_annotations(self.cr, &self.config.hash)),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                service_account_name: Some(service_account),
                init_containers: spec.init_containers.clone(),
                containers,
                volumes: Some(workload_volumes(self.cr, &self.config.hash)),
                dns_policy: Some(dns_policy),
                dns_config: spec.pod_dns_config.clone(),
                host_network: spec.host_network,
                share_process_namespace: spec.share_process_namespace,
                tolerations: spec.tolerations.clone(),
                node_selector: spec.node_selector.clone(),
                security_context: spec.pod_security_context.clone(),
                priority_class_name: spec.priority_class_name.clone(),
                affinity: spec.affinity.clone(),
                termination_grace_period_seconds: spec.termination_grace_period_seconds,
                topology_spread_constraints: spec.topology_spread_constraints.clone(),
                ..Default::default()
            }),
        }
    }

    fn selector(&self) -> LabelSelector {
        LabelSelector {
            match_labels: Some(selector_labels(&self.cr.metadata)),
            ..Default::default()
        }
    }

    /// `replicas` (default 1), raised to `autoscaler.minReplicas` (or `spec.minReplicas`).
    fn replicas(&self) -> i32 {
        let spec = &self.cr.spec;
        let replicas = spec.replicas.unwrap_or(1);
        let min = spec
            .autoscaler
            .as_ref()
            .and_then(|a| a.get("minReplicas"))
            .and_then(serde_json::Value::as_i64)
            .and_then(|m| i32::try_from(m).ok())
            .or(spec.min_replicas);
        min.map_or(replicas, |m| m.max(replicas))
    }

    fn workload(&self, template: PodTemplateSpec) -> Result<ManagedObject, DesiredError> {
        let spec = &self.cr.spec;
        let name = collector_name(self.name);
        // The workload gets the CR's annotations only (the hash lives on the pod template).
        let metadata = self.meta(name.clone(), &name);
        Ok(match spec.mode {
            Mode::Deployment => ManagedObject::Deployment(Deployment {
                metadata,
                spec: Some(DeploymentSpec {
                    replicas: Some(self.replicas()),
                    selector: self.selector(),
                    strategy: spec.deployment_update_strategy.clone(),
                    template,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            Mode::DaemonSet => ManagedObject::DaemonSet(DaemonSet {
                metadata,
                spec: Some(DaemonSetSpec {
                    selector: self.selector(),
                    update_strategy: spec.update_strategy.clone(),
                    template,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            Mode::StatefulSet => ManagedObject::StatefulSet(StatefulSet {
                metadata,
                spec: Some(StatefulSetSpec {
                    replicas: Some(self.replicas()),
                    selector: self.selector(),
                    service_name: Some(
                        spec.service_name
                            .clone()
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| naming::headless_service_name(self.name)),
                    ),
                    pod_management_policy: Some(
                        spec.pod_management_policy
                            .clone()
                            .unwrap_or_else(|| "Parallel".into()),
                    ),
                    volume_claim_templates: spec.volume_claim_templates.clone(),
                    template,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            Mode::Sidecar => {
                return Err(DesiredError::Invalid {
                    field: "spec.mode".into(),
                    message: "sidecar collectors have no workload".into(),
                })
            }
        })
    }

    /// `<name>-collector` PodDisruptionBudget: `spec.podDisruptionBudget`, else maxUnavailable 1.
    fn pdb(&self) -> Result<PodDisruptionBudget, DesiredError> {
        let name = collector_name(self.name);
        let field = |key: &str| -> Result<Option<IntOrString>, DesiredError> {
            let Some(v) = self
                .cr
                .spec
                .pod_disruption_budget
                .as_ref()
                .and_then(|p| p.get(key))
            else {
                return Ok(None);
            };
            serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| DesiredError::Invalid {
                    field: format!("spec.podDisruptionBudget.{key}"),
                    message: e.to_string(),
                })
        };
        let (mut min_available, mut max_unavailable) =
            (field("minAvailable")?, field("maxUnavailable")?);
        if min_available.is_none() && max_unavailable.is_none() {
            max_unavailable = Some(IntOrString::Int(1));
        }
        if max_unavailable.is_some() && min_available.is_some() {
            min_available = None; // the API allows only one; upstream's validation keeps maxUnavailable
        }
        Ok(PodDisruptionBudget {
            metadata: self.meta(name.clone(), &name),
            spec: Some(PodDisruptionBudgetSpec {
                selector: Some(self.selector()),
                min_available,
                max_unavailable,
                ..Default::default()
            }),
            ..Default::default()
        })
    }
}

/// The headless twin of the base Service.
fn headless(base: &Service, cr_name: &str) -> Service {
    let mut svc = base.clone();
    let name = naming::headless_service_name(cr_name);
    let mut annotations = BTreeMap::from([(
        "service.beta.openshift.io/serving-cert-secret-name".to_string(),
        format!("{name}-tls"),
    )]);
    annotations.extend(svc.metadata.annotations.take().unwrap_or_default());
    svc.metadata.name = Some(name);
    svc.metadata.annotations = Some(annotations);
    if let Some(l) = svc.metadata.labels.as_mut() {
        l.insert(HEADLESS_LABEL.into(), "Exists".into());
        l.insert(SERVICE_TYPE_LABEL.into(), "headless".into());
    }
    if let Some(spec) = svc.spec.as_mut() {
        spec.cluster_ip = Some("None".into());
    }
    svc
}

/// The controller owner reference to the CR (none when the CR has no uid, i.e. offline rendering).
pub(crate) fn owner_reference(cr: &OpenTelemetryCollector) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "opentelemetry.io/v1alpha1".into(),
        kind: "OpenTelemetryCollector".into(),
        name: cr.metadata.name.clone()?,
        uid: cr.metadata.uid.clone().filter(|u| !u.is_empty())?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}
