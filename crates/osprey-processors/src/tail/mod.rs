//! The `tail_sampling` processor: holds spans grouped by trace id, decides per trace once
//! `decision_wait` has passed since its first span, and forwards the spans of sampled traces
//! (policies: see [`policy`]; state machine: see [`sampler`]).
//!
//! `consume` acknowledges as soon as the spans are held: held traces live in memory only,
//! as upstream, so a crash loses them. Spans of an already sampled trace are forwarded from
//! `consume` itself; decided traces are forwarded by a ticker task, started on the first
//! batch, that runs until the processor is dropped or [`TailSamplingProcessor::shutdown`]
//! is called. Forwarded batches carry no request context (upstream reassembles them too).

pub mod build;
pub mod config;
mod lru;
pub mod policy;
pub mod sampler;
pub mod view;

pub use config::TailSamplingConfig;
pub use sampler::{TailSampler, TailStats};

use osprey_model::TraceRequest;
use osprey_pipeline::{Batch, ConfigError, ConsumeError, Consumer, Payload, SharedConsumer};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Inner {
    sampler: Mutex<TailSampler>,
    next: SharedConsumer,
}

/// Now, on tokio's clock (the same as the system's monotonic clock unless a test pauses it).
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, TailSampler> {
        self.sampler.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn forward(&self, req: TraceRequest, what: &str) {
        if req.resource_spans.is_empty() {
            return;
        }
        if let Err(e) = self.next.consume(Batch::traces(req)).await {
            tracing::warn!(error = %e, "tail_sampling: the next consumer refused {what}; spans dropped");
        }
    }
}

/// The `tail_sampling` processor.
pub struct TailSamplingProcessor {
    inner: Arc<Inner>,
    period: Duration,
    retry_after: Duration,
    ticker: OnceLock<()>,
    cancel: CancellationToken,
}

impl TailSamplingProcessor {
    pub fn new(config: TailSamplingConfig, next: SharedConsumer) -> Result<Self, ConfigError> {
        let sampler = TailSampler::new(&config)?;
        // Upstream ticks once a second; shorter waits tick faster so they are honoured.
        let period = config
            .decision_wait
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        Ok(TailSamplingProcessor {
            inner: Arc::new(Inner {
                sampler: Mutex::new(sampler),
                next,
            }),
            period,
            retry_after: period,
            ticker: OnceLock::new(),
            cancel: CancellationToken::new(),
        })
    }

    /// What the sampler has done so far.
    pub fn stats(&self) -> TailStats {
        self.inner.lock().stats()
    }

    fn start_ticker(&self) {
        self.ticker.get_or_init(|| {
            let weak: Weak<Inner> = Arc::downgrade(&self.inner);
            let cancel = self.cancel.clone();
            let period = self.period;
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(period);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = interval.tick() => {}
                    }
                    let Some(inner) = weak.upgrade() else { break };
                    let sampled = inner.lock().tick(now());
                    inner.forward(sampled, "sampled traces").await;
                }
            });
        });
    }

    /// Stops the ticker and decides (or drops, with `drop_pending_traces_on_shutdown`) the
    /// traces still held, forwarding the sampled ones.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        let sampled = self.inner.lock().flush(now());
        self.inner
            .forward(sampled, "sampled traces at shutdown")
            .await;
    }
}

impl Drop for TailSamplingProcessor {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[async_trait::async_trait]
impl Consumer for TailSamplingProcessor {
    async fn consume(&self, mut batch: Batch) -> Result<(), ConsumeError> {
        batch.materialize()?;
        let Payload::Traces(req) = batch.payload else {
            return Err(ConsumeError::Permanent(
                "tail_sampling: only traces are supported".into(),
            ));
        };
        self.start_ticker();
        let late = self.inner.lock().add(req, now());
        match late {
            Ok(late) => {
                self.inner
                    .forward(late, "late spans of sampled traces")
                    .await;
                Ok(())
            }
            Err(e) => Err(ConsumeError::Overloaded {
                retry_after: self.retry_after,
                reason: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
