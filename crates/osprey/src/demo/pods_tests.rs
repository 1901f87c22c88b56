//! Unit tests of the demo's pod simulation (pods.rs).

use super::*;

fn svc(name: &'static str, runtime: Runtime) -> Service {
    Service {
        name,
        runtime,
        port: Some(18081),
        env: vec![("PEER_URL".into(), "http://127.0.0.1:1".into())],
    }
}

fn env_map(env: &[(String, String)]) -> BTreeMap<String, String> {
    env.iter().cloned().collect()
}

#[test]
fn expansion_follows_kubernetes_rules() {
    let defined: BTreeMap<String, String> = [("A".to_string(), "x".to_string())].into();
    assert_eq!(expand("$(A)/$(B)", &defined), "x/$(B)");
    assert_eq!(expand("$$(A) $ $x $(", &defined), "$(A) $ $x $(");
    assert_eq!(expand("a$(A)$(A)", &defined), "axx");
}

#[test]
fn mounts_are_rewritten_on_whole_components_only() {
    let mounts = vec![
        ("/otel".to_string(), PathBuf::from("/h/short")),
        ("/otel-py".to_string(), PathBuf::from("/h/py")),
    ];
    assert_eq!(
        rewrite_mounts("/otel-py/a:/otel-py --require /otel/x.js", &mounts),
        "/h/py/a:/h/py --require /h/short/x.js"
    );
    assert_eq!(rewrite_mounts("/otelx:/a/otel", &mounts), "/otelx:/a/otel");
}

#[test]
fn template_hash_is_stable_and_kubernetes_shaped() {
    let h = template_hash("generator");
    assert_eq!(h, template_hash("generator"));
    assert_ne!(h, template_hash("upper"));
    assert_eq!(h.len(), 10);
    assert!(h
        .bytes()
        .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)));
}

#[test]
fn python_pod_becomes_an_instrumented_process_env() {
    let inst = instrumentation("http://127.0.0.1:4318").unwrap();
    let mut pod = admit(&svc("upper", Runtime::Python), &inst).unwrap();
    schedule(&mut pod, "abcde", "uid-1");
    let payloads = Path::new("/payloads");
    let vols = volume_dirs(&pod, |img| payload_root(payloads, img)).unwrap();
    assert_eq!(
        vols.get("opentelemetry-auto-instrumentation-python"),
        Some(&PathBuf::from("/payloads/python/autoinstrumentation"))
    );
    let env = env_map(&container_env(&pod, "upper", &vols).unwrap());
    assert_eq!(
        env["PYTHONPATH"],
        "/payloads/python/autoinstrumentation/opentelemetry/instrumentation/auto_instrumentation:/payloads/python/autoinstrumentation"
    );
    assert_eq!(env["OTEL_SERVICE_NAME"], "upper");
    assert_eq!(env["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://127.0.0.1:4318");
    assert_eq!(env["PORT"], "18081");
    assert_eq!(env["PEER_URL"], "http://127.0.0.1:1");
    let pod_name = format!("upper-{}-abcde", template_hash("upper"));
    let res = &env["OTEL_RESOURCE_ATTRIBUTES"];
    assert!(res.contains(&format!("k8s.pod.name={pod_name}")), "{res}");
    assert!(res.contains(&format!("k8s.node.name={NODE_NAME}")), "{res}");
    assert!(res.contains("k8s.deployment.name=upper"), "{res}");
    assert!(!res.contains("$("), "{res}");
}

#[test]
fn node_pod_requires_the_payload_through_node_options() {
    let inst = instrumentation("http://127.0.0.1:4318").unwrap();
    let mut pod = admit(&svc("special", Runtime::Node), &inst).unwrap();
    schedule(&mut pod, "abcde", "uid-1");
    let vols = volume_dirs(&pod, |img| payload_root(Path::new("/p"), img)).unwrap();
    let env = env_map(&container_env(&pod, "special", &vols).unwrap());
    assert!(
        env["NODE_OPTIONS"]
            .contains("--require /p/nodejs/autoinstrumentation/autoinstrumentation.js"),
        "{}",
        env["NODE_OPTIONS"]
    );
}

#[test]
fn unknown_payload_image_is_an_error() {
    let inst = instrumentation("http://127.0.0.1:4318").unwrap();
    let pod = admit(&svc("digit", Runtime::Python), &inst).unwrap();
    let err = volume_dirs(&pod, |_| None).unwrap_err().to_string();
    assert!(err.contains("no local payload for image"), "{err}");
}
