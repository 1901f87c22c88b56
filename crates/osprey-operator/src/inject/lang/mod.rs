//! Per-language injection. Java, Node.js, Python and .NET share one flow (upstream §3.4):
//! for each target container, check it can be instrumented, add the language's env and
//! mount, the common env, the language defaults and the SDK config; then, once per pod, the
//! shared volume and the init container that copies the agent into it. Go runs an agent
//! sidecar instead; `inject-sdk` adds the env only; Apache httpd and nginx are not built.

mod dotnet;
mod go;
mod java;
mod nodejs;
mod python;

use super::resource::ResourceInput;
use super::sdk;
use super::select::{self, ContainerRef, Plan, Target};
use super::{Applied, InjectConfig, Language, Mutation, PodContext, Skip, WorkloadRef};
use crate::crd::instrumentation::{InstrumentationSpec, LanguageSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EphemeralVolumeSource, Pod,
    ResourceRequirements, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

/// Everything a language needs while injecting.
pub(super) struct LangCtx<'a> {
    pub spec: &'a InstrumentationSpec,
    /// The language's section of the Instrumentation (empty when absent).
    pub lang: LanguageSpec,
    /// The init container (Go: sidecar) image.
    pub image: String,
    /// `otel-python-platform` / `otel-dotnet-auto-runtime` (pod, then namespace).
    pub variant: String,
}

/// Injects `target` into the containers it selects.
pub(super) fn inject(
    out: &mut Mutation,
    target: &Target,
    plan: &Plan,
    ctx: &PodContext,
    cfg: &InjectConfig,
) {
    let containers = select::containers_to_instrument(&out.pod, target, &mut out.skipped);
    if containers.is_empty() {
        return;
    }
    let owners = owners(&out.pod, ctx);
    let spec = &target.inst.spec;
    let variant_key = match target.language {
        Language::Python => Some(super::annotations::PYTHON_PLATFORM),
        Language::DotNet => Some(super::annotations::DOTNET_RUNTIME),
        _ => None,
    };
    let variant = variant_key
        .map(|k| {
            super::annotations::annotation_value(&ctx.namespace.metadata, &out.pod.metadata, k)
        })
        .unwrap_or_default();
    let lang = language_spec(spec, target.language)
        .cloned()
        .unwrap_or_default();
    let default_image = cfg.images.for_language(target.language).unwrap_or_default();
    let image = lang
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| default_image.to_string());
    let l = LangCtx {
        spec,
        lang,
        image,
        variant,
    };
    match target.language {
        Language::Go => go::inject(out, target, plan, &owners, cfg, &l, &containers[0]),
        Language::ApacheHttpd | Language::Nginx => {
            for c in containers {
                let reason = format!("{} auto-instrumentation is not implemented by Osprey yet; container left unchanged", target.language);
                out.skipped
                    .push(Skip::new(Some(target.language), Some(&c.name), reason));
            }
        }
        _ => with_agent(out, target, plan, &owners, &l, &containers),
    }
}

/// The owner chain: the caller's, else the pod's own `ownerReferences`.
fn owners(pod: &Pod, ctx: &PodContext) -> Vec<WorkloadRef> {
    if !ctx.owners.is_empty() {
        return ctx.owners.to_vec();
    }
    let refs = pod.metadata.owner_references.iter().flatten();
    refs.map(|o| WorkloadRef {
        kind: o.kind.clone(),
        name: o.name.clone(),
        uid: Some(o.uid.clone()),
    })
    .collect()
}

fn language_spec(spec: &InstrumentationSpec, language: Language) -> Option<&LanguageSpec> {
    match language {
        Language::Java => spec.java.as_ref(),
        Language::NodeJs => spec.nodejs.as_ref(),
        Language::Python => spec.python.as_ref(),
        Language::DotNet => spec.dotnet.as_ref(),
        Language::Go => spec.go.as_ref(),
        Language::ApacheHttpd => spec.apache_httpd.as_ref(),
        Language::Nginx => spec.nginx.as_ref(),
        Language::Sdk => None,
    }
}

/// Java, Node.js, Python, .NET (agent copied by an init container) and the SDK (env only).
fn with_agent(
    out: &mut Mutation,
    target: &Target,
    plan: &Plan,
    owners: &[WorkloadRef],
    l: &LangCtx,
    containers: &[ContainerRef],
) {
    let language = target.language;
    let mut first: Option<&ContainerRef> = None;
    for cref in containers {
        let Some(mut c) = container(&out.pod, cref).cloned() else {
            continue;
        };
        let prepared = match language {
            Language::Java => java::prepare(&mut c, l),
            Language::NodeJs => nodejs::prepare(&mut c, l),
            Language::Python => python::prepare(&mut c, l),
            Language::DotNet => dotnet::prepare(&mut c, l),
            _ => Ok(()),
        };
        if let Err(reason) = prepared {
            out.skipped
                .push(Skip::new(Some(language), Some(&c.name), reason));
            continue;
        }
        sdk::inject_common_env(&mut c, l.spec);
        match language {
            Language::Java => java::defaults(&mut c, l),
            Language::NodeJs => nodejs::defaults(&mut c),
            Language::Python => python::defaults(&mut c),
            Language::DotNet => dotnet::defaults(&mut c, l),
            _ => {}
        }
        let app = c.clone();
        let input = ResourceInput {
            pod: &out.pod,
            namespace: &plan.namespace,
            inst: target.inst,
            owners,
            app: &app,
        };
        let volumes = sdk::inject_sdk_config(&mut c, &input);
        if let Some(slot) = container_mut(&mut out.pod, cref) {
            *slot = c;
        }
        add_volumes(&mut out.pod, volumes);
        out.applied.push(Applied {
            language,
            container: cref.name.clone(),
            instrumentation: target.inst_id.clone(),
        });
        first.get_or_insert(cref);
    }
    let Some(first) = first else { return };
    let init_containers = match language {
        Language::Java => java::init_containers(l),
        Language::NodeJs => vec![nodejs::init_container(l)],
        Language::Python => vec![python::init_container(l)],
        Language::DotNet => vec![dotnet::init_container(l)],
        _ => return,
    };
    let Some(spec) = out.pod.spec.as_mut() else {
        return;
    };
    let inits = spec.init_containers.get_or_insert_with(Vec::new);
    if inits.iter().any(|c| c.name == init_containers[0].name) {
        return;
    }
    let at = if first.init {
        inits.iter().position(|c| c.name == first.name)
    } else {
        None
    };
    let at = at.unwrap_or(inits.len());
    inits.splice(at..at, init_containers);
    add_volumes(
        &mut out.pod,
        vec![agent_volume(&l.lang, &agent_name(language))],
    );
}

/// `opentelemetry-auto-instrumentation-<lang>`: the volume and init container name.
pub(super) fn agent_name(language: Language) -> String {
    format!("opentelemetry-auto-instrumentation-{}", language.as_str())
}

/// `/otel-auto-instrumentation-<lang>`: where the init container (and, except for Java, the
/// application) mounts the agent volume.
pub(super) fn agent_mount(language: Language) -> String {
    format!("/otel-auto-instrumentation-{}", language.as_str())
}

pub(super) fn mount(c: &mut Container, volume: &str, path: &str) {
    let mounts = c.volume_mounts.get_or_insert_with(Vec::new);
    mounts.push(VolumeMount {
        name: volume.to_string(),
        mount_path: path.to_string(),
        ..Default::default()
    });
}

fn container<'p>(pod: &'p Pod, r: &ContainerRef) -> Option<&'p Container> {
    let spec = pod.spec.as_ref()?;
    let list = if r.init {
        spec.init_containers.as_deref()?
    } else {
        &spec.containers
    };
    list.iter().find(|c| c.name == r.name)
}

fn container_mut<'p>(pod: &'p mut Pod, r: &ContainerRef) -> Option<&'p mut Container> {
    let spec = pod.spec.as_mut()?;
    let list = if r.init {
        spec.init_containers.as_mut()?
    } else {
        &mut spec.containers
    };
    list.iter_mut().find(|c| c.name == r.name)
}

/// Adds volumes whose names the pod does not have yet.
pub(super) fn add_volumes(pod: &mut Pod, volumes: Vec<Volume>) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    for v in volumes {
        let existing = spec.volumes.get_or_insert_with(Vec::new);
        if !existing.iter().any(|e| e.name == v.name) {
            existing.push(v);
        }
    }
}

/// The agent volume: an ephemeral PVC from `volumeClaimTemplate`, else an emptyDir limited to
/// `volumeLimitSize` (default 200Mi).
fn agent_volume(lang: &LanguageSpec, name: &str) -> Volume {
    if let Some(template) = &lang.volume_claim_template {
        return Volume {
            name: name.to_string(),
            ephemeral: Some(EphemeralVolumeSource {
                volume_claim_template: Some(template.clone()),
            }),
            ..Default::default()
        };
    }
    let size = lang
        .volume_limit_size
        .clone()
        .unwrap_or_else(|| Quantity("200Mi".to_string()));
    Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(size),
            medium: None,
        }),
        ..Default::default()
    }
}

/// An init container copying the agent into the shared volume, mounted at `mount_path`.
pub(super) fn copy_container(
    l: &LangCtx,
    language: Language,
    name: &str,
    image: &str,
    command: &[&str],
) -> Container {
    Container {
        name: name.to_string(),
        image: Some(image.to_string()),
        command: Some(command.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources(l, language)),
        volume_mounts: Some(vec![VolumeMount {
            name: agent_name(language),
            mount_path: agent_mount(language),
            ..Default::default()
        }]),
        image_pull_policy: l.spec.image_pull_policy.clone().filter(|p| !p.is_empty()),
        security_context: Some(init_security_context(l.spec)),
        ..Default::default()
    }
}

/// The language's resources, else upstream's defaulting-webhook values.
pub(super) fn resources(l: &LangCtx, language: Language) -> ResourceRequirements {
    if let Some(r) = l.lang.resources() {
        return r.clone();
    }
    let (cpu_req, mem_req) = match language {
        Language::NodeJs | Language::DotNet => ("50m", "128Mi"),
        Language::ApacheHttpd | Language::Nginx => ("1m", "128Mi"),
        _ => ("50m", "64Mi"),
    };
    let q = |cpu: &str, mem: &str| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.to_string())),
            ("memory".to_string(), Quantity(mem.to_string())),
        ])
    };
    ResourceRequirements {
        limits: Some(q("500m", "256Mi")),
        requests: Some(q(cpu_req, mem_req)),
        claims: None,
    }
}

/// `initContainerSecurityContext`, else (Osprey) a non-root, no-privilege default: the init
/// container only copies files into an emptyDir.
fn init_security_context(spec: &InstrumentationSpec) -> SecurityContext {
    if let Some(sc) = &spec.init_container_security_context {
        return sc.clone();
    }
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(65532),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            add: None,
        }),
        ..Default::default()
    }
}
