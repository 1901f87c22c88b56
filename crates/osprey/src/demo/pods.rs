//! The pods of `osprey demo`: each demo service as the Pod its Deployment would create, mutated
//! by the operator's own webhook code (`osprey_operator::inject::mutate`), then turned into a
//! local process's environment the way the kubelet would compute it: `$(VAR)` expansion,
//! `fieldRef`s read from a simulated scheduled pod, and each auto-instrumentation volume
//! mapped to the payload directory its init container would have copied.

use anyhow::{anyhow, bail, Context, Result};
use osprey_operator::crd::Instrumentation;
use osprey_operator::inject::{mutate, InjectConfig, Namespace, Pod, PodContext, WorkloadRef};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The namespace the demo's pods pretend to live in (as demo/k8s does).
pub const NAMESPACE: &str = "osprey-demo";
/// The simulated node every pod is scheduled on.
pub const NODE_NAME: &str = "osprey-demo-node";

/// How a service's container is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Python,
    Node,
}

impl Runtime {
    /// The annotation language and the payload directory name.
    pub fn language(self) -> &'static str {
        match self {
            Runtime::Python => "python",
            Runtime::Node => "nodejs",
        }
    }
}

/// One demo service: its name (= Deployment, container and `OTEL_SERVICE_NAME`), runtime,
/// port (None: serves nothing) and the app's own env (peer URLs, load settings).
#[derive(Clone, Debug)]
pub struct Service {
    pub name: &'static str,
    pub runtime: Runtime,
    pub port: Option<u16>,
    pub env: Vec<(String, String)>,
}

/// A pod-template-hash standing for the ReplicaSet's (Kubernetes' alphabet, stable per name).
pub fn template_hash(service: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    (0..10)
        .map(|i| {
            for b in service.bytes().chain([i as u8]) {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            ALPHABET[(h % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

/// The Pod the Deployment `svc` of demo/k8s would create, before admission.
pub fn demo_pod(svc: &Service) -> Result<Pod> {
    let hash = template_hash(svc.name);
    let mut env = Vec::new();
    if let Some(port) = svc.port {
        env.push(json!({"name": "HOST", "value": "127.0.0.1"}));
        env.push(json!({"name": "PORT", "value": port.to_string()}));
    }
    env.extend(svc.env.iter().map(|(k, v)| json!({"name": k, "value": v})));
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "generateName": format!("{}-{hash}-", svc.name),
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/name": svc.name, "pod-template-hash": hash},
            "annotations": {
                format!("instrumentation.opentelemetry.io/inject-{}", svc.runtime.language()): "true"
            },
        },
        "spec": {"containers": [{
            "name": svc.name,
            "image": format!("osprey-demo/{}:latest", svc.name),
            "env": env,
        }]},
    });
    serde_json::from_value(pod).context("building the demo pod")
}

/// The Instrumentation the demo's pods use: OTLP/HTTP straight to `endpoint` (the
/// `osprey up` started by the demo), short batch delay so traces show up within a second.
pub fn instrumentation(endpoint: &str) -> Result<Instrumentation> {
    serde_json::from_value(json!({
        "apiVersion": "opentelemetry.io/v1alpha1", "kind": "Instrumentation",
        "metadata": {"name": "osprey-demo", "namespace": NAMESPACE},
        "spec": {
            "exporter": {"endpoint": endpoint},
            "propagators": ["tracecontext", "baggage"],
            "sampler": {"type": "parentbased_always_on"},
            "env": [
                {"name": "OTEL_BSP_SCHEDULE_DELAY", "value": "500"},
                {"name": "OTEL_METRICS_EXPORTER", "value": "none"},
                {"name": "OTEL_LOGS_EXPORTER", "value": "none"},
            ],
        },
    }))
    .context("building the demo Instrumentation")
}

/// Mutates the service's pod exactly as the webhook would admit it.
pub fn admit(svc: &Service, inst: &Instrumentation) -> Result<Pod> {
    let pod = demo_pod(svc)?;
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(NAMESPACE.to_string());
    let hash = template_hash(svc.name);
    let owners = [
        WorkloadRef {
            kind: "ReplicaSet".into(),
            name: format!("{}-{hash}", svc.name),
            uid: None,
        },
        WorkloadRef {
            kind: "Deployment".into(),
            name: svc.name.to_string(),
            uid: None,
        },
    ];
    let ctx = PodContext {
        namespace: &namespace,
        instrumentations: std::slice::from_ref(inst),
        collectors: &[],
        owners: &owners,
    };
    let m = mutate(&pod, &ctx, &InjectConfig::default())
        .with_context(|| format!("{}: the webhook refused the pod", svc.name))?;
    if m.applied.is_empty() {
        let why: Vec<String> = m.skipped.iter().map(ToString::to_string).collect();
        bail!("{}: nothing injected ({})", svc.name, why.join("; "));
    }
    Ok(m.pod)
}

/// What the API server and the scheduler would have filled in: name, uid, node, IPs.
pub fn schedule(pod: &mut Pod, suffix: &str, uid: &str) {
    let meta = &mut pod.metadata;
    if meta.name.is_none() {
        meta.name = Some(format!(
            "{}{suffix}",
            meta.generate_name.clone().unwrap_or_default()
        ));
    }
    meta.uid = Some(uid.to_string());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(NODE_NAME.to_string());
    spec.service_account_name = Some("default".to_string());
    let status = pod.status.get_or_insert_with(Default::default);
    status.pod_ip = Some("127.0.0.1".to_string());
    status.host_ip = Some("127.0.0.1".to_string());
}

/// Kubernetes' `$(VAR)` expansion: a name defined so far expands, `$$` is a literal `$`,
/// anything else stays as written.
pub fn expand(text: &str, defined: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(close) => {
                    let name = &inner[..close];
                    match defined.get(name) {
                        Some(v) => out.push_str(v),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &inner[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The value of a `fieldRef.fieldPath` on the scheduled pod.
fn field_value(pod: &Pod, path: &str) -> Result<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let keyed = |prefix: &str, map: Option<&BTreeMap<String, String>>| {
        path.strip_prefix(prefix)
            .and_then(|k| k.strip_prefix("['"))
            .and_then(|k| k.strip_suffix("']"))
            .map(|k| map.and_then(|m| m.get(k)).cloned().unwrap_or_default())
    };
    let v = match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()),
        _ => Some(
            keyed("metadata.labels", meta.labels.as_ref())
                .or_else(|| keyed("metadata.annotations", meta.annotations.as_ref()))
                .ok_or_else(|| anyhow!("fieldRef {path:?} is not supported by the demo"))?,
        ),
    };
    Ok(v.unwrap_or_default())
}

/// Replaces each mountPath (whole path components only) in `text` by its host directory,
/// longest mountPath first.
pub fn rewrite_mounts(text: &str, mounts: &[(String, PathBuf)]) -> String {
    let mut sorted: Vec<&(String, PathBuf)> = mounts.iter().collect();
    sorted.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
    let is_sep = |c: char| c.is_whitespace() || ":=,;\"'".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'scan: while i < text.len() {
        let at_start = i == 0 || text[..i].chars().next_back().is_some_and(is_sep);
        if at_start {
            for (mount, host) in &sorted {
                if let Some(after) = text[i..].strip_prefix(mount.as_str()) {
                    if after.is_empty() || after.starts_with('/') || after.starts_with(is_sep) {
                        out.push_str(&host.to_string_lossy());
                        i += mount.len();
                        continue 'scan;
                    }
                }
            }
        }
        let c = text[i..].chars().next().unwrap_or_default();
        out.push(c);
        i += c.len_utf8().max(1);
    }
    out
}

/// Host directory of every volume an init container fills with `cp -r SRC DST` (the only
/// command the operator injects): the directory SRC names inside the init container's image,
/// whose local stand-in `image_root` returns. The copy itself is skipped: the app reads the
/// payload in place.
pub fn volume_dirs(
    pod: &Pod,
    image_root: impl Fn(&str) -> Option<PathBuf>,
) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    let inits = pod.spec.as_ref().and_then(|s| s.init_containers.as_ref());
    for init in inits.into_iter().flatten() {
        let argv: Vec<&str> = init
            .command
            .iter()
            .flatten()
            .chain(init.args.iter().flatten())
            .map(String::as_str)
            .collect();
        let [cp, "-r", src, dst] = argv[..] else {
            bail!(
                "init container {}: expected `cp -r SRC DST`, got {argv:?}",
                init.name
            );
        };
        if cp != "cp" {
            bail!(
                "init container {}: expected `cp -r SRC DST`, got {argv:?}",
                init.name
            );
        }
        let image = init.image.as_deref().unwrap_or_default();
        let root = image_root(image).ok_or_else(|| {
            anyhow!(
                "init container {}: no local payload for image {image}",
                init.name
            )
        })?;
        let mount = init
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path.trim_end_matches('/') == dst.trim_end_matches('/'))
            .ok_or_else(|| anyhow!("init container {}: {dst} is not a mount", init.name))?;
        let src = src.trim_end_matches("/.").trim_start_matches('/');
        out.insert(mount.name.clone(), root.join(src));
    }
    Ok(out)
}

/// The environment of `container` in the scheduled, mutated pod, as the kubelet computes it,
/// with every auto-instrumentation mountPath rewritten to its host directory.
pub fn container_env(
    pod: &Pod,
    container: &str,
    volumes: &BTreeMap<String, PathBuf>,
) -> Result<Vec<(String, String)>> {
    let c = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == container))
        .ok_or_else(|| anyhow!("the pod has no container {container}"))?;
    let mut mounts = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let dir = volumes
            .get(&m.name)
            .ok_or_else(|| anyhow!("{container}: volume {} has no local directory", m.name))?;
        mounts.push((m.mount_path.trim_end_matches('/').to_string(), dir.clone()));
    }
    let mut defined = BTreeMap::new();
    let mut order = Vec::new();
    for var in c.env.iter().flatten() {
        let value = match &var.value_from {
            None => expand(var.value.as_deref().unwrap_or_default(), &defined),
            Some(src) => match &src.field_ref {
                Some(f) if src.resource_field_ref.is_none() => field_value(pod, &f.field_path)?,
                _ => bail!("{container}: env {}: only fieldRef is supported", var.name),
            },
        };
        if !defined.contains_key(&var.name) {
            order.push(var.name.clone());
        }
        defined.insert(var.name.clone(), value);
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = rewrite_mounts(&defined[&k], &mounts);
            (k, v)
        })
        .collect())
}

/// The local stand-in for an auto-instrumentation image: `<payloads>/<language>` when the
/// image is the operator's default image for that language.
pub fn payload_root(payloads: &Path, image: &str) -> Option<PathBuf> {
    let images = InjectConfig::default().images;
    let lang = if image == images.python {
        "python"
    } else if image == images.nodejs {
        "nodejs"
    } else {
        return None;
    };
    Some(payloads.join(lang))
}

#[cfg(test)]
#[path = "pods_tests.rs"]
mod tests;
