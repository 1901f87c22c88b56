//! Golden and behaviour tests for the collector's desired objects (the sidecar flow is in
//! `sidecar_tests`). Goldens live in `tests/golden/collector/`; `UPDATE_GOLDEN=1` rewrites them.

use super::*;
use crate::crd::{Mode, OpenTelemetryCollector};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use std::path::PathBuf;

mod sidecar_tests;

pub(super) const SEED: &str = include_str!("../../../../tests/e2e/fixtures/collector-fixed.yaml");
pub(super) const IMAGE: &str = "ghcr.io/osprey-observability/osprey:test";

pub(super) fn settings() -> Settings {
    Settings {
        default_image: IMAGE.into(),
        native_sidecars: false,
    }
}

/// The seed's collector, with a uid (as the API server would give it) and `mode`.
pub(super) fn seed(mode: Mode) -> OpenTelemetryCollector {
    let mut cr: OpenTelemetryCollector = serde_yaml::from_str(SEED).expect("seed collector");
    cr.metadata.uid = Some("6f1c3a52-8b0e-4d8e-9a43-2f7c1e0d9b11".into());
    cr.spec.mode = mode;
    cr
}

pub(super) fn accept(_: &str) -> Result<(), String> {
    Ok(())
}

pub(super) fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/collector")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", path.display()));
    assert!(
        expected == actual,
        "{} differs (UPDATE_GOLDEN=1 rewrites it):\n{actual}",
        path.display()
    );
}

fn render(desired: &Desired) -> String {
    let mut out = String::new();
    for o in &desired.objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(o).expect("yaml"));
    }
    out
}

fn build(cr: &OpenTelemetryCollector) -> Desired {
    desired_objects(cr, &settings(), &accept).expect("desired objects")
}

fn kinds_and_names(d: &Desired) -> Vec<(String, String)> {
    d.objects
        .iter()
        .map(|o| (o.kind().to_string(), o.name().to_string()))
        .collect()
}

fn service<'a>(d: &'a Desired, name: &str) -> &'a k8s_openapi::api::core::v1::Service {
    d.objects
        .iter()
        .find_map(|o| match o {
            ManagedObject::Service(s) if s.metadata.name.as_deref() == Some(name) => Some(s),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no service {name}"))
}

fn port_list(ports: &[k8s_openapi::api::core::v1::ServicePort]) -> Vec<(String, i32)> {
    ports
        .iter()
        .map(|p| (p.name.clone().unwrap_or_default(), p.port))
        .collect()
}

#[test]
fn golden_per_mode() {
    for (mode, file) in [
        (Mode::Deployment, "deployment.yaml"),
        (Mode::DaemonSet, "daemonset.yaml"),
        (Mode::StatefulSet, "statefulset.yaml"),
        (Mode::Sidecar, "sidecar-mode.yaml"),
    ] {
        golden(file, &render(&build(&seed(mode))));
    }
}

#[test]
fn objects_per_mode() {
    let n = |k: &str, n: &str| (k.to_string(), n.to_string());
    let d = build(&seed(Mode::Deployment));
    let cm = format!("tobs-tobs-opentelemetry-collector-{}", &d.config_hash[..8]);
    assert_eq!(
        kinds_and_names(&d),
        [
            n("ConfigMap", &cm),
            n("ServiceAccount", "tobs-tobs-opentelemetry-collector"),
            n("Service", "tobs-tobs-opentelemetry-collector"),
            n("Service", "tobs-tobs-opentelemetry-collector-headless"),
            n("Service", "tobs-tobs-opentelemetry-collector-monitoring"),
            n("Deployment", "tobs-tobs-opentelemetry-collector"),
            n("PodDisruptionBudget", "tobs-tobs-opentelemetry-collector"),
        ]
    );
    let ds = build(&seed(Mode::DaemonSet));
    assert!(ds.objects.iter().all(|o| o.kind() != "PodDisruptionBudget"));
    let base = service(&ds, "tobs-tobs-opentelemetry-collector");
    assert_eq!(
        base.spec
            .as_ref()
            .unwrap()
            .internal_traffic_policy
            .as_deref(),
        Some("Local")
    );
    let side = build(&seed(Mode::Sidecar));
    let kinds: Vec<_> = side.objects.iter().map(|o| o.kind()).collect();
    assert_eq!(kinds, ["ConfigMap", "ServiceAccount"]);
    for o in &d.objects {
        let owner = &o.metadata().owner_references.as_ref().expect("owner")[0];
        assert_eq!(owner.api_version, "opentelemetry.io/v1alpha1");
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
        assert_eq!(o.metadata().namespace.as_deref(), Some("default"));
    }
}

#[test]
fn seed_ports_are_upstreams() {
    let d = build(&seed(Mode::Deployment));
    let base = service(&d, "tobs-tobs-opentelemetry-collector");
    let ports = base.spec.as_ref().unwrap().ports.as_ref().unwrap();
    assert_eq!(
        port_list(ports),
        [
            ("jaeger-grpc".into(), 14250),
            ("otlp-grpc".into(), 4317),
            ("otlp-http".into(), 4318),
            ("port-14268".into(), 14268),
        ]
    );
    let app: Vec<_> = ports
        .iter()
        .map(|p| p.app_protocol.clone().unwrap_or_default())
        .collect();
    assert_eq!(app, ["grpc", "grpc", "http", "http"]);
    let monitoring = service(&d, "tobs-tobs-opentelemetry-collector-monitoring");
    assert_eq!(
        port_list(monitoring.spec.as_ref().unwrap().ports.as_ref().unwrap()),
        [("monitoring".into(), 8888)]
    );
    let p = derive_ports(&seed(Mode::Deployment).spec.config).expect("ports");
    let container: Vec<_> = p
        .container
        .iter()
        .map(|c| (c.name.clone().unwrap(), c.container_port))
        .collect();
    assert_eq!(
        container,
        [
            ("jaeger-grpc".into(), 14250),
            ("metrics".into(), 8888),
            ("otlp-grpc".into(), 4317),
            ("otlp-http".into(), 4318),
            ("port-14268".into(), 14268),
        ]
    );
    assert!(p.extension.is_empty());
}

#[test]
fn unused_components_and_no_ports() {
    let mut cr = seed(Mode::Deployment);
    cr.spec.config = "receivers:\n  otlp: {protocols: {grpc: {}}}\n  zipkin: {}\n  prometheus: {config: {}}\n\
                      exporters:\n  debug: {}\n\
                      service:\n  pipelines:\n    metrics: {receivers: [prometheus], exporters: [debug]}\n"
        .into();
    let d = build(&cr);
    let names: Vec<_> = kinds_and_names(&d).into_iter().map(|(_, n)| n).collect();
    assert!(
        !names.contains(&"tobs-tobs-opentelemetry-collector-headless".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"tobs-tobs-opentelemetry-collector-monitoring".to_string()));
    let p = derive_ports(&cr.spec.config).unwrap();
    assert!(p.service.is_empty());
}

#[test]
fn spec_ports_merge_into_service_and_container() {
    let mut cr = seed(Mode::Deployment);
    cr.spec.ports = Some(serde_yaml::from_str(
        "[{name: otlp-grpc, port: 5317}, {name: custom, port: 4318}, {name: syslog, port: 514, protocol: UDP, hostPort: 514}]",
    ).unwrap());
    let d = build(&cr);
    let base = service(&d, "tobs-tobs-opentelemetry-collector");
    assert_eq!(
        port_list(base.spec.as_ref().unwrap().ports.as_ref().unwrap()),
        [
            ("otlp-grpc".into(), 5317),
            ("custom".into(), 4318),
            ("syslog".into(), 514),
            ("jaeger-grpc".into(), 14250),
            ("port-4317".into(), 4317),
            ("port-14268".into(), 14268),
        ]
    );
    let ManagedObject::Deployment(dep) = &d.objects[5] else {
        panic!("deployment")
    };
    let c = &dep
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    let ports: Vec<_> = c
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| (p.name.clone().unwrap(), p.container_port, p.host_port))
        .collect();
    assert_eq!(
        ports,
        [
            ("custom".into(), 4318, None),
            ("jaeger-grpc".into(), 14250, None),
            ("metrics".into(), 8888, None),
            ("otlp-grpc".into(), 5317, None),
            ("port-14268".into(), 14268, None),
            ("port-4317".into(), 4317, None),
            ("syslog".into(), 514, Some(514)),
        ]
    );
}

#[test]
fn full_spec_passes_through() {
    let mut cr: OpenTelemetryCollector =
        serde_yaml::from_str(include_str!("testdata/full.yaml")).expect("full");
    cr.metadata.uid = Some("uid-1".into());
    let d = build(&cr);
    golden("deployment-full.yaml", &render(&d));
    assert!(
        d.warnings
            .iter()
            .any(|w| w.contains("processors.batch has no value")),
        "{:?}",
        d.warnings
    );
    assert!(
        d.warnings.iter().any(|w| w.contains("spec.args.config")),
        "{:?}",
        d.warnings
    );
}

#[test]
fn config_change_rolls_pods() {
    let a = build(&seed(Mode::Deployment));
    let mut cr = seed(Mode::Deployment);
    cr.spec.config = cr
        .spec
        .config
        .replace("compression: none", "compression: gzip");
    let b = build(&cr);
    assert_ne!(a.config_hash, b.config_hash);
    assert_ne!(a.config_map_name(), b.config_map_name());
    let template_hash = |d: &Desired| {
        d.objects.iter().find_map(|o| match o {
            ManagedObject::Deployment(dep) => dep
                .spec
                .as_ref()?
                .template
                .metadata
                .as_ref()?
                .annotations
                .as_ref()?
                .get(CONFIG_HASH_ANNOTATION)
                .cloned(),
            _ => None,
        })
    };
    assert_eq!(template_hash(&a), Some(a.config_hash.clone()));
    assert_eq!(template_hash(&b), Some(b.config_hash.clone()));
    // Same config, different formatting: nothing rolls.
    let mut same = seed(Mode::Deployment);
    same.spec.config = format!("# tuned\n{}", same.spec.config);
    assert_eq!(build(&same).config_hash, a.config_hash);
}

#[test]
fn invalid_configs_build_nothing() {
    let cr = seed(Mode::Deployment);
    let reject = |_: &str| Err::<(), _>("exporters.otlp: endpoint is required".to_string());
    let err = desired_objects(&cr, &settings(), &reject).unwrap_err();
    assert_eq!(
        err,
        DesiredError::InvalidConfig {
            message: "exporters.otlp: endpoint is required".into()
        }
    );
    let mut bad = seed(Mode::Deployment);
    bad.spec.config = "receivers:\n  otlp:\n    protocols: [grpc\n".into();
    let err = desired_objects(&bad, &settings(), &accept).unwrap_err();
    let DesiredError::InvalidConfig { message } = &err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("not valid YAML") && message.contains("line"),
        "{message}"
    );
    bad.spec.config = "receivers:\n  otlp:\n    protocols: {websocket: {}}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], exporters: []}\n".into();
    let err = desired_objects(&bad, &settings(), &accept).unwrap_err();
    assert!(
        matches!(err, DesiredError::Invalid { ref field, .. } if field == "receivers.otlp.protocols"),
        "{err:?}"
    );
}

#[test]
fn validator_sees_the_rendered_config() {
    let seen = std::cell::RefCell::new(String::new());
    let capture = |c: &str| {
        *seen.borrow_mut() = c.to_string();
        Ok(())
    };
    let d = desired_objects(&seed(Mode::Deployment), &settings(), &capture).unwrap();
    assert!(seen.borrow().contains("0.0.0.0:4317"));
    let ManagedObject::ConfigMap(cm) = &d.objects[0] else {
        panic!("configmap")
    };
    assert_eq!(cm.data.as_ref().unwrap()[CONFIG_KEY], *seen.borrow());
}

#[test]
fn idempotent() {
    let cr = seed(Mode::StatefulSet);
    assert_eq!(build(&cr).objects, build(&cr).objects);
}

#[test]
fn long_names_truncate_at_63() {
    let mut cr = seed(Mode::StatefulSet);
    cr.metadata.name = Some("x".repeat(80));
    let d = build(&cr);
    for o in &d.objects {
        assert!(o.name().len() <= 63, "{} {}", o.kind(), o.name());
        for v in o.metadata().labels.iter().flat_map(|l| l.values()) {
            assert!(v.len() <= 63, "label {v}");
        }
    }
    assert!(d.objects.iter().any(|o| o.name().ends_with("--headless")));
}

#[test]
fn status_reflects_the_workload() {
    let cr = seed(Mode::Deployment);
    let d = build(&cr);
    let ManagedObject::Deployment(mut dep) = d.objects[5].clone() else {
        panic!("deployment")
    };
    dep.status = Some(DeploymentStatus {
        ready_replicas: Some(1),
        ..Default::default()
    });
    let status = status_from(&cr, Some(&ManagedObject::Deployment(dep)));
    let scale = status.scale.as_ref().unwrap();
    assert_eq!(scale.status_replicas.as_deref(), Some("1/1"));
    assert_eq!(scale.replicas, Some(1));
    assert!(scale
        .selector
        .as_deref()
        .unwrap()
        .contains("app.kubernetes.io/instance=default.tobs-tobs-opentelemetry"));
    assert_eq!(status.image.as_deref(), Some(IMAGE));
    assert_eq!(status.version.as_deref(), Some(COLLECTOR_VERSION));
    let none = status_from(&cr, None::<&ManagedObject>);
    assert!(none.scale.is_none());
    let side = status_from(
        &seed(Mode::Sidecar),
        Some(&ManagedObject::Deployment(Deployment::default())),
    );
    assert_eq!(side.scale.unwrap().replicas, Some(0));
}

#[test]
fn dynamic_objects_carry_types() {
    let d = build(&seed(Mode::DaemonSet));
    let dynamic = d.dynamic_objects().expect("dynamic");
    let kinds: Vec<_> = dynamic
        .iter()
        .map(|o| o.types.as_ref().unwrap().kind.clone())
        .collect();
    assert!(kinds.contains(&"DaemonSet".to_string()));
}

#[test]
fn statefulset_fields_pass_through() {
    let mut cr = seed(Mode::StatefulSet);
    cr.spec.volume_claim_templates = Some(
        serde_yaml::from_str(
            "[{metadata: {name: queue}, spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}}]",
        )
        .unwrap(),
    );
    cr.spec.pod_management_policy = Some("OrderedReady".into());
    cr.spec.service_name = Some("my-headless".into());
    let d = build(&cr);
    let ManagedObject::StatefulSet(sts) = &d.objects[5] else {
        panic!("statefulset")
    };
    let spec = sts.spec.as_ref().unwrap();
    assert_eq!(spec.service_name.as_deref(), Some("my-headless"));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("OrderedReady"));
    let vct = spec.volume_claim_templates.as_ref().unwrap();
    assert_eq!(vct[0].metadata.name.as_deref(), Some("queue"));
}
