//! Golden tests: every `tests/golden/inject/<case>.input.yaml` (a Pod, Instrumentations, an
//! optional Namespace and collectors, and an optional `kind: TestCase` document with
//! `owners: [Kind/name[/uid]]`, `multiInstrumentation`, `enable: [lang]`) is mutated and
//! compared with `<case>.expected.yaml` (the pod) and `<case>.notes.txt` (one line per
//! applied/skipped injection, or `error: …`). `OSPREY_BLESS=1` rewrites the expected files.
//! Every successful case is also checked for idempotency and for its JSON patch.

use super::owner;
use crate::crd::{Instrumentation, OpenTelemetryCollector};
use crate::inject::*;
use serde::Deserialize;
use serde_yaml::Value;
use std::path::{Path, PathBuf};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/inject")
}

struct Case {
    pod: Pod,
    namespace: Namespace,
    instrumentations: Vec<Instrumentation>,
    collectors: Vec<OpenTelemetryCollector>,
    owners: Vec<WorkloadRef>,
    cfg: InjectConfig,
}

fn load(text: &str) -> Case {
    let mut case = Case {
        pod: Pod::default(),
        namespace: Namespace::default(),
        instrumentations: Vec::new(),
        collectors: Vec::new(),
        owners: Vec::new(),
        cfg: InjectConfig::default(),
    };
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v = Value::deserialize(doc).expect("yaml");
        let kind = v
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match kind.as_str() {
            "Pod" => case.pod = serde_yaml::from_value(v).expect("pod"),
            "Namespace" => case.namespace = serde_yaml::from_value(v).expect("namespace"),
            "Instrumentation" => case
                .instrumentations
                .push(serde_yaml::from_value(v).expect("inst")),
            "OpenTelemetryCollector" => case
                .collectors
                .push(serde_yaml::from_value(v).expect("collector")),
            "TestCase" => {
                for o in v
                    .get("owners")
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                {
                    case.owners.push(owner(o.as_str().expect("owner string")));
                }
                if let Some(m) = v.get("multiInstrumentation").and_then(Value::as_bool) {
                    case.cfg.multi_instrumentation = m;
                }
                for l in v
                    .get("enable")
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                {
                    match l.as_str().expect("language") {
                        "go" => case.cfg.languages.go = true,
                        "apache-httpd" => case.cfg.languages.apache_httpd = true,
                        "nginx" => case.cfg.languages.nginx = true,
                        other => panic!("unknown language {other}"),
                    }
                }
                for l in v
                    .get("disable")
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                {
                    match l.as_str().expect("language") {
                        "java" => case.cfg.languages.java = false,
                        "python" => case.cfg.languages.python = false,
                        other => panic!("unknown language {other}"),
                    }
                }
            }
            other => panic!("unexpected kind {other:?}"),
        }
    }
    if case.namespace.metadata.name.is_none() {
        case.namespace.metadata.name = Some(
            case.pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
        );
    }
    case
}

fn run(case: &Case) -> Result<Mutation, InjectError> {
    let ctx = PodContext {
        namespace: &case.namespace,
        instrumentations: &case.instrumentations,
        collectors: &case.collectors,
        owners: &case.owners,
    };
    mutate(&case.pod, &ctx, &case.cfg)
}

fn notes(m: &Mutation) -> String {
    let mut out = String::new();
    for a in &m.applied {
        out.push_str(&format!("{a}\n"));
    }
    for s in &m.skipped {
        out.push_str(&format!("{s}\n"));
    }
    out
}

fn check_file(path: &Path, actual: &str, bless: bool, failures: &mut Vec<String>) {
    if bless {
        std::fs::write(path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected != actual {
        failures.push(format!(
            "{}:\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        ));
    }
}

#[test]
fn golden_cases() {
    let bless = std::env::var("OSPREY_BLESS").is_ok_and(|v| v == "1");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("golden dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".input.yaml"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 20, "golden cases missing: {inputs:?}");
    let mut failures = Vec::new();
    for input in &inputs {
        let stem = input
            .to_string_lossy()
            .trim_end_matches(".input.yaml")
            .to_string();
        let case = load(&std::fs::read_to_string(input).expect("read input"));
        let expected_pod = PathBuf::from(format!("{stem}.expected.yaml"));
        let notes_path = PathBuf::from(format!("{stem}.notes.txt"));
        match run(&case) {
            Err(e) => {
                check_file(&notes_path, &format!("error: {e}\n"), bless, &mut failures);
                assert!(
                    !expected_pod.exists() || bless,
                    "{stem}: error case with an expected pod"
                );
            }
            Ok(m) => {
                let yaml = serde_yaml::to_string(&m.pod).expect("yaml");
                check_file(&expected_pod, &yaml, bless, &mut failures);
                check_file(&notes_path, &notes(&m), bless, &mut failures);
                check_idempotent_and_patch(&stem, &case, &m);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Mutating the result again changes nothing; the JSON patch reproduces the mutation.
fn check_idempotent_and_patch(stem: &str, case: &Case, m: &Mutation) {
    let again = Case {
        pod: m.pod.clone(),
        ..clone_case(case)
    };
    let second = run(&again).unwrap_or_else(|e| panic!("{stem}: second mutation failed: {e}"));
    assert_eq!(second.pod, m.pod, "{stem}: not idempotent");
    assert!(second.applied.is_empty(), "{stem}: applied twice");
    let patch = json_patch(&case.pod, &m.pod);
    let mut doc = serde_json::to_value(&case.pod).expect("json");
    apply_patch(&mut doc, &patch).unwrap_or_else(|e| panic!("{stem}: patch: {e}"));
    assert_eq!(
        doc,
        serde_json::to_value(&m.pod).expect("json"),
        "{stem}: patch result differs"
    );
}

fn clone_case(c: &Case) -> Case {
    Case {
        pod: c.pod.clone(),
        namespace: c.namespace.clone(),
        instrumentations: c.instrumentations.clone(),
        collectors: c.collectors.clone(),
        owners: c.owners.clone(),
        cfg: c.cfg.clone(),
    }
}
