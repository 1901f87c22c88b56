//! The pure `spanmetrics` aggregator: [`SpanMetrics::add`] folds spans into per-resource
//! calls/duration/events series, [`SpanMetrics::flush`] turns them into an OTLP metrics
//! request. Cumulative series keep their start time across flushes; delta series are reset
//! after each flush and start where the previous flush ended.

use super::config::SpanMetricsConfig;
use super::key::{find, resource_key, Dim, Excluded, KeyBuilder, SpanCtx, SERVICE_NAME};
use super::output;
use osprey_model::otlp::common::v1::{any_value, AnyValue, KeyValue};
use osprey_model::otlp::metrics::v1::{exemplar, Exemplar};
use osprey_model::otlp::trace::v1::Span;
use osprey_model::TraceRequest;
use osprey_pipeline::{ConfigError, MetricsRequest};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The series key of the overflow series (cannot collide: real keys never start with \x01).
pub(crate) const OVERFLOW_KEY: &str = "\u{1}overflow";

/// The settings the aggregator works with, derived once from the config.
pub(crate) struct Prepared {
    pub namespace: String,
    pub unit: super::config::Unit,
    pub bounds: Vec<f64>,
    pub histogram: bool,
    pub delta: bool,
    pub calls_dims: Vec<Dim>,
    pub duration_dims: Vec<Dim>,
    pub event_dims: Option<Vec<Dim>>,
    pub excluded: Excluded,
    pub include_scopes: Vec<String>,
    pub key_attrs: Option<HashSet<String>>,
    pub exemplars: Option<usize>,
    pub expiration_ns: u64,
    pub resource_cap: usize,
    pub cardinality_limit: usize,
    pub delta_ts_cap: usize,
}

/// A counter series (calls, events).
#[derive(Debug, Clone)]
pub(crate) struct SumPoint {
    pub attrs: Vec<KeyValue>,
    pub start_ns: u64,
    pub count: u64,
    pub exemplars: Vec<Exemplar>,
}

/// An explicit-bucket histogram series (duration).
#[derive(Debug, Clone)]
pub(crate) struct HistPoint {
    pub attrs: Vec<KeyValue>,
    pub start_ns: u64,
    pub bucket_counts: Vec<u64>,
    pub count: u64,
    pub sum: f64,
    pub exemplars: Vec<Exemplar>,
}

/// Everything aggregated for one resource.
pub(crate) struct ResourceState {
    pub attributes: Vec<KeyValue>,
    pub seq: u64,
    pub last_used: u64,
    pub last_seen_ns: u64,
    pub calls: BTreeMap<String, SumPoint>,
    pub durations: BTreeMap<String, HistPoint>,
    pub events: BTreeMap<String, SumPoint>,
}

/// The aggregator core of the connector, independent of time sources and tasks.
pub struct SpanMetrics {
    pub(crate) p: Prepared,
    pub(crate) resources: HashMap<String, ResourceState>,
    seq: u64,
    tick: u64,
    /// Delta only: when each series was last flushed (its next start time).
    pub(crate) delta_last: HashMap<String, u64>,
}

impl SpanMetrics {
    pub fn new(config: &SpanMetricsConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let dims = Dim::from_config(&config.dimensions);
        let with = |extra: &[super::config::Dimension]| {
            let mut all = dims.clone();
            all.extend(Dim::from_config(extra));
            all
        };
        let p = Prepared {
            namespace: config.namespace.clone(),
            unit: config.histogram.unit,
            bounds: config.bounds(),
            histogram: !config.histogram.disable,
            delta: config.is_delta(),
            calls_dims: with(&config.calls_dimensions),
            duration_dims: with(&config.histogram.dimensions),
            event_dims: config
                .events
                .enabled
                .then(|| with(&config.events.dimensions)),
            excluded: Excluded::from_config(&config.exclude_dimensions),
            include_scopes: config.include_instrumentation_scope.clone(),
            key_attrs: (!config.resource_metrics_key_attributes.is_empty()).then(|| {
                config
                    .resource_metrics_key_attributes
                    .iter()
                    .cloned()
                    .collect()
            }),
            exemplars: config
                .exemplars
                .enabled
                .then_some(config.exemplars.max_per_data_point),
            expiration_ns: config.metrics_expiration.as_nanos() as u64,
            resource_cap: config.resource_metrics_cache_size.max(1) as usize,
            cardinality_limit: config.aggregation_cardinality_limit.max(0) as usize,
            delta_ts_cap: config.delta_timestamp_cache_size().max(1) as usize,
        };
        Ok(SpanMetrics {
            p,
            resources: HashMap::new(),
            seq: 0,
            tick: 0,
            delta_last: HashMap::new(),
        })
    }

    /// Number of resources with state.
    pub fn resource_count(&self) -> usize {
        self.resources.len()
    }

    /// Folds the spans of `request` in; new series start at `now_ns`. Resources without a
    /// `service.name` attribute are skipped, as upstream.
    pub fn add(&mut self, request: &TraceRequest, now_ns: u64) {
        let mut key = String::new();
        for rs in &request.resource_spans {
            let res_attrs: &[KeyValue] = rs.resource.as_ref().map_or(&[], |r| &r.attributes);
            let Some(service) = find(res_attrs, SERVICE_NAME) else {
                continue;
            };
            let service = match &service.value {
                Some(any_value::Value::StringValue(s)) => s.as_str(),
                _ => "",
            };
            let rkey = resource_key(res_attrs, self.p.key_attrs.as_ref());
            self.tick += 1;
            let state = self.resources.entry(rkey).or_insert_with(|| {
                self.seq += 1;
                ResourceState {
                    attributes: res_attrs.to_vec(),
                    seq: self.seq,
                    last_used: 0,
                    last_seen_ns: now_ns,
                    calls: BTreeMap::new(),
                    durations: BTreeMap::new(),
                    events: BTreeMap::new(),
                }
            });
            state.last_used = self.tick;
            state.last_seen_ns = now_ns;
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    let layers: [&[KeyValue]; 2] = [&span.attributes, res_attrs];
                    let cx = SpanCtx {
                        service,
                        span,
                        layers: &layers,
                        scope: ss.scope.as_ref(),
                    };
                    add_span(&self.p, state, &cx, res_attrs, now_ns, &mut key);
                }
            }
        }
    }

    /// Builds the metrics of every resource at `now_ns`, then resets state: delta series are
    /// dropped; cumulative ones lose their exemplars, and expired or evicted resources go.
    pub fn flush(&mut self, now_ns: u64) -> MetricsRequest {
        let mut order: Vec<(&String, &ResourceState)> = self.resources.iter().collect();
        order.sort_by_key(|(_, s)| s.seq);
        let mut out = MetricsRequest::default();
        let mut used = Vec::new();
        for (rkey, state) in order {
            let rm =
                output::resource_metrics(&self.p, rkey, state, now_ns, &self.delta_last, &mut used);
            out.resource_metrics.push(rm);
        }
        if self.p.delta {
            for k in used {
                self.delta_last.insert(k, now_ns);
            }
            self.trim_delta_timestamps();
            self.resources.clear();
        } else {
            self.reset_cumulative(now_ns);
        }
        out
    }

    fn reset_cumulative(&mut self, now_ns: u64) {
        if self.p.exemplars.is_some() {
            for s in self.resources.values_mut() {
                s.calls.values_mut().for_each(|p| p.exemplars.clear());
                s.durations.values_mut().for_each(|p| p.exemplars.clear());
                s.events.values_mut().for_each(|p| p.exemplars.clear());
            }
        }
        if self.p.expiration_ns > 0 {
            let exp = self.p.expiration_ns;
            self.resources
                .retain(|_, s| now_ns.saturating_sub(s.last_seen_ns) < exp);
        }
        if self.resources.len() > self.p.resource_cap {
            let mut uses: Vec<u64> = self.resources.values().map(|s| s.last_used).collect();
            uses.sort_unstable();
            let cutoff = uses[uses.len() - self.p.resource_cap];
            self.resources.retain(|_, s| s.last_used >= cutoff);
        }
    }

    /// Keeps the delta start-time cache within `metric_timestamp_cache_size` by forgetting
    /// the series flushed longest ago (their next point will show a reset, as upstream).
    fn trim_delta_timestamps(&mut self) {
        let cap = self.p.delta_ts_cap;
        if self.delta_last.len() <= cap {
            return;
        }
        let mut all: Vec<(String, u64)> = self.delta_last.drain().collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(cap);
        self.delta_last = all.into_iter().collect();
    }
}

/// Adds one span to the calls, duration and events series of its resource.
fn add_span(
    p: &Prepared,
    state: &mut ResourceState,
    cx: &SpanCtx<'_>,
    res_attrs: &[KeyValue],
    now_ns: u64,
    key: &mut String,
) {
    let span = cx.span;
    let duration = if span.end_time_unix_nano > span.start_time_unix_nano {
        (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / p.unit.nanos()
    } else {
        0.0
    };
    let exemplar = exemplar_of(p, span, duration);
    let builder = |dims| KeyBuilder {
        excluded: &p.excluded,
        dims,
        include_scopes: &p.include_scopes,
    };

    let calls = builder(&p.calls_dims);
    calls.key_into(cx, key);
    if let Some(point) = sum_series(&mut state.calls, key, p.cardinality_limit, now_ns, || {
        calls.attributes(cx)
    }) {
        point.count += 1;
        push_exemplar(&mut point.exemplars, &exemplar, p.exemplars);
    }

    if p.histogram {
        let durations = builder(&p.duration_dims);
        durations.key_into(cx, key);
        if let Some(h) = hist_series(&mut state.durations, key, p, now_ns, || {
            durations.attributes(cx)
        }) {
            h.count += 1;
            h.sum += duration;
            // The first bucket whose upper bound is >= the value (`le` semantics).
            let idx = p.bounds.partition_point(|b| *b < duration);
            if let Some(c) = h.bucket_counts.get_mut(idx) {
                *c += 1;
            }
            push_exemplar(&mut h.exemplars, &exemplar, p.exemplars);
        }
    }

    if let Some(event_dims) = &p.event_dims {
        let events = builder(event_dims);
        for ev in &span.events {
            let layers: [&[KeyValue]; 3] = [&span.attributes, &ev.attributes, res_attrs];
            let ecx = SpanCtx {
                layers: &layers,
                ..*cx
            };
            events.key_into(&ecx, key);
            if let Some(point) =
                sum_series(&mut state.events, key, p.cardinality_limit, now_ns, || {
                    events.attributes(&ecx)
                })
            {
                point.count += 1;
                push_exemplar(&mut point.exemplars, &exemplar, p.exemplars);
            }
        }
    }
}

/// The exemplar a span contributes when exemplars are on and it has a trace id.
fn exemplar_of(p: &Prepared, span: &Span, duration: f64) -> Option<Exemplar> {
    p.exemplars?;
    if span.trace_id.iter().all(|b| *b == 0) {
        return None;
    }
    Some(Exemplar {
        filtered_attributes: Vec::new(),
        time_unix_nano: 0,
        span_id: span.span_id.clone(),
        trace_id: span.trace_id.clone(),
        value: Some(exemplar::Value::AsDouble(duration)),
    })
}

fn push_exemplar(list: &mut Vec<Exemplar>, e: &Option<Exemplar>, max: Option<usize>) {
    if let (Some(e), Some(max)) = (e, max) {
        if list.len() < max {
            list.push(e.clone());
        }
    }
}

/// The series `key` names, created if new; past the cardinality limit new keys share the
/// overflow series. (Always `Some`; an `Option` keeps the borrow checker and the no-panic
/// rule happy.)
fn series_slot<'m, P>(
    map: &'m mut BTreeMap<String, P>,
    key: &str,
    limit: usize,
    make: impl FnOnce(Vec<KeyValue>) -> P,
    attrs: impl FnOnce() -> Vec<KeyValue>,
) -> Option<&'m mut P> {
    let mut target = key;
    if !map.contains_key(key) {
        let regular = map.len() - usize::from(map.contains_key(OVERFLOW_KEY));
        if limit > 0 && regular >= limit {
            target = OVERFLOW_KEY;
            if !map.contains_key(OVERFLOW_KEY) {
                let overflow = vec![KeyValue {
                    key: "otel.metric.overflow".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::BoolValue(true)),
                    }),
                    ..Default::default()
                }];
                map.insert(OVERFLOW_KEY.to_string(), make(overflow));
            }
        } else {
            map.insert(key.to_string(), make(attrs()));
        }
    }
    map.get_mut(target)
}

fn sum_series<'m>(
    map: &'m mut BTreeMap<String, SumPoint>,
    key: &str,
    limit: usize,
    now_ns: u64,
    attrs: impl FnOnce() -> Vec<KeyValue>,
) -> Option<&'m mut SumPoint> {
    let make = |attrs| SumPoint {
        attrs,
        start_ns: now_ns,
        count: 0,
        exemplars: Vec::new(),
    };
    series_slot(map, key, limit, make, attrs)
}

fn hist_series<'m>(
    map: &'m mut BTreeMap<String, HistPoint>,
    key: &str,
    p: &Prepared,
    now_ns: u64,
    attrs: impl FnOnce() -> Vec<KeyValue>,
) -> Option<&'m mut HistPoint> {
    let make = |attrs| HistPoint {
        attrs,
        start_ns: now_ns,
        bucket_counts: vec![0; p.bounds.len() + 1],
        count: 0,
        sum: 0.0,
        exemplars: Vec::new(),
    };
    series_slot(map, key, p.cardinality_limit, make, attrs)
}
