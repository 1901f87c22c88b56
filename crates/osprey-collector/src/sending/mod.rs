//! The exporter helper every exporter gets: `sending_queue` (in memory, or persistent on disk
//! through a `file_storage` extension) and `retry_on_failure` (exponential backoff), with the
//! Collector's keys and defaults.
//!
//! Accounting: a batch the queue took is acknowledged upstream; from then on it ends in exactly
//! one of `sent`, or `send_failed` with a logged reason (a permanent error, or retries ran out).
//! A full queue refuses the batch (retryable) and counts `enqueue_failed`.

mod persistent;
mod retry;

pub use retry::RetryConfig;

use crate::telemetry::{Counter, Gauge};
use osprey_pipeline::{go_duration, Batch, ConfigError, ConsumeError, Consumer, SharedConsumer};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

/// `sending_queue` as the Collector spells it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    pub enabled: bool,
    pub num_consumers: usize,
    /// Capacity in batches (requests).
    pub queue_size: usize,
    /// The id of a `file_storage` extension: makes the queue persistent.
    pub storage: Option<String>,
    /// Wait for room instead of refusing when full.
    pub blocking: bool,
    /// Only `requests` is supported.
    pub sizer: Option<String>,
    #[serde(with = "go_duration")]
    pub wait_for_result_timeout: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            enabled: true,
            num_consumers: 10,
            queue_size: 1000,
            storage: None,
            blocking: false,
            sizer: None,
            wait_for_result_timeout: Duration::ZERO,
        }
    }
}

impl QueueConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled && self.queue_size == 0 {
            return Err(ConfigError::new(
                "queue_size",
                "must be positive when the queue is enabled",
            ));
        }
        if self.enabled && self.num_consumers == 0 {
            return Err(ConfigError::new("num_consumers", "must be positive"));
        }
        if let Some(s) = &self.sizer {
            if s != "requests" {
                return Err(ConfigError::new(
                    "sizer",
                    format!("{s:?} is not supported (only requests)"),
                ));
            }
        }
        Ok(())
    }
}

/// The counters an exporter reports, already labelled with its id and signal.
#[derive(Clone)]
pub struct ExporterMetrics {
    pub sent: Counter,
    pub send_failed: Counter,
    pub enqueue_failed: Counter,
    pub queue_size: Gauge,
    pub queue_capacity: Gauge,
}

/// What the queue workers do with one batch: send with retries, then count the outcome.
struct Sender {
    inner: SharedConsumer,
    retry: RetryConfig,
    metrics: ExporterMetrics,
    name: String,
    stop: CancellationToken,
}

impl Sender {
    /// Sends with retries. Returns the last error when the batch was not delivered.
    async fn deliver(&self, batch: Batch) -> Result<(), ConsumeError> {
        let items = batch.item_count() as u64;
        let result = retry::send_with_retry(&self.inner, batch, &self.retry, &self.stop).await;
        match &result {
            Ok(()) => self.metrics.sent.add(items),
            Err(e) => {
                self.metrics.send_failed.add(items);
                tracing::error!(exporter = %self.name, items, error = %e,
                    "exporting failed; the data is dropped");
            }
        }
        result
    }
}

/// An exporter with its queue and retry policy in front.
pub struct QueuedExporter {
    sender: Arc<Sender>,
    queue: Option<Arc<Queue>>,
}

enum Backing {
    Memory(Mutex<VecDeque<Batch>>),
    Disk(persistent::DiskQueue),
}

struct Queue {
    backing: Backing,
    capacity: usize,
    blocking: bool,
    /// Set when the queue was found full, cleared when a worker takes a batch: the lock-free
    /// answer to [`Consumer::has_room`].
    full: AtomicBool,
    ready: Notify,
    room: Notify,
}

impl Queue {
    async fn len(&self) -> usize {
        match &self.backing {
            Backing::Memory(q) => q.lock().await.len(),
            Backing::Disk(d) => d.len().await,
        }
    }
}

impl QueuedExporter {
    /// Wraps `inner`. `storage_dir` is the `file_storage` directory when the queue is persistent.
    pub fn start(
        inner: SharedConsumer,
        name: String,
        queue: &QueueConfig,
        retry: RetryConfig,
        storage_dir: Option<PathBuf>,
        metrics: ExporterMetrics,
        stop: CancellationToken,
    ) -> Result<Arc<QueuedExporter>, ConsumeError> {
        let sender = Arc::new(Sender {
            inner,
            retry,
            metrics: metrics.clone(),
            name,
            stop: stop.clone(),
        });
        if !queue.enabled {
            return Ok(Arc::new(QueuedExporter {
                sender,
                queue: None,
            }));
        }
        let backing = match storage_dir {
            Some(dir) => Backing::Disk(persistent::DiskQueue::open(dir)?),
            None => Backing::Memory(Mutex::new(VecDeque::new())),
        };
        let q = Arc::new(Queue {
            backing,
            capacity: queue.queue_size,
            blocking: queue.blocking,
            full: AtomicBool::new(false),
            ready: Notify::new(),
            room: Notify::new(),
        });
        metrics.queue_capacity.set(queue.queue_size as i64);
        for _ in 0..queue.num_consumers {
            let (q, s, stop) = (q.clone(), sender.clone(), stop.clone());
            tokio::spawn(async move { worker(q, s, stop).await });
        }
        Ok(Arc::new(QueuedExporter {
            sender,
            queue: Some(q),
        }))
    }
}

async fn worker(q: Arc<Queue>, sender: Arc<Sender>, stop: CancellationToken) {
    loop {
        let next = match &q.backing {
            Backing::Memory(m) => m.lock().await.pop_front().map(|b| (b, None)),
            Backing::Disk(d) => match d.take().await {
                Ok(v) => v.map(|(b, key)| (b, Some(key))),
                Err(e) => {
                    tracing::error!(error = %e, "persistent queue read failed");
                    None
                }
            },
        };
        let Some((batch, key)) = next else {
            // Idle: correct the gauge, which concurrent enqueues may have left stale.
            sender.metrics.queue_size.set(q.len().await as i64);
            if stop.is_cancelled() {
                return;
            }
            tokio::select! {
                _ = q.ready.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.cancelled() => {
                    // Keep draining a memory queue on shutdown; a disk queue keeps its files.
                    if matches!(q.backing, Backing::Disk(_)) { return; }
                }
            }
            continue;
        };
        sender.metrics.queue_size.set(q.len().await as i64);
        q.full.store(false, Ordering::Relaxed);
        q.room.notify_one();
        let outcome = sender.deliver(batch).await;
        if let (Backing::Disk(d), Some(key)) = (&q.backing, key) {
            // Delivered or dropped for a counted reason: either way it leaves the disk.
            // Interrupted by shutdown: it stays for the next start.
            let interrupted = stop.is_cancelled() && outcome.is_err();
            if let Err(e) = d.finish(key, !interrupted).await {
                tracing::error!(error = %e, "persistent queue cleanup failed");
            }
        }
    }
}

#[async_trait::async_trait]
impl Consumer for QueuedExporter {
    /// `false` while a non-blocking queue is full; a blocking queue always has room to wait.
    fn has_room(&self) -> bool {
        self.queue
            .as_ref()
            .is_none_or(|q| q.blocking || !q.full.load(Ordering::Relaxed))
    }

    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let Some(q) = &self.queue else {
            return self.sender.deliver(batch).await;
        };
        let items = batch.item_count() as u64;
        loop {
            let len = q.len().await;
            if len < q.capacity {
                break;
            }
            q.full.store(true, Ordering::Relaxed);
            if !q.blocking {
                self.sender.metrics.enqueue_failed.add(items);
                return Err(ConsumeError::Overloaded {
                    retry_after: Duration::from_secs(1),
                    reason: format!("sending queue of exporter {} is full", self.sender.name),
                });
            }
            tokio::select! {
                _ = q.room.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        match &q.backing {
            Backing::Memory(m) => m.lock().await.push_back(batch),
            Backing::Disk(d) => {
                if let Err(e) = d.push(&batch).await {
                    self.sender.metrics.enqueue_failed.add(items);
                    return Err(e);
                }
            }
        }
        let len = q.len().await;
        self.sender.metrics.queue_size.set(len as i64);
        if len >= q.capacity {
            q.full.store(true, Ordering::Relaxed);
        }
        q.ready.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers one batch per permit: a queue consumer waits on it until the test lets it go.
    struct Gate(tokio::sync::Semaphore);

    #[async_trait::async_trait]
    impl Consumer for Gate {
        async fn consume(&self, _: Batch) -> Result<(), ConsumeError> {
            let permit = self.0.acquire().await;
            permit
                .map(|p| p.forget())
                .map_err(|_| ConsumeError::Unavailable("closed".into()))
        }
    }

    fn exporter(blocking: bool) -> (Arc<QueuedExporter>, Arc<Gate>) {
        let gate = Arc::new(Gate(tokio::sync::Semaphore::new(0)));
        let metrics = ExporterMetrics {
            sent: Counter::default(),
            send_failed: Counter::default(),
            enqueue_failed: Counter::default(),
            queue_size: Gauge::default(),
            queue_capacity: Gauge::default(),
        };
        let queue = QueueConfig {
            queue_size: 2,
            num_consumers: 1,
            blocking,
            ..Default::default()
        };
        let e = QueuedExporter::start(
            gate.clone(),
            "gated".into(),
            &queue,
            RetryConfig::default(),
            None,
            metrics,
            CancellationToken::new(),
        )
        .unwrap();
        (e, gate)
    }

    fn batch() -> Batch {
        Batch::traces(osprey_model::TraceRequest::default())
    }

    #[tokio::test]
    async fn a_full_queue_says_it_has_no_room_until_a_batch_leaves() {
        let (e, gate) = exporter(false);
        assert!(e.has_room());
        // The consumer takes the first batch and waits at the gate; two more fill the queue.
        e.consume(batch()).await.unwrap();
        let q = e.queue.clone().unwrap();
        while q.len().await > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        e.consume(batch()).await.unwrap();
        assert!(e.has_room());
        e.consume(batch()).await.unwrap();
        assert!(!e.has_room());
        assert!(matches!(
            e.consume(batch()).await,
            Err(ConsumeError::Overloaded { .. })
        ));
        assert!(!e.has_room());
        // One delivered: the consumer takes the next batch from the queue, which has room again.
        gate.0.add_permits(1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !e.has_room() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no room after a delivery"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        e.consume(batch()).await.unwrap();
    }

    #[tokio::test]
    async fn a_blocking_queue_always_has_room_to_wait() {
        let (e, _gate) = exporter(true);
        for _ in 0..3 {
            let _ = tokio::time::timeout(Duration::from_millis(100), e.consume(batch())).await;
            assert!(e.has_room());
        }
    }
}
