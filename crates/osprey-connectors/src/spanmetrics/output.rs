//! Turns the aggregated state of one resource into OTLP: one `ResourceMetrics` with the
//! scope `spanmetricsconnector` holding `{namespace}.calls` (monotonic int Sum),
//! `{namespace}.duration` (explicit Histogram, unit `ms`/`s`) and `{namespace}.events`.

use super::aggregator::{HistPoint, Prepared, ResourceState, SumPoint, OVERFLOW_KEY};
use osprey_model::otlp::common::v1::InstrumentationScope;
use osprey_model::otlp::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Exemplar, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use osprey_model::otlp::resource::v1::Resource;
use std::collections::{BTreeMap, HashMap};

/// The instrumentation scope name of the generated metrics, as upstream.
pub const SCOPE_NAME: &str = "spanmetricsconnector";

fn metric_name(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}.{name}")
    }
}

/// Start time of a series: its creation for cumulative; for delta, the previous flush of the
/// same series when remembered. `used` collects the delta cache keys touched.
fn start_time(
    p: &Prepared,
    delta_key: String,
    created: u64,
    delta_last: &HashMap<String, u64>,
    used: &mut Vec<String>,
) -> u64 {
    if !p.delta {
        return created;
    }
    let start = delta_last.get(&delta_key).copied().unwrap_or(created);
    used.push(delta_key);
    start
}

/// The series in key order, the overflow series last.
fn ordered<P>(series: &BTreeMap<String, P>) -> impl Iterator<Item = (&String, &P)> {
    series
        .iter()
        .filter(|(k, _)| k.as_str() != OVERFLOW_KEY)
        .chain(series.get_key_value(OVERFLOW_KEY))
}

fn stamp(exemplars: &[Exemplar], now_ns: u64) -> Vec<Exemplar> {
    exemplars
        .iter()
        .map(|e| Exemplar {
            time_unix_nano: now_ns,
            ..e.clone()
        })
        .collect()
}

fn temporality(p: &Prepared) -> i32 {
    if p.delta {
        AggregationTemporality::Delta as i32
    } else {
        AggregationTemporality::Cumulative as i32
    }
}

struct Ctx<'a> {
    p: &'a Prepared,
    rkey: &'a str,
    now_ns: u64,
    delta_last: &'a HashMap<String, u64>,
}

impl Ctx<'_> {
    fn sum_metric(
        &self,
        name: &str,
        series: &BTreeMap<String, SumPoint>,
        used: &mut Vec<String>,
    ) -> Metric {
        let data_points = ordered(series)
            .map(|(k, s)| NumberDataPoint {
                attributes: s.attrs.clone(),
                start_time_unix_nano: start_time(
                    self.p,
                    format!("{}\u{1}{name}\u{1}{k}", self.rkey),
                    s.start_ns,
                    self.delta_last,
                    used,
                ),
                time_unix_nano: self.now_ns,
                exemplars: stamp(&s.exemplars, self.now_ns),
                flags: 0,
                value: Some(number_data_point::Value::AsInt(s.count as i64)),
            })
            .collect();
        Metric {
            name: metric_name(&self.p.namespace, name),
            data: Some(metric::Data::Sum(Sum {
                data_points,
                aggregation_temporality: temporality(self.p),
                is_monotonic: true,
            })),
            ..Default::default()
        }
    }

    fn histogram_metric(
        &self,
        series: &BTreeMap<String, HistPoint>,
        used: &mut Vec<String>,
    ) -> Metric {
        let data_points = ordered(series)
            .map(|(k, h)| HistogramDataPoint {
                attributes: h.attrs.clone(),
                start_time_unix_nano: start_time(
                    self.p,
                    format!("{}\u{1}duration\u{1}{k}", self.rkey),
                    h.start_ns,
                    self.delta_last,
                    used,
                ),
                time_unix_nano: self.now_ns,
                count: h.count,
                sum: Some(h.sum),
                bucket_counts: h.bucket_counts.clone(),
                explicit_bounds: self.p.bounds.clone(),
                exemplars: stamp(&h.exemplars, self.now_ns),
                flags: 0,
                min: None,
                max: None,
            })
            .collect();
        Metric {
            name: metric_name(&self.p.namespace, "duration"),
            unit: self.p.unit.as_str().to_string(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points,
                aggregation_temporality: temporality(self.p),
            })),
            ..Default::default()
        }
    }
}

/// The `ResourceMetrics` of one resource at `now_ns`.
pub(crate) fn resource_metrics(
    p: &Prepared,
    rkey: &str,
    state: &ResourceState,
    now_ns: u64,
    delta_last: &HashMap<String, u64>,
    used: &mut Vec<String>,
) -> ResourceMetrics {
    let cx = Ctx {
        p,
        rkey,
        now_ns,
        delta_last,
    };
    let mut metrics = vec![cx.sum_metric("calls", &state.calls, used)];
    if p.histogram {
        metrics.push(cx.histogram_metric(&state.durations, used));
    }
    if p.event_dims.is_some() {
        metrics.push(cx.sum_metric("events", &state.events, used));
    }
    ResourceMetrics {
        resource: Some(Resource {
            attributes: state.attributes.clone(),
            ..Default::default()
        }),
        scope_metrics: vec![ScopeMetrics {
            scope: Some(InstrumentationScope {
                name: SCOPE_NAME.to_string(),
                ..Default::default()
            }),
            metrics,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}
