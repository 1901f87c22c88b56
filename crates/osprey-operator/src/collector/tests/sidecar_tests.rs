//! The sidecar decision flow (upstream §1.10) and the injected pod (goldens).

use super::{golden, settings, IMAGE};
use crate::collector::sidecar::{
    effective_value, inject_sidecar, inject_sidecar_with, INJECTED_LABEL,
};
use crate::collector::Settings;
use crate::crd::{Mode, OpenTelemetryCollector};
use k8s_openapi::api::core::v1::{Namespace, Pod};

const POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: web-7d4b9c8f5-x2x9q
  namespace: shop
  labels: {app: web, pod-template-hash: 7d4b9c8f5}
  annotations: {sidecar.opentelemetry.io/inject: 'true'}
  ownerReferences:
    - {apiVersion: apps/v1, kind: ReplicaSet, name: web-7d4b9c8f5, uid: 0b7c2f7e-rs, controller: true}
spec:
  containers:
    - {name: app, image: 'shop/web:1.0'}
";

const SIDECAR_CONFIG: &str = "\
receivers:
  otlp:
    protocols:
      grpc: {}
exporters:
  otlp:
    endpoint: osprey.observability.svc:4317
extensions:
  health_check: {}
service:
  extensions: [health_check]
  pipelines:
    traces: {receivers: [otlp], exporters: [otlp]}
";

fn pod(annotation: Option<&str>) -> Pod {
    let mut p: Pod = serde_yaml::from_str(POD).expect("pod");
    let a = p.metadata.annotations.get_or_insert_with(Default::default);
    match annotation {
        Some(v) => a.insert("sidecar.opentelemetry.io/inject".into(), v.into()),
        None => a.remove("sidecar.opentelemetry.io/inject"),
    };
    p
}

fn namespace(annotation: Option<&str>) -> Namespace {
    let mut ns = Namespace::default();
    ns.metadata.name = Some("shop".into());
    if let Some(v) = annotation {
        ns.metadata.annotations =
            Some([("sidecar.opentelemetry.io/inject".to_string(), v.to_string())].into());
    }
    ns
}

fn collector(ns: &str, name: &str, mode: Mode) -> OpenTelemetryCollector {
    let mut c = OpenTelemetryCollector::new(name, Default::default());
    c.metadata.namespace = Some(ns.into());
    c.spec.mode = mode;
    c.spec.config = SIDECAR_CONFIG.into();
    c
}

fn injected_from(p: &Pod) -> Option<String> {
    p.metadata.labels.as_ref()?.get(INJECTED_LABEL).cloned()
}

fn container_names(p: &Pod) -> (Vec<String>, Vec<String>) {
    let spec = p.spec.as_ref().expect("spec");
    let names =
        |l: &[k8s_openapi::api::core::v1::Container]| l.iter().map(|c| c.name.clone()).collect();
    (
        names(&spec.containers),
        names(spec.init_containers.as_deref().unwrap_or_default()),
    )
}

#[test]
fn namespace_fallback_table() {
    let cases = [
        (None, None, None),
        (Some("true"), None, Some("true")),
        (None, Some("mine"), Some("mine")),
        (Some(""), Some("mine"), Some("mine")),
        (Some("other"), Some("mine"), Some("other")),
        (Some("false"), Some("true"), Some("false")),
        (Some("true"), Some("false"), Some("true")),
        (Some("TRUE"), Some("mine"), Some("mine")),
        (Some("true"), Some("true"), Some("true")),
        (Some("true"), Some("obs/col"), Some("obs/col")),
    ];
    for (pod_value, ns_value, want) in cases {
        assert_eq!(
            effective_value(pod_value, ns_value).as_deref(),
            want,
            "pod {pod_value:?} ns {ns_value:?}"
        );
    }
}

#[test]
fn golden_injected_pods() {
    let cols = [
        collector("shop", "sidecar", Mode::Sidecar),
        collector("shop", "gateway", Mode::Deployment),
    ];
    let out = inject_sidecar_with(&pod(Some("true")), &namespace(None), &cols, &settings())
        .expect("inject");
    golden(
        "sidecar-injected.yaml",
        &serde_yaml::to_string(&out.pod).unwrap(),
    );
    assert_eq!(injected_from(&out.pod).as_deref(), Some("shop.sidecar"));
    let native = Settings {
        default_image: IMAGE.into(),
        native_sidecars: true,
    };
    let out =
        inject_sidecar_with(&pod(Some("true")), &namespace(None), &cols, &native).expect("inject");
    golden(
        "sidecar-injected-native.yaml",
        &serde_yaml::to_string(&out.pod).unwrap(),
    );
    let (containers, init) = container_names(&out.pod);
    assert_eq!(
        (containers, init),
        (vec!["app".to_string()], vec!["otc-container".to_string()])
    );
    let init = &out
        .pod
        .spec
        .as_ref()
        .unwrap()
        .init_containers
        .as_ref()
        .unwrap()[0];
    assert_eq!(init.restart_policy.as_deref(), Some("Always"));
    assert!(init.startup_probe.is_some());
}

#[test]
fn injected_container_runs_osprey_with_env_config() {
    let cols = [collector("shop", "sidecar", Mode::Sidecar)];
    let out =
        inject_sidecar(&pod(Some("sidecar")), &namespace(None), &cols, false).expect("inject");
    let c = out
        .pod
        .spec
        .as_ref()
        .unwrap()
        .containers
        .last()
        .unwrap()
        .clone();
    assert_eq!(c.name, "otc-container");
    assert_eq!(
        c.args.as_deref().unwrap(),
        ["collector", "--config=env:OTEL_CONFIG"]
    );
    assert!(c.volume_mounts.is_none(), "no /conf mount for sidecars");
    let env = c.env.unwrap();
    let get = |n: &str| {
        env.iter()
            .find(|e| e.name == n)
            .and_then(|e| e.value.clone())
    };
    assert!(get("OTEL_CONFIG").unwrap().contains("0.0.0.0:4317"));
    assert_eq!(
        get("OTEL_RESOURCE_ATTRIBUTES").unwrap(),
        "k8s.deployment.name=web,k8s.namespace.name=shop,\
         k8s.node.name=$(OTEL_RESOURCE_ATTRIBUTES_NODE_NAME),k8s.pod.name=$(OTEL_RESOURCE_ATTRIBUTES_POD_NAME),\
         k8s.pod.uid=$(OTEL_RESOURCE_ATTRIBUTES_POD_UID),k8s.replicaset.name=web-7d4b9c8f5,k8s.replicaset.uid=0b7c2f7e-rs"
    );
    assert!(
        out.notes[0].contains("injected OpenTelemetryCollector shop/sidecar"),
        "{:?}",
        out.notes
    );
}

#[test]
fn user_resource_attributes_are_kept() {
    let mut col = collector("shop", "sidecar", Mode::Sidecar);
    col.spec.env = Some(vec![k8s_openapi::api::core::v1::EnvVar {
        name: "OTEL_RESOURCE_ATTRIBUTES".into(),
        value: Some("team=a".into()),
        ..Default::default()
    }]);
    let out = inject_sidecar(&pod(Some("true")), &namespace(None), &[col], false).unwrap();
    let env = out
        .pod
        .spec
        .unwrap()
        .containers
        .last()
        .unwrap()
        .env
        .clone()
        .unwrap();
    let attrs: Vec<_> = env
        .iter()
        .filter(|e| e.name.starts_with("OTEL_RESOURCE_ATTRIBUTES"))
        .collect();
    assert_eq!(attrs.len(), 1);
    assert_eq!(attrs[0].value.as_deref(), Some("team=a"));
}

#[test]
fn decision_flow() {
    let side = collector("shop", "sidecar", Mode::Sidecar);
    let other = collector("shop", "sidecar2", Mode::Sidecar);
    let remote = collector("obs", "central", Mode::Sidecar);
    let gateway = collector("shop", "gateway", Mode::Deployment);
    let ns = namespace(None);

    // No annotation anywhere: untouched, nothing to say.
    let out = inject_sidecar(&pod(None), &ns, std::slice::from_ref(&side), false).unwrap();
    assert_eq!(out.pod, pod(None));
    assert!(out.notes.is_empty());

    // Namespace annotation as fallback.
    let out = inject_sidecar(
        &pod(None),
        &namespace(Some("sidecar")),
        std::slice::from_ref(&side),
        false,
    )
    .unwrap();
    assert_eq!(injected_from(&out.pod).as_deref(), Some("shop.sidecar"));

    // ns/name reaches another namespace.
    let out = inject_sidecar(
        &pod(Some("obs/central")),
        &ns,
        std::slice::from_ref(&remote),
        false,
    )
    .unwrap();
    assert_eq!(injected_from(&out.pod).as_deref(), Some("obs.central"));

    // "true" needs exactly one sidecar-mode collector in the pod's namespace.
    for cols in [
        vec![],
        vec![remote.clone(), gateway.clone()],
        vec![side.clone(), other.clone()],
    ] {
        let out = inject_sidecar(&pod(Some("true")), &ns, &cols, false).unwrap();
        assert_eq!(out.pod, pod(Some("true")));
        assert_eq!(out.notes.len(), 1, "{:?}", out.notes);
    }

    // A named collector that is not in sidecar mode: admitted unchanged, with a note.
    let out = inject_sidecar(
        &pod(Some("gateway")),
        &ns,
        std::slice::from_ref(&gateway),
        false,
    )
    .unwrap();
    assert_eq!(out.pod, pod(Some("gateway")));
    assert!(out.notes[0].contains("deployment mode"), "{:?}", out.notes);

    // Not found: an error (the webhook still admits the pod).
    let err =
        inject_sidecar(&pod(Some("nope")), &ns, std::slice::from_ref(&side), false).unwrap_err();
    assert!(err.to_string().contains("shop/nope"), "{err}");
}

#[test]
fn idempotent_and_false_removes() {
    let cols = [collector("shop", "sidecar", Mode::Sidecar)];
    for native in [false, true] {
        let once = inject_sidecar(&pod(Some("true")), &namespace(None), &cols, native)
            .unwrap()
            .pod;
        let twice = inject_sidecar(&once, &namespace(None), &cols, native).unwrap();
        assert_eq!(twice.pod, once, "native={native}");
        assert!(twice.notes[0].contains("already has"), "{:?}", twice.notes);

        let mut disabled = once.clone();
        disabled
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert("sidecar.opentelemetry.io/inject".into(), "False".into());
        let removed = inject_sidecar(&disabled, &namespace(None), &cols, native).unwrap();
        let (containers, init) = container_names(&removed.pod);
        assert_eq!(containers, ["app"]);
        assert!(init.is_empty());
        assert_eq!(injected_from(&removed.pod), None);
    }
    // "false" on a pod without a sidecar: untouched.
    let out = inject_sidecar(&pod(Some("false")), &namespace(Some("true")), &cols, false).unwrap();
    assert_eq!(out.pod, pod(Some("false")));
}

#[test]
fn unparsable_sidecar_config_is_an_error() {
    let mut col = collector("shop", "sidecar", Mode::Sidecar);
    col.spec.config = "receivers: [".into();
    let err = inject_sidecar(&pod(Some("true")), &namespace(None), &[col], false).unwrap_err();
    assert!(err.to_string().contains("shop/sidecar"), "{err}");
}
