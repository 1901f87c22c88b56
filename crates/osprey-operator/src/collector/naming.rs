//! Object and port names as the upstream operator builds them: a template filled with values,
//! shortened to 63 characters by cutting the values (first value first, so fixed suffixes such as
//! `-collector` survive), trimmed of non-alphanumerics at both ends, then made DNS-safe.

/// Longest object name / label value.
pub const MAX_NAME: usize = 63;

/// Longest port name (IANA service name).
pub const MAX_PORT_NAME: usize = 15;

/// Fills each `{}` of `template` with the next value. When the result is longer than `max`
/// bytes, the values are shortened — the first one first, dropped entirely if needed — until it
/// fits; if the template alone is too long the result is hard-capped. Non-alphanumerics are then
/// trimmed from both ends.
pub fn truncate(template: &str, max: usize, values: &[&str]) -> String {
    let mut result = fill(template, values);
    if result.len() > max {
        let mut excess = result.len() - max;
        let mut shortened: Vec<&str> = Vec::with_capacity(values.len());
        for value in values {
            if excess == 0 {
                shortened.push(value);
            } else if value.len() > excess {
                let keep = floor_boundary(value, value.len() - excess);
                excess = excess.saturating_sub(value.len() - keep);
                shortened.push(&value[..keep]);
            } else {
                excess -= value.len();
                shortened.push("");
            }
        }
        result = fill(template, &shortened);
    }
    if result.len() > max {
        return result[..floor_boundary(&result, max)].to_string();
    }
    result
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

fn fill(template: &str, values: &[&str]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|v| v.len()).sum::<usize>());
    let mut parts = template.split("{}");
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        out.push_str(values.get(i).copied().unwrap_or(""));
        out.push_str(part);
    }
    out
}

/// The largest char boundary of `s` not above `at`.
fn floor_boundary(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Lowercases and replaces every character outside `[a-z0-9]` with `-` (with `a` at the first
/// and last position), keeping the length.
pub fn dns_name(name: &str) -> String {
    let lower = name.to_lowercase();
    let count = lower.chars().count();
    lower
        .chars()
        .enumerate()
        .map(|(i, c)| match c {
            'a'..='z' | '0'..='9' => c,
            _ if i == 0 || i + 1 == count => 'a',
            _ => '-',
        })
        .collect()
}

/// `<name>-collector`: the workload, base Service, ServiceAccount and PodDisruptionBudget.
pub fn collector_name(cr_name: &str) -> String {
    dns_name(&truncate("{}-collector", MAX_NAME, &[cr_name]))
}

/// `<name>-collector-<first 8 hex chars of the config hash>`.
pub fn config_map_name(cr_name: &str, config_hash: &str) -> String {
    let short = &config_hash[..floor_boundary(config_hash, 8)];
    dns_name(&truncate("{}-collector-{}", MAX_NAME, &[cr_name, short]))
}

/// `<name>-collector-headless`.
pub fn headless_service_name(cr_name: &str) -> String {
    dns_name(&truncate(
        "{}-headless",
        MAX_NAME,
        &[&collector_name(cr_name)],
    ))
}

/// `<name>-collector-monitoring`.
pub fn monitoring_service_name(cr_name: &str) -> String {
    dns_name(&truncate(
        "{}-monitoring",
        MAX_NAME,
        &[&collector_name(cr_name)],
    ))
}

/// `<name>-collector-extension`.
pub fn extension_service_name(cr_name: &str) -> String {
    dns_name(&truncate(
        "{}-extension",
        MAX_NAME,
        &[&collector_name(cr_name)],
    ))
}

/// `configmap-<name>`: the volume of a ConfigMap listed in `spec.configmaps`.
pub fn extra_config_map_volume(config_map: &str) -> String {
    dns_name(&truncate("configmap-{}", MAX_NAME, &[config_map]))
}

/// `<namespace>.<name>` (the namespace is shortened first): the `app.kubernetes.io/instance` label.
pub fn instance_label(namespace: &str, name: &str) -> String {
    truncate("{}.{}", MAX_NAME, &[namespace, name])
}

/// The port name for a component (`otlp/2-grpc` → `otlp-2-grpc`); `port-<n>` when the raw name is
/// longer than 15 characters or the cleaned name is not a valid port name.
pub fn port_name(raw: &str, port: i32) -> String {
    if raw.len() > MAX_PORT_NAME {
        return format!("port-{port}");
    }
    let candidate = raw.replace(['/', '_'], "-");
    if is_valid_port_name(&candidate) {
        candidate
    } else {
        format!("port-{port}")
    }
}

/// Kubernetes' port-name rule: 1-15 of `[a-z0-9-]`, at least one letter, no leading, trailing or
/// doubled `-`.
pub fn is_valid_port_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PORT_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.chars().any(|c| c.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_unchanged() {
        assert_eq!(collector_name("tobs"), "tobs-collector");
        assert_eq!(headless_service_name("tobs"), "tobs-collector-headless");
        assert_eq!(monitoring_service_name("tobs"), "tobs-collector-monitoring");
        assert_eq!(extension_service_name("tobs"), "tobs-collector-extension");
        assert_eq!(
            config_map_name("tobs", "0123456789abcdef"),
            "tobs-collector-01234567"
        );
        assert_eq!(instance_label("default", "tobs"), "default.tobs");
    }

    #[test]
    fn long_names_keep_the_suffix_and_fit_63() {
        let long = "a".repeat(70);
        let name = collector_name(&long);
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("-collector"));
        let cm = config_map_name(&long, "deadbeefcafe");
        assert_eq!(cm.len(), 63);
        assert!(cm.ends_with("-collector-deadbeef"));
        // Upstream shortens `<name>-collector` to make room, leaving a doubled dash.
        let headless = headless_service_name(&long);
        assert_eq!(headless.len(), 63);
        assert_eq!(headless, format!("{}--headless", "a".repeat(53)));
        // The instance label shortens the namespace first.
        let inst = instance_label(&"n".repeat(40), &"m".repeat(40));
        assert_eq!(inst, format!("{}.{}", "n".repeat(22), "m".repeat(40)));
    }

    #[test]
    fn truncation_trims_dangling_separators() {
        let name = format!("{}-b", "a".repeat(52));
        // 52 a + "-b" + "-collector" = 64: one byte cut from the value → "aaa…-" + "-collector".
        assert_eq!(
            collector_name(&name),
            format!("{}--collector", "a".repeat(52))
        );
        assert_eq!(truncate("{}", 4, &["abc-efgh"]), "abc");
    }

    #[test]
    fn dns_names_are_sanitised() {
        assert_eq!(dns_name("My_Collector.x"), "my-collector-x");
        assert_eq!(dns_name("_x_"), "axa");
    }

    #[test]
    fn port_names_follow_upstream() {
        assert_eq!(port_name("otlp-grpc", 4317), "otlp-grpc");
        assert_eq!(port_name("jaeger-thrift_http", 14268), "port-14268");
        assert_eq!(port_name("jaeger-grpc", 14250), "jaeger-grpc");
        assert_eq!(port_name("otlp/2-grpc", 5317), "otlp-2-grpc");
        assert_eq!(port_name("splunk_hec", 8088), "splunk-hec");
        assert_eq!(port_name("Bad.Name", 1), "port-1");
        assert_eq!(port_name("123", 123), "port-123");
    }
}
