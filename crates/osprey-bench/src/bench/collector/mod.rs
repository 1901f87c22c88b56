//! `osprey bench collector`: OTLP/gRPC in -> (batch) -> OTLP/gRPC out, for `osprey collector`
//! and Rotel (the Rust collector, from the PyPI package `rotel`) in the same run, on the same
//! machine, with the same client and sink.
//!
//! The client sends pre-encoded requests (generation costs nothing during the run); the sink
//! counts spans without decoding them. Throughput is spans that reached the sink per wall second;
//! "per core" divides by the CPU seconds the collector process used; memory is its RSS.

mod report;
mod sink;
#[cfg(test)]
mod skim_tests;

use super::server::{proc_cpu_secs, proc_status_kib};
use crate::gen::{Generator, WorkloadConfig};
use crate::loadgen::transport::Exporter;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct CollectorArgs {
    /// Seconds of full-speed load per scenario
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    pub duration: Duration,
    /// Requests in flight
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Spans per client request
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Rate of the steady-state memory scenario, spans/s
    #[arg(long, default_value_t = 100_000.0)]
    pub steady_rate: f64,
    /// The rotel-agent binary [default: found in ./.venv-bench or ./.venv]
    #[arg(long)]
    pub rotel: Option<PathBuf>,
    /// The osprey binary to benchmark [default: this one]
    #[arg(long)]
    pub osprey: Option<PathBuf>,
    /// Markdown file to update
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
}

/// One measured run.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub subject: String,
    pub scenario: String,
    pub sent: u64,
    pub delivered: u64,
    pub refused: u64,
    pub wall: f64,
    pub cpu: f64,
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
}

impl Run {
    pub fn per_sec(&self) -> f64 {
        self.delivered as f64 / self.wall.max(1e-9)
    }
    pub fn per_core(&self) -> f64 {
        self.delivered as f64 / self.cpu.max(1e-9)
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[derive(Clone, Copy, PartialEq)]
enum Subject {
    Osprey,
    Rotel,
}

struct Proc {
    child: Child,
    pid: u32,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_subject(
    subject: Subject,
    bin: &Path,
    dir: &Path,
    port: u16,
    sink: u16,
    scenario: Scenario,
) -> Result<Proc> {
    let batch = scenario.batch;
    let log = std::fs::File::create(dir.join(format!(
        "{}-{port}.log",
        if subject == Subject::Osprey {
            "osprey"
        } else {
            "rotel"
        }
    )))?;
    let mut cmd = Command::new(bin);
    match subject {
        Subject::Osprey => {
            let telemetry = free_port()?;
            let processors = if batch { "[batch]" } else { "[]" };
            let queue = if scenario.blocking {
                "    sending_queue:\n      blocking: true\n"
            } else {
                ""
            };
            let cfg = format!(
                "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{port}\n        max_recv_msg_size_mib: 64\n\
                 processors:\n  batch:\n\
                 exporters:\n  otlp:\n    endpoint: 127.0.0.1:{sink}\n    compression: none\n    tls:\n      insecure: true\n{queue}\
                 service:\n  telemetry:\n    metrics:\n      address: 127.0.0.1:{telemetry}\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: {processors}\n      exporters: [otlp]\n"
            );
            let path = dir.join(format!("collector-{port}.yaml"));
            std::fs::write(&path, cfg)?;
            cmd.arg("collector")
                .arg("--config")
                .arg(&path)
                .env("OSPREY_LOG", "warn");
        }
        Subject::Rotel => {
            cmd.arg("start")
                .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{port}")])
                .args([
                    "--otlp-http-endpoint",
                    &format!("127.0.0.1:{}", free_port()?),
                ])
                .args(["--exporter", "otlp"])
                .args([
                    "--otlp-exporter-endpoint",
                    &format!("http://127.0.0.1:{sink}"),
                ])
                .args(["--otlp-exporter-compression", "none"]);
            if !batch {
                cmd.arg("--disable-batching");
            }
        }
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{} did not listen on {port} within 30 s", bin.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Proc { child, pid })
}

/// One measured configuration.
#[derive(Clone, Copy)]
struct Scenario {
    /// The pipeline has the batch processor (defaults), else it passes requests through.
    batch: bool,
    /// Spans/s the client offers; 0 = as fast as the collector acknowledges.
    rate: f64,
    /// `sending_queue.blocking: true`: a full queue holds the client's request until there is
    /// room, instead of refusing it (the Collector's default, and Osprey's, is to refuse).
    blocking: bool,
}

impl Scenario {
    fn all(steady_rate: f64) -> [Scenario; 4] {
        let s = |batch, rate, blocking| Scenario {
            batch,
            rate,
            blocking,
        };
        [
            s(true, 0.0, false),
            s(false, 0.0, false),
            s(false, 0.0, true),
            s(true, steady_rate, false),
        ]
    }

    fn name(&self) -> String {
        match (self.batch, self.rate > 0.0, self.blocking) {
            (_, true, _) => format!("steady {:.0}k spans/s, batch", self.rate / 1000.0),
            (true, false, _) => "max rate, batch".into(),
            (false, false, false) => "max rate, pass-through".into(),
            (false, false, true) => "max rate, pass-through, blocking queue".into(),
        }
    }
}

/// The requests the client sends, pre-encoded, and the spans in each.
struct Load {
    bodies: Arc<Vec<Bytes>>,
    spans_per: Vec<u64>,
}

/// Pre-encoded requests of `batch` spans each.
fn bodies(batch: usize, n: usize) -> Result<Vec<Bytes>> {
    let mut g = Generator::new(WorkloadConfig::new(7, 20, Duration::ZERO))?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        g.fill_batch(i as u64, batch, batch * 2);
        let mut buf = Vec::with_capacity(g.encoded_len());
        g.encode(&mut buf);
        out.push(Bytes::from(buf));
    }
    Ok(out)
}

/// Sends until `stop`; `rate` (spans/s, 0 = unbounded) is shared by all workers.
async fn drive(
    endpoint: &str,
    load: &Load,
    args: &CollectorArgs,
    run_for: Duration,
    rate: f64,
) -> Result<(u64, u64)> {
    let sent = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let bodies = load.bodies.clone();
    let spans_per = Arc::new(load.spans_per.clone());
    let mut handles = vec![];
    let per_worker_interval = if rate > 0.0 {
        let avg = spans_per.iter().sum::<u64>() as f64 / spans_per.len() as f64;
        Some(Duration::from_secs_f64(
            avg * args.concurrency as f64 / rate,
        ))
    } else {
        None
    };
    for w in 0..args.concurrency {
        let mut exp = Exporter::grpc(endpoint, Duration::from_secs(10))?;
        let (bodies, spans_per, sent, refused, stop) = (
            bodies.clone(),
            spans_per.clone(),
            sent.clone(),
            refused.clone(),
            stop.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut i = w;
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if let Some(iv) = per_worker_interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += iv;
                }
                let k = i % bodies.len();
                match exp.send(bodies[k].clone()).await {
                    Ok(_) => {
                        sent.fetch_add(spans_per[k], Ordering::Relaxed);
                    }
                    Err(_) => {
                        refused.fetch_add(spans_per[k], Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                i += STRIDE;
            }
        }));
    }
    tokio::time::sleep(run_for).await;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.await;
    }
    Ok((
        sent.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    ))
}

/// Workers walk the request list with a stride so they do not send the same body in step.
const STRIDE: usize = 7;

async fn measure(
    subject: Subject,
    bin: &Path,
    dir: &Path,
    args: &CollectorArgs,
    scenario: Scenario,
    load: &Load,
) -> Result<Run> {
    let rate = scenario.rate;
    let sink_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink_port = sink_listener.local_addr()?.port();
    let counts = sink::spawn(sink_listener);
    let port = free_port()?;
    let proc = start_subject(subject, bin, dir, port, sink_port, scenario)?;
    // Warm up the connections, then measure.
    drive(
        &format!("http://127.0.0.1:{port}"),
        load,
        args,
        Duration::from_secs(2),
        rate,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu0 = proc_cpu_secs(proc.pid)?;
    let got0 = counts.spans.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let (sent, refused) = drive(
        &format!("http://127.0.0.1:{port}"),
        load,
        args,
        args.duration,
        rate,
    )
    .await?;
    let rss = proc_status_kib(proc.pid, "VmRSS:")? as f64 / 1024.0;
    // Let what was acknowledged drain to the sink (bounded); the run ends at the last arrival.
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    let mut last = counts.spans.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    while Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = counts.spans.load(Ordering::Relaxed);
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() > Duration::from_millis(500) && now - got0 >= sent {
            break;
        }
    }
    let wall = (last_change - t0).as_secs_f64();
    let cpu = proc_cpu_secs(proc.pid)? - cpu0;
    let peak = proc_status_kib(proc.pid, "VmHWM:")? as f64 / 1024.0;
    let delivered = counts.spans.load(Ordering::Relaxed) - got0;
    let run = Run {
        subject: if subject == Subject::Osprey {
            "osprey collector".into()
        } else {
            "rotel".into()
        },
        scenario: scenario.name(),
        sent,
        delivered,
        refused,
        wall,
        cpu,
        rss_mib: rss,
        peak_rss_mib: peak,
    };
    eprintln!(
        "{:<18} {:<28} delivered {:>10} spans in {:>5.1} s = {:>9.0}/s; cpu {:>5.1} s = {:>9.0} spans/s/core; rss {:.0} MiB (peak {:.0})",
        run.subject, run.scenario, run.delivered, run.wall, run.per_sec(), run.cpu, run.per_core(), run.rss_mib, run.peak_rss_mib
    );
    drop(proc);
    Ok(run)
}

fn find_rotel(explicit: &Option<PathBuf>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.clone());
    }
    for venv in [".venv-bench", ".venv"] {
        let Ok(libs) = std::fs::read_dir(Path::new(venv).join("lib")) else {
            continue;
        };
        for py in libs.flatten() {
            let candidate = py.path().join("site-packages/rotel/rotel-agent");
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

pub async fn run(args: CollectorArgs) -> Result<()> {
    let osprey = match &args.osprey {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let rotel = find_rotel(&args.rotel);
    if rotel.is_none() {
        eprintln!("rotel-agent not found (pip install rotel into .venv-bench, or pass --rotel); measuring osprey only");
    }
    let dir = tempfile::tempdir()?;
    let bodies = bodies(args.batch, 64)?;
    let spans_per: Vec<u64> = bodies
        .iter()
        .map(|b| {
            use prost::Message;
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                b.as_ref(),
            )
            .map(|r| {
                r.resource_spans
                    .iter()
                    .flat_map(|rs| &rs.scope_spans)
                    .map(|s| s.spans.len() as u64)
                    .sum()
            })
            .unwrap_or(0)
        })
        .collect();
    let load = Load {
        bodies: Arc::new(bodies),
        spans_per,
    };
    let mut runs = vec![];
    let mut subjects = vec![(Subject::Osprey, osprey.clone())];
    if let Some(r) = &rotel {
        subjects.push((Subject::Rotel, r.clone()));
    }
    for scenario in Scenario::all(args.steady_rate) {
        for (s, bin) in &subjects {
            if scenario.blocking && *s == Subject::Rotel {
                continue; // Rotel has no such option; its queue pushes back by itself.
            }
            runs.push(measure(*s, bin, dir.path(), &args, scenario, &load).await?);
        }
    }
    let rotel_version = rotel
        .as_ref()
        .and_then(|r| Command::new(r).arg("version").output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let text = report::render(&runs, &args, rotel_version.as_deref());
    super::report::write_marked(&args.out, &text, report::BEGIN, report::END)?;
    eprintln!("wrote the collector section of {}", args.out.display());
    Ok(())
}
