//! The `spanmetrics` connector (traces -> metrics), after the Collector-contrib
//! `spanmetricsconnector`: spans are aggregated into `{namespace}.calls` and
//! `{namespace}.duration` (and optionally `{namespace}.events`) per resource, and the metrics
//! are flushed every `metrics_flush_interval` to the metrics pipelines.
//!
//! [`SpanMetricsConnector`] is the traces-side [`Consumer`] (it aggregates and acknowledges at
//! once); its [`start`](SpanMetricsConnector::start)ed task flushes to the metrics fan-out and
//! flushes one last time on shutdown. The aggregation itself is [`SpanMetrics`].

mod aggregator;
mod config;
mod key;
mod output;
#[cfg(test)]
mod tests;

pub use aggregator::SpanMetrics;
pub use config::{
    Dimension, EventsConfig, ExemplarsConfig, ExplicitHistogramConfig, ExponentialHistogramConfig,
    HistogramConfig, SpanMetricsConfig, Unit, CUMULATIVE, DEFAULT_BUCKETS_MS, DEFAULT_NAMESPACE,
    DELTA,
};
pub use output::SCOPE_NAME;

use osprey_pipeline::{Batch, ConfigError, ConsumeError, Consumer, Payload, SharedConsumer};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Checks a `spanmetrics` config body without building anything.
pub fn validate(value: &serde_yaml::Value) -> Result<(), ConfigError> {
    SpanMetricsConfig::from_yaml(value).map(|_| ())
}

/// Wall-clock time in Unix nanoseconds.
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The `spanmetrics` connector: a traces consumer feeding a metrics consumer.
pub struct SpanMetricsConnector {
    aggregator: Mutex<SpanMetrics>,
    metrics_out: SharedConsumer,
    flush_interval: Duration,
}

impl SpanMetricsConnector {
    /// Builds the connector; `metrics_out` is the fan-out to the metrics pipelines that list
    /// it as a receiver.
    pub fn new(
        config: SpanMetricsConfig,
        metrics_out: SharedConsumer,
    ) -> Result<Arc<Self>, ConfigError> {
        let aggregator = SpanMetrics::new(&config)?;
        Ok(Arc::new(SpanMetricsConnector {
            aggregator: Mutex::new(aggregator),
            metrics_out,
            flush_interval: config.metrics_flush_interval,
        }))
    }

    fn state(&self) -> MutexGuard<'_, SpanMetrics> {
        self.aggregator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Flushes the aggregated metrics now and hands them to the metrics pipelines (nothing
    /// is sent when there is nothing aggregated).
    pub async fn flush(&self) -> Result<(), ConsumeError> {
        let request = self.state().flush(now_ns());
        if request.resource_metrics.is_empty() {
            return Ok(());
        }
        let points = osprey_pipeline::signal::metric_point_count(&request);
        self.metrics_out.consume(Batch::metrics(request)).await.map_err(|e| {
            tracing::warn!(error = %e, points, "spanmetrics: the metrics pipelines refused the flushed metrics");
            e
        })
    }

    /// Starts the flush task: one flush per `metrics_flush_interval`, and a final flush when
    /// `shutdown` is cancelled.
    pub fn start(self: &Arc<Self>, shutdown: CancellationToken) -> JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let period = this.flush_interval;
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = ticker.tick() => {
                        // Errors are logged in flush; cumulative state survives for the next one.
                        let _ = this.flush().await;
                    }
                }
            }
            let _ = this.flush().await;
            tracing::debug!("spanmetrics: flush task stopped");
        })
    }
}

#[async_trait::async_trait]
impl Consumer for SpanMetricsConnector {
    async fn consume(&self, mut batch: Batch) -> Result<(), ConsumeError> {
        batch.materialize()?;
        let Payload::Traces(request) = &batch.payload else {
            return Err(ConsumeError::Permanent(format!(
                "the spanmetrics connector takes traces, not {}",
                batch.signal()
            )));
        };
        self.state().add(request, now_ns());
        Ok(())
    }
}
