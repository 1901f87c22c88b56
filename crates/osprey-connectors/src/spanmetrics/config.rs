//! The `spanmetrics` connector's configuration: the YAML keys, defaults and checks of the
//! Collector-contrib `spanmetrics` connector (`connector/spanmetricsconnector/config.go` and
//! `factory.go`).

use osprey_pipeline::{go_duration, ConfigError};
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// The default metric namespace (`traces.span.metrics.calls`, `...duration`).
pub const DEFAULT_NAMESPACE: &str = "traces.span.metrics";
pub const CUMULATIVE: &str = "AGGREGATION_TEMPORALITY_CUMULATIVE";
pub const DELTA: &str = "AGGREGATION_TEMPORALITY_DELTA";
/// Upstream's default explicit buckets, in milliseconds.
pub const DEFAULT_BUCKETS_MS: [f64; 16] = [
    2.0, 4.0, 6.0, 8.0, 10.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1000.0, 1400.0, 2000.0, 5000.0,
    10_000.0, 15_000.0,
];
/// The dimensions every metric carries unless excluded.
pub const RESERVED_DIMENSIONS: [&str; 4] =
    ["service.name", "span.kind", "status.code", "span.name"];

/// The unit the duration histogram records in (`histogram.unit`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Unit {
    #[default]
    Milliseconds,
    Seconds,
}

impl Unit {
    /// The OTLP unit string of the duration metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Milliseconds => "ms",
            Unit::Seconds => "s",
        }
    }

    /// Nanoseconds per unit.
    pub fn nanos(self) -> f64 {
        match self {
            Unit::Milliseconds => 1e6,
            Unit::Seconds => 1e9,
        }
    }
}

impl<'de> Deserialize<'de> for Unit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "ms" => Ok(Unit::Milliseconds),
            "s" => Ok(Unit::Seconds),
            other => Err(serde::de::Error::custom(format!(
                "unknown unit {other:?}, allowed units are \"ms\" and \"s\""
            ))),
        }
    }
}

/// An extra dimension: an attribute looked up in the span, then the resource; `default` when
/// missing (without a default the dimension is omitted).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dimension {
    pub name: String,
    #[serde(deserialize_with = "lenient_opt_string")]
    pub default: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistogramConfig {
    pub disable: bool,
    pub unit: Unit,
    pub exponential: Option<ExponentialHistogramConfig>,
    pub explicit: Option<ExplicitHistogramConfig>,
    /// Dimensions added to the duration histogram only.
    pub dimensions: Vec<Dimension>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExponentialHistogramConfig {
    pub max_size: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExplicitHistogramConfig {
    /// Bucket bounds as Go durations (`[2ms, 1s]`); unset means the default buckets.
    #[serde(deserialize_with = "opt_go_durations")]
    pub buckets: Option<Vec<Duration>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExemplarsConfig {
    pub enabled: bool,
    pub max_per_data_point: usize,
}

impl Default for ExemplarsConfig {
    fn default() -> Self {
        ExemplarsConfig {
            enabled: false,
            max_per_data_point: 5,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    pub enabled: bool,
    pub dimensions: Vec<Dimension>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpanMetricsConfig {
    pub histogram: HistogramConfig,
    pub dimensions: Vec<Dimension>,
    /// Dimensions added to the calls metric only.
    pub calls_dimensions: Vec<Dimension>,
    pub exclude_dimensions: Vec<String>,
    /// Deprecated upstream (replaced by `aggregation_cardinality_limit`); accepted, unused.
    pub dimensions_cache_size: i64,
    /// How many resources keep cumulative state; the least recently used are dropped.
    pub resource_metrics_cache_size: i64,
    pub resource_metrics_key_attributes: Vec<String>,
    pub aggregation_temporality: String,
    #[serde(with = "go_duration")]
    pub metrics_flush_interval: Duration,
    /// Resources with no spans for this long stop being exported (0 = never).
    #[serde(with = "go_duration")]
    pub metrics_expiration: Duration,
    /// Delta only: how many series remember their last flush time (their next start time).
    pub metric_timestamp_cache_size: Option<i64>,
    pub namespace: String,
    pub exemplars: ExemplarsConfig,
    pub events: EventsConfig,
    /// Scope names whose spans get `span.instrumentation.scope.name`/`.version` dimensions.
    pub include_instrumentation_scope: Vec<String>,
    /// Series per metric and resource before new ones fold into `otel.metric.overflow`
    /// (0 = unlimited).
    pub aggregation_cardinality_limit: i64,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        SpanMetricsConfig {
            histogram: HistogramConfig::default(),
            dimensions: Vec::new(),
            calls_dimensions: Vec::new(),
            exclude_dimensions: Vec::new(),
            dimensions_cache_size: 1000,
            resource_metrics_cache_size: 1000,
            resource_metrics_key_attributes: Vec::new(),
            aggregation_temporality: CUMULATIVE.to_string(),
            metrics_flush_interval: Duration::from_secs(60),
            metrics_expiration: Duration::ZERO,
            metric_timestamp_cache_size: None,
            namespace: DEFAULT_NAMESPACE.to_string(),
            exemplars: ExemplarsConfig::default(),
            events: EventsConfig::default(),
            include_instrumentation_scope: Vec::new(),
            aggregation_cardinality_limit: 0,
        }
    }
}

impl SpanMetricsConfig {
    /// Decodes and checks a `spanmetrics` config body (`null` = defaults).
    pub fn from_yaml(value: &serde_yaml::Value) -> Result<Self, ConfigError> {
        let config: SpanMetricsConfig = osprey_pipeline::decode_config(value)?;
        config.validate()?;
        Ok(config)
    }

    /// Whether the generated metrics are delta (anything but `..._DELTA` is cumulative, as
    /// upstream).
    pub fn is_delta(&self) -> bool {
        self.aggregation_temporality == DELTA
    }

    /// The delta timestamp cache size (default 1000).
    pub fn delta_timestamp_cache_size(&self) -> i64 {
        self.metric_timestamp_cache_size.unwrap_or(1000)
    }

    /// The histogram bounds in the configured unit.
    pub fn bounds(&self) -> Vec<f64> {
        let unit = self.histogram.unit;
        match self
            .histogram
            .explicit
            .as_ref()
            .and_then(|e| e.buckets.as_ref())
        {
            Some(buckets) => buckets
                .iter()
                .map(|d| d.as_nanos() as f64 / unit.nanos())
                .collect(),
            None => DEFAULT_BUCKETS_MS
                .iter()
                .map(|ms| ms * 1e6 / unit.nanos())
                .collect(),
        }
    }

    /// Semantic checks; errors name the key path relative to the connector.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_dimensions(&self.dimensions, &[]).map_err(|m| {
            ConfigError::new("dimensions", format!("failed validating dimensions: {m}"))
        })?;
        validate_dimensions(&self.calls_dimensions, &self.dimensions)
            .map_err(|m| ConfigError::new("calls_dimensions", m))?;
        validate_dimensions(&self.histogram.dimensions, &self.dimensions)
            .map_err(|m| ConfigError::new("histogram.dimensions", m))?;
        if self.events.enabled {
            if self.events.dimensions.is_empty() {
                return Err(ConfigError::new(
                    "events.dimensions",
                    "failed validating event dimensions: no dimensions configured for events",
                ));
            }
            validate_dimensions(&self.events.dimensions, &[]).map_err(|m| {
                ConfigError::new(
                    "events.dimensions",
                    format!("failed validating event dimensions: {m}"),
                )
            })?;
        }
        if self.histogram.explicit.is_some() && self.histogram.exponential.is_some() {
            return Err(ConfigError::new(
                "histogram",
                "use either `explicit` or `exponential` buckets histogram",
            ));
        }
        if self.histogram.exponential.is_some() {
            return Err(ConfigError::new(
                "histogram.exponential",
                "exponential histograms are not supported by osprey yet; use histogram.explicit",
            ));
        }
        let bounds = self.bounds();
        if bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ConfigError::new(
                "histogram.explicit.buckets",
                "buckets must be strictly increasing",
            ));
        }
        if self.metrics_flush_interval.is_zero() {
            return Err(ConfigError::new(
                "metrics_flush_interval",
                "invalid metrics_flush_interval: 0, the duration should be positive",
            ));
        }
        if self.is_delta() && self.delta_timestamp_cache_size() <= 0 {
            return Err(ConfigError::new(
                "metric_timestamp_cache_size",
                format!(
                    "invalid delta timestamp cache size: {}, the maximum number of the items in the cache should be positive",
                    self.delta_timestamp_cache_size()
                ),
            ));
        }
        if self.aggregation_cardinality_limit < 0 {
            return Err(ConfigError::new(
                "aggregation_cardinality_limit",
                format!(
                    "invalid aggregation_cardinality_limit: {}, the limit should be positive",
                    self.aggregation_cardinality_limit
                ),
            ));
        }
        if self.resource_metrics_cache_size <= 0 {
            return Err(ConfigError::new(
                "resource_metrics_cache_size",
                "must provide a positive size",
            ));
        }
        if self.aggregation_temporality != CUMULATIVE && !self.is_delta() {
            tracing::warn!(
                value = %self.aggregation_temporality,
                "spanmetrics: unknown aggregation_temporality, using {CUMULATIVE} (as upstream)"
            );
        }
        Ok(())
    }
}

/// Rejects a dimension that repeats a reserved name, one in `outer`, or another in the list.
fn validate_dimensions(dims: &[Dimension], outer: &[Dimension]) -> Result<(), String> {
    let mut seen: Vec<&str> = RESERVED_DIMENSIONS.to_vec();
    seen.extend(outer.iter().map(|d| d.name.as_str()));
    for d in dims {
        if d.name.is_empty() {
            return Err("a dimension has no name".into());
        }
        if seen.contains(&d.name.as_str()) {
            return Err(format!("duplicate dimension name {}", d.name));
        }
        seen.push(&d.name);
    }
    Ok(())
}

/// A YAML scalar (string, number or bool) as text, as the Collector's weak typing allows.
fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_yaml::Value>::deserialize(d)?;
    match v {
        None | Some(serde_yaml::Value::Null) => Ok(None),
        Some(serde_yaml::Value::String(s)) => Ok(Some(s)),
        Some(serde_yaml::Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(serde_yaml::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(serde::de::Error::custom("expected a string")),
    }
}

/// A list of Go durations (`[100us, 2ms, 1s]`); bare integers are nanoseconds.
fn opt_go_durations<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Duration>>, D::Error> {
    #[derive(Deserialize)]
    struct One(#[serde(with = "go_duration")] Duration);
    let v = Option::<Vec<One>>::deserialize(d)?;
    Ok(v.map(|list| list.into_iter().map(|o| o.0).collect()))
}
