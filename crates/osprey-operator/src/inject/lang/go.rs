//! Go: no init container. An eBPF agent sidecar (`opentelemetry-auto-instrumentation`,
//! privileged by default) shares the pod's process namespace and instruments the binary
//! named by `OTEL_GO_AUTO_TARGET_EXE`; the common env goes on the sidecar, describing the
//! application container. Without a target executable nothing is injected.

use super::{add_volumes, container, resources, LangCtx};
use crate::inject::annotations::{self as ann, GO_TARGET_EXE};
use crate::inject::resource::ResourceInput;
use crate::inject::sdk::{self, literal};
use crate::inject::select::{ContainerRef, Plan, Target, GO_SIDECAR};
use crate::inject::{Applied, InjectConfig, Language, Mutation, Skip, WorkloadRef};
use k8s_openapi::api::core::v1::{
    Container, HostPathVolumeSource, SecurityContext, Volume, VolumeMount,
};

const TARGET_EXE: &str = "OTEL_GO_AUTO_TARGET_EXE";
const KERNEL_DEBUG: &str = "kernel-debug";
const KERNEL_DEBUG_PATH: &str = "/sys/kernel/debug";

/// Adds the agent sidecar for `app`, or records why not.
pub(super) fn inject(
    out: &mut Mutation,
    target: &Target,
    plan: &Plan,
    owners: &[WorkloadRef],
    cfg: &InjectConfig,
    l: &LangCtx,
    app: &ContainerRef,
) {
    let skip = |out: &mut Mutation, reason: &str| {
        out.skipped
            .push(Skip::new(Some(Language::Go), Some(&app.name), reason));
    };
    if app.init {
        return skip(
            out,
            "is init container; Go instrumentation only targets regular containers",
        );
    }
    let Some(spec) = out.pod.spec.as_ref() else {
        return;
    };
    if spec.share_process_namespace == Some(false) {
        return skip(out, "shared process namespace has been explicitly disabled");
    }
    let pod_annotations = out.pod.metadata.annotations.clone().unwrap_or_default();
    let names_key = if cfg.multi_instrumentation {
        ann::language_container_names(Language::Go)
    } else {
        ann::CONTAINER_NAMES.to_string()
    };
    if pod_annotations
        .get(&names_key)
        .is_some_and(|v| v.split(',').count() > 1)
    {
        return skip(
            out,
            "go instrumentation cannot be injected into a pod, multiple containers configured",
        );
    }
    let Some(app_container) = container(&out.pod, app).cloned() else {
        return;
    };

    let mut agent = Container {
        name: GO_SIDECAR.to_string(),
        image: Some(l.image.clone()),
        resources: Some(resources(l, Language::Go)),
        security_context: Some(l.lang.security_context.clone().unwrap_or_else(|| {
            SecurityContext {
                run_as_user: Some(0),
                privileged: Some(true),
                ..Default::default()
            }
        })),
        volume_mounts: Some(vec![VolumeMount {
            name: KERNEL_DEBUG.to_string(),
            mount_path: KERNEL_DEBUG_PATH.to_string(),
            ..Default::default()
        }]),
        image_pull_policy: l.spec.image_pull_policy.clone().filter(|p| !p.is_empty()),
        ..Default::default()
    };
    let mut env = Vec::new();
    if let Some(exe) = pod_annotations.get(GO_TARGET_EXE) {
        env.push(literal(TARGET_EXE, exe.as_str()));
    }
    agent.env = Some(env);
    sdk::append_if_absent(&mut agent, l.lang.env.iter().flatten());
    sdk::inject_common_env(&mut agent, l.spec);
    let input = ResourceInput {
        pod: &out.pod,
        namespace: &plan.namespace,
        inst: target.inst,
        owners,
        app: &app_container,
    };
    let tls_volumes = sdk::inject_sdk_config(&mut agent, &input);
    if !sdk::has_env(&agent, TARGET_EXE) {
        let reason =
            format!("{TARGET_EXE} not set (set annotation {GO_TARGET_EXE} or spec.go.env)");
        return skip(out, &reason);
    }

    let Some(spec) = out.pod.spec.as_mut() else {
        return;
    };
    spec.share_process_namespace = Some(true);
    spec.containers.push(agent);
    let kernel_debug = Volume {
        name: KERNEL_DEBUG.to_string(),
        host_path: Some(HostPathVolumeSource {
            path: KERNEL_DEBUG_PATH.to_string(),
            type_: None,
        }),
        ..Default::default()
    };
    add_volumes(&mut out.pod, vec![kernel_debug]);
    add_volumes(&mut out.pod, tls_volumes);
    out.applied.push(Applied {
        language: Language::Go,
        container: app.name.clone(),
        instrumentation: target.inst_id.clone(),
    });
}
