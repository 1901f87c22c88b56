//! Builds the running pipelines from a validated configuration: exporters (each behind its
//! sending queue and retry), processors chained per pipeline, connectors joining pipelines,
//! and receivers feeding every pipeline that lists them.
//!
//! As in the Collector: one exporter instance per id (shared by the pipelines that list it), one
//! processor instance per pipeline, one receiver instance per id serving all its signals.

use crate::config::{ComponentId, Config, Kind, LoadError, PipelineId};
use crate::extensions::{FileStorageConfig, Health, HealthCheckConfig};
use crate::sending::{ExporterMetrics, QueuedExporter};
use crate::telemetry::{ProcessorObs, ReceiverObs, Registry};
use crate::{batch, exporters, memory_limiter, otlp_receiver};
use osprey_pipeline::{decode_config, Batch, ConsumeError, Consumer, SharedConsumer, Signal};
use serde_yaml::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Hands each batch to every consumer; fails if any of them failed (the first error).
pub struct Fanout(pub Vec<SharedConsumer>);

#[async_trait::async_trait]
impl Consumer for Fanout {
    fn has_room(&self) -> bool {
        self.0.iter().all(|c| c.has_room())
    }

    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        match self.0.as_slice() {
            [] => Ok(()),
            [one] => one.consume(batch).await,
            many => {
                let results =
                    futures::future::join_all(many.iter().map(|c| c.consume(batch.clone()))).await;
                results.into_iter().collect()
            }
        }
    }
}

fn fanout(mut consumers: Vec<SharedConsumer>) -> SharedConsumer {
    if consumers.len() == 1 {
        if let Some(c) = consumers.pop() {
            return c;
        }
    }
    Arc::new(Fanout(consumers))
}

/// A running collector.
pub struct Running {
    /// What listens where: `("otlp grpc", 127.0.0.1:4317)`, `("health_check", ...)`, ...
    pub bound: Vec<(String, SocketAddr)>,
    pub registry: Registry,
    pub health: Health,
    pub stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    stores: Vec<osprey_store::Store>,
}

impl Running {
    /// Stops receivers, lets queues drain what they can, closes stores.
    pub async fn shutdown(self) {
        self.health.set_ready(false);
        self.stop.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), t).await;
        }
        for s in self.stores {
            if let Err(e) = s.close() {
                tracing::error!(error = %e, "closing the store failed");
            }
        }
    }
}

struct Builder<'a> {
    config: &'a Config,
    reg: Registry,
    stop: CancellationToken,
    storage: HashMap<String, PathBuf>,
    raw_exporters: HashMap<ComponentId, SharedConsumer>,
    exporters: HashMap<(ComponentId, Signal), SharedConsumer>,
    heads: HashMap<PipelineId, SharedConsumer>,
    connectors: HashMap<(ComponentId, Signal), SharedConsumer>,
    stores: Vec<osprey_store::Store>,
    tasks: Vec<JoinHandle<()>>,
}

fn err_at(path: String) -> impl FnOnce(osprey_pipeline::ConfigError) -> LoadError {
    move |e| {
        let e = e.under(&path);
        LoadError::new(e.path, e.message)
    }
}

impl<'a> Builder<'a> {
    fn body(&self, kind: Kind, id: &ComponentId) -> Value {
        self.config
            .component(kind, id)
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn exporter(&mut self, id: &ComponentId, signal: Signal) -> Result<SharedConsumer, LoadError> {
        if let Some(c) = self.exporters.get(&(id.clone(), signal)) {
            return Ok(c.clone());
        }
        let path = format!("exporters.{id}");
        let body = self.body(Kind::Exporter, id);
        let raw = match self.raw_exporters.get(id) {
            Some(r) => r.clone(),
            None => {
                let (raw, store) =
                    build_exporter(&id.type_name, &body).map_err(err_at(path.clone()))?;
                if let Some(store) = store {
                    self.tasks.push(store.spawn_background());
                    self.stores.push(store);
                }
                self.raw_exporters.insert(id.clone(), raw.clone());
                raw
            }
        };
        let (queue, retry) =
            exporters::helper_settings(&id.type_name, &body).map_err(err_at(path.clone()))?;
        let storage_dir = match &queue.storage {
            None => None,
            Some(ext) => {
                let dir = self.storage.get(ext).ok_or_else(|| {
                    LoadError::new(format!("{path}.sending_queue.storage"), format!("references storage extension {ext:?}, which is not a configured file_storage listed in service.extensions"))
                })?;
                let name = format!(
                    "exporter_{}_{}_{}",
                    id.type_name,
                    id.name.as_deref().unwrap_or(""),
                    signal
                );
                Some(dir.join(name))
            }
        };
        let name = id.to_string();
        let item = signal.item_name();
        let l = [("exporter", name.as_str())];
        let ql = [("exporter", name.as_str()), ("data_type", signal.as_str())];
        let metrics = ExporterMetrics {
            sent: self.reg.counter(
                &format!("otelcol_exporter_sent_{item}_total"),
                "Number of items successfully sent to destination.",
                &l,
            ),
            send_failed: self.reg.counter(
                &format!("otelcol_exporter_send_failed_{item}_total"),
                "Number of items the exporter failed to send (dropped).",
                &l,
            ),
            enqueue_failed: self.reg.counter(
                &format!("otelcol_exporter_enqueue_failed_{item}_total"),
                "Number of items refused because the sending queue was full.",
                &l,
            ),
            queue_size: self.reg.gauge(
                "otelcol_exporter_queue_size",
                "Current size of the sending queue (in batches).",
                &ql,
            ),
            queue_capacity: self.reg.gauge(
                "otelcol_exporter_queue_capacity",
                "Fixed capacity of the sending queue (in batches).",
                &ql,
            ),
        };
        let queued = QueuedExporter::start(
            raw,
            name,
            &queue,
            retry,
            storage_dir,
            metrics,
            self.stop.clone(),
        )
        .map_err(|e| LoadError::new(format!("{path}.sending_queue"), e.to_string()))?;
        let c: SharedConsumer = queued;
        self.exporters.insert((id.clone(), signal), c.clone());
        Ok(c)
    }

    /// The first consumer of a pipeline: its processors, then its exporters.
    fn head(&mut self, pid: &PipelineId) -> Result<SharedConsumer, LoadError> {
        if let Some(h) = self.heads.get(pid) {
            return Ok(h.clone());
        }
        let p = self.config.service.pipelines[pid].clone();
        let mut outs = vec![];
        for e in &p.exporters {
            if self.config.component(Kind::Connector, e).is_some() {
                outs.push(self.connector(e, pid.signal)?);
            } else {
                outs.push(self.exporter(e, pid.signal)?);
            }
        }
        let mut next = fanout(outs);
        for pr in p.processors.iter().rev() {
            let body = self.body(Kind::Processor, pr);
            let path = format!("processors.{pr}");
            let built = build_processor(&pr.type_name, &body, pid.signal, next, &self.stop)
                .map_err(err_at(path))?;
            next = ProcessorObs::wrap(&self.reg, &pr.to_string(), pid.signal, built);
        }
        self.heads.insert(pid.clone(), next.clone());
        Ok(next)
    }

    /// A connector's input for `from`; its output feeds the pipelines that list it as receiver.
    fn connector(&mut self, id: &ComponentId, from: Signal) -> Result<SharedConsumer, LoadError> {
        if let Some(c) = self.connectors.get(&(id.clone(), from)) {
            return Ok(c.clone());
        }
        let targets: Vec<PipelineId> = self
            .config
            .service
            .pipelines
            .iter()
            .filter(|(q, p)| {
                p.receivers.contains(id)
                    && crate::factories::connector_supports(&id.type_name, from, q.signal)
            })
            .map(|(q, _)| q.clone())
            .collect();
        let mut outs = vec![];
        for q in &targets {
            let head = self.head(q)?;
            outs.push(ReceiverObs::wrap(
                &self.reg,
                &id.to_string(),
                q.signal,
                head,
            ));
        }
        let body = self.body(Kind::Connector, id);
        let path = format!("connectors.{id}");
        let input = build_connector(
            &id.type_name,
            &body,
            fanout(outs),
            &self.stop,
            &mut self.tasks,
        )
        .map_err(err_at(path))?;
        self.connectors.insert((id.clone(), from), input.clone());
        Ok(input)
    }
}

/// Starts everything `config` describes. Validate first ([`crate::validate::validate`]).
pub async fn start(config: &Config, stop: CancellationToken) -> Result<Running, LoadError> {
    crate::validate::validate(config)?;
    let reg = Registry::default();
    let health = Health::default();
    let mut bound = vec![];
    let mut tasks = vec![];
    let mut storage = HashMap::new();
    for ext in &config.service.extensions {
        let body = config
            .component(Kind::Extension, ext)
            .cloned()
            .unwrap_or(Value::Null);
        let path = format!("extensions.{ext}");
        match ext.type_name.as_str() {
            "health_check" => {
                let cfg: HealthCheckConfig = decode_config(&body).map_err(err_at(path.clone()))?;
                let addr = cfg.addr().map_err(err_at(path.clone()))?;
                let l = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                    config.with_file(LoadError::new(
                        format!("{path}.endpoint"),
                        format!("cannot listen on {addr}: {e}"),
                    ))
                })?;
                bound.push((ext.to_string(), l.local_addr().unwrap_or(addr)));
                let app = crate::extensions::health_router(&cfg, health.clone());
                let s = stop.clone();
                tasks.push(tokio::spawn(async move {
                    let _ = axum::serve(l, app)
                        .with_graceful_shutdown(async move { s.cancelled().await })
                        .await;
                }));
            }
            "file_storage" => {
                let cfg: FileStorageConfig = decode_config(&body).map_err(err_at(path.clone()))?;
                if cfg.create_directory {
                    std::fs::create_dir_all(&cfg.directory)
                        .map_err(|e| LoadError::new(format!("{path}.directory"), e.to_string()))?;
                }
                storage.insert(ext.to_string(), cfg.directory);
            }
            _ => {}
        }
    }
    if let Some(addr) = config.service.telemetry.metrics_addr {
        let l = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            config.with_file(LoadError::new(
                "service.telemetry.metrics",
                format!("cannot listen on {addr}: {e}"),
            ))
        })?;
        bound.push(("telemetry".to_string(), l.local_addr().unwrap_or(addr)));
        let r = reg.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let r = r.clone();
                async move { ([("content-type", "text/plain; version=0.0.4")], r.render()) }
            }),
        );
        let s = stop.clone();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(l, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await;
        }));
        let uptime = reg.gauge(
            "otelcol_process_uptime",
            "Uptime of the process, in seconds.",
            &[],
        );
        let rss = reg.gauge(
            "otelcol_process_memory_rss",
            "Total physical memory (resident set size), in bytes.",
            &[],
        );
        let s = stop.clone();
        tasks.push(tokio::spawn(async move {
            let start = std::time::Instant::now();
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        uptime.set(start.elapsed().as_secs() as i64);
                        rss.set(memory_limiter::rss_bytes() as i64);
                    }
                    _ = s.cancelled() => return,
                }
            }
        }));
    }
    let mut b = Builder {
        config,
        reg: reg.clone(),
        stop: stop.clone(),
        storage,
        raw_exporters: HashMap::new(),
        exporters: HashMap::new(),
        heads: HashMap::new(),
        connectors: HashMap::new(),
        stores: vec![],
        tasks,
    };
    // Receivers: one instance per id, with a consumer per signal.
    let mut receivers: Vec<ComponentId> = vec![];
    for p in config.service.pipelines.values() {
        for r in &p.receivers {
            if config.component(Kind::Receiver, r).is_some() && !receivers.contains(r) {
                receivers.push(r.clone());
            }
        }
    }
    for rid in receivers {
        let mut per_signal: HashMap<Signal, Vec<SharedConsumer>> = HashMap::new();
        let pids: Vec<PipelineId> = config
            .service
            .pipelines
            .iter()
            .filter(|(_, p)| p.receivers.contains(&rid))
            .map(|(q, _)| q.clone())
            .collect();
        for pid in pids {
            let head = b.head(&pid)?;
            per_signal.entry(pid.signal).or_default().push(head);
        }
        let name = rid.to_string();
        let mut take = |s: Signal| {
            per_signal
                .remove(&s)
                .map(|v| ReceiverObs::wrap(&reg, &name, s, fanout(v)))
        };
        let (t, m, l) = (
            take(Signal::Traces),
            take(Signal::Metrics),
            take(Signal::Logs),
        );
        let body = b.body(Kind::Receiver, &rid);
        let handles = start_receiver(&rid, &body, t, m, l, stop.clone(), &mut bound)
            .await
            .map_err(|e| config.with_file(e))?;
        b.tasks.extend(handles);
    }
    health.set_ready(true);
    Ok(Running {
        bound,
        registry: reg,
        health,
        stop,
        tasks: b.tasks,
        stores: b.stores,
    })
}

async fn start_receiver(
    id: &ComponentId,
    body: &Value,
    traces: Option<SharedConsumer>,
    metrics: Option<SharedConsumer>,
    logs: Option<SharedConsumer>,
    stop: CancellationToken,
    bound: &mut Vec<(String, SocketAddr)>,
) -> Result<Vec<JoinHandle<()>>, LoadError> {
    let path = format!("receivers.{id}");
    let name = id.to_string();
    match id.type_name.as_str() {
        "otlp" => {
            let settings = otlp_receiver::parse(body).map_err(err_at(path.clone()))?;
            otlp_receiver::start(&name, settings, traces, metrics, logs, stop, bound)
                .await
                .map_err(|m| LoadError::new(path, m))
        }
        "jaeger" => {
            let cfg: osprey_receivers::jaeger::JaegerConfig =
                decode_config(body).map_err(err_at(path.clone()))?;
            let Some(traces) = traces else {
                return Ok(vec![]);
            };
            let servers = osprey_receivers::jaeger::start(&cfg, traces, stop)
                .await
                .map_err(|e| LoadError::new(path, e.to_string()))?;
            for (proto, addr) in &servers.addrs {
                bound.push((format!("{name} {}", proto.as_str()), *addr));
            }
            Ok(servers.handles)
        }
        "zipkin" => {
            let cfg: osprey_receivers::zipkin::ZipkinConfig =
                decode_config(body).map_err(err_at(path.clone()))?;
            let Some(traces) = traces else {
                return Ok(vec![]);
            };
            let server = osprey_receivers::zipkin::start(&cfg, traces, stop)
                .await
                .map_err(|e| LoadError::new(path, e.to_string()))?;
            bound.push((name, server.addr));
            let label = id.to_string();
            Ok(vec![tokio::spawn(async move {
                if let Ok(Err(e)) = server.handle.await {
                    tracing::error!(receiver = %label, error = %e, "zipkin receiver failed");
                }
            })])
        }
        other => Err(LoadError::new(
            path,
            crate::factories::unknown_type(Kind::Receiver, other),
        )),
    }
}

fn build_processor(
    type_name: &str,
    body: &Value,
    signal: Signal,
    next: SharedConsumer,
    stop: &CancellationToken,
) -> Result<SharedConsumer, osprey_pipeline::ConfigError> {
    match type_name {
        "batch" => {
            let cfg: batch::BatchConfig = decode_config(body)?;
            Ok(batch::BatchProcessor::new(cfg, next))
        }
        "memory_limiter" => {
            let cfg: memory_limiter::MemoryLimiterConfig = decode_config(body)?;
            Ok(memory_limiter::MemoryLimiter::start(
                &cfg,
                next,
                memory_limiter::rss_bytes,
                stop.clone(),
            ))
        }
        other => osprey_processors::build_for(other, signal, body, next).unwrap_or_else(|| {
            Err(osprey_pipeline::ConfigError::new(
                "",
                crate::factories::unknown_type(Kind::Processor, other),
            ))
        }),
    }
}

fn build_exporter(
    type_name: &str,
    body: &Value,
) -> Result<(SharedConsumer, Option<osprey_store::Store>), osprey_pipeline::ConfigError> {
    exporters::build(type_name, body)
}

fn build_connector(
    type_name: &str,
    body: &Value,
    out: SharedConsumer,
    stop: &CancellationToken,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<SharedConsumer, osprey_pipeline::ConfigError> {
    match type_name {
        "forward" => Ok(out),
        "spanmetrics" => {
            let cfg = osprey_connectors::spanmetrics::SpanMetricsConfig::from_yaml(body)?;
            let c = osprey_connectors::spanmetrics::SpanMetricsConnector::new(cfg, out)?;
            tasks.push(c.start(stop.clone()));
            Ok(c)
        }
        other => Err(osprey_pipeline::ConfigError::new(
            "",
            crate::factories::unknown_type(Kind::Connector, other),
        )),
    }
}
