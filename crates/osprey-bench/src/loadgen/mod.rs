//! `osprey loadgen`: sends the synthetic workload of [`crate::gen`] to an OTLP endpoint.
//!
//! `--concurrency` workers each own a generator and a connection; each claims the next batch
//! number (and, with `--spans`, a share of the span budget), generates and encodes the batch
//! once, waits for its slot under `--rate`, and exports it with retries.

pub mod report;
pub mod transport;

use crate::gen::{tree::MAX_SPANS, Generator, WorkloadConfig};
use anyhow::{bail, Context, Result};
use bytes::BytesMut;
pub use report::{percentile, LoadgenReport};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use transport::{send_with_retry, Exporter, RetryPolicy};

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC
    Grpc,
    /// OTLP/HTTP with protobuf bodies, POST {endpoint}/v1/traces
    Http,
}

/// Flags of `osprey loadgen`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadgenArgs {
    /// OTLP endpoint [default: http://127.0.0.1:4317 for grpc, http://127.0.0.1:4318 for http]
    #[arg(long, env = "OSPREY_ENDPOINT")]
    pub endpoint: Option<String>,
    #[arg(long, value_enum, default_value_t = Protocol::Grpc, env = "OSPREY_PROTOCOL")]
    pub protocol: Protocol,
    /// Total spans to send, then stop
    #[arg(long, env = "OSPREY_SPANS")]
    pub spans: Option<u64>,
    /// Target spans per second (0: as fast as possible)
    #[arg(long, default_value_t = 0.0, env = "OSPREY_RATE")]
    pub rate: f64,
    /// Stop after this long [default: 30s when --spans is not given]
    #[arg(long, value_parser = humantime::parse_duration, env = "OSPREY_DURATION")]
    pub duration: Option<Duration>,
    /// Requests in flight at once
    #[arg(long, default_value_t = 4, env = "OSPREY_CONCURRENCY")]
    pub concurrency: usize,
    /// Spans per request (rounded to whole traces)
    #[arg(long, default_value_t = 1000, env = "OSPREY_BATCH")]
    pub batch: usize,
    /// Random seed: the same seed sends the same traces
    #[arg(long, default_value_t = 1, env = "OSPREY_SEED")]
    pub seed: u64,
    /// Spread trace start times uniformly over this much time before now (e.g. 1h)
    #[arg(long, value_parser = humantime::parse_duration, env = "OSPREY_START_OFFSET")]
    pub start_offset: Option<Duration>,
    /// Number of services in the synthetic system
    #[arg(long, default_value_t = 20, env = "OSPREY_SERVICES")]
    pub services: usize,
    /// Retries per request for retryable errors
    #[arg(long, default_value_t = 10, env = "OSPREY_MAX_RETRIES")]
    pub max_retries: u32,
    /// Timeout of one export attempt
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s", env = "OSPREY_TIMEOUT")]
    pub timeout: Duration,
    /// Print neither progress nor the summary
    #[arg(long)]
    pub quiet: bool,
}

impl Default for LoadgenArgs {
    fn default() -> Self {
        LoadgenArgs {
            endpoint: None,
            protocol: Protocol::Grpc,
            spans: None,
            rate: 0.0,
            duration: None,
            concurrency: 4,
            batch: 1000,
            seed: 1,
            start_offset: None,
            services: 20,
            max_retries: 10,
            timeout: Duration::from_secs(10),
            quiet: false,
        }
    }
}

impl LoadgenArgs {
    pub fn endpoint(&self) -> String {
        match (&self.endpoint, self.protocol) {
            (Some(e), _) => e.clone(),
            (None, Protocol::Grpc) => "http://127.0.0.1:4317".into(),
            (None, Protocol::Http) => "http://127.0.0.1:4318".into(),
        }
    }
}

/// Hands out batch numbers and shares of the `--spans` budget.
struct Planner {
    next_index: u64,
    /// Spans not yet claimed (`None`: unlimited).
    budget: Option<u64>,
    exhausted: bool,
}

impl Planner {
    /// The next batch number and the most spans it may hold.
    fn claim(&mut self, batch: usize) -> Option<(u64, usize)> {
        if self.exhausted {
            return None;
        }
        let limit = match &mut self.budget {
            None => usize::MAX,
            Some(0) => return None,
            Some(b) => {
                let take = (*b).min((batch + MAX_SPANS) as u64);
                *b -= take;
                take as usize
            }
        };
        self.next_index += 1;
        Some((self.next_index - 1, limit))
    }

    /// Returns what a claim did not use.
    fn settle(&mut self, claimed: usize, used: usize) {
        if let Some(b) = &mut self.budget {
            *b += (claimed - used) as u64;
        }
        if used == 0 {
            self.exhausted = true;
        }
    }
}

struct Shared {
    planner: Mutex<Planner>,
    next_send: Mutex<Instant>,
    stop: AtomicBool,
    deadline: Option<Instant>,
    acked: AtomicU64,
    consecutive_failures: AtomicU64,
}

#[derive(Default)]
struct WorkerStats {
    r: LoadgenReport,
    latencies: Vec<f64>,
}

/// Give up after this many requests in a row failed.
const MAX_CONSECUTIVE_FAILURES: u64 = 20;

async fn worker(
    args: Arc<LoadgenArgs>,
    cfg: WorkloadConfig,
    shared: Arc<Shared>,
    mut exporter: Exporter,
) -> Result<WorkerStats> {
    let mut gen = Generator::new(cfg)?;
    let mut buf = BytesMut::with_capacity(1 << 20);
    let mut st = WorkerStats::default();
    let policy = RetryPolicy {
        max_retries: args.max_retries,
        ..RetryPolicy::default()
    };
    loop {
        if shared.stop.load(Ordering::Relaxed)
            || shared.deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
        let claim = shared
            .planner
            .lock()
            .map_err(|_| anyhow::anyhow!("planner poisoned"))?
            .claim(args.batch);
        let Some((index, limit)) = claim else { break };
        let n = gen.fill_batch(index, args.batch, limit);
        shared
            .planner
            .lock()
            .map_err(|_| anyhow::anyhow!("planner poisoned"))?
            .settle(limit, n);
        if n == 0 {
            continue;
        }
        buf.reserve(gen.encoded_len());
        gen.encode(&mut buf);
        let body = buf.split().freeze();
        if args.rate > 0.0 {
            let slot = {
                let mut next = shared
                    .next_send
                    .lock()
                    .map_err(|_| anyhow::anyhow!("pacer poisoned"))?;
                let slot = (*next).max(Instant::now());
                *next = slot + Duration::from_secs_f64(n as f64 / args.rate);
                slot
            };
            tokio::time::sleep_until(slot.into()).await;
            if shared.deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        let t0 = Instant::now();
        let outcome = send_with_retry(&mut exporter, body.clone(), policy).await;
        st.latencies.push(t0.elapsed().as_secs_f64() * 1e3);
        st.r.requests += 1;
        st.r.spans_sent += n as u64;
        st.r.traces_sent += gen.trace_count() as u64;
        st.r.bytes_sent += body.len() as u64;
        for reason in outcome.retries {
            *st.r.retries.entry(reason).or_default() += 1;
        }
        match outcome.result {
            Ok(a) => {
                let rejected = a.rejected.min(n as u64);
                st.r.spans_acked += n as u64 - rejected;
                st.r.spans_rejected += rejected;
                shared
                    .acked
                    .fetch_add(n as u64 - rejected, Ordering::Relaxed);
                shared.consecutive_failures.store(0, Ordering::Relaxed);
            }
            Err(f) => {
                tracing::warn!(reason = %f.reason, detail = %f.detail, "export failed");
                st.r.spans_failed += n as u64;
                *st.r.requests_failed.entry(f.reason.clone()).or_default() += 1;
                st.r.first_error
                    .get_or_insert_with(|| format!("{}: {}", f.reason, f.detail));
                if shared.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1
                    >= MAX_CONSECUTIVE_FAILURES
                {
                    shared.stop.store(true, Ordering::Relaxed);
                }
            }
        }
    }
    Ok(st)
}

fn merge_into(total: &mut LoadgenReport, part: LoadgenReport) {
    total.spans_sent += part.spans_sent;
    total.spans_acked += part.spans_acked;
    total.spans_rejected += part.spans_rejected;
    total.spans_failed += part.spans_failed;
    total.traces_sent += part.traces_sent;
    total.requests += part.requests;
    total.bytes_sent += part.bytes_sent;
    for (k, v) in part.requests_failed {
        *total.requests_failed.entry(k).or_default() += v;
    }
    for (k, v) in part.retries {
        *total.retries.entry(k).or_default() += v;
    }
    if total.first_error.is_none() {
        total.first_error = part.first_error;
    }
}

/// Runs the load generator and prints its summary (unless `--quiet`).
pub async fn run_loadgen(args: LoadgenArgs) -> Result<LoadgenReport> {
    if args.concurrency == 0 || args.batch == 0 {
        bail!("--concurrency and --batch must be at least 1");
    }
    if !args.rate.is_finite() || args.rate < 0.0 {
        bail!("--rate must be a non-negative number");
    }
    let endpoint = args.endpoint();
    let cfg = WorkloadConfig::new(
        args.seed,
        args.services,
        args.start_offset.unwrap_or_default(),
    );
    Generator::new(cfg.clone())?; // reject a bad --services before connecting
    let start = Instant::now();
    let duration = match (args.duration, args.spans) {
        (Some(d), _) => Some(d),
        (None, None) => Some(Duration::from_secs(30)),
        (None, Some(_)) => None,
    };
    let shared = Arc::new(Shared {
        planner: Mutex::new(Planner {
            next_index: 0,
            budget: args.spans,
            exhausted: false,
        }),
        next_send: Mutex::new(start),
        stop: AtomicBool::new(false),
        deadline: duration.map(|d| start + d),
        acked: AtomicU64::new(0),
        consecutive_failures: AtomicU64::new(0),
    });
    if !args.quiet {
        eprintln!(
            "loadgen: {} spans{} to {endpoint} ({:?}), {} workers, batches of {}",
            args.spans
                .map_or("unlimited".to_string(), |n| n.to_string()),
            duration.map_or(String::new(), |d| format!(
                " for up to {}",
                humantime::format_duration(d)
            )),
            args.protocol,
            args.concurrency,
            args.batch
        );
    }
    let http = reqwest::Client::builder()
        .timeout(args.timeout)
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .context("building the HTTP client")?;
    let args = Arc::new(args);
    let mut handles = Vec::new();
    for _ in 0..args.concurrency {
        let exporter = match args.protocol {
            Protocol::Grpc => Exporter::grpc(&endpoint, args.timeout)
                .with_context(|| format!("bad endpoint {endpoint}"))?,
            Protocol::Http => Exporter::http(http.clone(), &endpoint),
        };
        handles.push(tokio::spawn(worker(
            args.clone(),
            cfg.clone(),
            shared.clone(),
            exporter,
        )));
    }
    let progress = (!args.quiet).then(|| {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = tokio::signal::ctrl_c() => {
                        eprintln!("loadgen: interrupted, finishing requests in flight");
                        shared.stop.store(true, Ordering::Relaxed);
                    }
                }
                let acked = shared.acked.load(Ordering::Relaxed);
                let now = Instant::now();
                let rate = (acked - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
                eprintln!("loadgen: {acked} spans acknowledged, {rate:.0} spans/s");
                last = (now, acked);
            }
        })
    });
    let mut total = LoadgenReport::default();
    let mut latencies = Vec::new();
    let mut worker_error = None;
    for h in handles {
        match h.await {
            Ok(Ok(st)) => {
                merge_into(&mut total, st.r);
                latencies.extend(st.latencies);
            }
            Ok(Err(e)) => worker_error = Some(e),
            Err(e) => worker_error = Some(anyhow::anyhow!("worker panicked: {e}")),
        }
    }
    if let Some(p) = progress {
        p.abort();
    }
    if let Some(e) = worker_error {
        return Err(e);
    }
    total.elapsed_secs = start.elapsed().as_secs_f64();
    total.spans_per_sec = total.spans_acked as f64 / total.elapsed_secs.max(1e-9);
    latencies.sort_by(f64::total_cmp);
    total.latency_p50_ms = percentile(&latencies, 0.5);
    total.latency_p99_ms = percentile(&latencies, 0.99);
    total.latency_max_ms = latencies.last().copied().unwrap_or(0.0);
    if !args.quiet {
        println!("{total}");
    }
    if total.spans_acked == 0 && total.failed_requests() > 0 {
        bail!(
            "no span was accepted: {}",
            total.first_error.clone().unwrap_or_default()
        );
    }
    Ok(total)
}
