//! Java: the init container copies `javaagent.jar` (and each extension's JARs) into the
//! volume; each application container mounts it at `/otel-auto-instrumentation-java-<name>`
//! and gets `-javaagent:` appended to `JAVA_TOOL_OPTIONS`.

use super::{agent_mount, agent_name, copy_container, mount, LangCtx};
use crate::inject::sdk::{self, env_index, literal};
use crate::inject::Language;
use k8s_openapi::api::core::v1::Container;

const JAVA_TOOL_OPTIONS: &str = "JAVA_TOOL_OPTIONS";

fn app_mount(container: &str) -> String {
    format!("{}-{container}", agent_mount(Language::Java))
}

/// Checks the container, then adds `java.env` and the per-container agent mount.
pub(super) fn prepare(c: &mut Container, l: &LangCtx) -> Result<(), String> {
    sdk::no_value_from(c, &[JAVA_TOOL_OPTIONS])?;
    sdk::append_if_absent(c, l.lang.env.iter().flatten());
    let path = app_mount(&c.name);
    mount(c, &agent_name(Language::Java), &path);
    Ok(())
}

/// ` -javaagent:…` (plus the extensions directory) appended to `JAVA_TOOL_OPTIONS`.
pub(super) fn defaults(c: &mut Container, l: &LangCtx) {
    let dir = app_mount(&c.name);
    let mut arg = format!(" -javaagent:{dir}/javaagent.jar");
    if l.lang.extensions.as_ref().is_some_and(|e| !e.is_empty()) {
        arg.push_str(&format!(" -Dotel.javaagent.extensions={dir}/extensions"));
    }
    let env = c.env.get_or_insert_with(Vec::new);
    match env_index(env, JAVA_TOOL_OPTIONS) {
        None => env.push(literal(JAVA_TOOL_OPTIONS, arg)),
        Some(i) if env[i].value_from.is_none() => {
            env[i].value.get_or_insert_with(String::new).push_str(&arg);
        }
        Some(_) => {}
    }
}

/// The agent copy, then one container per extension.
pub(super) fn init_containers(l: &LangCtx) -> Vec<Container> {
    let dest = agent_mount(Language::Java);
    let jar = format!("{dest}/javaagent.jar");
    let mut out = vec![copy_container(
        l,
        Language::Java,
        &agent_name(Language::Java),
        &l.image,
        &["cp", "/javaagent.jar", &jar],
    )];
    let extensions_dir = format!("{dest}/extensions");
    for (i, ext) in l.lang.extensions.iter().flatten().enumerate() {
        let name = format!("opentelemetry-auto-instrumentation-extension-{i}");
        let src = format!("{}/.", ext.dir);
        let command = ["cp", "-r", src.as_str(), extensions_dir.as_str()];
        out.push(copy_container(
            l,
            Language::Java,
            &name,
            &ext.image,
            &command,
        ));
    }
    out
}
