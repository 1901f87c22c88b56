//! OTLP metrics -> Prometheus remote-write series, after the Collector's
//! `pkg/translator/prometheusremotewrite` (`FromMetrics`): gauges and cumulative sums become one
//! sample per point (`_total` for monotonic sums, exemplars kept), cumulative histograms become
//! `_bucket{le}` (cumulative counts, `+Inf` = count), `_sum` and `_count`, summaries
//! `{quantile}`, `_sum`, `_count`; each resource adds `target_info`. Delta sums and histograms
//! (and exponential histograms, which would need native histograms) are dropped with an error
//! message, the rest is still exported, as upstream.

use super::labels::{self, LabelMap, ResourceLabels};
use super::naming::{prom_unit, MetricKind, MetricNamer};
use super::prompb::{Label, MetricMetadata, MetricType, Sample, TimeSeries};
use osprey_model::otlp::common::v1::{InstrumentationScope, KeyValue};
use osprey_model::otlp::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, HistogramDataPoint, Metric,
    NumberDataPoint, SummaryDataPoint,
};
use osprey_pipeline::MetricsRequest;
use std::collections::BTreeMap;

/// Prometheus' staleness marker.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
const NO_RECORDED_VALUE: u32 = 1;

/// How metrics are translated (from the exporter config).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub namer: MetricNamer,
    /// Sanitized `external_labels`.
    pub external_labels: Vec<(String, String)>,
    pub target_info: bool,
    pub scope_labels: bool,
    pub created_metric: bool,
    pub send_metadata: bool,
    /// `Some(exclude_service_attributes)` when resource attributes become labels.
    pub resource_to_telemetry: Option<bool>,
}

/// The outcome of a translation: series sorted by label set, metadata, and what was dropped.
#[derive(Debug, Default)]
pub struct Translation {
    pub series: Vec<TimeSeries>,
    pub metadata: Vec<MetricMetadata>,
    pub errors: Vec<String>,
}

/// Translates a metrics request.
pub fn translate(req: &MetricsRequest, s: &Settings) -> Translation {
    let mut c = Converter {
        s,
        series: BTreeMap::new(),
        errors: Vec::new(),
    };
    let mut metadata = Vec::new();
    for rm in &req.resource_metrics {
        let res_attrs: &[KeyValue] = rm.resource.as_ref().map_or(&[], |r| &r.attributes);
        let res = ResourceLabels {
            attrs: res_attrs,
            external: &s.external_labels,
        };
        let mut latest = 0u64;
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                latest = latest.max(latest_timestamp(m));
                if s.send_metadata {
                    metadata.extend(c.metadata(m));
                }
                c.metric(&res, sm.scope.as_ref(), m);
            }
        }
        c.target_info(&res, latest);
    }
    Translation {
        series: c.series.into_values().collect(),
        metadata,
        errors: c.errors,
    }
}

fn kind(m: &Metric) -> Option<MetricKind> {
    Some(match m.data.as_ref()? {
        Data::Gauge(_) => MetricKind::Gauge,
        Data::Sum(s) if s.is_monotonic => MetricKind::MonotonicCounter,
        Data::Sum(_) => MetricKind::NonMonotonicCounter,
        Data::Histogram(_) => MetricKind::Histogram,
        Data::ExponentialHistogram(_) => MetricKind::ExponentialHistogram,
        Data::Summary(_) => MetricKind::Summary,
    })
}

fn latest_timestamp(m: &Metric) -> u64 {
    let max = |it: &mut dyn Iterator<Item = u64>| it.max().unwrap_or(0);
    match &m.data {
        Some(Data::Gauge(g)) => max(&mut g.data_points.iter().map(|p| p.time_unix_nano)),
        Some(Data::Sum(s)) => max(&mut s.data_points.iter().map(|p| p.time_unix_nano)),
        Some(Data::Histogram(h)) => max(&mut h.data_points.iter().map(|p| p.time_unix_nano)),
        Some(Data::ExponentialHistogram(h)) => {
            max(&mut h.data_points.iter().map(|p| p.time_unix_nano))
        }
        Some(Data::Summary(s)) => max(&mut s.data_points.iter().map(|p| p.time_unix_nano)),
        None => 0,
    }
}

fn sample(value: f64, flags: u32, time_ns: u64) -> Sample {
    Sample {
        value: if flags & NO_RECORDED_VALUE != 0 {
            f64::from_bits(STALE_NAN)
        } else {
            value
        },
        timestamp: labels::millis(time_ns),
    }
}

struct Converter<'s> {
    s: &'s Settings,
    series: BTreeMap<Vec<Label>, TimeSeries>,
    errors: Vec<String>,
}

impl Converter<'_> {
    /// Appends a sample to the series of `map` plus `__name__` (creating it), returning the
    /// series' key.
    fn add(&mut self, mut map: LabelMap, name: &str, sample: Sample) -> Vec<Label> {
        map.insert("__name__".into(), name.to_string());
        let key = labels::to_labels(map);
        let ts = self
            .series
            .entry(key.clone())
            .or_insert_with(|| TimeSeries {
                labels: key.clone(),
                samples: Vec::new(),
                exemplars: Vec::new(),
            });
        ts.samples.push(sample);
        key
    }

    fn base(
        &self,
        res: &ResourceLabels<'_>,
        scope: Option<&InstrumentationScope>,
        attrs: &[KeyValue],
    ) -> LabelMap {
        let point = labels::point_attrs(res.attrs, attrs, self.s.resource_to_telemetry);
        let mut map = res.build(&point, &[]);
        if let (true, Some(scope)) = (self.s.scope_labels, scope) {
            if !scope.name.is_empty() {
                map.insert("otel_scope_name".into(), scope.name.clone());
            }
            if !scope.version.is_empty() {
                map.insert("otel_scope_version".into(), scope.version.clone());
            }
        }
        map
    }

    fn metadata(&self, m: &Metric) -> Option<MetricMetadata> {
        let kind = kind(m)?;
        let r#type = match kind {
            MetricKind::Gauge | MetricKind::NonMonotonicCounter => MetricType::Gauge,
            MetricKind::MonotonicCounter => MetricType::Counter,
            MetricKind::Histogram | MetricKind::ExponentialHistogram => MetricType::Histogram,
            MetricKind::Summary => MetricType::Summary,
        };
        Some(MetricMetadata {
            r#type: r#type as i32,
            metric_family_name: self.s.namer.build(&m.name, &m.unit, kind)?,
            help: m.description.clone(),
            unit: prom_unit(&m.unit),
        })
    }

    fn metric(
        &mut self,
        res: &ResourceLabels<'_>,
        scope: Option<&InstrumentationScope>,
        m: &Metric,
    ) {
        let Some(kind) = kind(m) else {
            self.errors.push(format!("metric {:?} has no data", m.name));
            return;
        };
        let cumulative = AggregationTemporality::Cumulative as i32;
        let valid = match &m.data {
            Some(Data::Sum(s)) => s.aggregation_temporality == cumulative,
            Some(Data::Histogram(h)) => h.aggregation_temporality == cumulative,
            Some(Data::ExponentialHistogram(h)) => h.aggregation_temporality == cumulative,
            _ => true,
        };
        if !valid {
            self.errors.push(format!(
                "invalid temporality and type combination for metric {:?}",
                m.name
            ));
            return;
        }
        let Some(name) = self.s.namer.build(&m.name, &m.unit, kind) else {
            self.errors.push(format!(
                "normalization for metric {:?} resulted in an empty name",
                m.name
            ));
            return;
        };
        let empty = match &m.data {
            Some(Data::Gauge(g)) => g.data_points.is_empty(),
            Some(Data::Sum(s)) => s.data_points.is_empty(),
            Some(Data::Histogram(h)) => h.data_points.is_empty(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.is_empty(),
            Some(Data::Summary(s)) => s.data_points.is_empty(),
            None => true,
        };
        if empty {
            self.errors
                .push(format!("empty data points. {} is dropped", m.name));
            return;
        }
        match &m.data {
            Some(Data::Gauge(g)) => {
                for p in &g.data_points {
                    self.number(res, scope, &name, p, false, false);
                }
            }
            Some(Data::Sum(s)) => {
                for p in &s.data_points {
                    self.number(res, scope, &name, p, true, s.is_monotonic);
                }
            }
            Some(Data::Histogram(h)) => {
                for p in &h.data_points {
                    self.histogram(res, scope, &name, p);
                }
            }
            Some(Data::Summary(s)) => {
                for p in &s.data_points {
                    self.summary(res, scope, &name, p);
                }
            }
            Some(Data::ExponentialHistogram(_)) => self.errors.push(format!(
                "exponential histogram {:?} dropped: native histograms are not supported",
                m.name
            )),
            None => {}
        }
    }

    fn created(&mut self, base: &LabelMap, name: &str, start_ns: u64, time_ns: u64) {
        if self.s.created_metric && start_ns != 0 {
            let created = labels::millis(start_ns) as f64;
            self.add(
                base.clone(),
                &format!("{name}_created"),
                sample(created, 0, time_ns),
            );
        }
    }

    fn number(
        &mut self,
        res: &ResourceLabels<'_>,
        scope: Option<&InstrumentationScope>,
        name: &str,
        p: &NumberDataPoint,
        is_sum: bool,
        monotonic: bool,
    ) {
        let base = self.base(res, scope, &p.attributes);
        let value = match p.value {
            Some(number_data_point::Value::AsDouble(d)) => d,
            Some(number_data_point::Value::AsInt(i)) => i as f64,
            None => 0.0,
        };
        let key = self.add(base.clone(), name, sample(value, p.flags, p.time_unix_nano));
        if is_sum {
            if let Some(ts) = self.series.get_mut(&key) {
                ts.exemplars.extend(labels::exemplars(&p.exemplars));
            }
            if monotonic {
                self.created(&base, name, p.start_time_unix_nano, p.time_unix_nano);
            }
        }
    }

    fn histogram(
        &mut self,
        res: &ResourceLabels<'_>,
        scope: Option<&InstrumentationScope>,
        name: &str,
        p: &HistogramDataPoint,
    ) {
        let base = self.base(res, scope, &p.attributes);
        let t = p.time_unix_nano;
        if let Some(sum) = p.sum {
            self.add(
                base.clone(),
                &format!("{name}_sum"),
                sample(sum, p.flags, t),
            );
        }
        self.add(
            base.clone(),
            &format!("{name}_count"),
            sample(p.count as f64, p.flags, t),
        );
        let bucket_name = format!("{name}_bucket");
        let mut cumulative = 0u64;
        let mut buckets: Vec<(f64, Vec<Label>)> = Vec::new();
        for (bound, count) in p.explicit_bounds.iter().zip(&p.bucket_counts) {
            cumulative += count;
            let mut l = base.clone();
            l.insert("le".into(), format!("{bound}"));
            let key = self.add(l, &bucket_name, sample(cumulative as f64, p.flags, t));
            buckets.push((*bound, key));
        }
        let mut l = base.clone();
        l.insert("le".into(), "+Inf".into());
        let key = self.add(l, &bucket_name, sample(p.count as f64, p.flags, t));
        buckets.push((f64::INFINITY, key));
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        for e in labels::exemplars(&p.exemplars) {
            if let Some((_, key)) = buckets.iter().find(|(bound, _)| e.value <= *bound) {
                if let Some(ts) = self.series.get_mut(key) {
                    ts.exemplars.push(e);
                }
            }
        }
        self.created(&base, name, p.start_time_unix_nano, t);
    }

    fn summary(
        &mut self,
        res: &ResourceLabels<'_>,
        scope: Option<&InstrumentationScope>,
        name: &str,
        p: &SummaryDataPoint,
    ) {
        let base = self.base(res, scope, &p.attributes);
        let t = p.time_unix_nano;
        self.add(
            base.clone(),
            &format!("{name}_sum"),
            sample(p.sum, p.flags, t),
        );
        self.add(
            base.clone(),
            &format!("{name}_count"),
            sample(p.count as f64, p.flags, t),
        );
        for q in &p.quantile_values {
            let mut l = base.clone();
            l.insert("quantile".into(), format!("{}", q.quantile));
            self.add(l, name, sample(q.value, p.flags, t));
        }
        self.created(&base, name, p.start_time_unix_nano, t);
    }

    /// `target_info` for a resource with attributes beyond job/instance, at the resource's
    /// latest point time.
    fn target_info(&mut self, res: &ResourceLabels<'_>, latest_ns: u64) {
        if !self.s.target_info || latest_ns == 0 || !res.has_non_identifying() {
            return;
        }
        let attrs: Vec<&KeyValue> = res.attrs.iter().collect();
        let ignore = [
            labels::SERVICE_NAMESPACE,
            labels::SERVICE_NAME,
            labels::SERVICE_INSTANCE_ID,
        ];
        let map = res.build(&attrs, &ignore);
        if !map.contains_key("job") && !map.contains_key("instance") {
            return;
        }
        let ns = &self.s.namer.namespace;
        let name = if ns.is_empty() {
            "target_info".to_string()
        } else {
            format!("{ns}_target_info")
        };
        self.add(map, &name, sample(1.0, 0, latest_ns));
    }
}
