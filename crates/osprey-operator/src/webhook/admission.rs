//! One AdmissionReview (v1) for `/mutate-v1-pod`, in and out. A body that is not an
//! AdmissionReview with a request is HTTP 400. Pods in ignored namespaces, pods carrying no
//! `instrumentation.opentelemetry.io/inject-*` or `sidecar.opentelemetry.io/inject`
//! annotation (on the pod or its namespace) and anything but a CREATE are allowed unchanged
//! without further API calls. Otherwise the context is gathered and `inject::mutate` runs:
//! success is `allowed` with a base64 JSONPatch (none when the pod did not change); a failure
//! is `allowed` with a warning and the error as status (failurePolicy Ignore semantics) or,
//! in fail-closed mode, a denial. Failures and skips become Events on the pod's owner.

use super::context::{controller_of, gather, ClusterView, Owner};
use super::events::{WorkloadEvent, REASON_FAILED, REASON_SKIPPED};
use super::metrics::{Metrics, Outcome, RequestResult};
use super::WebhookConfig;
use crate::collector::sidecar;
use crate::inject;
use crate::inject::{annotations, Language};
use base64::Engine;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::Status;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The metrics label of sidecar injection.
pub const SIDECAR: &str = "sidecar";

/// The answer to one HTTP request.
#[derive(Debug)]
pub enum Reply {
    /// HTTP 200 with this AdmissionReview.
    Review(serde_json::Value),
    /// HTTP 400 with this message.
    BadRequest(String),
}

/// Handles AdmissionReviews.
pub struct Handler {
    pub cfg: WebhookConfig,
    pub view: Arc<dyn ClusterView>,
    pub metrics: Arc<Metrics>,
}

/// The pod/namespace fallback rule (facts §1.10) for one annotation.
pub fn effective(pod: Option<&str>, ns: Option<&str>) -> Option<String> {
    let (p, n) = (pod.unwrap_or("").trim(), ns.unwrap_or("").trim());
    let v = if n.is_empty() {
        p
    } else if p.is_empty() {
        n
    } else if !p.eq_ignore_ascii_case("true") {
        p
    } else if n.eq_ignore_ascii_case("false") {
        "true"
    } else {
        n
    };
    Some(v.to_string()).filter(|v| !v.is_empty())
}

/// What the pod (with its namespace as fallback) asks for: `(any annotation present,
/// languages whose effective value is not false)`; the sidecar counts as `sidecar`.
pub fn requested(pod: &Pod, ns: &Namespace) -> (bool, Vec<&'static str>) {
    let empty = BTreeMap::new();
    let pa = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    let na = ns.metadata.annotations.as_ref().unwrap_or(&empty);
    let keys = Language::ALL
        .into_iter()
        .map(|l| (annotations::inject(l), l.as_str()))
        .chain([(sidecar::INJECT_ANNOTATION.to_string(), SIDECAR)]);
    let mut present = false;
    let mut langs = Vec::new();
    for (key, label) in keys {
        let (p, n) = (
            pa.get(&key).map(String::as_str),
            na.get(&key).map(String::as_str),
        );
        present |= p.is_some() || n.is_some();
        if effective(p, n).is_some_and(|v| !v.eq_ignore_ascii_case("false")) {
            langs.push(label);
        }
    }
    (present, langs)
}

/// kube-core serializes `response.patch` as an array of numbers; the API server also reads
/// that, but the canonical form (Go's `[]byte`) is a base64 string, as upstream sends it.
fn base64_patch(mut review: serde_json::Value) -> serde_json::Value {
    let Some(patch) = review.get_mut("response").and_then(|r| r.get_mut("patch")) else {
        return review;
    };
    if let Some(items) = patch.as_array() {
        let bytes: Option<Vec<u8>> = items
            .iter()
            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect();
        if let Some(bytes) = bytes {
            *patch =
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
        }
    }
    review
}

/// The metrics label of an injected or skipped language.
fn label_of(l: &inject::Language) -> String {
    l.as_str().to_string()
}

impl Handler {
    /// Decodes, decides and encodes one AdmissionReview.
    pub async fn review(&self, body: &[u8]) -> Reply {
        let review: AdmissionReview<Pod> = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => {
                self.metrics.request(RequestResult::Invalid);
                return Reply::BadRequest(format!("cannot decode AdmissionReview: {e}"));
            }
        };
        let req: AdmissionRequest<Pod> = match review.try_into() {
            Ok(r) => r,
            Err(e) => {
                self.metrics.request(RequestResult::Invalid);
                return Reply::BadRequest(format!("{e}: the AdmissionReview has no request"));
            }
        };
        let (resp, result) = self.decide(&req).await;
        self.metrics.request(result);
        match serde_json::to_value(resp.into_review()) {
            Ok(v) => Reply::Review(base64_patch(v)),
            Err(e) => Reply::BadRequest(format!("cannot encode the response: {e}")),
        }
    }

    async fn decide(&self, req: &AdmissionRequest<Pod>) -> (AdmissionResponse, RequestResult) {
        let resp = AdmissionResponse::from(req);
        let Some(pod) = req
            .object
            .as_ref()
            .filter(|_| req.operation == Operation::Create)
        else {
            return (resp, RequestResult::Unchanged);
        };
        let ns = req
            .namespace
            .clone()
            .or_else(|| pod.metadata.namespace.clone())
            .unwrap_or_else(|| "default".to_string());
        if self.cfg.ignored_namespaces.contains(&ns) {
            return (resp, RequestResult::Unchanged);
        }
        let direct = controller_of(pod.metadata.owner_references.as_deref());
        let namespace = match self.view.namespace(&ns).await {
            Ok(n) => n,
            Err(e) => {
                // The namespace's annotations are unknown: count what the pod itself asks for.
                let (_, langs) = requested(pod, &Namespace::default());
                return self.failed(resp, &ns, direct.as_ref(), &langs, &e.to_string());
            }
        };
        let (present, langs) = requested(pod, &namespace);
        if !present {
            return (resp, RequestResult::Unchanged);
        }
        for l in &langs {
            self.metrics.mutation(Outcome::Attempted, l);
        }
        let data = match gather(self.view.as_ref(), pod, namespace, langs.contains(&SIDECAR)).await
        {
            Ok(d) => d,
            Err(e) => return self.failed(resp, &ns, direct.as_ref(), &langs, &e.to_string()),
        };
        let owner = data.owners.last().cloned();
        let mutation = match inject::mutate(pod, &data.pod_context(), &self.cfg.inject) {
            Ok(m) => m,
            Err(e) => return self.failed(resp, &ns, owner.as_ref(), &langs, &e.to_string()),
        };
        for a in &mutation.applied {
            self.metrics
                .mutation(Outcome::Applied, &label_of(&a.language));
        }
        let mut resp = resp;
        if !mutation.skipped.is_empty() {
            let reasons: Vec<String> = mutation.skipped.iter().map(|s| s.reason.clone()).collect();
            for s in &mutation.skipped {
                let lang = s
                    .language
                    .as_ref()
                    .map(label_of)
                    .unwrap_or_else(|| "unknown".into());
                self.metrics.mutation(Outcome::Skipped, &lang);
            }
            self.event(&ns, owner.as_ref(), REASON_SKIPPED, &reasons.join("; "));
            resp.warnings = Some(reasons.iter().map(|r| format!("osprey: {r}")).collect());
        }
        let patch = inject::json_patch(pod, &mutation.pod);
        if patch.as_array().is_none_or(|ops| ops.is_empty()) {
            return (resp, RequestResult::Unchanged);
        }
        let patched = serde_json::from_value(patch)
            .map_err(|e| e.to_string())
            .and_then(|p| resp.clone().with_patch(p).map_err(|e| e.to_string()));
        match patched {
            Ok(r) => (r, RequestResult::Patched),
            Err(e) => self.failed(
                resp,
                &ns,
                owner.as_ref(),
                &langs,
                &format!("building the patch: {e}"),
            ),
        }
    }

    fn event(&self, ns: &str, owner: Option<&Owner>, reason: &'static str, note: &str) {
        match owner {
            Some(o) => self.view.record(WorkloadEvent::new(ns, o, reason, note)),
            None => tracing::warn!(namespace = %ns, reason, note, "pod without owner; no event"),
        }
    }

    /// Fail-open (allowed, with a warning) or fail-closed (denied).
    fn failed(
        &self,
        resp: AdmissionResponse,
        ns: &str,
        owner: Option<&Owner>,
        langs: &[&str],
        error: &str,
    ) -> (AdmissionResponse, RequestResult) {
        for l in langs {
            self.metrics.mutation(Outcome::Failed, l);
        }
        let message = format!("osprey: auto-instrumentation failed: {error}");
        tracing::warn!(namespace = %ns, %error, fail_closed = self.cfg.fail_closed, "pod mutation failed");
        self.event(ns, owner, REASON_FAILED, error);
        if self.cfg.fail_closed {
            return (resp.deny(message), RequestResult::Denied);
        }
        let mut resp = resp;
        resp.result = Status::failure(&message, "InternalError").with_code(500);
        resp.warnings = Some(vec![message]);
        (resp, RequestResult::Errored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_fallback_rule() {
        assert_eq!(effective(None, None), None);
        assert_eq!(effective(Some("true"), None).as_deref(), Some("true"));
        assert_eq!(effective(None, Some("inst")).as_deref(), Some("inst"));
        assert_eq!(
            effective(Some("false"), Some("true")).as_deref(),
            Some("false")
        );
        assert_eq!(
            effective(Some("mine"), Some("theirs")).as_deref(),
            Some("mine")
        );
        assert_eq!(
            effective(Some("TRUE"), Some("false")).as_deref(),
            Some("true")
        );
        assert_eq!(
            effective(Some("true"), Some("ns/inst")).as_deref(),
            Some("ns/inst")
        );
        assert_eq!(effective(Some(""), Some("")), None);
    }

    #[test]
    fn requested_languages() {
        let pod: Pod = serde_json::from_value(serde_json::json!({"metadata": {"annotations": {
            "instrumentation.opentelemetry.io/inject-python": "true",
            "instrumentation.opentelemetry.io/inject-java": "false",
            "sidecar.opentelemetry.io/inject": "false"}}}))
        .unwrap();
        let ns: Namespace = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "shop", "annotations": {
            "instrumentation.opentelemetry.io/inject-java": "true",
            "instrumentation.opentelemetry.io/inject-nodejs": "shop/node"}}}),
        )
        .unwrap();
        assert_eq!(requested(&pod, &ns), (true, vec!["nodejs", "python"]));
        assert_eq!(
            requested(&Pod::default(), &Namespace::default()),
            (false, vec![])
        );
        let only_false: Pod =
            serde_json::from_value(serde_json::json!({"metadata": {"annotations": {
            "sidecar.opentelemetry.io/inject": "false"}}}))
            .unwrap();
        assert_eq!(
            requested(&only_false, &Namespace::default()),
            (true, vec![])
        );
    }
}
