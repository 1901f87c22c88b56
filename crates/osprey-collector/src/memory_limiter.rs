//! The `memory_limiter` processor: samples the process's resident memory every
//! `check_interval` and, while it is above the soft limit (`limit - spike`), refuses new data
//! with a retryable error so clients back off instead of the process running out of memory.
//! Limits come from `limit_mib`/`spike_limit_mib` or from percentages of the memory available
//! (the cgroup limit when there is one, else the machine's memory).

use osprey_pipeline::{go_duration, Batch, ConfigError, ConsumeError, Consumer, SharedConsumer};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryLimiterConfig {
    #[serde(with = "go_duration")]
    pub check_interval: Duration,
    pub limit_mib: u64,
    pub spike_limit_mib: u64,
    pub limit_percentage: u64,
    pub spike_limit_percentage: u64,
    #[serde(with = "go_duration")]
    pub min_gc_interval_when_soft_limited: Duration,
    #[serde(with = "go_duration")]
    pub min_gc_interval_when_hard_limited: Duration,
}

impl MemoryLimiterConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.check_interval.is_zero() {
            return Err(ConfigError::new(
                "check_interval",
                "must be greater than zero",
            ));
        }
        if self.limit_mib == 0 && self.limit_percentage == 0 {
            return Err(ConfigError::new(
                "limit_mib",
                "limit_mib or limit_percentage must be greater than zero",
            ));
        }
        if self.limit_mib > 0 && self.spike_limit_mib >= self.limit_mib {
            return Err(ConfigError::new(
                "spike_limit_mib",
                "must be smaller than limit_mib",
            ));
        }
        if self.limit_percentage > 100 || self.spike_limit_percentage > 100 {
            return Err(ConfigError::new(
                "limit_percentage",
                "percentages must be between 0 and 100",
            ));
        }
        if self.limit_percentage > 0 && self.spike_limit_percentage >= self.limit_percentage {
            return Err(ConfigError::new(
                "spike_limit_percentage",
                "must be smaller than limit_percentage",
            ));
        }
        Ok(())
    }

    /// (hard limit, soft limit) in bytes.
    pub fn limits(&self, total_memory: u64) -> (u64, u64) {
        const MIB: u64 = 1 << 20;
        let (limit, spike) = if self.limit_mib > 0 {
            let spike = if self.spike_limit_mib > 0 {
                self.spike_limit_mib
            } else {
                self.limit_mib / 5
            };
            (self.limit_mib * MIB, spike * MIB)
        } else {
            let limit = total_memory / 100 * self.limit_percentage;
            (limit, total_memory / 100 * self.spike_limit_percentage)
        };
        (limit, limit.saturating_sub(spike))
    }
}

/// Resident set size of this process, in bytes.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Memory available to this process: the cgroup v2 limit, else MemTotal.
pub fn total_memory() -> u64 {
    if let Ok(s) = std::fs::read_to_string("/sys/fs/cgroup/memory.max") {
        if let Ok(n) = s.trim().parse::<u64>() {
            return n;
        }
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(u64::MAX, |kb| kb * 1024)
}

pub struct MemoryLimiter {
    next: SharedConsumer,
    refusing: Arc<AtomicBool>,
    usage: Arc<AtomicU64>,
    soft_limit: u64,
    check_interval: Duration,
}

impl MemoryLimiter {
    /// Starts the sampler; `sample` gives the current usage (the process RSS in production).
    pub fn start(
        config: &MemoryLimiterConfig,
        next: SharedConsumer,
        sample: fn() -> u64,
        stop: CancellationToken,
    ) -> Arc<MemoryLimiter> {
        let (hard, soft) = config.limits(total_memory());
        let refusing = Arc::new(AtomicBool::new(false));
        let usage = Arc::new(AtomicU64::new(0));
        let (r, u, interval) = (refusing.clone(), usage.clone(), config.check_interval);
        let check = move || {
            let now = sample();
            u.store(now, Ordering::Relaxed);
            let over = now > soft;
            if over != r.swap(over, Ordering::Relaxed) {
                if over {
                    tracing::warn!(
                        usage_mib = now >> 20,
                        soft_limit_mib = soft >> 20,
                        hard_limit_mib = hard >> 20,
                        "memory usage is above the soft limit; refusing data"
                    );
                } else {
                    tracing::info!(
                        usage_mib = now >> 20,
                        "memory usage is back below the soft limit"
                    );
                }
            }
        };
        check();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = tick.tick() => check(),
                    _ = stop.cancelled() => return,
                }
            }
        });
        Arc::new(MemoryLimiter {
            next,
            refusing,
            usage,
            soft_limit: soft,
            check_interval: interval,
        })
    }
}

#[async_trait::async_trait]
impl Consumer for MemoryLimiter {
    fn has_room(&self) -> bool {
        !self.refusing.load(Ordering::Relaxed) && self.next.has_room()
    }

    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        if self.refusing.load(Ordering::Relaxed) {
            return Err(ConsumeError::Overloaded {
                retry_after: self.check_interval.max(Duration::from_secs(1)),
                reason: format!(
                    "data refused due to high memory usage ({} MiB, soft limit {} MiB)",
                    self.usage.load(Ordering::Relaxed) >> 20,
                    self.soft_limit >> 20
                ),
            });
        }
        self.next.consume(batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ok_;
    #[async_trait::async_trait]
    impl Consumer for Ok_ {
        async fn consume(&self, _: Batch) -> Result<(), ConsumeError> {
            Ok(())
        }
    }

    #[test]
    fn limits_and_validation() {
        let c = MemoryLimiterConfig {
            check_interval: Duration::from_secs(1),
            limit_mib: 100,
            ..Default::default()
        };
        assert!(c.validate().is_ok());
        assert_eq!(c.limits(0), (100 << 20, 80 << 20));
        let p = MemoryLimiterConfig {
            check_interval: Duration::from_secs(1),
            limit_percentage: 50,
            spike_limit_percentage: 10,
            ..Default::default()
        };
        assert_eq!(p.limits(1000 * 100), (50_000, 40_000));
        assert_eq!(
            MemoryLimiterConfig::default().validate().unwrap_err().path,
            "check_interval"
        );
        let bad = MemoryLimiterConfig {
            check_interval: Duration::from_secs(1),
            limit_mib: 10,
            spike_limit_mib: 10,
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().path, "spike_limit_mib");
    }

    #[tokio::test]
    async fn refuses_above_the_soft_limit() {
        let c = MemoryLimiterConfig {
            check_interval: Duration::from_secs(1),
            limit_mib: 10,
            ..Default::default()
        };
        let stop = CancellationToken::new();
        let high = MemoryLimiter::start(&c, Arc::new(Ok_), || 9 << 20, stop.clone());
        let e = high.consume(Batch::default()).await;
        assert!(matches!(e, Err(ConsumeError::Overloaded { .. })), "{e:?}");
        let low = MemoryLimiter::start(&c, Arc::new(Ok_), || 1 << 20, stop.clone());
        assert!(low.consume(Batch::default()).await.is_ok());
        stop.cancel();
    }
}
