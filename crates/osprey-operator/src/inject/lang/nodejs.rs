//! Node.js: the init container copies the `auto-instrumentations-node` payload to
//! `/otel-auto-instrumentation-nodejs`; `NODE_OPTIONS` gets `--require` of its register script.

use super::{agent_mount, agent_name, copy_container, mount, LangCtx};
use crate::inject::sdk::{self, env_index, literal};
use crate::inject::Language;
use k8s_openapi::api::core::v1::Container;

const NODE_OPTIONS: &str = "NODE_OPTIONS";
const REQUIRE: &str = " --require /otel-auto-instrumentation-nodejs/autoinstrumentation.js";

/// Checks the container, then adds `nodejs.env` and the agent mount.
pub(super) fn prepare(c: &mut Container, l: &LangCtx) -> Result<(), String> {
    sdk::no_value_from(c, &[NODE_OPTIONS])?;
    sdk::append_if_absent(c, l.lang.env.iter().flatten());
    mount(
        c,
        &agent_name(Language::NodeJs),
        &agent_mount(Language::NodeJs),
    );
    Ok(())
}

/// `NODE_OPTIONS` (appended to an existing value) and `OTEL_METRICS_EXPORTER=otlp` if absent.
pub(super) fn defaults(c: &mut Container) {
    let env = c.env.get_or_insert_with(Vec::new);
    match env_index(env, NODE_OPTIONS) {
        None => env.push(literal(NODE_OPTIONS, REQUIRE)),
        Some(i) if env[i].value_from.is_none() => {
            env[i]
                .value
                .get_or_insert_with(String::new)
                .push_str(REQUIRE);
        }
        Some(_) => {}
    }
    sdk::set_if_absent(c, "OTEL_METRICS_EXPORTER", "otlp");
}

pub(super) fn init_container(l: &LangCtx) -> Container {
    let dest = agent_mount(Language::NodeJs);
    let command = ["cp", "-r", "/autoinstrumentation/.", &dest];
    copy_container(
        l,
        Language::NodeJs,
        &agent_name(Language::NodeJs),
        &l.image,
        &command,
    )
}
