//! `osprey install`, `osprey uninstall` and `osprey status`: the objects of
//! `osprey_operator::install::objects` applied to (deleted from, looked up in) the current kube
//! context with server-side apply, waiting for CRDs and workloads with progress lines.

use anyhow::{anyhow, bail, Context, Result};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::Api;
use osprey_operator::install::{self, Readiness, Values};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// The field manager of every apply.
const FIELD_MANAGER: &str = "osprey";

#[derive(clap::Args, Debug)]
pub struct Target {
    /// Namespace of the stack [default: osprey-system, or `namespace:` of --values]
    #[arg(long, env = "OSPREY_NAMESPACE")]
    namespace: Option<String>,
    /// YAML file of knobs, with the keys of the Helm chart's values.yaml
    #[arg(long, value_name = "FILE")]
    values: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    #[command(flatten)]
    target: Target,
    /// Print the objects as multi-document YAML instead of applying them
    #[arg(long)]
    dry_run: bool,
    /// How long to wait for the CRDs and the workloads to become ready
    #[arg(long, default_value = "5m")]
    timeout: humantime::Duration,
}

#[derive(clap::Args, Debug)]
pub struct UninstallArgs {
    #[command(flatten)]
    target: Target,
    /// Also delete the store's data (PVCs), the CRDs (and with them every collector and
    /// Instrumentation in the cluster) and the namespace
    #[arg(long)]
    purge: bool,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    target: Target,
}

fn values(t: &Target) -> Result<Values> {
    let mut v = match &t.values {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Values::from_yaml(&text).with_context(|| format!("{}", path.display()))?
        }
        None => Values::default(),
    };
    if let Some(ns) = &t.namespace {
        v.namespace = ns.clone();
    }
    Ok(v)
}

/// One object to talk to the API server about.
struct Object {
    resource: ApiResource,
    namespace: Option<String>,
    name: String,
    body: Value,
}

impl Object {
    fn from_value(body: Value) -> Result<Object> {
        let api_version = body["apiVersion"].as_str().unwrap_or_default();
        let kind = body["kind"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let name = body["metadata"]["name"]
            .as_str()
            .ok_or_else(|| anyhow!("{kind} without a name"))?
            .to_string();
        let namespace = body["metadata"]["namespace"].as_str().map(str::to_string);
        Ok(Object {
            resource,
            namespace,
            name,
            body,
        })
    }

    fn deployment(namespace: &str, name: &str) -> Object {
        Object {
            resource: ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment")),
            namespace: Some(namespace.into()),
            name: name.into(),
            body: Value::Null,
        }
    }

    fn kind(&self) -> &str {
        &self.resource.kind
    }

    fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.resource),
            None => Api::all_with(client.clone(), &self.resource),
        }
    }

    /// `Kind namespace/name` (or `Kind name`).
    fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind(), self.name),
            None => format!("{} {}", self.kind(), self.name),
        }
    }

    async fn apply(&self, client: &kube::Client) -> Result<()> {
        let obj: DynamicObject = serde_json::from_value(self.body.clone())?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.api(client)
            .patch(&self.name, &params, &Patch::Apply(&obj))
            .await
            .map_err(|e| api_error(e, &format!("applying {}", self.describe())))?;
        Ok(())
    }

    async fn get(&self, client: &kube::Client) -> Result<Option<Value>> {
        let found = self
            .api(client)
            .get_opt(&self.name)
            .await
            .map_err(|e| api_error(e, &format!("reading {}", self.describe())))?;
        let Some(found) = found else { return Ok(None) };
        let mut v = serde_json::to_value(found)?;
        v["kind"] = Value::String(self.kind().to_string());
        Ok(Some(v))
    }
}

fn api_error(e: kube::Error, what: &str) -> anyhow::Error {
    match e {
        kube::Error::Api(s) => anyhow!(
            "{what} failed: {} ({}, HTTP {})",
            s.message,
            s.reason,
            s.code
        ),
        other => anyhow!("{what} failed: {other}"),
    }
}

fn objects(v: &Values) -> Result<Vec<Object>> {
    install::objects(v)?
        .into_iter()
        .map(Object::from_value)
        .collect()
}

async fn client() -> Result<kube::Client> {
    kube::Client::try_default()
        .await
        .context("no usable kube context (KUBECONFIG, ~/.kube/config or in-cluster)")
}

/// Waits until each of `objs` is ready, printing each state change; errors at `deadline`.
async fn wait_ready(client: &kube::Client, objs: &[&Object], deadline: Instant) -> Result<()> {
    let mut last: Vec<Option<String>> = vec![None; objs.len()];
    let mut done = vec![false; objs.len()];
    loop {
        for (i, o) in objs.iter().enumerate() {
            if done[i] {
                continue;
            }
            let state = match o.get(client).await? {
                None => Readiness::Pending("not created yet".into()),
                Some(v) => install::readiness(&v),
            };
            match state {
                Readiness::Ready => {
                    println!("  ready    {}", o.describe());
                    done[i] = true;
                }
                Readiness::Pending(why) => {
                    if last[i].as_deref() != Some(why.as_str()) {
                        println!("  waiting  {} ({why})", o.describe());
                        last[i] = Some(why);
                    }
                }
            }
        }
        if done.iter().all(|d| *d) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let pending: Vec<String> = objs
                .iter()
                .zip(&last)
                .zip(&done)
                .filter(|(_, d)| !**d)
                .map(|((o, why), _)| format!("{} ({})", o.describe(), why.as_deref().unwrap_or("")))
                .collect();
            bail!("timed out waiting for {}", pending.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn install(args: InstallArgs) -> Result<()> {
    let v = values(&args.target)?;
    if args.dry_run {
        let text = install::to_yaml(&install::objects(&v)?);
        std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
        return Ok(());
    }
    let objs = objects(&v)?;
    let client = client().await?;
    let deadline = Instant::now() + *args.timeout;
    let ns = v.namespace().to_string();
    println!(
        "installing Osprey into namespace {ns} ({} objects)",
        objs.len()
    );
    let is_crd = |o: &&Object| o.kind() == "CustomResourceDefinition";
    let crds: Vec<&Object> = objs.iter().filter(is_crd).collect();
    let mut applied_crds = 0;
    for o in &objs {
        o.apply(&client).await?;
        println!("  applied  {}", o.describe());
        if is_crd(&o) {
            applied_crds += 1;
            // Custom resources can only be applied once their CRDs are established.
            if applied_crds == crds.len() {
                wait_ready(&client, &crds, deadline).await?;
            }
        }
    }
    let mut workloads: Vec<&Object> = objs.iter().filter(|o| install::awaited(o.kind())).collect();
    let collector =
        install::collector_deployment(&v).map(|(ns, name)| Object::deployment(&ns, &name));
    workloads.extend(collector.as_ref());
    println!("waiting for the workloads (timeout {})", args.timeout);
    wait_ready(&client, &workloads, deadline).await?;
    print_next_steps(&v);
    Ok(())
}

fn print_next_steps(v: &Values) {
    let ns = v.namespace();
    println!("\nOsprey is installed in namespace {ns}.");
    if v.store.enabled {
        println!("  UI, SQL, Jaeger and Tempo APIs:");
        println!(
            "    kubectl -n {ns} port-forward svc/osprey 9201   # then open http://localhost:9201"
        );
    }
    if v.grafana.enabled {
        println!("  Grafana with the Osprey dashboards:");
        println!("    kubectl -n {ns} port-forward svc/osprey-grafana 3000   # then open http://localhost:3000");
    }
    if v.prometheus.enabled && v.collector.enabled {
        println!("  RED metrics from the collector's spanmetrics, in Prometheus:");
        println!("    kubectl -n {ns} port-forward svc/osprey-prometheus 9090   # then open http://localhost:9090");
    }
    if v.collector.enabled {
        println!("  Send OTLP to osprey-collector.{ns}.svc:4317 (gRPC) or :4318 (HTTP).");
    }
    if v.instrumentation.enabled && v.operator.enabled {
        println!("  Auto-instrument a workload (inject-python, -java, -nodejs, -dotnet or -go):");
        println!(
            "    kubectl patch deployment/NAME -n NAMESPACE -p '{{\"spec\":{{\"template\":{{\"metadata\":{{\"annotations\":{{\"instrumentation.opentelemetry.io/inject-python\":\"{ns}/osprey\"}}}}}}}}}}'"
        );
    }
}

pub async fn uninstall(args: UninstallArgs) -> Result<()> {
    let v = values(&args.target)?;
    let objs = objects(&v)?;
    let client = client().await?;
    let ns = v.namespace().to_string();
    let kept_kind = |k: &str| k == "Namespace" || k == "CustomResourceDefinition";
    let (regular, kept): (Vec<&Object>, Vec<&Object>) =
        objs.iter().rev().partition(|o| !kept_kind(o.kind()));
    for o in regular {
        delete(&client, o).await?;
    }
    if !args.purge {
        println!(
            "kept the namespace {ns}, the store's data (PVCs) and the CRDs; `osprey uninstall --purge` deletes them"
        );
        return Ok(());
    }
    let pvc = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "PersistentVolumeClaim"));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &pvc);
    let lp = ListParams::default().labels("app.kubernetes.io/part-of=osprey");
    let claims = api
        .list(&lp)
        .await
        .map_err(|e| api_error(e, &format!("listing PersistentVolumeClaims in {ns}")))?;
    for claim in claims.items {
        let name = claim.metadata.name.unwrap_or_default();
        let o = Object {
            resource: pvc.clone(),
            namespace: Some(ns.clone()),
            name,
            body: Value::Null,
        };
        delete(&client, &o).await?;
    }
    for o in kept {
        delete(&client, o).await?;
    }
    Ok(())
}

async fn delete(client: &kube::Client, o: &Object) -> Result<()> {
    match o
        .api(client)
        .delete(&o.name, &DeleteParams::background())
        .await
    {
        Ok(_) => println!("  deleted  {}", o.describe()),
        Err(kube::Error::Api(s)) if s.code == 404 => println!("  absent   {}", o.describe()),
        Err(e) => return Err(api_error(e, &format!("deleting {}", o.describe()))),
    }
    Ok(())
}

pub async fn status(args: StatusArgs) -> Result<()> {
    let v = values(&args.target)?;
    let mut objs = objects(&v)?;
    objs.extend(install::collector_deployment(&v).map(|(ns, name)| Object::deployment(&ns, &name)));
    let client = client().await?;
    let mut bad = 0;
    for o in &objs {
        let state = match o.get(&client).await? {
            None => {
                bad += 1;
                "missing".to_string()
            }
            Some(found) => match install::readiness(&found) {
                Readiness::Ready if install::awaited(o.kind()) => "ready".into(),
                Readiness::Ready => "present".into(),
                Readiness::Pending(why) => {
                    bad += 1;
                    format!("not ready: {why}")
                }
            },
        };
        println!("{:<30} {:<55} {state}", o.kind(), name_of(o));
    }
    if bad > 0 {
        bail!("{bad} of {} objects missing or not ready", objs.len());
    }
    println!("all {} objects present and ready", objs.len());
    Ok(())
}

fn name_of(o: &Object) -> String {
    match &o.namespace {
        Some(ns) => format!("{ns}/{}", o.name),
        None => o.name.clone(),
    }
}
