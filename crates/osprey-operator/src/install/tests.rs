//! Unit tests of the install manifest: default objects, every knob, validation errors.

use super::*;
use serde_json::Value;

fn names(objs: &[Value]) -> Vec<String> {
    objs.iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind}/{name} missing"))
}

#[test]
fn default_objects_in_apply_order() {
    let objs = objects(&Values::default()).unwrap();
    assert_eq!(
        names(&objs),
        [
            "Namespace/osprey-system",
            "CustomResourceDefinition/opentelemetrycollectors.opentelemetry.io",
            "CustomResourceDefinition/instrumentations.opentelemetry.io",
            "ServiceAccount/osprey-operator",
            "ClusterRole/osprey-operator",
            "ClusterRoleBinding/osprey-operator",
            "Role/osprey-operator",
            "RoleBinding/osprey-operator",
            "Deployment/osprey-operator",
            "Service/osprey-operator-webhook",
            "MutatingWebhookConfiguration/osprey-operator-mutation",
            "Service/osprey",
            "StatefulSet/osprey",
            "ConfigMap/osprey-prometheus",
            "Deployment/osprey-prometheus",
            "Service/osprey-prometheus",
            "OpenTelemetryCollector/osprey",
            "Instrumentation/osprey",
            "ConfigMap/osprey-grafana-datasources",
            "ConfigMap/osprey-grafana-dashboard-provider",
            "ConfigMap/osprey-grafana-dashboards",
            "Deployment/osprey-grafana",
            "Service/osprey-grafana",
        ]
    );
    for o in &objs[3..] {
        let cluster_scoped = [
            "ClusterRole",
            "ClusterRoleBinding",
            "MutatingWebhookConfiguration",
        ]
        .contains(&o["kind"].as_str().unwrap());
        assert_eq!(
            o["metadata"].get("namespace").is_none(),
            cluster_scoped,
            "{o}"
        );
        if !cluster_scoped {
            assert_eq!(o["metadata"]["namespace"], "osprey-system");
        }
    }
}

#[test]
fn default_store_operator_and_webhook() {
    let objs = objects(&Values::default()).unwrap();
    let image = format!("ghcr.io/osprey-observability/osprey:{VERSION}");
    let sts = find(&objs, "StatefulSet", "osprey");
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], image.as_str());
    assert_eq!(
        c["args"],
        serde_json::json!(["up", "--data-dir=/data", "--listen-all", "--retention=7d"])
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "10Gi"
    );
    let svc = find(&objs, "Service", "osprey");
    let ports: Vec<u64> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, [4317, 4318, 9201, 9202, 14268, 14250, 9411, 5433]);

    let op = find(&objs, "Deployment", "osprey-operator");
    let c = &op["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["args"][0], "operator");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    assert_eq!(
        op["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );

    let mwc = find(
        &objs,
        "MutatingWebhookConfiguration",
        "osprey-operator-mutation",
    );
    let hook = &mwc["webhooks"][0];
    assert_eq!(hook["failurePolicy"], "Ignore");
    assert_eq!(hook["sideEffects"], "None");
    assert_eq!(hook["clientConfig"]["service"]["path"], "/mutate-v1-pod");
    assert!(hook["clientConfig"].get("caBundle").is_none());
    assert_eq!(
        hook["namespaceSelector"]["matchExpressions"][0]["values"],
        serde_json::json!(["kube-system", "osprey-system"])
    );
    assert!(hook.get("objectSelector").is_none());

    let inst = find(&objs, "Instrumentation", "osprey");
    assert_eq!(
        inst["spec"]["exporter"]["endpoint"],
        "http://osprey-collector.osprey-system.svc:4318"
    );
    let coll = find(&objs, "OpenTelemetryCollector", "osprey");
    let config = coll["spec"]["config"].as_str().unwrap();
    assert!(
        config.contains("endpoint: osprey.osprey-system.svc:4317"),
        "{config}"
    );
    let dash = find(&objs, "ConfigMap", "osprey-grafana-dashboards");
    assert_eq!(dash["data"].as_object().unwrap().len(), 6);
    assert!(dash["data"].get("red-metrics.json").is_some());
}

const EVERY_KNOB: &str = r#"
namespace: observability
image: {repository: registry.example/osprey, tag: "9.9", pullPolicy: Always}
operator:
  enabled: true
  replicas: 2
  image: registry.example/operator:1
  resources: {requests: {cpu: 10m}}
  webhook:
    namespaceSelector:
      matchLabels: {instrument: "yes"}
      matchExpressions: [{key: team, operator: In, values: [shop]}]
    objectSelector:
      matchLabels: {tracing: "on"}
store:
  enabled: true
  replicas: 0
  image: registry.example/store:2
  retention: 30d
  storage: {size: 50Gi, storageClassName: fast}
  resources: {limits: {memory: 8Gi}}
collector:
  enabled: true
  replicas: 3
  image: registry.example/collector:3
  resources: {}
instrumentation:
  enabled: true
  endpoint: http://my-collector:4318
  propagators: [tracecontext]
  sampler: {type: parentbased_traceidratio, argument: "0.25"}
grafana:
  enabled: false
  replicas: 1
  image: grafana/grafana:10.4.0
  resources: {}
prometheus:
  enabled: true
  image: registry.example/prometheus:3
  retention: 2d
  resources: {limits: {memory: 4Gi}}
"#;

#[test]
fn every_knob() {
    let v = Values::from_yaml(EVERY_KNOB).unwrap();
    let objs = objects(&v).unwrap();
    assert!(!names(&objs).iter().any(|n| n.contains("grafana")));
    assert_eq!(objs[0]["metadata"]["name"], "observability");
    let op = find(&objs, "Deployment", "osprey-operator");
    assert_eq!(op["spec"]["replicas"], 2);
    let c = &op["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example/operator:1");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(
        c["args"][1],
        "--collector-image=registry.example/collector:3"
    );
    // Maps merge over the defaults as Helm coalesces values.
    assert_eq!(
        c["resources"],
        serde_json::json!({"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}})
    );
    let hook = &find(
        &objs,
        "MutatingWebhookConfiguration",
        "osprey-operator-mutation",
    )["webhooks"][0];
    let ns_sel = &hook["namespaceSelector"];
    assert_eq!(
        ns_sel["matchLabels"],
        serde_json::json!({"instrument": "yes"})
    );
    assert_eq!(ns_sel["matchExpressions"].as_array().unwrap().len(), 2);
    assert_eq!(
        ns_sel["matchExpressions"][0]["values"],
        serde_json::json!(["kube-system", "observability"])
    );
    assert_eq!(
        hook["objectSelector"],
        serde_json::json!({"matchLabels": {"tracing": "on"}})
    );
    let sts = find(&objs, "StatefulSet", "osprey");
    assert_eq!(sts["spec"]["replicas"], 0);
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example/store:2");
    assert_eq!(c["args"][3], "--retention=30d");
    let claim = &sts["spec"]["volumeClaimTemplates"][0]["spec"];
    assert_eq!(claim["storageClassName"], "fast");
    assert_eq!(claim["resources"]["requests"]["storage"], "50Gi");
    let coll = find(&objs, "OpenTelemetryCollector", "osprey");
    assert_eq!(coll["spec"]["replicas"], 3);
    assert!(coll["spec"]["config"]
        .as_str()
        .unwrap()
        .contains("osprey.observability.svc:4317"));
    let inst = find(&objs, "Instrumentation", "osprey");
    assert_eq!(
        inst["spec"]["exporter"]["endpoint"],
        "http://my-collector:4318"
    );
    assert_eq!(inst["spec"]["sampler"]["argument"], "0.25");
    assert_eq!(
        inst["spec"]["propagators"],
        serde_json::json!(["tracecontext"])
    );
    assert_eq!(
        collector_deployment(&v),
        Some(("observability".into(), "osprey-collector".into()))
    );
    let prom = find(&objs, "Deployment", "osprey-prometheus");
    let c = &prom["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example/prometheus:3");
    assert_eq!(c["args"][2], "--storage.tsdb.retention.time=2d");
    assert_eq!(
        c["resources"],
        serde_json::json!({"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "4Gi"}})
    );
    assert!(coll["spec"]["config"]
        .as_str()
        .unwrap()
        .contains("http://osprey-prometheus.observability.svc:9090/api/v1/write"));
}

#[test]
fn image_tag_without_override() {
    let v = Values::from_yaml("image: {tag: dev}").unwrap();
    let objs = objects(&v).unwrap();
    let sts = find(&objs, "StatefulSet", "osprey");
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/osprey-observability/osprey:dev"
    );
}

#[test]
fn parts_can_be_disabled() {
    let v = Values::from_yaml(
        "operator: {enabled: false}\ncollector: {enabled: false}\ninstrumentation: {enabled: false}\ngrafana: {enabled: false}\nprometheus: {enabled: false}",
    )
    .unwrap();
    let objs = objects(&v).unwrap();
    assert_eq!(
        names(&objs),
        [
            "Namespace/osprey-system",
            "Service/osprey",
            "StatefulSet/osprey"
        ]
    );
    assert_eq!(collector_deployment(&v), None);
}

fn error_of(yaml: &str) -> String {
    match Values::from_yaml(yaml).and_then(|v| objects(&v)) {
        Ok(_) => panic!("{yaml} accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn validation_names_the_field() {
    for (yaml, field) in [
        ("namespace: Bad_NS", "namespace"),
        ("image: {pullPolicy: Sometimes}", "image.pullPolicy"),
        ("image: {repository: ''}", "image.repository"),
        ("store: {storage: {size: lots}}", "store.storage.size"),
        ("store: {retention: forever}", "store.retention"),
        ("store: {replicas: 3}", "store.replicas"),
        ("store: {resources: {requests: {cpu: fast}}}", "store.resources.requests.cpu"),
        ("operator: {resources: {limit: {}}}", "operator.resources.limit"),
        ("instrumentation: {sampler: {type: sometimes}}", "instrumentation.sampler.type"),
        ("instrumentation: {sampler: {argument: '2'}}", "instrumentation.sampler.argument"),
        ("instrumentation: {propagators: [w3c]}", "instrumentation.propagators"),
        ("instrumentation: {endpoint: 'collector:4318'}", "instrumentation.endpoint"),
        (
            "operator: {webhook: {objectSelector: {matchExpressions: [{key: a, operator: Maybe}]}}}",
            "operator.webhook.objectSelector.matchExpressions[0]",
        ),
        ("grafana: {image: ''}", "grafana.image"),
        ("prometheus: {image: ''}", "prometheus.image"),
        ("prometheus: {retention: always}", "prometheus.retention"),
        ("prometheus: {resources: {requests: {memory: much}}}", "prometheus.resources.requests.memory"),
    ] {
        let err = error_of(yaml);
        assert!(err.contains(&format!("{field}:")), "{yaml}: {err}");
    }
}

#[test]
fn unknown_keys_are_named() {
    let err = error_of("store:\n  storage:\n    sise: 1Gi\n");
    assert!(err.contains("sise"), "{err}");
    assert!(err.contains("store.storage"), "{err}");
}

#[test]
fn dry_run_yaml_round_trips() {
    let objs = objects(&Values::default()).unwrap();
    let text = to_yaml(&objs);
    let back: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(back, objs);
}
