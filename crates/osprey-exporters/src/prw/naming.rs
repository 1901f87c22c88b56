//! OTLP -> Prometheus names, as the Collector's remote-write translator builds them with
//! `prometheus/otlptranslator` under the `UnderscoreEscapingWithSuffixes` strategy (or
//! `...WithoutSuffixes` when `add_metric_suffixes: false`): metric names are split into
//! `[a-zA-Z0-9:]` tokens and joined with `_`, the unit (`ms` -> `milliseconds`, `By/s` ->
//! `bytes_per_second`) and `total` (monotonic sums) / `ratio` (gauges of unit `1`) are
//! appended; label names get every other character replaced by `_` and a `key_` prefix when
//! they start with a digit (`key` before a single leading `_`).

/// The OTLP metric kinds that naming depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    MonotonicCounter,
    NonMonotonicCounter,
    Histogram,
    ExponentialHistogram,
    Summary,
}

fn unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

fn is_metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// The main and `per_` unit suffixes of an OTLP unit (`By/s` -> (`bytes`, `per_second`));
/// units in braces (`{request}`) give none.
fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main = parts.next().unwrap_or("").trim();
    let main = if main.is_empty() || main.contains(['{', '}']) {
        String::new()
    } else {
        unit_word(main).to_string()
    };
    let per = match parts.next() {
        Some(p) if !p.is_empty() => {
            let p = p.trim();
            if p.is_empty() || p.contains(['{', '}']) {
                String::new()
            } else {
                let w = per_unit_word(p);
                if w.is_empty() {
                    String::new()
                } else {
                    format!("per_{w}")
                }
            }
        }
        _ => String::new(),
    };
    (main, per)
}

/// Replaces invalid characters by `_`, collapses runs of `_` and drops a leading `_`.
fn clean_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if is_metric_char(c) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    out.strip_prefix('_').map(str::to_string).unwrap_or(out)
}

/// The Prometheus unit of an OTLP unit, for metric metadata (`ms` -> `milliseconds`).
pub fn prom_unit(unit: &str) -> String {
    let (main, per) = unit_suffixes(unit);
    let (main, per) = (clean_unit(&main), clean_unit(&per));
    let u = match (main.is_empty(), per.is_empty()) {
        (false, false) => format!("{main}_{per}"),
        (false, true) => main,
        _ => per,
    };
    u.trim_matches('_').to_string()
}

/// Builds Prometheus metric names.
#[derive(Debug, Clone, Default)]
pub struct MetricNamer {
    pub namespace: String,
    pub with_suffixes: bool,
}

impl MetricNamer {
    /// The Prometheus name of a metric, or `None` when nothing valid is left of it.
    pub fn build(&self, name: &str, unit: &str, kind: MetricKind) -> Option<String> {
        let built = if self.with_suffixes {
            self.normalized(name, unit, kind)
        } else {
            self.simple(name)
        };
        (!built.is_empty() && built.chars().any(|c| c != '_')).then_some(built)
    }

    fn normalized(&self, name: &str, unit: &str, kind: MetricKind) -> String {
        let mut tokens: Vec<String> = name
            .split(|c: char| !is_metric_char(c))
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        let (main, per) = unit_suffixes(unit);
        let mut main = clean_unit(&main);
        let mut per = clean_unit(&per);
        if tokens.contains(&main) {
            main.clear();
        }
        if per == "per_" {
            per.clear();
        } else {
            per = per.trim_end_matches('_').to_string();
            if tokens.contains(&per) {
                per.clear();
            }
        }
        if !per.is_empty() {
            main = main.trim_end_matches('_').to_string();
        }
        if !main.is_empty() {
            tokens.push(main);
        }
        if !per.is_empty() {
            tokens.push(per);
        }
        if kind == MetricKind::MonotonicCounter {
            tokens.retain(|t| t != "total");
            tokens.push("total".into());
        }
        if unit == "1" && kind == MetricKind::Gauge {
            tokens.retain(|t| t != "ratio");
            tokens.push("ratio".into());
        }
        if !self.namespace.is_empty() {
            tokens.insert(0, self.namespace.clone());
        }
        let joined = tokens.join("_");
        if joined.starts_with(|c: char| c.is_ascii_digit()) {
            format!("_{joined}")
        } else {
            joined
        }
    }

    fn simple(&self, name: &str) -> String {
        let clean = |s: &str| {
            s.split(|c: char| !(is_metric_char(c) || c == '_'))
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join("_")
        };
        let metric = clean(name);
        if !self.namespace.is_empty() {
            return format!("{}_{metric}", clean(&self.namespace));
        }
        if metric.starts_with(|c: char| c.is_ascii_digit()) {
            format!("_{metric}")
        } else {
            metric
        }
    }
}

/// The Prometheus label name of an attribute key.
pub fn label_name(key: &str) -> String {
    if key.is_empty() {
        return String::new();
    }
    let label: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if label.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{label}")
    } else if label.starts_with('_') && !label.starts_with("__") {
        format!("key{label}")
    } else {
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suffixed(name: &str, unit: &str, kind: MetricKind) -> String {
        MetricNamer {
            namespace: String::new(),
            with_suffixes: true,
        }
        .build(name, unit, kind)
        .unwrap()
    }

    #[test]
    fn names_follow_otlptranslator() {
        use MetricKind::*;
        assert_eq!(
            suffixed("traces.span.metrics.calls", "", MonotonicCounter),
            "traces_span_metrics_calls_total"
        );
        assert_eq!(
            suffixed("traces.span.metrics.duration", "ms", Histogram),
            "traces_span_metrics_duration_milliseconds"
        );
        assert_eq!(
            suffixed("http.server.duration", "s", Histogram),
            "http_server_duration_seconds"
        );
        assert_eq!(
            suffixed("requests.count", "1", MonotonicCounter),
            "requests_count_total"
        );
        assert_eq!(suffixed("memory.usage", "By", Gauge), "memory_usage_bytes");
        assert_eq!(
            suffixed("cpu.utilization", "1", Gauge),
            "cpu_utilization_ratio"
        );
        assert_eq!(suffixed("net.io", "By/s", Gauge), "net_io_bytes_per_second");
        assert_eq!(
            suffixed("queue.size", "{item}", NonMonotonicCounter),
            "queue_size"
        );
        assert_eq!(
            suffixed("total.requests", "", MonotonicCounter),
            "requests_total"
        );
        assert_eq!(
            suffixed("latency_seconds", "s", Histogram),
            "latency_seconds"
        );
        assert_eq!(suffixed("a__b", "", Gauge), "a_b");
        assert_eq!(suffixed("2xx.count", "", Gauge), "_2xx_count");
        let ns = MetricNamer {
            namespace: "osprey".into(),
            with_suffixes: true,
        };
        assert_eq!(
            ns.build("calls", "", MonotonicCounter).unwrap(),
            "osprey_calls_total"
        );
        let plain = MetricNamer {
            namespace: String::new(),
            with_suffixes: false,
        };
        assert_eq!(
            plain
                .build("traces.span.metrics.calls", "", MonotonicCounter)
                .unwrap(),
            "traces_span_metrics_calls"
        );
        assert_eq!(plain.build("a__b", "ms", Gauge).unwrap(), "a__b");
        assert_eq!(plain.build("...", "", Gauge), None);
    }

    #[test]
    fn labels_and_units() {
        assert_eq!(label_name("service.name"), "service_name");
        assert_eq!(label_name("http.status_code"), "http_status_code");
        assert_eq!(label_name("123abc"), "key_123abc");
        assert_eq!(label_name("_private"), "key_private");
        assert_eq!(label_name("__reserved__"), "__reserved__");
        assert_eq!(label_name("ünïcode"), "key_n_code");
        assert_eq!(prom_unit("ms"), "milliseconds");
        assert_eq!(prom_unit("By/s"), "bytes_per_second");
        assert_eq!(prom_unit("1"), "");
        assert_eq!(prom_unit("{call}"), "");
    }
}
