//! The webhook's own counters, served at `/metrics` in the Prometheus text format:
//! admission requests by result, and pod mutations attempted, applied, skipped and failed by
//! language (`python`, `java`, ..., `sidecar` for collector sidecars, `unknown`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// What happened to one language's injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Attempted,
    Applied,
    Skipped,
    Failed,
}

impl Outcome {
    fn metric(self) -> &'static str {
        match self {
            Outcome::Attempted => "osprey_webhook_mutations_attempted_total",
            Outcome::Applied => "osprey_webhook_mutations_applied_total",
            Outcome::Skipped => "osprey_webhook_mutations_skipped_total",
            Outcome::Failed => "osprey_webhook_mutations_failed_total",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Outcome::Attempted => "Pod injections requested by annotations, by language.",
            Outcome::Applied => "Pod injections applied, by language.",
            Outcome::Skipped => "Pod injections skipped with a reason, by language.",
            Outcome::Failed => "Pod injections that failed (pod admitted unchanged unless fail-closed), by language.",
        }
    }

    const ALL: [Outcome; 4] = [
        Outcome::Attempted,
        Outcome::Applied,
        Outcome::Skipped,
        Outcome::Failed,
    ];
}

/// How an admission request was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RequestResult {
    /// Allowed with a patch.
    Patched,
    /// Allowed unchanged (nothing to inject, ignored namespace, not a pod CREATE).
    Unchanged,
    /// Allowed unchanged although something failed (fail-open).
    Errored,
    /// Denied (fail-closed).
    Denied,
    /// The body was not an AdmissionReview (HTTP 400).
    Invalid,
}

impl RequestResult {
    fn label(self) -> &'static str {
        match self {
            RequestResult::Patched => "patched",
            RequestResult::Unchanged => "unchanged",
            RequestResult::Errored => "errored",
            RequestResult::Denied => "denied",
            RequestResult::Invalid => "invalid",
        }
    }
}

/// The counters (cheap to update; one lock).
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    mutations: BTreeMap<(Outcome, String), u64>,
    requests: BTreeMap<RequestResult, u64>,
}

impl Metrics {
    pub fn mutation(&self, outcome: Outcome, language: &str) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *c.mutations
            .entry((outcome, language.to_string()))
            .or_default() += 1;
    }

    pub fn request(&self, result: RequestResult) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *c.requests.entry(result).or_default() += 1;
    }

    /// The value of one mutation counter.
    pub fn get(&self, outcome: Outcome, language: &str) -> u64 {
        let c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.mutations
            .get(&(outcome, language.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// The value of one request counter.
    pub fn requests(&self, result: RequestResult) -> u64 {
        let c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.requests.get(&result).copied().unwrap_or(0)
    }

    /// Prometheus text exposition format (0.0.4).
    pub fn render(&self) -> String {
        let c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let name = "osprey_webhook_requests_total";
        let _ = writeln!(
            out,
            "# HELP {name} Pod admission requests, by how they were answered."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for (r, v) in &c.requests {
            let _ = writeln!(out, "{name}{{result=\"{}\"}} {v}", r.label());
        }
        for outcome in Outcome::ALL {
            let name = outcome.metric();
            let _ = writeln!(out, "# HELP {name} {}", outcome.help());
            let _ = writeln!(out, "# TYPE {name} counter");
            for ((o, lang), v) in &c.mutations {
                if *o == outcome {
                    let _ = writeln!(out, "{name}{{language=\"{}\"}} {v}", escape(lang));
                }
            }
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.mutation(Outcome::Attempted, "python");
        m.mutation(Outcome::Attempted, "python");
        m.mutation(Outcome::Failed, "java");
        m.request(RequestResult::Patched);
        let text = m.render();
        assert!(text.contains("# TYPE osprey_webhook_mutations_attempted_total counter\nosprey_webhook_mutations_attempted_total{language=\"python\"} 2\n"), "{text}");
        assert!(text.contains("osprey_webhook_mutations_failed_total{language=\"java\"} 1\n"));
        assert!(text.contains("osprey_webhook_requests_total{result=\"patched\"} 1\n"));
        assert!(text.contains("# TYPE osprey_webhook_mutations_skipped_total counter\n"));
        assert_eq!(m.get(Outcome::Attempted, "python"), 2);
        assert_eq!(m.get(Outcome::Applied, "python"), 0);
        assert_eq!(escape("a\"b"), "a\\\"b");
    }
}
