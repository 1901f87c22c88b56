//! Connectors: components that end one pipeline and start another. `spanmetrics` turns the
//! spans of a traces pipeline into RED metrics (calls and a duration histogram) for a metrics
//! pipeline.

pub mod spanmetrics;

pub use spanmetrics::{SpanMetrics, SpanMetricsConfig, SpanMetricsConnector};
