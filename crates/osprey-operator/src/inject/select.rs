//! Which Instrumentation each `inject-*` annotation means, which containers each language
//! goes into, and the "already instrumented" check (upstream §3.2, §3.3, §3.7).

use super::annotations::{self as ann, InjectValue};
use super::{InjectConfig, InjectError, Language, PodContext, Skip};
use crate::crd::Instrumentation;
use k8s_openapi::api::core::v1::Pod;

/// Containers never chosen as the default target (the first container) because they are
/// service-mesh or agent sidecars, not the application. Naming one in `container-names`
/// still instruments it.
pub const WELL_KNOWN_PROXIES: &[&str] = &[
    "istio-proxy",
    "linkerd-proxy",
    "envoy",
    "envoy-sidecar",
    "consul-dataplane",
    "consul-connect-envoy-sidecar",
    "kuma-sidecar",
    "daprd",
    "vault-agent",
    "cloud-sql-proxy",
    "cloudsql-proxy",
    "otc-container",
];

/// Init containers whose presence means the pod was already instrumented.
const INJECTED_INIT_CONTAINERS: &[&str] = &[
    "opentelemetry-auto-instrumentation-java",
    "opentelemetry-auto-instrumentation-nodejs",
    "opentelemetry-auto-instrumentation-python",
    "opentelemetry-auto-instrumentation-dotnet",
    "otel-agent-attach-apache",
    "otel-agent-source-container-clone",
];

/// The Go agent sidecar's name.
pub(super) const GO_SIDECAR: &str = "opentelemetry-auto-instrumentation";
/// The collector sidecar's name (its env does not count as instrumentation).
const COLLECTOR_SIDECAR: &str = "otc-container";

/// What to inject, once every annotation resolved.
pub(super) struct Plan<'a> {
    /// The pod's namespace name.
    pub namespace: String,
    pub targets: Vec<Target<'a>>,
}

/// One language and the Instrumentation it uses.
pub(super) struct Target<'a> {
    pub language: Language,
    pub inst: &'a Instrumentation,
    /// `namespace/name`.
    pub inst_id: String,
    /// Explicitly named containers (empty: the default container).
    pub names: Vec<String>,
}

/// A container of the pod, by name, and whether it is an init container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ContainerRef {
    pub name: String,
    pub init: bool,
}

fn inst_namespace(inst: &Instrumentation) -> &str {
    inst.metadata.namespace.as_deref().unwrap_or("default")
}

/// The pod's namespace: the Namespace object's name, else the pod's, else `default`.
pub(super) fn namespace_name(pod: &Pod, ctx: &PodContext) -> String {
    ctx.namespace
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| pod.metadata.namespace.clone().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "default".to_string())
}

/// True when a previous admission already instrumented the pod (upstream's test).
pub(super) fn already_instrumented(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else { return false };
    let init = spec.init_containers.iter().flatten();
    if init
        .into_iter()
        .any(|c| INJECTED_INIT_CONTAINERS.contains(&c.name.as_str()))
    {
        return true;
    }
    spec.containers.iter().any(|c| {
        c.name == GO_SIDECAR
            || (c.name != COLLECTOR_SIDECAR
                && c.env
                    .iter()
                    .flatten()
                    .any(|e| e.name == "OTEL_RESOURCE_ATTRIBUTES_NODE_NAME"))
    })
}

/// Resolves every `inject-*` annotation. `Ok(None)`: nothing to do (reasons, if any, are in
/// `skipped`). An annotation that cannot be resolved aborts the whole mutation, as upstream.
pub(super) fn plan<'a>(
    pod: &Pod,
    ctx: &PodContext<'a>,
    cfg: &InjectConfig,
    skipped: &mut Vec<Skip>,
) -> Result<Option<Plan<'a>>, InjectError> {
    if pod.spec.as_ref().is_none_or(|s| s.containers.is_empty()) {
        return Ok(None);
    }
    let (ns_meta, pod_meta) = (&ctx.namespace.metadata, &pod.metadata);
    let value = |key: &str| ann::annotation_value(ns_meta, pod_meta, key);
    let requested: Vec<(Language, String)> = Language::ALL
        .iter()
        .map(|&l| (l, value(&ann::inject(l))))
        .filter(|(_, v)| InjectValue::parse(v) != InjectValue::Off)
        .collect();
    if requested.is_empty() {
        return Ok(None);
    }
    if already_instrumented(pod) {
        skipped.push(Skip::new(
            None,
            None,
            "instrumentation skipped: the pod is already instrumented",
        ));
        return Ok(None);
    }
    let namespace = namespace_name(pod, ctx);
    let mut targets = Vec::new();
    for (language, v) in requested {
        let annotation = ann::inject(language);
        let inst = resolve(&namespace, &v, &annotation, ctx.instrumentations)?;
        if !cfg.languages.enabled(language) {
            let reason = format!(
                "support for {} auto instrumentation is not enabled in the operator",
                language.display_name()
            );
            skipped.push(Skip::new(Some(language), None, reason));
            continue;
        }
        let inst_id = format!(
            "{}/{}",
            inst_namespace(inst),
            inst.metadata.name.as_deref().unwrap_or("")
        );
        targets.push(Target {
            language,
            inst,
            inst_id,
            names: Vec::new(),
        });
    }
    if targets.is_empty() {
        return Ok(None);
    }
    let common = ann::container_names(ann::CONTAINER_NAMES, &value(ann::CONTAINER_NAMES))?;
    for t in &mut targets {
        t.names = common.clone();
    }
    if cfg.multi_instrumentation {
        for t in &mut targets {
            let key = ann::language_container_names(t.language);
            t.names.extend(ann::container_names(&key, &value(&key))?);
        }
        if let Err(reason) = check_multi_instrumentation(&targets) {
            skipped.push(Skip::new(
                None,
                None,
                format!("instrumentation skipped: {reason}"),
            ));
            return Ok(None);
        }
    }
    Ok(Some(Plan { namespace, targets }))
}

/// Finds the Instrumentation an annotation value names.
fn resolve<'a>(
    namespace: &str,
    value: &str,
    annotation: &str,
    all: &'a [Instrumentation],
) -> Result<&'a Instrumentation, InjectError> {
    match InjectValue::parse(value) {
        InjectValue::Off | InjectValue::Default => {
            let in_ns: Vec<&Instrumentation> = all
                .iter()
                .filter(|i| inst_namespace(i) == namespace)
                .collect();
            match in_ns.as_slice() {
                [one] => Ok(one),
                [] => Err(InjectError::NoInstances {
                    namespace: namespace.to_string(),
                    annotation: annotation.to_string(),
                }),
                many => {
                    let mut names: Vec<&str> = many
                        .iter()
                        .filter_map(|i| i.metadata.name.as_deref())
                        .collect();
                    names.sort_unstable();
                    Err(InjectError::MultipleInstances {
                        namespace: namespace.to_string(),
                        names: names.join(", "),
                        annotation: annotation.to_string(),
                    })
                }
            }
        }
        InjectValue::Named {
            namespace: ns,
            name,
        } => {
            let ns = ns.as_deref().unwrap_or(namespace);
            all.iter()
                .find(|i| inst_namespace(i) == ns && i.metadata.name.as_deref() == Some(&name))
                .ok_or_else(|| InjectError::NotFound {
                    namespace: ns.to_string(),
                    name,
                    annotation: annotation.to_string(),
                })
        }
    }
}

/// Upstream's multi-instrumentation rules: no container named twice (across languages), and
/// with several languages every one must name its containers.
fn check_multi_instrumentation(targets: &[Target]) -> Result<(), String> {
    let mut all: Vec<&str> = targets
        .iter()
        .flat_map(|t| t.names.iter().map(String::as_str))
        .collect();
    all.sort_unstable();
    let mut dups: Vec<&str> = all
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    dups.dedup();
    if !dups.is_empty() {
        return Err(format!(
            "duplicated container names detected: [{}]",
            dups.join(" ")
        ));
    }
    let without = targets.iter().filter(|t| t.names.is_empty()).count();
    if without > 0 && targets.len() > 1 {
        return Err("incorrect instrumentation configuration - please provide container names for all instrumentations".into());
    }
    Ok(())
}

/// The containers `target` goes into: init containers first (in pod order), then regular
/// ones. Without names, the first container that is not a well-known proxy.
pub(super) fn containers_to_instrument(
    pod: &Pod,
    target: &Target,
    skipped: &mut Vec<Skip>,
) -> Vec<ContainerRef> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let lang = Some(target.language);
    if target.names.is_empty() {
        for c in &spec.containers {
            if !WELL_KNOWN_PROXIES.contains(&c.name.as_str()) {
                return vec![ContainerRef {
                    name: c.name.clone(),
                    init: false,
                }];
            }
            let reason = format!(
                "well-known proxy container, not instrumented by default (name it in {} to instrument it)",
                ann::CONTAINER_NAMES
            );
            skipped.push(Skip::new(lang, Some(&c.name), reason));
        }
        let reason = format!(
            "every container is a well-known proxy; set {}",
            ann::CONTAINER_NAMES
        );
        skipped.push(Skip::new(lang, None, reason));
        return Vec::new();
    }
    let inits = spec.init_containers.as_deref().unwrap_or_default();
    let mut init_refs: Vec<(usize, ContainerRef)> = Vec::new();
    let mut regular = Vec::new();
    for name in &target.names {
        if init_refs.iter().any(|(_, r)| &r.name == name)
            || regular.iter().any(|r: &ContainerRef| &r.name == name)
        {
            continue;
        }
        if spec.containers.iter().any(|c| &c.name == name) {
            regular.push(ContainerRef {
                name: name.clone(),
                init: false,
            });
        } else if let Some(pos) = inits.iter().position(|c| &c.name == name) {
            init_refs.push((
                pos,
                ContainerRef {
                    name: name.clone(),
                    init: true,
                },
            ));
        } else {
            skipped.push(Skip::new(
                lang,
                Some(name),
                "no container of that name in the pod",
            ));
        }
    }
    init_refs.sort_by_key(|(pos, _)| *pos);
    init_refs
        .into_iter()
        .map(|(_, r)| r)
        .chain(regular)
        .collect()
}
