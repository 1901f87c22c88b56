//! `verbosity: detailed`: every field of every record, in the layout of the Collector's
//! debug exporter (`ResourceSpans #0`, `Resource attributes:`, `     -> key: Str(value)`).

use super::text::{id, severity, span_kind, status_code, temporality, timestamp, typed};
use osprey_model::otlp::common::v1::{InstrumentationScope, KeyValue};
use osprey_model::otlp::metrics::v1::{exemplar, metric::Data, number_data_point, Exemplar};
use osprey_model::TraceRequest;
use osprey_pipeline::{LogsRequest, MetricsRequest};
use std::fmt::Write;

#[derive(Default)]
struct Buf(String);

impl Buf {
    fn entry(&mut self, line: impl AsRef<str>) {
        self.0.push_str(line.as_ref());
        self.0.push('\n');
    }

    /// `    Label          : value` (the label padded to 15).
    fn attr(&mut self, label: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "    {label:<15}: {value}");
    }

    /// `Header:` then `     -> k: Type(v)` per attribute; nothing when empty. A header with
    /// `->` indents its attributes one level deeper.
    fn attributes(&mut self, header: &str, attrs: &[KeyValue]) {
        if attrs.is_empty() {
            return;
        }
        self.entry(format!("{header}:"));
        let prefix = match header.split_once("->") {
            Some((indent, _)) => format!("{indent}     ->"),
            None => "     ->".to_string(),
        };
        for kv in attrs {
            self.entry(format!("{prefix} {}: {}", kv.key, typed(kv.value.as_ref())));
        }
    }

    fn scope(&mut self, scope: Option<&InstrumentationScope>) {
        let (name, version) = scope.map_or(("", ""), |s| (&s.name[..], &s.version[..]));
        self.entry(format!("InstrumentationScope {name} {version}"));
        if let Some(s) = scope {
            self.attributes("InstrumentationScope attributes", &s.attributes);
        }
    }

    fn resource(&mut self, title: &str, i: usize, schema_url: &str, attrs: Option<&[KeyValue]>) {
        self.entry(format!("{title} #{i}"));
        self.entry(format!("Resource SchemaURL: {schema_url}"));
        self.attributes("Resource attributes", attrs.unwrap_or_default());
    }

    fn exemplars(&mut self, exemplars: &[Exemplar]) {
        if exemplars.is_empty() {
            return;
        }
        self.entry("Exemplars:");
        for (i, e) in exemplars.iter().enumerate() {
            self.entry(format!("Exemplar #{i}"));
            self.entry(format!("     -> Trace ID: {}", id(&e.trace_id)));
            self.entry(format!("     -> Span ID: {}", id(&e.span_id)));
            self.entry(format!(
                "     -> Timestamp: {}",
                timestamp(e.time_unix_nano)
            ));
            match e.value {
                Some(exemplar::Value::AsInt(v)) => self.entry(format!("     -> Value: {v}")),
                Some(exemplar::Value::AsDouble(v)) => self.entry(format!("     -> Value: {v:.6}")),
                None => {}
            }
            self.attributes("     -> FilteredAttributes", &e.filtered_attributes);
        }
    }

    fn point_head(&mut self, kind: &str, i: usize, attrs: &[KeyValue], start: u64, time: u64) {
        self.entry(format!("{kind} #{i}"));
        self.attributes("Data point attributes", attrs);
        self.entry(format!("StartTimestamp: {}", timestamp(start)));
        self.entry(format!("Timestamp: {}", timestamp(time)));
    }

    fn min_max_sum(&mut self, sum: Option<f64>, min: Option<f64>, max: Option<f64>) {
        for (label, v) in [("Sum", sum), ("Min", min), ("Max", max)] {
            if let Some(v) = v {
                self.entry(format!("{label}: {v:.6}"));
            }
        }
    }
}

pub fn traces(r: &TraceRequest) -> String {
    let mut b = Buf::default();
    for (i, rs) in r.resource_spans.iter().enumerate() {
        let attrs = rs.resource.as_ref().map(|r| &r.attributes[..]);
        b.resource("ResourceSpans", i, &rs.schema_url, attrs);
        for (j, ss) in rs.scope_spans.iter().enumerate() {
            b.entry(format!("ScopeSpans #{j}"));
            b.entry(format!("ScopeSpans SchemaURL: {}", ss.schema_url));
            b.scope(ss.scope.as_ref());
            for (k, s) in ss.spans.iter().enumerate() {
                b.entry(format!("Span #{k}"));
                b.attr("Trace ID", id(&s.trace_id));
                b.attr("Parent ID", id(&s.parent_span_id));
                b.attr("ID", id(&s.span_id));
                b.attr("Name", &s.name);
                b.attr("Kind", span_kind(s.kind));
                if !s.trace_state.is_empty() {
                    b.attr("TraceState", &s.trace_state);
                }
                b.attr("Start time", timestamp(s.start_time_unix_nano));
                b.attr("End time", timestamp(s.end_time_unix_nano));
                let (code, message) = s
                    .status
                    .as_ref()
                    .map_or((0, ""), |st| (st.code, &st.message[..]));
                b.attr("Status code", status_code(code));
                b.attr("Status message", message);
                b.attr("DroppedAttributesCount", s.dropped_attributes_count);
                b.attr("DroppedEventsCount", s.dropped_events_count);
                b.attr("DroppedLinksCount", s.dropped_links_count);
                b.attributes("Attributes", &s.attributes);
                if !s.events.is_empty() {
                    b.entry("Events:");
                    for (n, e) in s.events.iter().enumerate() {
                        b.entry(format!("SpanEvent #{n}"));
                        b.entry(format!("     -> Name: {}", e.name));
                        b.entry(format!(
                            "     -> Timestamp: {}",
                            timestamp(e.time_unix_nano)
                        ));
                        b.entry(format!(
                            "     -> DroppedAttributesCount: {}",
                            e.dropped_attributes_count
                        ));
                        b.attributes("     -> Attributes:", &e.attributes);
                    }
                }
                if !s.links.is_empty() {
                    b.entry("Links:");
                    for (n, l) in s.links.iter().enumerate() {
                        b.entry(format!("SpanLink #{n}"));
                        b.entry(format!("     -> Trace ID: {}", id(&l.trace_id)));
                        b.entry(format!("     -> ID: {}", id(&l.span_id)));
                        b.entry(format!("     -> TraceState: {}", l.trace_state));
                        b.entry(format!(
                            "     -> DroppedAttributesCount: {}",
                            l.dropped_attributes_count
                        ));
                        b.attributes("     -> Attributes:", &l.attributes);
                    }
                }
            }
        }
    }
    b.0
}

pub fn logs(r: &LogsRequest) -> String {
    let mut b = Buf::default();
    for (i, rl) in r.resource_logs.iter().enumerate() {
        let attrs = rl.resource.as_ref().map(|r| &r.attributes[..]);
        b.resource("ResourceLog", i, &rl.schema_url, attrs);
        for (j, sl) in rl.scope_logs.iter().enumerate() {
            b.entry(format!("ScopeLogs #{j}"));
            b.entry(format!("ScopeLogs SchemaURL: {}", sl.schema_url));
            b.scope(sl.scope.as_ref());
            for (k, rec) in sl.log_records.iter().enumerate() {
                b.entry(format!("LogRecord #{k}"));
                b.entry(format!(
                    "ObservedTimestamp: {}",
                    timestamp(rec.observed_time_unix_nano)
                ));
                b.entry(format!("Timestamp: {}", timestamp(rec.time_unix_nano)));
                b.entry(format!("SeverityText: {}", rec.severity_text));
                b.entry(format!(
                    "SeverityNumber: {}({})",
                    severity(rec.severity_number),
                    rec.severity_number
                ));
                if !rec.event_name.is_empty() {
                    b.entry(format!("EventName: {}", rec.event_name));
                }
                b.entry(format!("Body: {}", typed(rec.body.as_ref())));
                b.attributes("Attributes", &rec.attributes);
                b.entry(format!("Trace ID: {}", id(&rec.trace_id)));
                b.entry(format!("Span ID: {}", id(&rec.span_id)));
                b.entry(format!("Flags: {}", rec.flags));
            }
        }
    }
    b.0
}

pub fn metrics(r: &MetricsRequest) -> String {
    let mut b = Buf::default();
    for (i, rm) in r.resource_metrics.iter().enumerate() {
        let attrs = rm.resource.as_ref().map(|r| &r.attributes[..]);
        b.resource("ResourceMetrics", i, &rm.schema_url, attrs);
        for (j, sm) in rm.scope_metrics.iter().enumerate() {
            b.entry(format!("ScopeMetrics #{j}"));
            b.entry(format!("ScopeMetrics SchemaURL: {}", sm.schema_url));
            b.scope(sm.scope.as_ref());
            for (k, m) in sm.metrics.iter().enumerate() {
                b.entry(format!("Metric #{k}"));
                b.entry("Descriptor:");
                b.entry(format!("     -> Name: {}", m.name));
                b.entry(format!("     -> Description: {}", m.description));
                b.entry(format!("     -> Unit: {}", m.unit));
                let data_type = match &m.data {
                    Some(Data::Gauge(_)) => "Gauge",
                    Some(Data::Sum(_)) => "Sum",
                    Some(Data::Histogram(_)) => "Histogram",
                    Some(Data::ExponentialHistogram(_)) => "ExponentialHistogram",
                    Some(Data::Summary(_)) => "Summary",
                    None => "Empty",
                };
                b.entry(format!("     -> DataType: {data_type}"));
                metric_points(&mut b, m.data.as_ref());
            }
        }
    }
    b.0
}

fn metric_points(b: &mut Buf, data: Option<&Data>) {
    let numbers = |b: &mut Buf, points: &[osprey_model::otlp::metrics::v1::NumberDataPoint]| {
        for (i, p) in points.iter().enumerate() {
            b.point_head(
                "NumberDataPoints",
                i,
                &p.attributes,
                p.start_time_unix_nano,
                p.time_unix_nano,
            );
            match p.value {
                Some(number_data_point::Value::AsInt(v)) => b.entry(format!("Value: {v}")),
                Some(number_data_point::Value::AsDouble(v)) => b.entry(format!("Value: {v:.6}")),
                None => {}
            }
            b.exemplars(&p.exemplars);
        }
    };
    match data {
        None => {}
        Some(Data::Gauge(g)) => numbers(b, &g.data_points),
        Some(Data::Sum(s)) => {
            b.entry(format!("     -> IsMonotonic: {}", s.is_monotonic));
            b.entry(format!(
                "     -> AggregationTemporality: {}",
                temporality(s.aggregation_temporality)
            ));
            numbers(b, &s.data_points);
        }
        Some(Data::Histogram(h)) => {
            b.entry(format!(
                "     -> AggregationTemporality: {}",
                temporality(h.aggregation_temporality)
            ));
            for (i, p) in h.data_points.iter().enumerate() {
                b.point_head(
                    "HistogramDataPoints",
                    i,
                    &p.attributes,
                    p.start_time_unix_nano,
                    p.time_unix_nano,
                );
                b.entry(format!("Count: {}", p.count));
                b.min_max_sum(p.sum, p.min, p.max);
                for (n, bound) in p.explicit_bounds.iter().enumerate() {
                    b.entry(format!("ExplicitBounds #{n}: {bound:.6}"));
                }
                for (n, c) in p.bucket_counts.iter().enumerate() {
                    b.entry(format!("Buckets #{n}, Count: {c}"));
                }
                b.exemplars(&p.exemplars);
            }
        }
        Some(Data::ExponentialHistogram(h)) => {
            b.entry(format!(
                "     -> AggregationTemporality: {}",
                temporality(h.aggregation_temporality)
            ));
            for (i, p) in h.data_points.iter().enumerate() {
                b.point_head(
                    "ExponentialHistogramDataPoints",
                    i,
                    &p.attributes,
                    p.start_time_unix_nano,
                    p.time_unix_nano,
                );
                b.entry(format!("Count: {}", p.count));
                b.min_max_sum(p.sum, p.min, p.max);
                let factor = std::f64::consts::LN_2 * 2f64.powi(-p.scale);
                if let Some(neg) = &p.negative {
                    for pos in (0..neg.bucket_counts.len()).rev() {
                        let index = f64::from(neg.offset) + pos as f64;
                        let (lower, upper) =
                            ((index * factor).exp(), ((index + 1.0) * factor).exp());
                        b.entry(format!(
                            "Bucket [{:.6}, {:.6}), Count: {}",
                            -upper, -lower, neg.bucket_counts[pos]
                        ));
                    }
                }
                if p.zero_count != 0 {
                    b.entry(format!("Bucket [0, 0], Count: {}", p.zero_count));
                }
                if let Some(posb) = &p.positive {
                    for (pos, c) in posb.bucket_counts.iter().enumerate() {
                        let index = f64::from(posb.offset) + pos as f64;
                        let (lower, upper) =
                            ((index * factor).exp(), ((index + 1.0) * factor).exp());
                        b.entry(format!("Bucket ({lower:.6}, {upper:.6}], Count: {c}"));
                    }
                }
                b.exemplars(&p.exemplars);
            }
        }
        Some(Data::Summary(s)) => {
            for (i, p) in s.data_points.iter().enumerate() {
                b.point_head(
                    "SummaryDataPoints",
                    i,
                    &p.attributes,
                    p.start_time_unix_nano,
                    p.time_unix_nano,
                );
                b.entry(format!("Count: {}", p.count));
                b.entry(format!("Sum: {:.6}", p.sum));
                for (n, q) in p.quantile_values.iter().enumerate() {
                    b.entry(format!(
                        "QuantileValue #{n}: Quantile {:.6}, Value {:.6}",
                        q.quantile, q.value
                    ));
                }
            }
        }
    }
}
