//! `osprey demo`: the demo app of demo/ (uninstrumented Python + Node services) running on this
//! machine, auto-instrumented exactly as in a cluster, its traces stored by an `osprey up`
//! child. Each service's pod is mutated by the operator's webhook code (pods.rs) and started as
//! a process with the env the kubelet would give it; Ctrl-C stops everything in order.

mod pods;
mod procs;

use anyhow::{bail, Context, Result};
use pods::{Runtime, Service};
use procs::{wait_http, Proc};
use rand::Rng;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Needs the auto-instrumentation payloads and the demo's Python venv that \
scripts/build-autoinstrumentation.sh builds (run automatically when they are missing), \
python3 and node. Logs of every process and the mutated pods go to <data-dir>/demo-logs/.")]
pub struct DemoArgs {
    /// The demo app (the repository's demo/ directory)
    #[arg(long, env = "OSPREY_DEMO_DIR", default_value = "demo")]
    dir: PathBuf,
    /// Data directory of the demo's `osprey up`
    #[arg(long, default_value = "osprey-demo-data")]
    data_dir: PathBuf,
    /// The auto-instrumentation payloads [default: ~/.cache/osprey-autoinstrumentation]
    #[arg(long, env = "OSPREY_AUTOINSTRUMENTATION_DIR")]
    payloads: Option<PathBuf>,
    /// The venv with the demo's Python dependencies [default: ~/.cache/osprey-demo-venv]
    #[arg(long, env = "OSPREY_DEMO_VENV")]
    venv: Option<PathBuf>,
    /// Run scripts/build-autoinstrumentation.sh even when the payloads exist
    #[arg(long)]
    rebuild: bool,
    /// First of the five consecutive loopback ports of the services (generator, upper, lower,
    /// digit, special); 0 picks free ports
    #[arg(long, default_value_t = 0)]
    app_port_base: u16,
    /// Seconds between two passwords the load service asks for
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Query API and web UI of `osprey up`
    #[arg(long, default_value = "127.0.0.1:9201")]
    http_addr: String,
    /// OTLP/HTTP receiver of `osprey up`, where the services export to
    #[arg(long, default_value = "127.0.0.1:4318")]
    otlp_http_addr: String,
    /// OTLP gRPC receiver of `osprey up` (`none` turns it off, as for the flags below)
    /// [default: 127.0.0.1:4317]
    #[arg(long)]
    otlp_grpc_addr: Option<String>,
    /// Promscale-port OTLP gRPC [default: 127.0.0.1:9202]
    #[arg(long)]
    grpc_addr: Option<String>,
    /// PostgreSQL wire [default: 127.0.0.1:5433]
    #[arg(long)]
    pg_addr: Option<String>,
    /// Jaeger thrift HTTP [default: 127.0.0.1:14268]
    #[arg(long)]
    jaeger_thrift_addr: Option<String>,
    /// Jaeger gRPC [default: 127.0.0.1:14250]
    #[arg(long)]
    jaeger_grpc_addr: Option<String>,
    /// Zipkin [default: 127.0.0.1:9411]
    #[arg(long)]
    zipkin_addr: Option<String>,
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// The payloads and venv, built by the repository's script when missing (or `--rebuild`).
fn prepare(args: &DemoArgs, payloads: &Path, venv: &Path) -> Result<()> {
    let needed = [
        payloads.join("python/autoinstrumentation"),
        payloads.join("nodejs/autoinstrumentation/autoinstrumentation.js"),
        venv.join("bin/python"),
    ];
    let missing: Vec<&PathBuf> = needed.iter().filter(|p| !p.exists()).collect();
    if missing.is_empty() && !args.rebuild {
        return Ok(());
    }
    let script = args.dir.join("../scripts/build-autoinstrumentation.sh");
    if !script.is_file() {
        bail!(
            "{} missing and {} not found: run scripts/build-autoinstrumentation.sh from the \
             Osprey repository, or pass --payloads and --venv",
            missing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            script.display()
        );
    }
    eprintln!("osprey demo: preparing the auto-instrumentation payloads ({}); the first time takes a few minutes", script.display());
    let status = std::process::Command::new("bash")
        .arg(&script)
        .env("OSPREY_AUTOINSTRUMENTATION_DIR", payloads)
        .env("OSPREY_DEMO_VENV", venv)
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!("{} failed ({status})", script.display());
    }
    if let Some(p) = needed.iter().find(|p| !p.exists()) {
        bail!("{} still missing after {}", p.display(), script.display());
    }
    Ok(())
}

/// `n` loopback ports: `base..base+n`, or free ones the OS picks when base is 0.
fn app_ports(base: u16, n: u16) -> Result<Vec<u16>> {
    if base != 0 {
        return (0..n)
            .map(|i| base.checked_add(i).context("--app-port-base too high"))
            .collect();
    }
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("finding free ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// `host:port` as a client reaches it (a wildcard host means this machine).
fn client_addr(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some(("0.0.0.0" | "[::]" | "", port)) => format!("127.0.0.1:{port}"),
        _ => addr.to_string(),
    }
}

fn up_command(args: &DemoArgs) -> Result<Command> {
    let exe = std::env::current_exe().context("finding the osprey binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("up")
        .arg("--data-dir")
        .arg(&args.data_dir)
        .args(["--http-addr", &args.http_addr])
        .args(["--otlp-http-addr", &args.otlp_http_addr]);
    let optional = [
        ("--otlp-grpc-addr", &args.otlp_grpc_addr),
        ("--grpc-addr", &args.grpc_addr),
        ("--pg-addr", &args.pg_addr),
        ("--jaeger-thrift-addr", &args.jaeger_thrift_addr),
        ("--jaeger-grpc-addr", &args.jaeger_grpc_addr),
        ("--zipkin-addr", &args.zipkin_addr),
    ];
    for (flag, value) in optional {
        if let Some(v) = value {
            cmd.args([flag, v]);
        }
    }
    cmd.env("NO_COLOR", "1");
    Ok(cmd)
}

/// The demo's six services with their ports and peers.
fn services(ports: &[u16], interval: f64) -> Vec<Service> {
    let url = |p: u16| format!("http://127.0.0.1:{p}");
    let peer = |name: &'static str, runtime, port: u16| Service {
        name,
        runtime,
        port: Some(port),
        env: vec![],
    };
    let generator = Service {
        name: "generator",
        runtime: Runtime::Python,
        port: Some(ports[0]),
        env: vec![
            ("UPPER_URL".into(), url(ports[1])),
            ("LOWER_URL".into(), url(ports[2])),
            ("DIGIT_URL".into(), url(ports[3])),
            ("SPECIAL_URL".into(), url(ports[4])),
        ],
    };
    let load = Service {
        name: "load",
        runtime: Runtime::Python,
        port: None,
        env: vec![
            ("GENERATOR_URL".into(), url(ports[0])),
            ("INTERVAL".into(), interval.to_string()),
        ],
    };
    vec![
        peer("upper", Runtime::Python, ports[1]),
        peer("lower", Runtime::Python, ports[2]),
        peer("digit", Runtime::Python, ports[3]),
        peer("special", Runtime::Node, ports[4]),
        generator,
        load,
    ]
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Mutates and schedules the service's pod, writes it next to the logs, and starts its process.
fn start_service(svc: &Service, ctx: &StartCtx) -> Result<(Proc, String)> {
    let mut pod = pods::admit(svc, ctx.inst)?;
    let uid = format!("{:032x}", rand::rng().random::<u128>());
    pods::schedule(&mut pod, &random_suffix(), &uid);
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let yaml = serde_yaml::to_string(&pod).context("serializing the pod")?;
    std::fs::write(ctx.logs.join(format!("{}.pod.yaml", svc.name)), yaml)?;
    let volumes = pods::volume_dirs(&pod, |image| pods::payload_root(ctx.payloads, image))?;
    let env = pods::container_env(&pod, svc.name, &volumes)?;
    let (program, script, signal) = match svc.runtime {
        Runtime::Python => (ctx.venv.join("bin/python"), "app.py", "INT"),
        Runtime::Node => (PathBuf::from("node"), "server.js", "TERM"),
    };
    let path = std::env::var("PATH").unwrap_or_default();
    let mut cmd = Command::new(program);
    cmd.arg(script)
        .current_dir(ctx.dir.join(svc.name))
        .env_clear()
        .env("PATH", format!("{}:{path}", ctx.venv.join("bin").display()))
        .env("HOME", home())
        .env("LANG", "C.UTF-8")
        .env("PYTHONUNBUFFERED", "1")
        .env("HOSTNAME", &pod_name)
        .envs(env);
    Ok((Proc::spawn(svc.name, cmd, ctx.logs, signal)?, pod_name))
}

struct StartCtx<'a> {
    inst: &'a osprey_operator::crd::Instrumentation,
    dir: &'a Path,
    payloads: &'a Path,
    venv: &'a Path,
    logs: &'a Path,
}

async fn stop_all(procs: &mut [Proc]) {
    // `osprey up` is first in the list and stops last, once the services have flushed their
    // spans to it; before the others, the load and then the generator, so that no request is
    // cut in the middle.
    let Some((up, services)) = procs.split_first_mut() else {
        return;
    };
    let grace = Duration::from_secs(10);
    let (callers, peers): (Vec<&mut Proc>, Vec<&mut Proc>) = services
        .iter_mut()
        .partition(|p| p.name == "load" || p.name == "generator");
    for p in callers.into_iter().rev() {
        p.stop(grace).await;
    }
    futures::future::join_all(peers.into_iter().map(|p| p.stop(grace))).await;
    up.stop(Duration::from_secs(60)).await;
}

pub async fn run(args: DemoArgs) -> Result<()> {
    for svc in [
        "generator/app.py",
        "upper/app.py",
        "special/server.js",
        "load/app.py",
    ] {
        if !args.dir.join(svc).is_file() {
            bail!(
                "the demo app is not at {} (no {svc}): run `osprey demo` from the Osprey \
                 repository's root or pass --dir <repo>/demo",
                args.dir.display()
            );
        }
    }
    if args.otlp_http_addr == "none" {
        bail!("--otlp-http-addr none: the demo's services export OTLP/HTTP to it");
    }
    let dir = std::path::absolute(&args.dir)?;
    let payloads = std::path::absolute(
        args.payloads
            .clone()
            .unwrap_or_else(|| home().join(".cache/osprey-autoinstrumentation")),
    )?;
    let venv = std::path::absolute(
        args.venv
            .clone()
            .unwrap_or_else(|| home().join(".cache/osprey-demo-venv")),
    )?;
    prepare(&args, &payloads, &venv)?;
    let logs = std::path::absolute(args.data_dir.join("demo-logs"))?;
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;

    // From here on Ctrl-C and SIGTERM stop the demo (its children have their own process
    // groups: the terminal's Ctrl-C reaches only this process, which stops them in order).
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut procs = Vec::new();
    let res = tokio::select! {
        r = run_all(&args, &dir, &payloads, &venv, &logs, &mut procs) => r,
        _ = int.recv() => Ok(()),
        _ = term.recv() => Ok(()),
    };
    eprintln!("osprey demo: stopping");
    stop_all(&mut procs).await;
    if res.is_ok() {
        eprintln!(
            "osprey demo: stopped; the data stays in {}",
            args.data_dir.display()
        );
    }
    res
}

async fn run_all(
    args: &DemoArgs,
    dir: &Path,
    payloads: &Path,
    venv: &Path,
    logs: &Path,
    procs: &mut Vec<Proc>,
) -> Result<()> {
    let http = client_addr(&args.http_addr);
    procs.push(Proc::spawn("osprey-up", up_command(args)?, logs, "TERM")?);
    wait_http(
        &mut procs[0],
        &format!("http://{http}/readyz"),
        Duration::from_secs(120),
    )
    .await?;

    let endpoint = format!("http://{}", client_addr(&args.otlp_http_addr));
    let inst = pods::instrumentation(&endpoint)?;
    let ctx = StartCtx {
        inst: &inst,
        dir,
        payloads,
        venv,
        logs,
    };
    let mut started = Vec::new();
    for svc in services(&app_ports(args.app_port_base, 5)?, args.interval) {
        let (mut proc, pod) = start_service(&svc, &ctx)?;
        if let Some(port) = svc.port {
            let url = format!("http://127.0.0.1:{port}/healthz");
            wait_http(&mut proc, &url, Duration::from_secs(120)).await?;
        }
        started.push(format!(
            "  {:<10} pod {pod}{}",
            svc.name,
            match svc.port {
                Some(p) => format!(", http://127.0.0.1:{p}"),
                None => String::new(),
            }
        ));
        procs.push(proc);
    }
    println!(
        "osprey demo is running: the demo app, auto-instrumented as in a cluster, sends its traces to Osprey.\n\
         \n  web UI      http://{http}/\n  Jaeger API  http://{http}/api/traces?service=generator\n  \
         SQL         osprey sql --url http://{http} \"select service_name, count(*) from spans group by 1\"\n  \
         OTLP/HTTP   {endpoint}\n\nservices (namespace {}):\n{}\n\nlogs and mutated pods: {}\nPress Ctrl-C to stop.",
        pods::NAMESPACE,
        started.join("\n"),
        logs.display()
    );
    watch(procs).await
}

/// Runs until a process that should keep running exits (an error); the caller stops it on
/// Ctrl-C or SIGTERM.
async fn watch(procs: &mut [Proc]) -> Result<()> {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for p in procs.iter_mut() {
            if let Some(st) = p.exited() {
                bail!("{} exited ({st}):\n{}", p.name, p.log_tail());
            }
        }
    }
}
