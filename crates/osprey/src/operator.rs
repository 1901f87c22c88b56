//! `osprey operator`: the Kubernetes operator (collector reconciler + pod webhook), and
//! `osprey operator crds` (prints the CRDs it serves).

use anyhow::{anyhow, Context, Result};
use osprey_operator::certs::{self, CertResolver, CertSpec, TlsMaterial};
use osprey_operator::collector::Settings;
use osprey_operator::controller::{self, ControllerConfig, Validator};
use osprey_operator::webhook::{self, Cluster, WebhookConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct OperatorArgs {
    #[command(subcommand)]
    command: Option<OperatorCommand>,
    /// The operator's own namespace (its webhook Service and certificate Secret live there;
    /// its pods are never mutated)
    #[arg(long, env = "OSPREY_NAMESPACE", default_value = "osprey-system")]
    namespace: String,
    /// Reconcile OpenTelemetryCollectors in this namespace only [default: all]
    #[arg(long, env = "WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// HTTPS address of the pod webhook
    #[arg(long, env = "OSPREY_WEBHOOK_ADDR", default_value = "0.0.0.0:9443")]
    webhook_addr: SocketAddr,
    /// The webhook's Service (the serving certificate is issued for its DNS names)
    #[arg(long, default_value = "osprey-operator-webhook")]
    webhook_service: String,
    /// MutatingWebhookConfigurations whose caBundle the operator keeps current
    #[arg(long = "webhook-config", default_value = "osprey-operator-mutation")]
    webhook_configs: Vec<String>,
    /// Secret holding the webhook CA and serving certificate (created and rotated by the operator)
    #[arg(long, default_value = "osprey-operator-webhook-cert")]
    cert_secret: String,
    /// Read tls.crt/tls.key from this directory instead (cert-manager or another issuer
    /// manages them; the operator neither writes the Secret nor patches caBundle)
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// Refuse pods whose instrumentation fails (default: admit them unchanged, with an Event)
    #[arg(long)]
    fail_closed: bool,
    /// Namespaces whose pods are never mutated (besides kube-system and the operator's own)
    #[arg(long = "ignore-namespace")]
    ignore_namespaces: Vec<String>,
    /// Image of collector workloads and sidecars when `spec.image` is empty
    #[arg(long, env = "OSPREY_COLLECTOR_IMAGE")]
    collector_image: Option<String>,
    /// Inject collector sidecars as native sidecars (Kubernetes >= 1.29)
    #[arg(long)]
    native_sidecars: bool,
    /// Enable Go auto-instrumentation (off by default, as upstream)
    #[arg(long)]
    enable_go_instrumentation: bool,
    /// Serve the webhook only (no collector reconciler)
    #[arg(long, conflicts_with = "no_webhook")]
    no_controller: bool,
    /// Run the collector reconciler only (no webhook)
    #[arg(long)]
    no_webhook: bool,
}

#[derive(clap::Subcommand, Debug)]
enum OperatorCommand {
    /// Print the CustomResourceDefinitions the operator serves (YAML)
    Crds,
}

/// The collector's own validator, for CR configs. `${env:...}` references belong to the
/// collector pod's environment, unknown here: they expand to "0" for the check.
fn collector_validator() -> Validator {
    struct Placeholder;
    impl osprey_collector::config::expand::Env for Placeholder {
        fn get(&self, _name: &str) -> Option<String> {
            Some("0".into())
        }
    }
    Arc::new(|text: &str| {
        let config = osprey_collector::parse_str("spec.config", text, &Placeholder)
            .map_err(|e| e.to_string())?;
        osprey_collector::validate::validate(&config).map_err(|e| e.to_string())
    })
}

pub async fn run(args: OperatorArgs) -> Result<()> {
    if let Some(OperatorCommand::Crds) = args.command {
        print!("{}", osprey_operator::crd::definitions_yaml()?);
        return Ok(());
    }
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API (in-cluster config or kubeconfig)")?;
    let stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();

    if !args.no_webhook {
        let spec = {
            let mut s = CertSpec::new(
                args.namespace.clone(),
                args.cert_secret.clone(),
                args.webhook_service.clone(),
                args.webhook_configs.clone(),
            );
            s.externally_managed = args.cert_dir.is_some();
            s
        };
        let material = match &args.cert_dir {
            Some(dir) => TlsMaterial::from_dir(dir)?,
            None => certs::ensure(&client, &spec)
                .await
                .context("webhook certificate")?,
        };
        let resolver = CertResolver::new(&material)?;
        if args.cert_dir.is_none() {
            tokio::spawn(certs::rotate_loop(
                client.clone(),
                spec,
                resolver.clone(),
                certs::CHECK_INTERVAL,
                stop.clone(),
            ));
        }
        let mut cfg = WebhookConfig {
            listen: args.webhook_addr,
            fail_closed: args.fail_closed,
            ..WebhookConfig::default()
        }
        .ignoring(&args.namespace);
        for ns in &args.ignore_namespaces {
            cfg = cfg.ignoring(ns);
        }
        cfg.inject.native_sidecars = args.native_sidecars;
        cfg.inject.languages.go = args.enable_go_instrumentation;
        let hook =
            webhook::Webhook::bind(cfg, resolver, Cluster::Api(client.clone()), stop.clone())
                .await?;
        eprintln!(
            "osprey operator: pod webhook on https://{}",
            hook.local_addr()
        );
        tasks.spawn(async move { hook.run().await.map_err(|e| anyhow!(e)) });
    }
    if !args.no_controller {
        let mut settings = Settings {
            native_sidecars: args.native_sidecars,
            ..Settings::default()
        };
        if let Some(image) = &args.collector_image {
            settings.default_image = image.clone();
        }
        let mut cfg = ControllerConfig::new(settings);
        cfg.watch_namespace = args.watch_namespace.clone();
        let client = client.clone();
        let stop = stop.clone();
        eprintln!(
            "osprey operator: reconciling OpenTelemetryCollectors in {}",
            args.watch_namespace.as_deref().unwrap_or("all namespaces")
        );
        tasks.spawn(async move {
            controller::run(client, cfg, collector_validator(), stop)
                .await
                .map_err(|e| anyhow!(e))
        });
    }

    let stopper = stop.clone();
    tokio::spawn(async move {
        crate::up::wait_for_stop().await;
        stopper.cancel();
    });
    let mut result = Ok(());
    while let Some(done) = tasks.join_next().await {
        let outcome = done.map_err(|e| anyhow!(e)).and_then(|r| r);
        if let Err(e) = outcome {
            if result.is_ok() {
                result = Err(e);
            }
        }
        // One part ending (error or stop) ends the operator.
        stop.cancel();
    }
    result
}
