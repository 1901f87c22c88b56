//! .NET: the init container copies the OpenTelemetry .NET automatic instrumentation to
//! `/otel-auto-instrumentation-dotnet`; the CLR profiler and startup-hook variables load it.

use super::{agent_mount, agent_name, copy_container, mount, LangCtx};
use crate::inject::sdk::{self, env_index, literal};
use crate::inject::Language;
use k8s_openapi::api::core::v1::Container;

const AUTO_HOME: &str = "OTEL_DOTNET_AUTO_HOME";
const STARTUP_HOOKS: &str = "DOTNET_STARTUP_HOOKS";
const ADDITIONAL_DEPS: &str = "DOTNET_ADDITIONAL_DEPS";
const SHARED_STORE: &str = "DOTNET_SHARED_STORE";
const HOME: &str = "/otel-auto-instrumentation-dotnet";

/// The profiler library for `otel-dotnet-auto-runtime`.
fn profiler_path(runtime: &str) -> Result<String, String> {
    let dir = match runtime {
        "" | "linux-x64" => "linux-x64",
        "linux-musl-x64" => "linux-musl-x64",
        other => {
            return Err(format!(
                "provided instrumentation.opentelemetry.io/otel-dotnet-auto-runtime annotation value '{other}' is not supported"
            ))
        }
    };
    Ok(format!(
        "{HOME}/{dir}/OpenTelemetry.AutoInstrumentation.Native.so"
    ))
}

/// Checks the container, then adds `dotnet.env` and the agent mount.
pub(super) fn prepare(c: &mut Container, l: &LangCtx) -> Result<(), String> {
    sdk::no_value_from(c, &[STARTUP_HOOKS, ADDITIONAL_DEPS, SHARED_STORE])?;
    if sdk::has_env(c, AUTO_HOME) {
        return Err(format!(
            "{AUTO_HOME} environment variable is already set in the container"
        ));
    }
    if l.lang.env.iter().flatten().any(|e| e.name == AUTO_HOME) {
        return Err(format!(
            "{AUTO_HOME} environment variable is already set in the .NET instrumentation spec"
        ));
    }
    profiler_path(&l.variant)?;
    sdk::append_if_absent(c, l.lang.env.iter().flatten());
    mount(
        c,
        &agent_name(Language::DotNet),
        &agent_mount(Language::DotNet),
    );
    Ok(())
}

/// Sets a variable if absent; with `concat`, `:`-appends to an existing literal value.
fn set(c: &mut Container, name: &str, value: &str, concat: bool) {
    let env = c.env.get_or_insert_with(Vec::new);
    match env_index(env, name) {
        None => env.push(literal(name, value)),
        Some(i) if concat && env[i].value_from.is_none() => {
            let v = env[i].value.get_or_insert_with(String::new);
            v.push(':');
            v.push_str(value);
        }
        Some(_) => {}
    }
}

pub(super) fn defaults(c: &mut Container, l: &LangCtx) {
    let profiler = profiler_path(&l.variant).unwrap_or_default();
    set(c, "CORECLR_ENABLE_PROFILING", "1", false);
    set(
        c,
        "CORECLR_PROFILER",
        "{918728DD-259F-4A6A-AC2B-B85E1B658318}",
        false,
    );
    set(c, "CORECLR_PROFILER_PATH", &profiler, false);
    set(
        c,
        STARTUP_HOOKS,
        &format!("{HOME}/net/OpenTelemetry.AutoInstrumentation.StartupHook.dll"),
        true,
    );
    set(c, ADDITIONAL_DEPS, &format!("{HOME}/AdditionalDeps"), true);
    set(c, AUTO_HOME, HOME, false);
    set(c, SHARED_STORE, &format!("{HOME}/store"), true);
}

pub(super) fn init_container(l: &LangCtx) -> Container {
    let command = ["cp", "-r", "/autoinstrumentation/.", HOME];
    copy_container(
        l,
        Language::DotNet,
        &agent_name(Language::DotNet),
        &l.image,
        &command,
    )
}
