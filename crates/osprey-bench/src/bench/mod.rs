//! `osprey bench`: the benchmarks behind BENCHMARKS.md.
//!
//! `osprey bench ingest` starts `osprey up` as a child process on a fresh data directory,
//! drives it with the load generator (sharing the machine, as in production), measures what
//! the server used, restarts it (the graceful stop flushes; the restart replays and compacts),
//! checks that every acknowledged span is stored, times trace-by-id lookups and a per-service
//! RED query over the hour of data, then does the same with PostgreSQL and a Promscale-like
//! schema fed by COPY, and writes both side by side into BENCHMARKS.md.
//!
//! `osprey bench query` times the query front ends (SQL, PostgreSQL wire, Jaeger, Tempo).

pub mod collector;
pub mod postgres;
pub mod query;
pub mod report;
pub mod server;
pub mod ui;

use crate::gen::now_ns;
use crate::loadgen::{percentile, run_loadgen, LoadgenArgs, Protocol};
use anyhow::{bail, Context, Result};
use report::{Figures, PgFigures};
use server::Server;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Subcommand, Debug, Clone)]
pub enum BenchCommand {
    /// Ingest, storage and query figures of `osprey up`, beside a PostgreSQL baseline
    Ingest(IngestArgs),
    /// Latency of the query front ends: SQL, PostgreSQL wire, Jaeger and Tempo APIs
    Query(query::QueryArgs),
    /// `osprey collector` beside Rotel: OTLP/gRPC -> batch -> OTLP/gRPC throughput and memory
    Collector(collector::CollectorArgs),
    /// Server time of the web UI's pages: the SQL each page sends, at N stored spans
    Ui(ui::UiArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct IngestArgs {
    /// Spans to ingest
    #[arg(long, default_value_t = 10_000_000)]
    pub spans: u64,
    /// Loadgen requests in flight
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Spans per export request
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// The server's WAL fsync policy (`always` or `never`)
    #[arg(long, default_value = "always")]
    pub fsync: String,
    /// Trace-by-id lookups to time
    #[arg(long, default_value_t = 200)]
    pub lookups: usize,
    /// Times to run the RED query
    #[arg(long, default_value_t = 5)]
    pub red_runs: usize,
    /// Spans to load into the PostgreSQL baseline (0 skips it) [default: --spans]
    #[arg(long)]
    pub pg_spans: Option<u64>,
    /// Where to put data directories [default: a temporary directory, removed afterwards]
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// The `osprey` binary to benchmark [default: this one]
    #[arg(long)]
    pub osprey_bin: Option<PathBuf>,
    /// The Markdown file whose `bench ingest` section is replaced with the results
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
}

pub async fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Ingest(a) => ingest(a).await,
        BenchCommand::Query(a) => query::run(a).await,
        BenchCommand::Collector(a) => collector::run(a).await,
        BenchCommand::Ui(a) => ui::run(a).await,
    }
}

const WINDOW: Duration = Duration::from_secs(3600);
const SEED: u64 = 7;
const SERVICES: usize = 20;

/// The load every bench stores: the same seed, services and one-hour window, so that figures
/// compare across benches.
fn standard_load(server: &Server, spans: u64) -> LoadgenArgs {
    LoadgenArgs {
        endpoint: Some(server.grpc_endpoint.clone()),
        protocol: Protocol::Grpc,
        spans: Some(spans),
        concurrency: 4,
        batch: 1000,
        seed: SEED,
        services: SERVICES,
        start_offset: Some(WINDOW),
        quiet: true,
        ..LoadgenArgs::default()
    }
}

fn red_sql_osprey(from_s: f64, to_s: f64) -> String {
    format!(
        "select service_name, count(*) as calls, \
         sum(case when status_code = 'STATUS_CODE_ERROR' then 1 else 0 end) as errors, \
         approx_percentile_cont(duration_ms, 0.5) as p50, approx_percentile_cont(duration_ms, 0.95) as p95, \
         approx_percentile_cont(duration_ms, 0.99) as p99 \
         from spans where start_time >= to_timestamp({from_s}) and start_time < to_timestamp({to_s}) \
         group by service_name order by service_name"
    )
}

fn red_sql_pg(from_s: f64, to_s: f64) -> String {
    format!(
        "select service_name, count(*) as calls, count(*) filter (where status_code = 'STATUS_CODE_ERROR') as errors, \
         percentile_cont(0.5) within group (order by duration_ms) as p50, \
         percentile_cont(0.95) within group (order by duration_ms) as p95, \
         percentile_cont(0.99) within group (order by duration_ms) as p99 \
         from span where start_time >= to_timestamp({from_s}) and start_time < to_timestamp({to_s}) \
         group by service_name order by service_name"
    )
}

/// Samples the server's resident memory while `fut` runs; returns its output and the peak.
async fn with_rss_sampling<T>(pid: u32, fut: impl std::future::Future<Output = T>) -> (T, u64) {
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let p = peak.clone();
    let sampler = tokio::spawn(async move {
        loop {
            if let Ok(k) = server::proc_status_kib(pid, "VmRSS:") {
                p.fetch_max(k * 1024, std::sync::atomic::Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let out = fut.await;
    sampler.abort();
    (out, peak.load(std::sync::atomic::Ordering::Relaxed))
}

/// A fresh directory for a benchmark's data, under `work_dir` or the system temp dir;
/// removed when dropped.
fn work_tempdir(work_dir: Option<&std::path::Path>) -> Result<tempfile::TempDir> {
    let b = tempfile::Builder::new().prefix("osprey-bench-").to_owned();
    Ok(match work_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            b.tempdir_in(d)?
        }
        None => b.tempdir()?,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn ingest(a: IngestArgs) -> Result<()> {
    let bin = match &a.osprey_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("locating the osprey binary")?,
    };
    let tmp = work_tempdir(a.work_dir.as_deref())?;
    let data = tmp.path().join("osprey-data");
    let mut f = Figures {
        spans_target: a.spans,
        fsync: a.fsync.clone(),
        ..Figures::default()
    };

    // 1. Ingest.
    eprintln!(
        "bench: ingesting {} spans (fsync {}) into a fresh `osprey up`",
        a.spans, a.fsync
    );
    let server = Server::start(
        &bin,
        &data,
        &tmp.path().join("osprey-1.log"),
        &["--fsync".into(), a.fsync.clone()],
    )
    .await?;
    let base_time_ns = now_ns();
    let load = LoadgenArgs {
        concurrency: a.concurrency,
        batch: a.batch,
        quiet: false,
        ..standard_load(&server, a.spans)
    };
    let cpu0 = server.cpu_secs()?;
    let (report, rss) = with_rss_sampling(server.pid, run_loadgen(load)).await;
    let report = report?;
    f.ingest_cpu_secs = server.cpu_secs()? - cpu0;
    f.ingest_peak_rss = server.peak_rss()?.max(rss);
    f.loadgen = report.clone();
    let stop = server.stop().await?;
    f.shutdown_flush = stop;

    // 2. Restart: WAL replay, then compaction until the file set settles.
    eprintln!("bench: restarting (replay + compaction)");
    let t0 = Instant::now();
    let server = Server::start(
        &bin,
        &data,
        &tmp.path().join("osprey-2.log"),
        &["--maintenance-interval".into(), "1s".into()],
    )
    .await?;
    f.restart_ready = t0.elapsed();
    let (settled, rss) = with_rss_sampling(server.pid, async {
        // Settled: the file set unchanged for 15 s (a merge in progress can take several
        // seconds without changing the counters), or 30 minutes passed.
        let mut last = (f64::NAN, 0);
        let mut stable_since = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(1800);
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let m = server.metrics().await?;
            let files = m.get("osprey_store_segment_files").copied().unwrap_or(0.0);
            let compactions = m
                .get("osprey_store_compactions_total")
                .copied()
                .unwrap_or(0.0) as u64;
            if files != last.0 || compactions != last.1 {
                last = (files, compactions);
                stable_since = Instant::now();
            }
            if stable_since.elapsed() >= Duration::from_secs(15) || Instant::now() > deadline {
                return anyhow::Ok(m);
            }
        }
    })
    .await;
    let m = settled?;
    f.compact_peak_rss = rss;
    f.segment_files = m.get("osprey_store_segment_files").copied().unwrap_or(0.0) as u64;
    f.segment_bytes = m.get("osprey_store_segment_bytes").copied().unwrap_or(0.0) as u64;
    f.stored_spans = m.get("osprey_store_segment_spans").copied().unwrap_or(0.0) as u64
        + m.get("osprey_store_buffered_spans").copied().unwrap_or(0.0) as u64;
    f.data_dir_bytes = server::dir_bytes(&data);
    let counted = server.sql("select count(*) from spans").await?;
    f.counted_spans = counted
        .first()
        .and_then(|r| r.first())
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if f.counted_spans != report.spans_acked {
        eprintln!(
            "bench: WARNING: {} spans acknowledged but {} stored",
            report.spans_acked, f.counted_spans
        );
    }

    // 3. Queries.
    let window_to = base_time_ns as f64 / 1e9;
    let window_from = window_to - WINDOW.as_secs_f64();
    let traces_est = (report.traces_sent.max(1)) as f64;
    let p = ((a.lookups as f64 * 4.0) / traces_est).min(1.0);
    let ids = server
        .sql(&format!(
            "select distinct trace_id from spans where random() < {p} limit {}",
            a.lookups
        ))
        .await?;
    let ids: Vec<String> = ids
        .iter()
        .filter_map(|r| r.first().and_then(|v| v.as_str()).map(str::to_string))
        .collect();
    if ids.is_empty() {
        bail!("found no trace ids to look up");
    }
    let (measured, rss) = with_rss_sampling(server.pid, async {
        let mut lat = Vec::new();
        server
            .sql(&format!(
                "select * from spans where trace_id = '{}'",
                ids[0]
            ))
            .await?;
        for id in &ids {
            let t = Instant::now();
            let rows = server
                .sql(&format!("select * from spans where trace_id = '{id}'"))
                .await?;
            lat.push(ms(t.elapsed()));
            if rows.is_empty() {
                bail!("trace {id} came back empty");
            }
        }
        let mut red = Vec::new();
        for _ in 0..a.red_runs.max(1) {
            let t = Instant::now();
            let rows = server.sql(&red_sql_osprey(window_from, window_to)).await?;
            red.push(ms(t.elapsed()));
            if rows.len() < SERVICES / 2 {
                bail!("the RED query returned {} services", rows.len());
            }
        }
        anyhow::Ok((lat, red))
    })
    .await;
    let (mut by_id, mut red) = measured?;
    f.query_peak_rss = rss.max(server.peak_rss()?);
    by_id.sort_by(f64::total_cmp);
    red.sort_by(f64::total_cmp);
    f.by_id_p50_ms = percentile(&by_id, 0.5);
    f.by_id_p99_ms = percentile(&by_id, 0.99);
    f.lookups = by_id.len();
    f.red_p50_ms = percentile(&red, 0.5);
    f.red_max_ms = red.last().copied().unwrap_or(0.0);
    server.stop().await?;

    // 4. PostgreSQL baseline.
    let pg_spans = a.pg_spans.unwrap_or(a.spans);
    let pg = if pg_spans > 0 {
        Some(
            pg_baseline(
                &a,
                tmp.path().join("pg"),
                pg_spans,
                base_time_ns,
                window_from,
                window_to,
            )
            .await?,
        )
    } else {
        None
    };

    let md = report::render(&f, pg.as_ref(), &a);
    println!("{md}");
    report::write_section(&a.out, &md)?;
    eprintln!("bench: results written to {}", a.out.display());
    Ok(())
}

async fn pg_baseline(
    a: &IngestArgs,
    dir: PathBuf,
    spans: u64,
    base_time_ns: u64,
    from: f64,
    to: f64,
) -> Result<PgFigures> {
    eprintln!("bench: PostgreSQL baseline: COPY {spans} spans into a Promscale-like schema");
    let pg = postgres::Postgres::start(&dir)?;
    let workload = crate::gen::WorkloadConfig {
        seed: SEED,
        services: SERVICES,
        start_offset: WINDOW,
        base_time_ns,
    };
    let loaded = postgres::load(&pg, workload, spans, 2, a.batch.max(1000) * 10).await?;
    let client = pg.connect().await?;
    let sample = client
        .query(
            &format!(
                "select distinct trace_id::text from span tablesample bernoulli (1) limit {}",
                a.lookups
            ),
            &[],
        )
        .await?;
    let ids: Vec<String> = sample.iter().map(|r| r.get::<_, String>(0)).collect();
    let mut lat = Vec::new();
    for id in &ids {
        let t = Instant::now();
        let rows = client
            .query(&format!("select * from span where trace_id = '{id}'"), &[])
            .await?;
        lat.push(ms(t.elapsed()));
        if rows.is_empty() {
            bail!("baseline trace {id} came back empty");
        }
    }
    let mut red = Vec::new();
    for _ in 0..a.red_runs.max(1) {
        let t = Instant::now();
        client.query(&red_sql_pg(from, to), &[]).await?;
        red.push(ms(t.elapsed()));
    }
    lat.sort_by(f64::total_cmp);
    red.sort_by(f64::total_cmp);
    let out = PgFigures {
        spans: loaded.spans,
        load_secs: loaded.elapsed.as_secs_f64(),
        total_relation_bytes: loaded.total_relation_bytes,
        table_bytes: loaded.table_bytes,
        data_dir_bytes: pg.disk_bytes(),
        by_id_p50_ms: percentile(&lat, 0.5),
        by_id_p99_ms: percentile(&lat, 0.99),
        red_p50_ms: percentile(&red, 0.5),
        red_max_ms: red.last().copied().unwrap_or(0.0),
    };
    pg.stop()?;
    Ok(out)
}
