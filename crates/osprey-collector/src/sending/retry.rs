//! `retry_on_failure`: exponential backoff with jitter, bounded by `max_elapsed_time`
//! (0 = retry until shutdown). A permanent error is never retried. A throttling answer
//! (`Overloaded { retry_after }`) waits at least the delay the peer asked for.

use osprey_pipeline::{go_duration, Batch, ConfigError, ConsumeError, SharedConsumer};
use rand::Rng;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub enabled: bool,
    #[serde(with = "go_duration")]
    pub initial_interval: Duration,
    pub randomization_factor: f64,
    pub multiplier: f64,
    #[serde(with = "go_duration")]
    pub max_interval: Duration,
    #[serde(with = "go_duration")]
    pub max_elapsed_time: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            initial_interval: Duration::from_secs(5),
            randomization_factor: 0.5,
            multiplier: 1.5,
            max_interval: Duration::from_secs(30),
            max_elapsed_time: Duration::from_secs(300),
        }
    }
}

impl RetryConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.randomization_factor) {
            return Err(ConfigError::new(
                "randomization_factor",
                "must be between 0 and 1",
            ));
        }
        if self.multiplier < 1.0 {
            return Err(ConfigError::new("multiplier", "must be at least 1"));
        }
        if self.enabled && self.initial_interval.is_zero() {
            return Err(ConfigError::new("initial_interval", "must be positive"));
        }
        Ok(())
    }

    /// The wait before attempt `n + 1` (n = 0 after the first failure), before jitter.
    pub fn backoff(&self, n: u32) -> Duration {
        let base = self.initial_interval.as_secs_f64() * self.multiplier.powi(n as i32);
        Duration::from_secs_f64(base.min(self.max_interval.as_secs_f64()))
    }
}

/// Sends `batch`, retrying retryable failures per `cfg`, until success, a permanent error,
/// the time budget, or `stop`.
pub async fn send_with_retry(
    inner: &SharedConsumer,
    batch: Batch,
    cfg: &RetryConfig,
    stop: &CancellationToken,
) -> Result<(), ConsumeError> {
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        let err = match inner.consume(batch.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if !cfg.enabled || !err.is_retryable() || stop.is_cancelled() {
            return Err(err);
        }
        let mut wait = cfg.backoff(attempt);
        let jitter = cfg.randomization_factor * wait.as_secs_f64();
        if jitter > 0.0 {
            let delta = rand::rng().random_range(-jitter..=jitter);
            wait = Duration::from_secs_f64((wait.as_secs_f64() + delta).max(0.0));
        }
        if let ConsumeError::Overloaded { retry_after, .. } = &err {
            wait = wait.max(*retry_after);
        }
        if !cfg.max_elapsed_time.is_zero() && started.elapsed() + wait > cfg.max_elapsed_time {
            return Err(ConsumeError::Permanent(format!(
                "no more retries left after {:?}: {err}",
                started.elapsed()
            )));
        }
        tracing::info!(error = %err, ?wait, attempt, "export failed; will retry");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return Err(err),
        }
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_pipeline::Consumer;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    struct Flaky {
        fail_first: u32,
        calls: AtomicU32,
        permanent: bool,
    }

    #[async_trait::async_trait]
    impl Consumer for Flaky {
        async fn consume(&self, _: Batch) -> Result<(), ConsumeError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n < self.fail_first {
                if self.permanent {
                    return Err(ConsumeError::Permanent("bad".into()));
                }
                return Err(ConsumeError::Unavailable("down".into()));
            }
            Ok(())
        }
    }

    fn fast() -> RetryConfig {
        RetryConfig {
            initial_interval: Duration::from_millis(1),
            max_interval: Duration::from_millis(2),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn retries_until_success_but_not_permanent_errors() {
        let f = Arc::new(Flaky {
            fail_first: 3,
            calls: AtomicU32::new(0),
            permanent: false,
        });
        let c: SharedConsumer = f.clone();
        let stop = CancellationToken::new();
        assert!(send_with_retry(&c, Batch::default(), &fast(), &stop)
            .await
            .is_ok());
        assert_eq!(f.calls.load(Ordering::SeqCst), 4);
        let p = Arc::new(Flaky {
            fail_first: 3,
            calls: AtomicU32::new(0),
            permanent: true,
        });
        let c: SharedConsumer = p.clone();
        assert!(send_with_retry(&c, Batch::default(), &fast(), &stop)
            .await
            .is_err());
        assert_eq!(p.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn gives_up_after_the_budget() {
        let f = Arc::new(Flaky {
            fail_first: u32::MAX,
            calls: AtomicU32::new(0),
            permanent: false,
        });
        let c: SharedConsumer = f.clone();
        let cfg = RetryConfig {
            max_elapsed_time: Duration::from_millis(20),
            ..fast()
        };
        let e = send_with_retry(&c, Batch::default(), &cfg, &CancellationToken::new()).await;
        assert!(matches!(e, Err(ConsumeError::Permanent(m)) if m.contains("no more retries")));
    }

    #[test]
    fn backoff_grows_to_the_cap() {
        let c = RetryConfig::default();
        assert_eq!(c.backoff(0), Duration::from_secs(5));
        assert_eq!(c.backoff(1), Duration::from_secs_f64(7.5));
        assert_eq!(c.backoff(20), Duration::from_secs(30));
    }
}
