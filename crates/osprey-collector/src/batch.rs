//! The `batch` processor: gathers incoming data into larger batches by size (`send_batch_size`,
//! split at `send_batch_max_size`) or time (`timeout`), one batcher per distinct value of the
//! `metadata_keys`.
//!
//! Unlike the Go Collector, which acknowledges data as soon as it is buffered (and loses it on a
//! crash), Osprey acknowledges a request only when the batch holding it was taken by the next
//! component: a receiver's "ok" still means the data is safe. Because clients then wait for the
//! batch, a batch is also sent once no new request arrived for [`IDLE`]: when every sender is
//! waiting, waiting longer only adds latency (a single SDK exporter sends one request at a
//! time, and would otherwise wait `timeout` for each).
//!
//! Requests are kept as they arrived and merged when the batch is sent: when every one is
//! still the receiver's bytes ([`Payload::RawTraces`]) and no split is needed, the batch is
//! their concatenation, never decoded; otherwise they are decoded, appended and split.

use crate::split;
use osprey_pipeline::{
    go_duration, Batch, ConfigError, ConsumeError, Consumer, Context, Payload, RawTraces,
    SharedConsumer,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    pub send_batch_size: usize,
    pub send_batch_max_size: usize,
    #[serde(with = "go_duration")]
    pub timeout: Duration,
    pub metadata_keys: Vec<String>,
    pub metadata_cardinality_limit: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            send_batch_size: 8192,
            send_batch_max_size: 0,
            timeout: Duration::from_millis(200),
            metadata_keys: vec![],
            metadata_cardinality_limit: 1000,
        }
    }
}

impl BatchConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.send_batch_max_size > 0 && self.send_batch_max_size < self.send_batch_size {
            return Err(ConfigError::new(
                "send_batch_max_size",
                "must be greater or equal to send_batch_size",
            ));
        }
        if self.timeout.is_zero() && self.send_batch_size == 0 {
            return Err(ConfigError::new(
                "timeout",
                "must be positive when send_batch_size is 0",
            ));
        }
        Ok(())
    }
}

/// Send a partial batch once no request arrived for this long.
pub const IDLE: Duration = Duration::from_millis(3);

type Waiter = oneshot::Sender<Result<(), ConsumeError>>;
type GroupKey = Vec<(String, Vec<String>)>;

struct Pending {
    /// The requests of this batch in arrival order, each with its waiter.
    parts: Vec<(Payload, Waiter)>,
    items: usize,
    generation: u64,
    /// Requests appended to the current batch (to tell an idle batch).
    arrivals: u64,
    context: Arc<Context>,
}

pub struct BatchProcessor {
    config: BatchConfig,
    next: SharedConsumer,
    groups: Mutex<HashMap<GroupKey, Pending>>,
    me: std::sync::Weak<BatchProcessor>,
}

impl BatchProcessor {
    pub fn new(config: BatchConfig, next: SharedConsumer) -> Arc<BatchProcessor> {
        Arc::new_cyclic(|me| BatchProcessor {
            config,
            next,
            groups: Mutex::new(HashMap::new()),
            me: me.clone(),
        })
    }

    fn key(&self, ctx: &Context) -> GroupKey {
        self.config
            .metadata_keys
            .iter()
            .map(|k| {
                let k = k.to_ascii_lowercase();
                let v = ctx.metadata.get(&k).cloned().unwrap_or_default();
                (k, v)
            })
            .collect()
    }

    /// Takes the group's pending batch out and sends it; every waiter gets the outcome.
    async fn flush(&self, taken: Pending) {
        let Some(merged) = merge(taken.parts, taken.items, self.config.send_batch_max_size) else {
            return;
        };
        let mut result = Ok(());
        for part in merged.payloads {
            let batch = Batch {
                payload: part,
                encoded: None,
                context: taken.context.clone(),
            };
            if let Err(e) = self.next.consume(batch).await {
                result = Err(e);
            }
        }
        for w in merged.waiters {
            let _ = w.send(result.clone());
        }
    }

    /// Takes the group's batch if it is still generation `generation` (and, with `arrivals`,
    /// if no request was added since).
    fn take(&self, key: &GroupKey, generation: u64, arrivals: Option<u64>) -> Option<Pending> {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let p = groups.get(key)?;
        if p.generation != generation || arrivals.is_some_and(|a| a != p.arrivals) {
            return None;
        }
        groups.remove(key)
    }
}

#[async_trait::async_trait]
impl Consumer for BatchProcessor {
    fn has_room(&self) -> bool {
        self.next.has_room()
    }

    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let key = self.key(&batch.context);
        let items = batch.item_count();
        let (tx, rx) = oneshot::channel();
        let mut start_timer = None;
        let mut idle_check = None;
        let full = {
            let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
            if !groups.contains_key(&key)
                && groups.len() >= self.config.metadata_cardinality_limit.max(1)
            {
                return Err(ConsumeError::Permanent(format!(
                    "too many distinct metadata values for the batch processor (limit {})",
                    self.config.metadata_cardinality_limit
                )));
            }
            let context = if self.config.metadata_keys.is_empty() {
                Arc::default()
            } else {
                Arc::new(Context {
                    client_addr: None,
                    metadata: key.iter().cloned().collect::<BTreeMap<_, _>>(),
                })
            };
            let p = groups.entry(key.clone()).or_insert_with(|| Pending {
                parts: vec![],
                items: 0,
                generation: 0,
                arrivals: 0,
                context,
            });
            match p.parts.first() {
                None => {
                    p.generation += 1;
                    start_timer = Some(p.generation);
                }
                Some((first, _)) if first.signal() != batch.signal() => {
                    return Err(ConsumeError::Permanent(format!(
                        "batch processor got {} in a {} pipeline",
                        batch.signal(),
                        first.signal()
                    )));
                }
                Some(_) => {}
            }
            p.parts.push((batch.payload, tx));
            p.items += items;
            p.arrivals += 1;
            if self.config.send_batch_size > 0 && p.items >= self.config.send_batch_size {
                start_timer = None;
                groups.remove(&key)
            } else {
                idle_check = Some((p.generation, p.arrivals));
                None
            }
        };
        if let Some(taken) = full {
            self.flush(taken).await;
        } else if let Some(me) = self.me.upgrade() {
            if let Some(generation) = start_timer {
                let (me, key, timeout) = (me.clone(), key.clone(), self.config.timeout);
                tokio::spawn(async move {
                    tokio::time::sleep(timeout).await;
                    if let Some(taken) = me.take(&key, generation, None) {
                        me.flush(taken).await;
                    }
                });
            }
            if let Some((generation, arrivals)) = idle_check {
                let key = key.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(IDLE).await;
                    if let Some(taken) = me.take(&key, generation, Some(arrivals)) {
                        me.flush(taken).await;
                    }
                });
            }
        }
        rx.await
            .unwrap_or_else(|_| Err(ConsumeError::Unavailable("batch processor stopped".into())))
    }
}

/// A pending batch ready to send: the payloads (split at `max`) and whom to answer.
struct Merged {
    payloads: Vec<Payload>,
    waiters: Vec<Waiter>,
}

/// Merges the requests of a batch. All raw and within `max`: one concatenation. Otherwise
/// decoded, appended and split; a raw part that does not decode (counted and logged by
/// `materialize`) is answered with its error and left out.
fn merge(parts: Vec<(Payload, Waiter)>, items: usize, max: usize) -> Option<Merged> {
    let fits = max == 0 || items <= max;
    if fits
        && parts
            .iter()
            .all(|(p, _)| matches!(p, Payload::RawTraces(_)))
    {
        let (raws, waiters): (Vec<RawTraces>, Vec<Waiter>) = parts
            .into_iter()
            .filter_map(|(p, w)| match p {
                Payload::RawTraces(r) => Some((r, w)),
                _ => None,
            })
            .unzip();
        if waiters.is_empty() {
            return None;
        }
        return Some(Merged {
            payloads: vec![Payload::RawTraces(RawTraces::concat(raws))],
            waiters,
        });
    }
    let mut merged: Option<Payload> = None;
    let mut waiters = Vec::with_capacity(parts.len());
    for (payload, waiter) in parts {
        let mut one = Batch::from_payload(payload);
        if let Err(e) = one.materialize() {
            let _ = waiter.send(Err(e));
            continue;
        }
        waiters.push(waiter);
        match merged.as_mut() {
            None => merged = Some(one.payload),
            Some(existing) => {
                // Same signal: checked on arrival.
                let _ = split::append(existing, one.payload);
            }
        }
    }
    Some(Merged {
        payloads: split::split(merged?, max),
        waiters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use std::sync::Mutex as StdMutex;

    #[derive(Default)]
    struct Sink(StdMutex<Vec<usize>>);

    #[async_trait::async_trait]
    impl Consumer for Sink {
        async fn consume(&self, b: Batch) -> Result<(), ConsumeError> {
            self.0.lock().unwrap().push(b.item_count());
            Ok(())
        }
    }

    fn spans(n: usize) -> Batch {
        Batch::traces(osprey_model::TraceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default(); n],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })
    }

    #[tokio::test]
    async fn size_trigger_splits_and_acks_everyone() {
        let sink = Arc::new(Sink::default());
        let cfg = BatchConfig {
            send_batch_size: 10,
            send_batch_max_size: 12,
            timeout: Duration::from_secs(3600),
            ..Default::default()
        };
        let p = BatchProcessor::new(cfg, sink.clone());
        let (a, b) = tokio::join!(p.consume(spans(6)), p.consume(spans(20)));
        assert!(a.is_ok() && b.is_ok());
        let mut got = sink.0.lock().unwrap().clone();
        got.sort();
        assert_eq!(got.iter().sum::<usize>(), 26);
        assert!(got.iter().all(|&n| n <= 12), "{got:?}");
    }

    #[tokio::test]
    async fn concurrent_requests_share_a_batch() {
        let sink = Arc::new(Sink::default());
        let cfg = BatchConfig {
            timeout: Duration::from_secs(3600),
            ..Default::default()
        };
        let p = BatchProcessor::new(cfg, sink.clone());
        // Both arrive before either is acknowledged; the idle flush sends them together
        // long before the hour-long timeout.
        let (a, b) = tokio::join!(p.consume(spans(3)), p.consume(spans(4)));
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(*sink.0.lock().unwrap(), vec![7]);
    }

    #[tokio::test]
    async fn timeout_flushes_a_small_batch() {
        let sink = Arc::new(Sink::default());
        let cfg = BatchConfig {
            timeout: Duration::from_millis(10),
            ..Default::default()
        };
        let p = BatchProcessor::new(cfg, sink.clone());
        assert!(p.consume(spans(3)).await.is_ok());
        assert_eq!(*sink.0.lock().unwrap(), vec![3]);
    }

    /// Records what it got: raw or decoded, and the span count.
    #[derive(Default)]
    struct KindSink(StdMutex<Vec<(bool, usize)>>);

    #[async_trait::async_trait]
    impl Consumer for KindSink {
        async fn consume(&self, b: Batch) -> Result<(), ConsumeError> {
            self.0.lock().unwrap().push((b.is_raw(), b.item_count()));
            Ok(())
        }
    }

    fn raw(n: usize) -> Batch {
        let Payload::Traces(req) = spans(n).payload else {
            panic!()
        };
        let bytes = bytes::Bytes::from(osprey_model::skim::encode(&req));
        Batch::from_payload(Payload::RawTraces(RawTraces::from_bytes(bytes).unwrap()))
    }

    #[tokio::test]
    async fn raw_requests_are_concatenated_undecoded() {
        let sink = Arc::new(KindSink::default());
        let cfg = BatchConfig {
            timeout: Duration::from_secs(3600),
            ..Default::default()
        };
        let p = BatchProcessor::new(cfg, sink.clone());
        let (a, b) = tokio::join!(p.consume(raw(3)), p.consume(raw(4)));
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(*sink.0.lock().unwrap(), vec![(true, 7)]);
        // Raw beside decoded: decoded together.
        let (a, b) = tokio::join!(p.consume(raw(3)), p.consume(spans(4)));
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(sink.0.lock().unwrap()[1], (false, 7));
    }

    #[tokio::test]
    async fn raw_requests_over_the_max_are_decoded_and_split() {
        let sink = Arc::new(KindSink::default());
        let cfg = BatchConfig {
            send_batch_size: 10,
            send_batch_max_size: 12,
            timeout: Duration::from_secs(3600),
            ..Default::default()
        };
        let p = BatchProcessor::new(cfg, sink.clone());
        let (a, b) = tokio::join!(p.consume(raw(6)), p.consume(raw(20)));
        assert!(a.is_ok() && b.is_ok());
        let got = sink.0.lock().unwrap().clone();
        assert_eq!(got.iter().map(|g| g.1).sum::<usize>(), 26);
        assert!(got.iter().all(|&(raw, n)| !raw && n <= 12), "{got:?}");
    }

    #[tokio::test]
    async fn an_undecodable_raw_part_fails_alone() {
        let sink = Arc::new(KindSink::default());
        let p = BatchProcessor::new(BatchConfig::default(), sink.clone());
        let bad = RawTraces::new(bytes::Bytes::from_static(&[0x0a, 0x09]), 2);
        let bad = Batch::from_payload(Payload::RawTraces(bad));
        let (a, b) = tokio::join!(p.consume(bad), p.consume(spans(4)));
        assert!(matches!(a, Err(ConsumeError::Permanent(_))));
        assert!(b.is_ok());
        assert_eq!(*sink.0.lock().unwrap(), vec![(false, 4)]);
    }

    #[test]
    fn validation_names_the_key() {
        let cfg = BatchConfig {
            send_batch_size: 10,
            send_batch_max_size: 5,
            ..Default::default()
        };
        assert_eq!(cfg.validate().unwrap_err().path, "send_batch_max_size");
    }
}
