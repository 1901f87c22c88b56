//! Label sets of translated series, as the Collector's `createAttributes`: data point
//! attributes with sanitized names (values of colliding names joined by `;`), `job` from
//! `[service.namespace/]service.name` and `instance` from `service.instance.id`, external
//! labels where not already set, then the scope and series-specific labels (`le`,
//! `quantile`, `__name__`).

use super::naming::label_name;
use super::prompb::{Exemplar, Label};
use osprey_model::anyvalue;
use osprey_model::otlp::common::v1::{any_value, AnyValue, KeyValue};
use osprey_model::otlp::metrics::v1::{exemplar, Exemplar as OtlpExemplar};
use std::collections::BTreeMap;

pub const SERVICE_NAME: &str = "service.name";
pub const SERVICE_NAMESPACE: &str = "service.namespace";
pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";
/// Upstream's limit on the characters of an exemplar's labels (OpenMetrics).
const MAX_EXEMPLAR_RUNES: usize = 128;

/// A value as text, as pdata's `Value.AsString`.
pub fn value_str(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::DoubleValue(d)) if d.is_finite() => format!("{d}"),
        _ => anyvalue::render(v),
    }
}

fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

/// A label set under construction: names are unique, the map keeps them sorted.
pub type LabelMap = BTreeMap<String, String>;

/// The resource part of every series of one resource.
pub struct ResourceLabels<'a> {
    pub attrs: &'a [KeyValue],
    pub external: &'a [(String, String)],
}

impl ResourceLabels<'_> {
    /// `createAttributes`: `attrs` (minus `ignore`) plus job/instance and external labels.
    pub fn build(&self, attrs: &[&KeyValue], ignore: &[&str]) -> LabelMap {
        let mut pairs: Vec<(&str, String)> = attrs
            .iter()
            .filter(|kv| !ignore.contains(&kv.key.as_str()))
            .map(|kv| (kv.key.as_str(), value_str(kv.value.as_ref())))
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        let mut l = LabelMap::new();
        for (key, value) in pairs {
            let name = label_name(key);
            match l.get_mut(&name) {
                Some(existing) if *existing != value => {
                    existing.push(';');
                    existing.push_str(&value);
                }
                Some(_) => {}
                None => {
                    l.insert(name, value);
                }
            }
        }
        if let Some(service) = find(self.attrs, SERVICE_NAME) {
            let mut job = value_str(Some(service));
            if let Some(ns) = find(self.attrs, SERVICE_NAMESPACE) {
                job = format!("{}/{job}", value_str(Some(ns)));
            }
            l.insert("job".into(), job);
        }
        if let Some(instance) = find(self.attrs, SERVICE_INSTANCE_ID) {
            l.insert("instance".into(), value_str(Some(instance)));
        }
        for (k, v) in self.external {
            l.entry(k.clone()).or_insert_with(|| v.clone());
        }
        l
    }

    /// Whether a resource has attributes besides the ones that become `job`/`instance`.
    pub fn has_non_identifying(&self) -> bool {
        self.attrs.iter().any(|kv| {
            ![SERVICE_NAMESPACE, SERVICE_NAME, SERVICE_INSTANCE_ID].contains(&kv.key.as_str())
        })
    }
}

/// The attributes a data point's labels come from: with `resource_to_telemetry_conversion`
/// the resource attributes come first and the point's own win on conflicts.
pub fn point_attrs<'a>(
    resource: &'a [KeyValue],
    point: &'a [KeyValue],
    resource_to_telemetry: Option<bool>,
) -> Vec<&'a KeyValue> {
    let mut out: Vec<&KeyValue> = Vec::with_capacity(point.len());
    if let Some(exclude_service) = resource_to_telemetry {
        for kv in resource {
            let service =
                [SERVICE_NAME, SERVICE_NAMESPACE, SERVICE_INSTANCE_ID].contains(&kv.key.as_str());
            if (exclude_service && service) || point.iter().any(|p| p.key == kv.key) {
                continue;
            }
            out.push(kv);
        }
    }
    out.extend(point.iter());
    out
}

/// The sorted label list of a label map.
pub fn to_labels(map: LabelMap) -> Vec<Label> {
    map.into_iter()
        .map(|(name, value)| Label { name, value })
        .collect()
}

/// Nanoseconds to the milliseconds remote write uses.
pub fn millis(ns: u64) -> i64 {
    (ns / 1_000_000) as i64
}

/// `getPromExemplars`: value, time, `trace_id`/`span_id` labels, and the filtered attributes
/// when everything fits in 128 characters.
pub fn exemplars(list: &[OtlpExemplar]) -> Vec<Exemplar> {
    list.iter()
        .map(|e| {
            let value = match e.value {
                Some(exemplar::Value::AsDouble(d)) => d,
                Some(exemplar::Value::AsInt(i)) => i as f64,
                None => 0.0,
            };
            let mut labels = Vec::new();
            let mut runes = 0;
            for (name, id) in [("trace_id", &e.trace_id), ("span_id", &e.span_id)] {
                if !id.is_empty() && id.iter().any(|b| *b != 0) {
                    let hex = hex::encode(id);
                    runes += name.len() + hex.len();
                    labels.push(Label::new(name, hex));
                }
            }
            let extra: Vec<Label> = e
                .filtered_attributes
                .iter()
                .map(|kv| Label::new(kv.key.clone(), value_str(kv.value.as_ref())))
                .collect();
            runes += extra
                .iter()
                .map(|l| l.name.chars().count() + l.value.chars().count())
                .sum::<usize>();
            if runes <= MAX_EXEMPLAR_RUNES {
                labels.extend(extra);
            }
            Exemplar {
                labels,
                value,
                timestamp: millis(e.time_unix_nano),
            }
        })
        .collect()
}
