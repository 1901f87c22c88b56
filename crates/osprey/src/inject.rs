//! `osprey inject`: prints a pod exactly as the operator's webhook would admit it (the same
//! `osprey_operator::inject::mutate`), and says on stderr what was injected where and why
//! anything was skipped, so users see the result before they deploy.

use anyhow::{bail, Context, Result};
use clap::ArgAction;
use osprey_operator::crd::{Instrumentation, OpenTelemetryCollector};
use osprey_operator::inject::{mutate, InjectConfig, Namespace, Pod, PodContext, WorkloadRef};
use serde::Deserialize;
use serde_yaml::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Files may hold several YAML documents (or a `kind: List`). Instrumentations and collectors \
without metadata.namespace are taken to be in the pod's namespace. The mutated pod is printed \
on stdout as one v1/Pod YAML document; one line per injection and per skipped container or \
rejected request goes to stderr. Exit status 1 when the webhook would refuse to mutate the pod \
(e.g. \"no OpenTelemetry Instrumentation instances available\"); the webhook then admits the \
pod unchanged.

Example:
  osprey inject --pod pod.yaml --instrumentation inst.yaml \\
      --owner ReplicaSet/web-5d8f7 --owner Deployment/web > mutated.yaml")]
pub struct InjectArgs {
    /// The pod manifest (YAML or JSON; `-` reads stdin)
    #[arg(long, value_name = "FILE")]
    pod: PathBuf,
    /// Instrumentation manifests (repeatable)
    #[arg(long = "instrumentation", value_name = "FILE", num_args = 1..)]
    instrumentations: Vec<PathBuf>,
    /// The pod's Namespace manifest, for namespace-level annotations [default: an empty
    /// Namespace named after the pod's metadata.namespace, or "default"]
    #[arg(long, value_name = "FILE")]
    namespace: Option<PathBuf>,
    /// OpenTelemetryCollector manifests, for `sidecar.opentelemetry.io/inject` (repeatable)
    #[arg(long = "collector", value_name = "FILE", num_args = 1..)]
    collectors: Vec<PathBuf>,
    /// The pod's owners, nearest first, as Kind/name[/uid] (e.g. `--owner ReplicaSet/web-5d8f7
    /// --owner Deployment/web`) [default: the pod's ownerReferences]
    #[arg(long = "owner", value_name = "KIND/NAME", num_args = 1.., value_parser = parse_owner)]
    owners: Vec<WorkloadRef>,
    /// Inject Go (off by default, as upstream)
    #[arg(long)]
    enable_go_instrumentation: bool,
    /// Inject Apache httpd (off by default; Osprey reports it as not implemented)
    #[arg(long)]
    enable_apache_httpd_instrumentation: bool,
    /// Inject nginx (off by default; Osprey reports it as not implemented)
    #[arg(long)]
    enable_nginx_instrumentation: bool,
    /// Honour `<language>-container-names` annotations (upstream's flag of the same name)
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    enable_multi_instrumentation: bool,
    /// Inject the collector sidecar as a native sidecar (Kubernetes >= 1.29)
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    native_sidecars: bool,
}

fn parse_owner(s: &str) -> Result<WorkloadRef, String> {
    let mut parts = s.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(kind), Some(name), uid) if !kind.is_empty() && !name.is_empty() => Ok(WorkloadRef {
            kind: kind.to_string(),
            name: name.to_string(),
            uid: uid.filter(|u| !u.is_empty()).map(str::to_string),
        }),
        _ => Err(format!("expected Kind/name[/uid], got {s:?}")),
    }
}

/// Every document of a YAML file (`-`: stdin), `kind: List` items flattened, empty ones skipped.
fn documents(path: &Path) -> Result<Vec<Value>> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading stdin")?;
        s
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v =
            Value::deserialize(doc).with_context(|| format!("{}: invalid YAML", path.display()))?;
        match v.get("kind").and_then(Value::as_str) {
            _ if v.is_null() => {}
            Some("List") => out.extend(
                v.get("items")
                    .and_then(Value::as_sequence)
                    .cloned()
                    .unwrap_or_default(),
            ),
            _ => out.push(v),
        }
    }
    Ok(out)
}

/// The documents of `kind` in `paths`; any other kind is an error naming the file.
fn objects<T: serde::de::DeserializeOwned>(paths: &[PathBuf], kind: &str) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for path in paths {
        for (i, v) in documents(path)?.into_iter().enumerate() {
            let found = v
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("(no kind)")
                .to_string();
            if found != kind {
                bail!(
                    "{}: document {} has kind {found}, expected {kind}",
                    path.display(),
                    i + 1
                );
            }
            let obj = serde_yaml::from_value(v).with_context(|| {
                format!(
                    "{}: document {} is not a valid {kind}",
                    path.display(),
                    i + 1
                )
            })?;
            out.push(obj);
        }
    }
    Ok(out)
}

fn single<T: serde::de::DeserializeOwned>(path: &Path, kind: &str) -> Result<T> {
    let mut all: Vec<T> = objects(&[path.to_path_buf()], kind)?;
    if all.len() != 1 {
        bail!(
            "{}: expected exactly one {kind}, found {}",
            path.display(),
            all.len()
        );
    }
    Ok(all.remove(0))
}

pub fn run(args: InjectArgs) -> Result<()> {
    let pod: Pod = single(&args.pod, "Pod")?;
    let pod_ns = pod
        .metadata
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into());
    let namespace = match &args.namespace {
        Some(path) => single::<Namespace>(path, "Namespace")?,
        None => {
            let mut ns = Namespace::default();
            ns.metadata.name = Some(pod_ns.clone());
            ns
        }
    };
    let mut instrumentations: Vec<Instrumentation> =
        objects(&args.instrumentations, "Instrumentation")?;
    for i in &mut instrumentations {
        i.metadata.namespace.get_or_insert_with(|| pod_ns.clone());
    }
    let mut collectors: Vec<OpenTelemetryCollector> =
        objects(&args.collectors, "OpenTelemetryCollector")?;
    for c in &mut collectors {
        c.metadata.namespace.get_or_insert_with(|| pod_ns.clone());
    }
    let mut cfg = InjectConfig::default();
    cfg.languages.go = args.enable_go_instrumentation;
    cfg.languages.apache_httpd = args.enable_apache_httpd_instrumentation;
    cfg.languages.nginx = args.enable_nginx_instrumentation;
    cfg.multi_instrumentation = args.enable_multi_instrumentation;
    cfg.native_sidecars = args.native_sidecars;

    let ctx = PodContext {
        namespace: &namespace,
        instrumentations: &instrumentations,
        collectors: &collectors,
        owners: &args.owners,
    };
    let mutation = mutate(&pod, &ctx, &cfg)?;
    for a in &mutation.applied {
        eprintln!("{a}");
    }
    for s in &mutation.skipped {
        eprintln!("{s}");
    }
    if mutation.applied.is_empty() && mutation.skipped.is_empty() && mutation.pod == pod {
        eprintln!("nothing to inject: neither the pod nor its namespace asks for instrumentation or a sidecar");
    }
    print!(
        "{}",
        serde_yaml::to_string(&mutation.pod).context("serializing the pod")?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_parse() {
        let o = parse_owner("ReplicaSet/web-1/uid-1").unwrap();
        assert_eq!(
            (o.kind.as_str(), o.name.as_str(), o.uid.as_deref()),
            ("ReplicaSet", "web-1", Some("uid-1"))
        );
        assert!(parse_owner("Deployment").is_err());
        assert!(parse_owner("/x").is_err());
    }

    #[test]
    fn documents_flatten_lists_and_skip_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.yaml");
        std::fs::write(
            &path,
            "---\n---\nkind: List\nitems:\n- {kind: Instrumentation, metadata: {name: a}, spec: {}}\n---\nkind: Instrumentation\nmetadata: {name: b}\nspec: {}\n",
        )
        .unwrap();
        let insts: Vec<Instrumentation> =
            objects(std::slice::from_ref(&path), "Instrumentation").unwrap();
        assert_eq!(insts.len(), 2);
        let err = objects::<Pod>(&[path], "Pod").unwrap_err().to_string();
        assert!(
            err.contains("has kind Instrumentation, expected Pod"),
            "{err}"
        );
    }
}
