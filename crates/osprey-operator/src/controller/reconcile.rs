//! One reconcile of one `OpenTelemetryCollector` (see the module doc of [`super`] for the
//! behaviour), written against a plain [`kube::Client`] so that tests drive it through a fake
//! API server.

use super::apply::{adopt, apply, key};
use super::plan::{PlanError, Planner};
use super::prune::prune;
use super::ControllerError;
use crate::crd::collector::ManagementState;
use crate::crd::{OpenTelemetryCollector, OpenTelemetryCollectorStatus};
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Resource, ResourceExt};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// When a CR with an invalid config is looked at again (a fixed config triggers a reconcile
/// at once through the watch; this only bounds how stale the status can get).
pub const INVALID_REQUEUE: Duration = Duration::from_secs(300);
/// Periodic resync of a healthy CR (workload changes trigger reconciles through the watches).
pub const RESYNC: Duration = Duration::from_secs(3600);

/// What every reconcile shares.
pub struct Context {
    pub client: kube::Client,
    pub planner: Arc<dyn Planner>,
    pub field_manager: String,
    recorder: Recorder,
}

impl Context {
    pub fn new(client: kube::Client, planner: Arc<dyn Planner>, field_manager: &str) -> Self {
        let reporter = Reporter {
            controller: field_manager.to_string(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let recorder = Recorder::new(client.clone(), reporter);
        Context {
            client,
            planner,
            field_manager: field_manager.to_string(),
            recorder,
        }
    }
}

/// Reconciles one CR: see [`super`].
pub async fn reconcile(
    cr: Arc<OpenTelemetryCollector>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    if cr.spec.management_state == Some(ManagementState::Unmanaged) {
        tracing::debug!(collector = %cr.name_any(), "unmanaged; skipped");
        return Ok(Action::await_change());
    }
    if cr.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes the owned objects; nothing to do.
        return Ok(Action::await_change());
    }
    let namespace = cr
        .namespace()
        .ok_or_else(|| ControllerError::NoNamespace(cr.name_any()))?;
    let plan = match ctx.planner.plan(&cr) {
        Ok(plan) => plan,
        Err(err) => {
            report_invalid(&cr, &ctx, &err).await?;
            return Ok(Action::requeue(INVALID_REQUEUE));
        }
    };
    // Warnings go to status.messages; logged at debug only, as every reconcile repeats them.
    for w in &plan.warnings {
        tracing::debug!(collector = %cr.name_any(), namespace, warning = %w);
    }
    let mut workload = None;
    let mut objects = plan.objects;
    for obj in &mut objects {
        adopt(obj, &cr, &namespace);
        let applied = match apply(&ctx.client, &ctx.field_manager, obj).await {
            Ok(applied) => applied,
            Err(err) => {
                // Said on the CR (status + Event), then retried with the controller's backoff.
                let (kind, name) = key(obj);
                let message = format!("applying {kind} {name} failed: {err}");
                tracing::warn!(collector = %cr.name_any(), %message, "retrying with backoff");
                report(&cr, &ctx, "ApplyFailed", message).await?;
                return Err(err);
            }
        };
        if is_workload(obj) {
            workload = Some(applied);
        }
    }
    let deleted = prune(&ctx.client, &cr, &namespace, &objects).await?;
    if !deleted.is_empty() {
        tracing::info!(collector = %cr.name_any(), namespace, ?deleted, "pruned");
    }
    let mut status = ctx.planner.status(&cr, workload.as_ref());
    status.applied_config_hash = Some(plan.config_hash);
    status.messages = (!plan.warnings.is_empty()).then_some(plan.warnings);
    patch_status(&ctx, &cr, status).await?;
    Ok(Action::requeue(RESYNC))
}

fn is_workload(obj: &DynamicObject) -> bool {
    matches!(
        key(obj).0.as_str(),
        "Deployment" | "DaemonSet" | "StatefulSet"
    )
}

/// Invalid config (or spec): leave every object as it is, say why in a Warning Event and on
/// the status.
async fn report_invalid(
    cr: &OpenTelemetryCollector,
    ctx: &Context,
    err: &PlanError,
) -> Result<(), ControllerError> {
    tracing::warn!(collector = %cr.name_any(), namespace = cr.namespace().as_deref().unwrap_or(""),
        error = %err, "not applied; the running collector is left as it is");
    let kept = match cr
        .status
        .as_ref()
        .and_then(|s| s.applied_config_hash.as_deref())
    {
        Some(h) => format!(
            "the last good config ({}) keeps running",
            h.chars().take(8).collect::<String>()
        ),
        None => "nothing was created".to_string(),
    };
    report(cr, ctx, err.reason(), format!("{err}; {kept}")).await
}

/// Puts `message` alone in `status.messages` and publishes it as a Warning Event with
/// `reason`. Each distinct message is reported once (the status remembers it), so periodic
/// requeues, backoff retries and the watch event of our own status write do not repeat the
/// Event.
async fn report(
    cr: &OpenTelemetryCollector,
    ctx: &Context,
    reason: &str,
    message: String,
) -> Result<(), ControllerError> {
    let mut status = cr.status.clone().unwrap_or_default();
    status.messages = Some(vec![message.clone()]);
    if cr.status.as_ref() == Some(&status) {
        // Already reported (the Event went out with the status change); nothing new to say.
        return Ok(());
    }
    let event = Event {
        type_: EventType::Warning,
        reason: reason.to_string(),
        note: Some(truncate(&message, 1000)),
        action: "Reconcile".into(),
        secondary: None,
    };
    ctx.recorder.publish(&event, &cr.object_ref(&())).await?;
    patch_status(ctx, cr, status).await
}

/// Writes `status` through the status subresource, unless it is what the CR already says.
async fn patch_status(
    ctx: &Context,
    cr: &OpenTelemetryCollector,
    status: OpenTelemetryCollectorStatus,
) -> Result<(), ControllerError> {
    let old = cr.status.clone().unwrap_or_default();
    if old == status {
        return Ok(());
    }
    let ns = cr
        .namespace()
        .ok_or_else(|| ControllerError::NoNamespace(cr.name_any()))?;
    let api: Api<OpenTelemetryCollector> = Api::namespaced(ctx.client.clone(), &ns);
    let body = json!({ "status": merge_body(&old, &status) });
    api.patch_status(
        &cr.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&body),
    )
    .await?;
    Ok(())
}

/// `new` as a JSON merge patch over `old`: fields `old` had and `new` lacks (at any depth)
/// become `null`, so they are removed.
pub(crate) fn merge_body(
    old: &OpenTelemetryCollectorStatus,
    new: &OpenTelemetryCollectorStatus,
) -> Value {
    let old = serde_json::to_value(old).unwrap_or(Value::Null);
    let mut new = serde_json::to_value(new).unwrap_or_else(|_| json!({}));
    fill_nulls(&old, &mut new);
    new
}

fn fill_nulls(old: &Value, new: &mut Value) {
    if let (Value::Object(old), Value::Object(new)) = (old, new) {
        for (k, ov) in old {
            match new.get_mut(k) {
                Some(nv) => fill_nulls(ov, nv),
                None => {
                    new.insert(k.clone(), Value::Null);
                }
            }
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
