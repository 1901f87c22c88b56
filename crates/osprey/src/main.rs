//! The `osprey` command: each subcommand wires the library crates; no logic of its own
//! beyond reading flags and printing.

mod collector;
mod config;
mod demo;
mod doctor;
mod inject;
mod install;
mod operator;
mod sql;
mod up;

/// mimalloc instead of glibc's malloc: the ingest path allocates and frees many small
/// buffers from several threads; glibc spent a fifth of the server's CPU in malloc/free and
/// fragmented its arenas (resident memory far above what was live). See BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "osprey",
    version,
    about = "One-command OpenTelemetry observability: receive, store and query traces"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// All-in-one: OTLP receivers, embedded store, SQL API
    Up(Box<up::UpArgs>),
    /// Run SQL against a running Osprey
    Sql(sql::SqlArgs),
    /// Synthetic OTLP traffic: realistic multi-service traces
    Loadgen(osprey_bench::LoadgenArgs),
    /// The benchmarks behind BENCHMARKS.md
    Bench {
        #[command(subcommand)]
        command: osprey_bench::bench::BenchCommand,
    },
    /// Run OpenTelemetry Collector pipelines from Collector YAML (`validate` only checks it)
    Collector(collector::CollectorArgs),
    /// The Kubernetes operator: reconciles OpenTelemetryCollectors, serves the pod webhook
    Operator(operator::OperatorArgs),
    /// List annotated pods that are not (or not currently) instrumented; `--rollout` restarts them
    Doctor(doctor::DoctorArgs),
    /// Print a pod as the operator's webhook would mutate it (auto-instrumentation, sidecar)
    Inject(inject::InjectArgs),
    /// Run the demo app locally, auto-instrumented as in a cluster, with Osprey (no Kubernetes)
    Demo(demo::DemoArgs),
    /// Install the whole stack into the current kube context (`--dry-run` prints the YAML)
    Install(install::InstallArgs),
    /// Remove what `osprey install` created (keeps data, CRDs and namespace unless `--purge`)
    Uninstall(install::UninstallArgs),
    /// Show whether each object of the install is present and ready
    Status(install::StatusArgs),
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OSPREY_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,datafusion=warn,h2=warn,tower=warn,hyper=warn")
    });
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    let res = match cli.command {
        Command::Up(a) => up::run(*a).await,
        Command::Sql(a) => sql::run(a).await,
        Command::Loadgen(a) => osprey_bench::run_loadgen(a).await.map(|_| ()),
        Command::Bench { command } => osprey_bench::bench::run(command).await,
        Command::Collector(a) => collector::run(a).await,
        Command::Operator(a) => operator::run(a).await,
        Command::Doctor(a) => doctor::run(a).await,
        Command::Inject(a) => inject::run(a),
        Command::Demo(a) => demo::run(a).await,
        Command::Install(a) => install::install(a).await,
        Command::Uninstall(a) => install::uninstall(a).await,
        Command::Status(a) => install::status(a).await,
    };
    match res {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
