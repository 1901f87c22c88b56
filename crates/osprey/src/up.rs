//! `osprey up`: the all-in-one server. OTLP receivers feed the store exporter; the query
//! port serves SQL, health and metrics over the same store.

use crate::config::{self, UpFile};
use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use osprey_exporters::store::StoreExporter;
use osprey_query::{QueryConfig, QueryEngine};
use osprey_receivers::otlp::{self, OtlpConfig, TraceIngest};
use osprey_store::{FsyncPolicy, Store, StoreConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct UpArgs {
    /// Where the store keeps its WAL and Parquet files [default: ./osprey-data]
    #[arg(long, env = "OSPREY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A YAML file with any of these settings (keys as the flags, e.g. `retention: 3d`)
    #[arg(long, env = "OSPREY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Bind 0.0.0.0 instead of 127.0.0.1 for listeners left at their defaults
    #[arg(long, env = "OSPREY_LISTEN_ALL")]
    pub listen_all: bool,
    /// OTLP gRPC receiver [default: 127.0.0.1:4317]; `none` turns it off
    #[arg(long, env = "OSPREY_OTLP_GRPC_ADDR")]
    pub otlp_grpc_addr: Option<String>,
    /// OTLP HTTP receiver [default: 127.0.0.1:4318]
    #[arg(long, env = "OSPREY_OTLP_HTTP_ADDR")]
    pub otlp_http_addr: Option<String>,
    /// Second OTLP gRPC receiver on Promscale's port [default: 127.0.0.1:9202]
    #[arg(long, env = "OSPREY_GRPC_ADDR")]
    pub grpc_addr: Option<String>,
    /// Query API, health and metrics [default: 127.0.0.1:9201]
    #[arg(long, env = "OSPREY_HTTP_ADDR")]
    pub http_addr: Option<String>,
    /// PostgreSQL wire protocol (database `osprey`) [default: 127.0.0.1:5433]
    #[arg(long, env = "OSPREY_PG_ADDR")]
    pub pg_addr: Option<String>,
    /// Password PG clients must give (any user name); without it, no password is asked
    #[arg(long, env = "OSPREY_PG_PASSWORD")]
    pub pg_password: Option<String>,
    /// PEM certificate (chain) for TLS on the PostgreSQL port; needs --pg-tls-key
    #[arg(long, env = "OSPREY_PG_TLS_CERT")]
    pub pg_tls_cert: Option<PathBuf>,
    /// PEM private key for TLS on the PostgreSQL port; needs --pg-tls-cert
    #[arg(long, env = "OSPREY_PG_TLS_KEY")]
    pub pg_tls_key: Option<PathBuf>,
    /// Jaeger thrift HTTP receiver [default: 127.0.0.1:14268]
    #[arg(long, env = "OSPREY_JAEGER_THRIFT_ADDR")]
    pub jaeger_thrift_addr: Option<String>,
    /// Jaeger gRPC receiver [default: 127.0.0.1:14250]
    #[arg(long, env = "OSPREY_JAEGER_GRPC_ADDR")]
    pub jaeger_grpc_addr: Option<String>,
    /// Zipkin receiver [default: 127.0.0.1:9411]
    #[arg(long, env = "OSPREY_ZIPKIN_ADDR")]
    pub zipkin_addr: Option<String>,
    /// Drop spans older than this, an hour partition at a time [default: 7d]
    #[arg(long, env = "OSPREY_RETENTION")]
    pub retention: Option<String>,
    /// `always`: fdatasync the WAL before acknowledging (survives power loss);
    /// `never`: survive process crashes only [default: always]
    #[arg(long, env = "OSPREY_FSYNC")]
    pub fsync: Option<String>,
    /// Write buffered spans to Parquet at least this often [default: 30s]
    #[arg(long, env = "OSPREY_FLUSH_INTERVAL")]
    pub flush_interval: Option<String>,
    /// Run retention and compaction this often [default: 30s]
    #[arg(long, env = "OSPREY_MAINTENANCE_INTERVAL")]
    pub maintenance_interval: Option<String>,
    /// Refuse writes (retryable) while this many bytes wait to be flushed [default: 536870912]
    #[arg(long, env = "OSPREY_MAX_BUFFER_BYTES")]
    pub max_buffer_bytes: Option<u64>,
    /// Memory for the per-minute rollups of stored files (UI pages, `span_stats`, `call_edges`,
    /// `slow_spans`); the least recently used beyond it are dropped and computed again when
    /// needed [default: 536870912]
    #[arg(long, env = "OSPREY_ROLLUP_MEMORY_BYTES")]
    pub rollup_memory_bytes: Option<usize>,
    /// Largest OTLP request, after decompression [default: 16777216]
    #[arg(long, env = "OSPREY_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Cancel queries running longer than this [default: 30s]
    #[arg(long, env = "OSPREY_QUERY_TIMEOUT")]
    pub query_timeout: Option<String>,
    /// Fail queries returning more rows than this [default: 100000]
    #[arg(long, env = "OSPREY_QUERY_MAX_ROWS")]
    pub query_max_rows: Option<usize>,
    /// Memory for query sorts, joins and aggregations [default: 536870912]
    #[arg(long, env = "OSPREY_QUERY_MEMORY_BYTES")]
    pub query_memory_bytes: Option<usize>,
}

impl UpArgs {
    fn as_file(&self) -> UpFile {
        UpFile {
            data_dir: self.data_dir.clone(),
            listen_all: self.listen_all.then_some(true),
            otlp_grpc_addr: self.otlp_grpc_addr.clone(),
            otlp_http_addr: self.otlp_http_addr.clone(),
            grpc_addr: self.grpc_addr.clone(),
            http_addr: self.http_addr.clone(),
            pg_addr: self.pg_addr.clone(),
            pg_password: self.pg_password.clone(),
            pg_tls_cert: self.pg_tls_cert.clone(),
            pg_tls_key: self.pg_tls_key.clone(),
            jaeger_thrift_addr: self.jaeger_thrift_addr.clone(),
            jaeger_grpc_addr: self.jaeger_grpc_addr.clone(),
            zipkin_addr: self.zipkin_addr.clone(),
            retention: self.retention.clone(),
            fsync: self.fsync.clone(),
            flush_interval: self.flush_interval.clone(),
            maintenance_interval: self.maintenance_interval.clone(),
            max_buffer_bytes: self.max_buffer_bytes,
            rollup_memory_bytes: self.rollup_memory_bytes,
            max_request_bytes: self.max_request_bytes,
            query_timeout: self.query_timeout.clone(),
            query_max_rows: self.query_max_rows,
            query_memory_bytes: self.query_memory_bytes,
        }
    }
}

/// Resolved settings.
struct Settings {
    store: StoreConfig,
    otlp: OtlpConfig,
    query: QueryConfig,
    otlp_grpc: Option<SocketAddr>,
    otlp_http: Option<SocketAddr>,
    grpc: Option<SocketAddr>,
    http: Option<SocketAddr>,
    pg: Option<SocketAddr>,
    pg_password: Option<String>,
    pg_tls: Option<(PathBuf, PathBuf)>,
    jaeger_thrift: Option<SocketAddr>,
    jaeger_grpc: Option<SocketAddr>,
    zipkin: Option<SocketAddr>,
}

fn resolve(args: &UpArgs) -> Result<Settings> {
    let file = match &args.config {
        Some(p) => UpFile::load(p)?,
        None => UpFile::default(),
    };
    let s = file.overlay(args.as_file());
    let all = s.listen_all.unwrap_or(false);
    let addr =
        |field: &str, v: &Option<String>, port| config::listener(field, v.as_deref(), port, all);
    let mut store = StoreConfig::new(
        s.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("./osprey-data")),
    );
    store.retention = config::duration("retention", s.retention.as_deref(), store.retention)?;
    anyhow::ensure!(
        !store.retention.is_zero(),
        "retention: must be longer than 0 (it is how long spans are kept; the default is 7d)"
    );
    store.flush_interval = config::duration(
        "flush-interval",
        s.flush_interval.as_deref(),
        store.flush_interval,
    )?;
    store.maintenance_interval = config::duration(
        "maintenance-interval",
        s.maintenance_interval.as_deref(),
        store.maintenance_interval,
    )?;
    if let Some(f) = &s.fsync {
        store.fsync = f
            .parse::<FsyncPolicy>()
            .map_err(|e| anyhow::anyhow!("fsync: {e}"))?;
    }
    if let Some(b) = s.max_buffer_bytes {
        store.max_buffer_bytes = b;
        store.flush_bytes = store.flush_bytes.min(b / 4).max(1);
    }
    if let Some(b) = s.rollup_memory_bytes {
        store.rollup_cache_bytes = b;
    }
    let mut otlp = OtlpConfig {
        max_span_age: Some(store.retention),
        ..OtlpConfig::default()
    };
    if let Some(b) = s.max_request_bytes {
        anyhow::ensure!(
            b >= 1024,
            "max-request-bytes: {b} is too small (at least 1024)"
        );
        otlp.max_request_bytes = b;
    }
    let mut query = QueryConfig::default();
    query.timeout = config::duration("query-timeout", s.query_timeout.as_deref(), query.timeout)?;
    if let Some(r) = s.query_max_rows {
        anyhow::ensure!(r > 0, "query-max-rows: must be at least 1");
        query.max_rows = r;
    }
    if let Some(m) = s.query_memory_bytes {
        query.memory_limit = m;
    }
    Ok(Settings {
        store,
        otlp,
        query,
        otlp_grpc: addr("otlp-grpc-addr", &s.otlp_grpc_addr, 4317)?,
        otlp_http: addr("otlp-http-addr", &s.otlp_http_addr, 4318)?,
        grpc: addr("grpc-addr", &s.grpc_addr, 9202)?,
        http: addr("http-addr", &s.http_addr, 9201)?,
        pg: addr("pg-addr", &s.pg_addr, 5433)?,
        pg_password: s.pg_password.clone().filter(|p| !p.is_empty()),
        pg_tls: match (s.pg_tls_cert.clone(), s.pg_tls_key.clone()) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => {
                bail!("--pg-tls-cert needs --pg-tls-key (the certificate's private key)")
            }
            (None, Some(_)) => bail!("--pg-tls-key needs --pg-tls-cert (the certificate)"),
        },
        jaeger_thrift: addr("jaeger-thrift-addr", &s.jaeger_thrift_addr, 14268)?,
        jaeger_grpc: addr("jaeger-grpc-addr", &s.jaeger_grpc_addr, 14250)?,
        zipkin: addr("zipkin-addr", &s.zipkin_addr, 9411)?,
    })
}

async fn bind(flag: &str, addr: Option<SocketAddr>) -> Result<Option<TcpListener>> {
    match addr {
        None => Ok(None),
        Some(a) => TcpListener::bind(a)
            .await
            .map(Some)
            .with_context(|| format!("--{flag} {a}: cannot listen")),
    }
}

#[derive(Clone)]
struct Ops {
    store: Store,
    ingest: TraceIngest,
}

fn ops_router(ops: Ops) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ready\n" }))
        .route("/metrics", get(metrics))
        .with_state(ops)
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    let s = ops.store.stats();
    let i = ops.ingest.stats();
    let mut out = String::new();
    let mut put = |name: &str, kind: &str, help: &str, v: u64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    };
    put(
        "osprey_receiver_requests_total",
        "counter",
        "OTLP trace requests received.",
        i.requests.load(Ordering::Relaxed),
    );
    put(
        "osprey_receiver_accepted_spans_total",
        "counter",
        "Spans acknowledged to clients.",
        i.spans_accepted.load(Ordering::Relaxed),
    );
    put(
        "osprey_receiver_rejected_spans_total",
        "counter",
        "Spans rejected as invalid (partial success).",
        i.spans_rejected.load(Ordering::Relaxed),
    );
    put(
        "osprey_receiver_refused_requests_total",
        "counter",
        "Requests refused with a retryable error.",
        i.requests_refused.load(Ordering::Relaxed),
    );
    put(
        "osprey_store_appended_spans_total",
        "counter",
        "Spans written to the WAL.",
        s.spans_appended,
    );
    put(
        "osprey_store_wal_bytes_total",
        "counter",
        "Bytes written to the WAL.",
        s.wal_bytes,
    );
    put(
        "osprey_store_wal_group_commits_total",
        "counter",
        "WAL group commits.",
        s.wal_groups,
    );
    put(
        "osprey_store_flushes_total",
        "counter",
        "Buffer flushes to Parquet.",
        s.flushes,
    );
    put(
        "osprey_store_compactions_total",
        "counter",
        "Segment compactions.",
        s.compactions,
    );
    put(
        "osprey_store_overload_refusals_total",
        "counter",
        "Appends refused because the buffer was full.",
        s.overload_refusals,
    );
    put(
        "osprey_store_expired_segments_total",
        "counter",
        "Segments dropped by retention.",
        s.expired_segments,
    );
    put(
        "osprey_store_buffered_bytes",
        "gauge",
        "Arrow bytes waiting to be flushed.",
        s.buffered_bytes,
    );
    put(
        "osprey_store_buffered_spans",
        "gauge",
        "Spans waiting to be flushed.",
        s.buffered_rows,
    );
    put(
        "osprey_store_segment_files",
        "gauge",
        "Live Parquet segment files.",
        s.segment_files,
    );
    put(
        "osprey_store_segment_spans",
        "gauge",
        "Spans in Parquet segments.",
        s.segment_rows,
    );
    put(
        "osprey_store_segment_bytes",
        "gauge",
        "Bytes of Parquet segments on disk.",
        s.segment_bytes,
    );
    put(
        "osprey_store_rollup_bytes",
        "gauge",
        "Bytes of per-minute rollups of segment files held in memory.",
        s.rollup_bytes,
    );
    put(
        "osprey_store_rollup_evictions_total",
        "counter",
        "Segment rollups dropped to stay within the rollup memory budget.",
        s.rollup_evictions,
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
}

fn shutdown_signal(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|v| *v).await;
    }
}

type Task = tokio::task::JoinHandle<Result<()>>;

/// The Jaeger (thrift HTTP, gRPC) and Zipkin receivers, configured as the collector would be
/// for these addresses, feeding the store.
async fn start_legacy_receivers(
    settings: &Settings,
    consumer: osprey_pipeline::SharedConsumer,
    stop: &tokio_util::sync::CancellationToken,
    say: &mut Vec<String>,
) -> Result<Vec<Task>> {
    use osprey_receivers::{jaeger, zipkin};
    let mut tasks: Vec<Task> = vec![];
    let mut protocols = serde_yaml::Mapping::new();
    for (key, addr) in [
        ("thrift_http", settings.jaeger_thrift),
        ("grpc", settings.jaeger_grpc),
    ] {
        if let Some(a) = addr {
            let mut m = serde_yaml::Mapping::new();
            m.insert("endpoint".into(), a.to_string().into());
            protocols.insert(key.into(), serde_yaml::Value::Mapping(m));
        }
    }
    if !protocols.is_empty() {
        let mut body = serde_yaml::Mapping::new();
        body.insert("protocols".into(), serde_yaml::Value::Mapping(protocols));
        let cfg: jaeger::JaegerConfig =
            osprey_pipeline::decode_config(&serde_yaml::Value::Mapping(body))
                .map_err(|e| anyhow::anyhow!("jaeger receiver: {e}"))?;
        let servers = jaeger::start(&cfg, consumer.clone(), stop.clone()).await?;
        for (p, a) in &servers.addrs {
            let what = match p {
                jaeger::Protocol::Grpc => "Jaeger gRPC".to_string(),
                _ => "Jaeger thrift HTTP".to_string(),
            };
            let path = if what.contains("HTTP") {
                "/api/traces"
            } else {
                ""
            };
            say.push(format!("  {what:<28} {a}{path}"));
        }
        for h in servers.handles {
            tasks.push(tokio::spawn(
                async move { h.await.map_err(anyhow::Error::from) },
            ));
        }
    }
    if let Some(a) = settings.zipkin {
        let mut body = serde_yaml::Mapping::new();
        body.insert("endpoint".into(), a.to_string().into());
        let cfg: zipkin::ZipkinConfig =
            osprey_pipeline::decode_config(&serde_yaml::Value::Mapping(body))
                .map_err(|e| anyhow::anyhow!("zipkin receiver: {e}"))?;
        let server = zipkin::start(&cfg, consumer, stop.clone()).await?;
        say.push(format!(
            "  {:<28} http://{}/api/v2/spans",
            "Zipkin", server.addr
        ));
        tasks.push(tokio::spawn(async move {
            server.handle.await?.map_err(anyhow::Error::from)
        }));
    }
    Ok(tasks)
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

pub async fn run(args: UpArgs) -> Result<()> {
    let settings = resolve(&args)?;
    let data_dir = settings.store.data_dir.clone();
    let store_cfg = settings.store.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(store_cfg))
        .await?
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    let background = store.spawn_background();
    let ingest = TraceIngest::new(
        Arc::new(StoreExporter::new(store.clone())),
        settings.otlp.clone(),
    );
    let engine = QueryEngine::new(store.clone(), settings.query.clone())?;

    let otlp_grpc = bind("otlp-grpc-addr", settings.otlp_grpc).await?;
    let grpc = bind("grpc-addr", settings.grpc).await?;
    let otlp_http = bind("otlp-http-addr", settings.otlp_http).await?;
    let http = bind("http-addr", settings.http).await?;
    let pg = bind("pg-addr", settings.pg).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut say = vec![format!("osprey up: data in {}", data_dir.display())];
    for (name, l) in [
        ("OTLP gRPC", otlp_grpc),
        ("OTLP gRPC (Promscale port)", grpc),
    ] {
        if let Some(l) = l {
            say.push(format!("  {name:<28} {}", l.local_addr()?));
            let fut = otlp::grpc::serve_listener(l, ingest.clone(), shutdown_signal(&stop_rx));
            tasks.push(tokio::spawn(async move {
                fut.await.map_err(anyhow::Error::from)
            }));
        }
    }
    if let Some(l) = otlp_http {
        say.push(format!(
            "  {:<28} http://{}/v1/traces",
            "OTLP HTTP",
            l.local_addr()?
        ));
        let app = otlp::http::router(ingest.clone());
        let stop = shutdown_signal(&stop_rx);
        tasks.push(tokio::spawn(async move {
            axum::serve(l, app)
                .with_graceful_shutdown(stop)
                .await
                .map_err(anyhow::Error::from)
        }));
    }
    if let Some(l) = http {
        let a = l.local_addr()?;
        say.push(format!(
            "  {:<28} http://{a}/api/sql  (health /healthz, metrics /metrics)",
            "SQL / query API"
        ));
        say.push(format!(
            "  {:<28} http://{a}/api/services",
            "Jaeger query API"
        ));
        say.push(format!("  {:<28} http://{a}/tempo", "Tempo API"));
        say.push(format!("  {:<28} http://{a}/", "Web UI"));
        let app = osprey_query::http::router(engine.clone())
            .merge(osprey_query::jaeger::router(engine.clone()))
            .merge(osprey_query::tempo::router(engine.clone()))
            .merge(ops_router(Ops {
                store: store.clone(),
                ingest: ingest.clone(),
            }))
            .merge(osprey_ui::router());
        let stop = shutdown_signal(&stop_rx);
        tasks.push(tokio::spawn(async move {
            axum::serve(l, app)
                .with_graceful_shutdown(stop)
                .await
                .map_err(anyhow::Error::from)
        }));
    }
    if let Some(l) = pg {
        let a = l.local_addr()?;
        let auth = match (settings.pg_password.is_some(), settings.pg_tls.is_some()) {
            (true, true) => "password required, TLS available",
            (true, false) => "password required",
            (false, true) => "no password, TLS available",
            (false, false) => "no password",
        };
        say.push(format!(
            "  {:<28} psql -h {} -p {} -d osprey  ({auth})",
            "PostgreSQL wire",
            a.ip(),
            a.port()
        ));
        let opts = osprey_query::pg::PgOptions {
            password: settings.pg_password.clone(),
            tls: settings.pg_tls.clone(),
        };
        let fut = osprey_query::pg::serve(l, engine.clone(), opts, shutdown_signal(&stop_rx));
        tasks.push(tokio::spawn(async move {
            fut.await.map_err(anyhow::Error::from)
        }));
    }
    let receivers_stop = tokio_util::sync::CancellationToken::new();
    let store_consumer: osprey_pipeline::SharedConsumer =
        Arc::new(StoreExporter::new(store.clone()));
    tasks.extend(
        start_legacy_receivers(&settings, store_consumer, &receivers_stop, &mut say).await?,
    );
    for line in &say {
        println!("{line}");
    }
    tracing::info!("osprey up: serving");

    tokio::select! {
        _ = wait_for_stop() => tracing::info!("stopping: finishing requests and flushing the store"),
        r = futures::future::select_all(tasks.iter_mut()), if !tasks.is_empty() => {
            let (res, _, _) = r;
            match res {
                Ok(Err(e)) => tracing::error!(error = %e, "a listener failed; stopping"),
                Err(e) => tracing::error!(error = %e, "a listener task failed; stopping"),
                Ok(Ok(())) => {}
            }
        }
    }
    let _ = stop_tx.send(true);
    receivers_stop.cancel();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    background.abort();
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.close())
        .await?
        .context("flushing the store on shutdown")?;
    drop(engine);
    tracing::info!("stopped");
    Ok(())
}
