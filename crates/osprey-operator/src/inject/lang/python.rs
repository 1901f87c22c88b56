//! Python: the init container copies the `opentelemetry-distro` payload (glibc or musl
//! build) to `/otel-auto-instrumentation-python`; `PYTHONPATH` puts its `sitecustomize`
//! first; OTLP over HTTP is forced unless the container says otherwise.

use super::{agent_mount, agent_name, copy_container, mount, LangCtx};
use crate::inject::sdk::{self, env_index, literal};
use crate::inject::Language;
use k8s_openapi::api::core::v1::Container;

const PYTHONPATH: &str = "PYTHONPATH";
const PATH_PREFIX: &str =
    "/otel-auto-instrumentation-python/opentelemetry/instrumentation/auto_instrumentation";
const PATH_SUFFIX: &str = "/otel-auto-instrumentation-python";

/// The payload directory in the image for `otel-python-platform`.
fn source(platform: &str) -> Result<&'static str, String> {
    match platform {
        "" | "glibc" => Ok("/autoinstrumentation/."),
        "musl" => Ok("/autoinstrumentation-musl/."),
        other => Err(format!(
            "provided instrumentation.opentelemetry.io/otel-python-platform annotation value '{other}' is not supported"
        )),
    }
}

/// Checks the container, then adds `python.env`, `PYTHONPATH` and the agent mount.
pub(super) fn prepare(c: &mut Container, l: &LangCtx) -> Result<(), String> {
    sdk::no_value_from(c, &[PYTHONPATH])?;
    source(&l.variant)?;
    sdk::append_if_absent(c, l.lang.env.iter().flatten());
    let env = c.env.get_or_insert_with(Vec::new);
    match env_index(env, PYTHONPATH) {
        None => env.push(literal(PYTHONPATH, format!("{PATH_PREFIX}:{PATH_SUFFIX}"))),
        Some(i) => {
            let existing = env[i].value.take().unwrap_or_default();
            env[i].value = Some(format!("{PATH_PREFIX}:{existing}:{PATH_SUFFIX}"));
        }
    }
    mount(
        c,
        &agent_name(Language::Python),
        &agent_mount(Language::Python),
    );
    Ok(())
}

/// Exporter defaults the Python payload needs, each only if absent.
pub(super) fn defaults(c: &mut Container) {
    sdk::set_if_absent(c, "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
    sdk::set_if_absent(c, "OTEL_TRACES_EXPORTER", "otlp");
    sdk::set_if_absent(c, "OTEL_METRICS_EXPORTER", "otlp");
    sdk::set_if_absent(c, "OTEL_LOGS_EXPORTER", "otlp");
}

pub(super) fn init_container(l: &LangCtx) -> Container {
    let src = source(&l.variant).unwrap_or("/autoinstrumentation/.");
    let dest = agent_mount(Language::Python);
    copy_container(
        l,
        Language::Python,
        &agent_name(Language::Python),
        &l.image,
        &["cp", "-r", src, &dest],
    )
}
