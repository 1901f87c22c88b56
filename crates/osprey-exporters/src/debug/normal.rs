//! `verbosity: normal`: about one line per span, data point or log record, under one header
//! line per resource and scope (as the Collector's debug exporter prints them).

use super::text::{as_string, double, id, pairs};
use osprey_model::otlp::common::v1::{InstrumentationScope, KeyValue};
use osprey_model::otlp::metrics::v1::{metric::Data, number_data_point, Metric};
use osprey_model::TraceRequest;
use osprey_pipeline::{LogsRequest, MetricsRequest};
use std::fmt::Write;

fn attrs_suffix(attrs: &[KeyValue]) -> String {
    let p = pairs(attrs);
    if p.is_empty() {
        String::new()
    } else {
        format!(" {}", p.join(" "))
    }
}

fn resource_line(kind: &str, i: usize, schema_url: &str, attrs: &[KeyValue]) -> String {
    let schema = if schema_url.is_empty() {
        String::new()
    } else {
        format!(" [{schema_url}]")
    };
    format!("{kind} #{i}{schema}{}\n", attrs_suffix(attrs))
}

fn scope_line(
    kind: &str,
    j: usize,
    scope: Option<&InstrumentationScope>,
    schema_url: &str,
) -> String {
    let (name, version, attrs) = scope.map_or(("", "", &[][..]), |s| {
        (&s.name[..], &s.version[..], &s.attributes[..])
    });
    let mut details = name.to_string();
    if !version.is_empty() {
        details.push('@');
        details.push_str(version);
    }
    if !schema_url.is_empty() {
        if !details.is_empty() {
            details.push(' ');
        }
        let _ = write!(details, "[{schema_url}]");
    }
    if !details.is_empty() {
        details.insert(0, ' ');
    }
    format!("{kind} #{j}{details}{}\n", attrs_suffix(attrs))
}

/// `name trace_id span_id k=v ...` per span.
pub fn traces(r: &TraceRequest) -> String {
    let mut out = String::new();
    for (i, rs) in r.resource_spans.iter().enumerate() {
        let attrs = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes);
        out.push_str(&resource_line("ResourceTraces", i, &rs.schema_url, attrs));
        for (j, ss) in rs.scope_spans.iter().enumerate() {
            out.push_str(&scope_line(
                "ScopeTraces",
                j,
                ss.scope.as_ref(),
                &ss.schema_url,
            ));
            for span in &ss.spans {
                let _ = writeln!(
                    out,
                    "{} {} {}{}",
                    span.name,
                    id(&span.trace_id),
                    id(&span.span_id),
                    attrs_suffix(&span.attributes)
                );
            }
        }
    }
    out
}

/// `body k=v ...` per log record.
pub fn logs(r: &LogsRequest) -> String {
    let mut out = String::new();
    for (i, rl) in r.resource_logs.iter().enumerate() {
        let attrs = rl.resource.as_ref().map_or(&[][..], |r| &r.attributes);
        out.push_str(&resource_line("ResourceLog", i, &rl.schema_url, attrs));
        for (j, sl) in rl.scope_logs.iter().enumerate() {
            out.push_str(&scope_line(
                "ScopeLog",
                j,
                sl.scope.as_ref(),
                &sl.schema_url,
            ));
            for rec in &sl.log_records {
                let _ = writeln!(
                    out,
                    "{} {}",
                    as_string(rec.body.as_ref()),
                    pairs(&rec.attributes).join(" ")
                );
            }
        }
    }
    out
}

fn point_line(out: &mut String, m: &Metric, attrs: &[KeyValue], value: &str) {
    let _ = writeln!(out, "{}{{{}}} {value}", m.name, pairs(attrs).join(","));
}

fn opt(label: &str, v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!(" {label}={}", double(v)))
}

/// `name{k=v,...} value` per data point.
pub fn metrics(r: &MetricsRequest) -> String {
    let mut out = String::new();
    for (i, rm) in r.resource_metrics.iter().enumerate() {
        let attrs = rm.resource.as_ref().map_or(&[][..], |r| &r.attributes);
        out.push_str(&resource_line("ResourceMetrics", i, &rm.schema_url, attrs));
        for (j, sm) in rm.scope_metrics.iter().enumerate() {
            out.push_str(&scope_line(
                "ScopeMetrics",
                j,
                sm.scope.as_ref(),
                &sm.schema_url,
            ));
            for m in &sm.metrics {
                match &m.data {
                    Some(Data::Gauge(g)) => number_points(&mut out, m, &g.data_points),
                    Some(Data::Sum(s)) => number_points(&mut out, m, &s.data_points),
                    Some(Data::Histogram(h)) => {
                        for p in &h.data_points {
                            let mut v = format!("count={}", p.count);
                            v += &opt("sum", p.sum);
                            v += &opt("min", p.min);
                            v += &opt("max", p.max);
                            for (k, c) in p.bucket_counts.iter().enumerate() {
                                match p.explicit_bounds.get(k) {
                                    Some(b) => {
                                        let _ = write!(v, " le{}={c}", double(*b));
                                    }
                                    None => {
                                        let _ = write!(v, " {c}");
                                    }
                                }
                            }
                            point_line(&mut out, m, &p.attributes, &v);
                        }
                    }
                    Some(Data::ExponentialHistogram(h)) => {
                        for p in &h.data_points {
                            let mut v = format!("count={}", p.count);
                            v += &opt("sum", p.sum);
                            v += &opt("min", p.min);
                            v += &opt("max", p.max);
                            let base = 2f64.powf(2f64.powf(-f64::from(p.scale)));
                            for b in [&p.negative, &p.positive].into_iter().flatten() {
                                for (k, c) in b.bucket_counts.iter().enumerate() {
                                    let lower = base.powf(f64::from(b.offset) + k as f64);
                                    let _ = write!(v, " le{}={c}", double(lower));
                                }
                            }
                            if p.zero_count > 0 {
                                let _ = write!(
                                    v,
                                    " zero_count{}={}",
                                    double(p.zero_threshold),
                                    p.zero_count
                                );
                            }
                            point_line(&mut out, m, &p.attributes, &v);
                        }
                    }
                    Some(Data::Summary(s)) => {
                        for p in &s.data_points {
                            let mut v = format!("count={} sum={:.6}", p.count, p.sum);
                            for q in &p.quantile_values {
                                let _ = write!(v, " q{}={}", double(q.quantile), double(q.value));
                            }
                            point_line(&mut out, m, &p.attributes, &v);
                        }
                    }
                    None => {}
                }
            }
        }
    }
    out
}

fn number_points(
    out: &mut String,
    m: &Metric,
    points: &[osprey_model::otlp::metrics::v1::NumberDataPoint],
) {
    for p in points {
        let v = match p.value {
            Some(number_data_point::Value::AsInt(i)) => i.to_string(),
            Some(number_data_point::Value::AsDouble(d)) => double(d),
            None => String::new(),
        };
        point_line(out, m, &p.attributes, &v);
    }
}
