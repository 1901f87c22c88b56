//! The `filter` processor for traces and logs: drops resources, spans, span events and log
//! records matching any configured condition (see [`config`]). Scopes and resources left
//! empty are removed; a batch left empty is not forwarded (acknowledged as done).
//! Metric and profile filters are accepted in the config but not applied (a warning says so).

pub mod config;

pub use config::FilterConfig;
use config::Rules;

use crate::ottl::{ContextKind, EventCtx, LogCtx, ResourceCtx, SpanCtx};
use osprey_model::otlp::common::v1::KeyValue;
use osprey_model::TraceRequest;
use osprey_pipeline::{
    Batch, ConfigError, ConsumeError, Consumer, LogsRequest, Payload, SharedConsumer,
};

/// What filtering did to one payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filtered {
    /// Spans or log records removed.
    pub dropped: usize,
    /// Span events removed.
    pub dropped_events: usize,
}

impl Filtered {
    pub fn changed(&self) -> bool {
        self.dropped > 0 || self.dropped_events > 0
    }
}

fn check(result: Result<bool, String>, err: &mut Option<String>) -> bool {
    match result {
        Ok(b) => b,
        Err(e) => {
            err.get_or_insert(e);
            false
        }
    }
}

/// Removes what `rules` match from a trace request. An evaluation error under
/// `error_mode: propagate` keeps the item and is returned after the pass.
pub fn filter_traces(rules: &Rules, req: &mut TraceRequest) -> Result<Filtered, String> {
    let before = osprey_model::span_count(req);
    let mut out = Filtered::default();
    let mut err = None;
    let has_events = rules.of(ContextKind::SpanEvent).next().is_some();
    req.resource_spans.retain_mut(|rs| {
        let resource: &[KeyValue] = rs
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let rctx = ResourceCtx { resource };
        if rules
            .of(ContextKind::Resource)
            .any(|g| check(g.conditions.any(&rctx, g.mode), &mut err))
        {
            return false;
        }
        rs.scope_spans.retain_mut(|ss| {
            let scope = ss.scope.as_ref();
            ss.spans.retain_mut(|span| {
                if rules
                    .legacy
                    .as_ref()
                    .is_some_and(|m| m.skip_span(resource, scope, span))
                {
                    return false;
                }
                let sctx = SpanCtx {
                    resource,
                    scope,
                    span,
                };
                if rules
                    .of(ContextKind::Span)
                    .any(|g| check(g.conditions.any(&sctx, g.mode), &mut err))
                {
                    return false;
                }
                if has_events && !span.events.is_empty() {
                    let mut events = std::mem::take(&mut span.events);
                    let n = events.len();
                    events.retain(|event| {
                        let ectx = EventCtx {
                            span: SpanCtx {
                                resource,
                                scope,
                                span,
                            },
                            event,
                        };
                        !rules
                            .of(ContextKind::SpanEvent)
                            .any(|g| check(g.conditions.any(&ectx, g.mode), &mut err))
                    });
                    out.dropped_events += n - events.len();
                    span.events = events;
                }
                true
            });
            !ss.spans.is_empty()
        });
        !rs.scope_spans.is_empty()
    });
    out.dropped = before - osprey_model::span_count(req);
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Removes what `rules` match from a logs request.
pub fn filter_logs(rules: &Rules, req: &mut LogsRequest) -> Result<Filtered, String> {
    let count = |r: &LogsRequest| {
        r.resource_logs
            .iter()
            .flat_map(|rl| &rl.scope_logs)
            .map(|sl| sl.log_records.len())
            .sum::<usize>()
    };
    let before = count(req);
    let mut err = None;
    req.resource_logs.retain_mut(|rl| {
        let resource: &[KeyValue] = rl
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let rctx = ResourceCtx { resource };
        if rules
            .of(ContextKind::Resource)
            .any(|g| check(g.conditions.any(&rctx, g.mode), &mut err))
        {
            return false;
        }
        rl.scope_logs.retain_mut(|sl| {
            let scope = sl.scope.as_ref();
            sl.log_records.retain(|log| {
                if rules
                    .legacy
                    .as_ref()
                    .is_some_and(|m| m.skip_log(resource, scope, log))
                {
                    return false;
                }
                let lctx = LogCtx {
                    resource,
                    scope,
                    log,
                };
                !rules
                    .of(ContextKind::Log)
                    .any(|g| check(g.conditions.any(&lctx, g.mode), &mut err))
            });
            !sl.log_records.is_empty()
        });
        !rl.scope_logs.is_empty()
    });
    let dropped = before - count(req);
    match err {
        Some(e) => Err(e),
        None => Ok(Filtered {
            dropped,
            dropped_events: 0,
        }),
    }
}

/// The `filter` processor.
pub struct FilterProcessor {
    traces: Rules,
    logs: Rules,
    next: SharedConsumer,
}

impl FilterProcessor {
    pub fn new(config: FilterConfig, next: SharedConsumer) -> Result<Self, ConfigError> {
        if config.has_unsupported_filters() {
            tracing::warn!("filter processor: metric and profile filters are not supported by osprey and are ignored");
        }
        Ok(FilterProcessor {
            traces: config.trace_rules()?,
            logs: config.log_rules()?,
            next,
        })
    }
}

#[async_trait::async_trait]
impl Consumer for FilterProcessor {
    fn has_room(&self) -> bool {
        self.next.has_room()
    }

    async fn consume(&self, mut batch: Batch) -> Result<(), ConsumeError> {
        if !self.traces.is_empty() {
            batch.materialize()?;
        }
        let result = match &mut batch.payload {
            Payload::Traces(r) if !self.traces.is_empty() => filter_traces(&self.traces, r),
            Payload::Logs(r) if !self.logs.is_empty() => filter_logs(&self.logs, r),
            _ => return self.next.consume(batch).await,
        };
        match result {
            Err(e) => {
                tracing::error!(error = %e, "filter processor: failed processing batch");
                Err(ConsumeError::Permanent(e))
            }
            Ok(f) => {
                if f.changed() {
                    batch.encoded = None;
                    tracing::debug!(
                        dropped = f.dropped,
                        dropped_events = f.dropped_events,
                        "filter processor dropped items"
                    );
                }
                if batch.payload.is_empty() {
                    return Ok(());
                }
                self.next.consume(batch).await
            }
        }
    }
}

#[cfg(test)]
mod tests;
