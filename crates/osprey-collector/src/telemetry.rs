//! The collector's own metrics, served in the Prometheus text format on `/metrics` (port 8888
//! by default), with the Collector's names: `otelcol_receiver_accepted_spans_total`,
//! `otelcol_exporter_sent_spans_total`, `otelcol_exporter_queue_size`, ... Counters carry the
//! `_total` suffix the current Collector exposes.

use osprey_pipeline::{Batch, ConsumeError, Consumer, SharedConsumer, Signal};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

type Labels = Vec<(String, String)>;

enum Metric {
    Counter(Counter),
    Gauge(Gauge),
}

/// All metrics of one collector process.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<BTreeMap<String, BTreeMap<Labels, Metric>>>>,
    help: Arc<Mutex<BTreeMap<String, &'static str>>>,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Registry {
    pub fn counter(&self, name: &str, help: &'static str, pairs: &[(&str, &str)]) -> Counter {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        self.help
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), help);
        let entry = m.entry(name.to_string()).or_default().entry(labels(pairs));
        match entry.or_insert_with(|| Metric::Counter(Counter::default())) {
            Metric::Counter(c) => c.clone(),
            Metric::Gauge(_) => Counter::default(),
        }
    }

    pub fn gauge(&self, name: &str, help: &'static str, pairs: &[(&str, &str)]) -> Gauge {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        self.help
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), help);
        let entry = m.entry(name.to_string()).or_default().entry(labels(pairs));
        match entry.or_insert_with(|| Metric::Gauge(Gauge::default())) {
            Metric::Gauge(g) => g.clone(),
            Metric::Counter(_) => Gauge::default(),
        }
    }

    /// The Prometheus text exposition of everything registered.
    pub fn render(&self) -> String {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let help = self.help.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for (name, series) in m.iter() {
            let kind = match series.values().next() {
                Some(Metric::Counter(_)) => "counter",
                _ => "gauge",
            };
            let _ = writeln!(
                out,
                "# HELP {name} {}",
                help.get(name).copied().unwrap_or("")
            );
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, metric) in series {
                let value = match metric {
                    Metric::Counter(c) => c.get().to_string(),
                    Metric::Gauge(g) => g.get().to_string(),
                };
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let body: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| {
                            format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
                        })
                        .collect();
                    let _ = writeln!(out, "{name}{{{}}} {value}", body.join(","));
                }
            }
        }
        out
    }
}

/// Counts what a receiver hands to its pipelines: `accepted` when they took it, `refused` when not.
pub struct ReceiverObs {
    next: SharedConsumer,
    accepted: Counter,
    refused: Counter,
    /// Requests refused before their body was read (their items are unknown, so they are not
    /// in `refused`).
    refused_unread: Counter,
}

impl ReceiverObs {
    pub fn wrap(
        reg: &Registry,
        receiver: &str,
        signal: Signal,
        next: SharedConsumer,
    ) -> SharedConsumer {
        let item = signal.item_name();
        let l = [("receiver", receiver)];
        Arc::new(ReceiverObs {
            next,
            accepted: reg.counter(
                &format!("otelcol_receiver_accepted_{item}_total"),
                "Number of items successfully pushed into the pipeline.",
                &l,
            ),
            refused: reg.counter(
                &format!("otelcol_receiver_refused_{item}_total"),
                "Number of items that could not be pushed into the pipeline.",
                &l,
            ),
            refused_unread: reg.counter(
                "osprey_receiver_refused_unread_requests_total",
                "Requests refused before their body was read because the pipeline was full; their items are not counted in otelcol_receiver_refused_*.",
                &[("receiver", receiver), ("otel_signal", signal.as_str())],
            ),
        })
    }
}

#[async_trait::async_trait]
impl Consumer for ReceiverObs {
    fn has_room(&self) -> bool {
        let room = self.next.has_room();
        if !room {
            self.refused_unread.add(1);
        }
        room
    }

    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let n = batch.item_count() as u64;
        let r = self.next.consume(batch).await;
        match &r {
            Ok(()) => self.accepted.add(n),
            Err(_) => self.refused.add(n),
        }
        r
    }
}

/// Counts what goes into and out of a processor.
pub struct ProcessorObs {
    next: SharedConsumer,
    incoming: Counter,
    refused: Counter,
}

impl ProcessorObs {
    pub fn wrap(
        reg: &Registry,
        processor: &str,
        signal: Signal,
        next: SharedConsumer,
    ) -> SharedConsumer {
        let l = [("processor", processor), ("otel_signal", signal.as_str())];
        Arc::new(ProcessorObs {
            next,
            incoming: reg.counter(
                "otelcol_processor_incoming_items_total",
                "Number of items passed to the processor.",
                &l,
            ),
            refused: reg.counter(
                "otelcol_processor_refused_items_total",
                "Number of items the processor refused (passed back as an error).",
                &l,
            ),
        })
    }
}

#[async_trait::async_trait]
impl Consumer for ProcessorObs {
    fn has_room(&self) -> bool {
        self.next.has_room()
    }

    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let n = batch.item_count() as u64;
        self.incoming.add(n);
        let r = self.next.consume(batch).await;
        if r.is_err() {
            self.refused.add(n);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let r = Registry::default();
        r.counter(
            "otelcol_exporter_sent_spans_total",
            "Sent.",
            &[("exporter", "otlp")],
        )
        .add(3);
        r.gauge(
            "otelcol_exporter_queue_size",
            "Size.",
            &[("exporter", "otlp")],
        )
        .set(2);
        let text = r.render();
        assert!(
            text.contains("# TYPE otelcol_exporter_sent_spans_total counter"),
            "{text}"
        );
        assert!(
            text.contains("otelcol_exporter_sent_spans_total{exporter=\"otlp\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("otelcol_exporter_queue_size{exporter=\"otlp\"} 2"),
            "{text}"
        );
    }
}
