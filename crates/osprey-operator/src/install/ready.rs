//! Whether an installed object is ready, judged from the object as the API server returns it:
//! CRDs established, Deployments and StatefulSets rolled out and available, Namespaces active.
//! `osprey install` waits on it and `osprey status` reports it.

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not yet, and why (e.g. `0/1 available`).
    Pending(String),
}

fn int(v: &Value, path: &[&str]) -> Option<i64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_i64()
}

fn condition_true(obj: &Value, kind: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

/// The object's readiness; kinds without a notion of readiness are ready once they exist.
pub fn readiness(obj: &Value) -> Readiness {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let rollout_seen = || {
        let generation = int(obj, &["metadata", "generation"]).unwrap_or(0);
        int(obj, &["status", "observedGeneration"]).unwrap_or(0) >= generation
    };
    let want = int(obj, &["spec", "replicas"]).unwrap_or(1);
    match kind {
        "CustomResourceDefinition" if !condition_true(obj, "Established") => {
            Readiness::Pending("not established".into())
        }
        "Namespace"
            if obj.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating") =>
        {
            Readiness::Pending("terminating".into())
        }
        "Deployment" => {
            let available = int(obj, &["status", "availableReplicas"]).unwrap_or(0);
            let updated = int(obj, &["status", "updatedReplicas"]).unwrap_or(0);
            if want > 0 && !rollout_seen() {
                Readiness::Pending("rollout not observed yet".into())
            } else if available >= want && updated >= want {
                Readiness::Ready
            } else {
                Readiness::Pending(format!("{available}/{want} available"))
            }
        }
        "StatefulSet" => {
            let ready = int(obj, &["status", "readyReplicas"]).unwrap_or(0);
            if want > 0 && !rollout_seen() {
                Readiness::Pending("rollout not observed yet".into())
            } else if ready >= want {
                Readiness::Ready
            } else {
                Readiness::Pending(format!("{ready}/{want} ready"))
            }
        }
        _ => Readiness::Ready,
    }
}

/// Whether `osprey install` waits for this kind to become ready.
pub fn awaited(kind: &str) -> bool {
    matches!(kind, "Deployment" | "StatefulSet")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crd_needs_established() {
        let mut crd = json!({"kind": "CustomResourceDefinition", "status": {"conditions": [
            {"type": "NamesAccepted", "status": "True"}]}});
        assert_eq!(
            readiness(&crd),
            Readiness::Pending("not established".into())
        );
        crd["status"]["conditions"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "Established", "status": "True"}));
        assert_eq!(readiness(&crd), Readiness::Ready);
    }

    #[test]
    fn deployment_needs_available_replicas_of_the_current_generation() {
        let mut d = json!({"kind": "Deployment", "metadata": {"generation": 2},
            "spec": {"replicas": 2}, "status": {"observedGeneration": 1,
            "availableReplicas": 2, "updatedReplicas": 2}});
        assert_eq!(
            readiness(&d),
            Readiness::Pending("rollout not observed yet".into())
        );
        d["status"]["observedGeneration"] = json!(2);
        d["status"]["availableReplicas"] = json!(1);
        assert_eq!(readiness(&d), Readiness::Pending("1/2 available".into()));
        d["status"]["availableReplicas"] = json!(2);
        assert_eq!(readiness(&d), Readiness::Ready);
    }

    #[test]
    fn statefulset_and_others() {
        let s = json!({"kind": "StatefulSet", "metadata": {"generation": 1},
            "spec": {"replicas": 1}, "status": {"observedGeneration": 1}});
        assert_eq!(readiness(&s), Readiness::Pending("0/1 ready".into()));
        let scaled_down = json!({"kind": "StatefulSet", "spec": {"replicas": 0}});
        assert_eq!(readiness(&scaled_down), Readiness::Ready);
        assert_eq!(readiness(&json!({"kind": "Service"})), Readiness::Ready);
        let ns = json!({"kind": "Namespace", "status": {"phase": "Terminating"}});
        assert_eq!(readiness(&ns), Readiness::Pending("terminating".into()));
    }
}
