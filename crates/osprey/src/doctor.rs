//! `osprey doctor`: lists pods that ask for auto-instrumentation or a collector sidecar but are
//! not (or not currently) instrumented, and why; `--rollout` restarts their workloads.

use anyhow::{Context, Result};
use osprey_operator::doctor;

#[derive(clap::Args, Debug, Clone)]
pub struct DoctorArgs {
    /// Only look at this namespace (default: every namespace)
    #[arg(long, short = 'n', env = "OSPREY_NAMESPACE")]
    pub namespace: Option<String>,
    /// Restart the Deployments, StatefulSets and DaemonSets a restart would fix
    #[arg(long)]
    pub rollout: bool,
    /// Print the findings as JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: DoctorArgs) -> Result<()> {
    let client = doctor::connect()
        .await
        .context("cannot reach Kubernetes (kubeconfig or in-cluster config)")?;
    let findings = doctor::collect(&client, args.namespace.as_deref()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else if findings.is_empty() {
        println!("every annotated pod is instrumented with its current Instrumentation");
    } else {
        print!("{}", doctor::table(&findings));
    }
    if !args.rollout {
        let n = doctor::restart_targets(&findings).len();
        if n > 0 && !args.json {
            println!(
                "\n{n} workload(s) would be fixed by a restart: run `osprey doctor --rollout`"
            );
        }
        return Ok(());
    }
    for w in doctor::rollout(&client, &findings).await? {
        println!("restarted {w}");
    }
    Ok(())
}
