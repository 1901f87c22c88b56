//! `osprey collector`: runs (or with `validate`, only checks) OpenTelemetry Collector YAML.

use anyhow::{anyhow, Result};
use osprey_collector::config::expand::ProcessEnv;

#[derive(clap::Args, Debug)]
pub struct CollectorArgs {
    /// Collector config file(s), merged in order; also `yaml:key::key: value` inline settings
    #[arg(
        long,
        global = true,
        env = "OSPREY_COLLECTOR_CONFIG",
        value_delimiter = ','
    )]
    config: Vec<String>,
    /// The Go Collector's feature gates: accepted so that upstream manifests (an
    /// OpenTelemetryCollector's `spec.args`) start, and ignored with a warning
    #[arg(long = "feature-gates", global = true, value_name = "GATES")]
    feature_gates: Vec<String>,
    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Check the configuration without running it; exit status 1 if invalid
    Validate,
}

pub async fn run(args: CollectorArgs) -> Result<()> {
    for gates in &args.feature_gates {
        tracing::warn!(feature_gates = %gates, "--feature-gates is the Go Collector's; osprey has none and ignores it");
    }
    if args.config.is_empty() {
        return Err(anyhow!(
            "--config FILE is required (an OpenTelemetry Collector YAML file)"
        ));
    }
    let config = osprey_collector::load(&args.config, &ProcessEnv)
        .map_err(|e| anyhow!("invalid configuration: {e}"))?;
    if matches!(args.action, Some(Action::Validate)) {
        osprey_collector::validate::validate(&config)
            .map_err(|e| anyhow!("invalid configuration: {e}"))?;
        println!(
            "configuration is valid: {} pipeline(s)",
            config.service.pipelines.len()
        );
        return Ok(());
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let running = osprey_collector::start(&config, stop.clone())
        .await
        .map_err(|e| anyhow!("cannot start the collector: {e}"))?;
    println!("osprey collector is running:");
    for (what, addr) in &running.bound {
        println!("  {what:<28} {addr}");
    }
    for pid in config.service.pipelines.keys() {
        println!("  pipeline {pid}");
    }
    crate::up::wait_for_stop().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}
