//! Validation of [`Values`]: every knob checked, the error naming the bad field by its
//! values.yaml path (`store.storage.size`, `instrumentation.sampler.argument`, ...).

use super::{InstallError, Values};
use serde_json::Value;

const SAMPLERS: &[&str] = &[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
];
const PROPAGATORS: &[&str] = &[
    "tracecontext",
    "baggage",
    "b3",
    "b3multi",
    "jaeger",
    "xray",
    "ottrace",
    "none",
];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];

impl Values {
    /// Checks every knob; the error names the first bad field by its values.yaml path.
    pub fn validate(&self) -> Result<(), InstallError> {
        let bad = |field: &str, problem: String| {
            Err(InstallError::Invalid {
                field: field.into(),
                problem,
            })
        };
        if !is_dns_label(self.namespace()) {
            return bad(
                "namespace",
                format!("{:?} is not a DNS-1123 label", self.namespace()),
            );
        }
        if self.image.repository.trim().is_empty() {
            return bad("image.repository", "must not be empty".into());
        }
        if !PULL_POLICIES.contains(&self.image.pull_policy.as_str()) {
            return bad(
                "image.pullPolicy",
                format!(
                    "{:?} is not one of {PULL_POLICIES:?}",
                    self.image.pull_policy
                ),
            );
        }
        if self.store.replicas > 1 {
            return bad(
                "store.replicas",
                format!("{} > 1: the store is a single node", self.store.replicas),
            );
        }
        if !is_quantity(&self.store.storage.size) {
            return bad(
                "store.storage.size",
                format!("{:?} is not a quantity like 10Gi", self.store.storage.size),
            );
        }
        if !is_duration(&self.store.retention) {
            return bad(
                "store.retention",
                format!(
                    "{:?} is not a duration like 7d or 12h",
                    self.store.retention
                ),
            );
        }
        for (field, r) in [
            ("operator.resources", &self.operator.resources),
            ("store.resources", &self.store.resources),
            ("collector.resources", &self.collector.resources),
            ("grafana.resources", &self.grafana.resources),
            ("prometheus.resources", &self.prometheus.resources),
        ] {
            check_resources(field, r)?;
        }
        if self.grafana.image.trim().is_empty() {
            return bad("grafana.image", "must not be empty".into());
        }
        if self.prometheus.image.trim().is_empty() {
            return bad("prometheus.image", "must not be empty".into());
        }
        if !is_duration(&self.prometheus.retention) {
            return bad(
                "prometheus.retention",
                format!(
                    "{:?} is not a duration like 15d or 12h",
                    self.prometheus.retention
                ),
            );
        }
        let inst = &self.instrumentation;
        if !SAMPLERS.contains(&inst.sampler.kind.as_str()) {
            return bad(
                "instrumentation.sampler.type",
                format!("{:?} is not one of {SAMPLERS:?}", inst.sampler.kind),
            );
        }
        if inst.sampler.kind.ends_with("traceidratio") {
            match inst.sampler.argument.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => {}
                _ => {
                    return bad(
                        "instrumentation.sampler.argument",
                        format!("{:?} is not a ratio in [0, 1]", inst.sampler.argument),
                    )
                }
            }
        }
        if let Some(p) = inst
            .propagators
            .iter()
            .find(|p| !PROPAGATORS.contains(&p.as_str()))
        {
            return bad(
                "instrumentation.propagators",
                format!("{p:?} is not one of {PROPAGATORS:?}"),
            );
        }
        let url = |e: &str| e.starts_with("http://") || e.starts_with("https://");
        if !inst.endpoint.is_empty() && !url(&inst.endpoint) {
            return bad(
                "instrumentation.endpoint",
                format!("{:?} is not an http(s) URL", inst.endpoint),
            );
        }
        for (field, sel) in [
            (
                "operator.webhook.namespaceSelector",
                &self.operator.webhook.namespace_selector,
            ),
            (
                "operator.webhook.objectSelector",
                &self.operator.webhook.object_selector,
            ),
        ] {
            for (i, e) in sel.match_expressions.iter().enumerate() {
                let ok = e.get("key").is_some_and(Value::is_string)
                    && e.get("operator")
                        .and_then(Value::as_str)
                        .is_some_and(|o| ["In", "NotIn", "Exists", "DoesNotExist"].contains(&o));
                if !ok {
                    return bad(
                        &format!("{field}.matchExpressions[{i}]"),
                        "needs a string `key` and `operator` In|NotIn|Exists|DoesNotExist".into(),
                    );
                }
            }
        }
        Ok(())
    }
}

fn check_resources(field: &str, r: &Value) -> Result<(), InstallError> {
    let bad = |f: String, problem: &str| {
        Err(InstallError::Invalid {
            field: f,
            problem: problem.into(),
        })
    };
    let Some(map) = r.as_object() else {
        return bad(field.into(), "must be a map with requests/limits");
    };
    for (k, v) in map {
        if k != "requests" && k != "limits" {
            return bad(
                format!("{field}.{k}"),
                "only requests and limits are allowed",
            );
        }
        let Some(inner) = v.as_object() else {
            return bad(format!("{field}.{k}"), "must be a map of quantities");
        };
        for (res, q) in inner {
            let text = match q {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            if !is_quantity(&text) {
                return bad(format!("{field}.{k}.{res}"), "is not a quantity");
            }
        }
    }
    Ok(())
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A Kubernetes quantity: a decimal number and an optional suffix.
fn is_quantity(s: &str) -> bool {
    let digits = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(digits);
    !num.is_empty()
        && num.parse::<f64>().is_ok()
        && [
            "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
        ]
        .contains(&suffix)
}

/// A duration as `osprey up --retention` takes it: number + unit, e.g. 7d, 12h, 30m.
fn is_duration(s: &str) -> bool {
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    !num.is_empty() && ["s", "m", "h", "d", "w"].contains(&unit)
}
