//! The `attributes` processor: applies an action list to span attributes, log record
//! attributes and metric data point attributes, for the items selected by `include` /
//! `exclude` (see [`crate::matching`]).

use crate::attraction::{ActionConfig, AttrProc};
use crate::matching::{MatchProperties, SkipMatcher, Target};
use osprey_model::otlp::metrics::v1::metric::Data;
use osprey_model::TraceRequest;
use osprey_pipeline::{
    Batch, ConfigError, ConsumeError, Consumer, Context, LogsRequest, MetricsRequest, Payload,
    SharedConsumer, Signal,
};

/// `processors.attributes` config.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributesConfig {
    pub include: Option<MatchProperties>,
    pub exclude: Option<MatchProperties>,
    pub actions: Vec<ActionConfig>,
}

impl AttributesConfig {
    /// Checks the action list and that include/exclude suit at least one signal.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Matchers::compile(self)?;
        Ok(())
    }

    /// Checks the config for a pipeline of `signal`.
    pub fn validate_for(&self, signal: Signal) -> Result<(), ConfigError> {
        Matchers::compile(self)?.get(signal).map(|_| ())
    }
}

#[derive(Debug, Clone)]
struct Matchers {
    actions: AttrProc,
    spans: Result<SkipMatcher, ConfigError>,
    logs: Result<SkipMatcher, ConfigError>,
    metrics: Result<SkipMatcher, ConfigError>,
}

impl Matchers {
    fn compile(c: &AttributesConfig) -> Result<Self, ConfigError> {
        if c.actions.is_empty() {
            return Err(ConfigError::new(
                "actions",
                "missing required field \"actions\"",
            ));
        }
        let actions = AttrProc::new(&c.actions, "actions")?;
        let m = |t| SkipMatcher::new(c.include.as_ref(), c.exclude.as_ref(), t);
        let out = Matchers {
            actions,
            spans: m(Target::Spans),
            logs: m(Target::Logs),
            metrics: m(Target::Metrics),
        };
        match (&out.spans, &out.logs, &out.metrics) {
            (Err(e), Err(_), Err(_)) => Err(e.clone()),
            _ => Ok(out),
        }
    }

    fn get(&self, signal: Signal) -> Result<&SkipMatcher, ConfigError> {
        match signal {
            Signal::Traces => self.spans.as_ref(),
            Signal::Logs => self.logs.as_ref(),
            Signal::Metrics => self.metrics.as_ref(),
        }
        .map_err(Clone::clone)
    }
}

/// The `attributes` processor.
pub struct AttributesProcessor {
    m: Matchers,
    next: SharedConsumer,
}

impl AttributesProcessor {
    /// Builds the processor; include/exclude properties invalid for some signal are reported
    /// when a batch of that signal arrives (use [`AttributesProcessor::new_for`] to check
    /// up front).
    pub fn new(config: AttributesConfig, next: SharedConsumer) -> Result<Self, ConfigError> {
        Ok(AttributesProcessor {
            m: Matchers::compile(&config)?,
            next,
        })
    }

    /// Builds the processor for a pipeline of `signal`.
    pub fn new_for(
        config: AttributesConfig,
        signal: Signal,
        next: SharedConsumer,
    ) -> Result<Self, ConfigError> {
        let m = Matchers::compile(&config)?;
        m.get(signal)?;
        Ok(AttributesProcessor { m, next })
    }

    /// Applies the actions to the selected spans.
    pub fn process_traces(&self, req: &mut TraceRequest, ctx: &Context) -> Result<(), ConfigError> {
        let skip = self.m.get(Signal::Traces)?;
        for rs in &mut req.resource_spans {
            let resource = rs
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or_default();
            for ss in &mut rs.scope_spans {
                for span in &mut ss.spans {
                    if !skip.is_noop() && skip.skip_span(resource, ss.scope.as_ref(), span) {
                        continue;
                    }
                    self.m.actions.process(ctx, &mut span.attributes);
                }
            }
        }
        Ok(())
    }

    /// Applies the actions to the selected log records.
    pub fn process_logs(&self, req: &mut LogsRequest, ctx: &Context) -> Result<(), ConfigError> {
        let skip = self.m.get(Signal::Logs)?;
        for rl in &mut req.resource_logs {
            let resource = rl
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or_default();
            for sl in &mut rl.scope_logs {
                for log in &mut sl.log_records {
                    if !skip.is_noop() && skip.skip_log(resource, sl.scope.as_ref(), log) {
                        continue;
                    }
                    self.m.actions.process(ctx, &mut log.attributes);
                }
            }
        }
        Ok(())
    }

    /// Applies the actions to the data points of the selected metrics.
    pub fn process_metrics(
        &self,
        req: &mut MetricsRequest,
        ctx: &Context,
    ) -> Result<(), ConfigError> {
        let skip = self.m.get(Signal::Metrics)?;
        for rm in &mut req.resource_metrics {
            let resource = rm
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or_default();
            for sm in &mut rm.scope_metrics {
                for metric in &mut sm.metrics {
                    if !skip.is_noop() && skip.skip_metric(resource, &metric.name) {
                        continue;
                    }
                    let a = &self.m.actions;
                    match &mut metric.data {
                        Some(Data::Gauge(g)) => g
                            .data_points
                            .iter_mut()
                            .for_each(|p| a.process(ctx, &mut p.attributes)),
                        Some(Data::Sum(s)) => s
                            .data_points
                            .iter_mut()
                            .for_each(|p| a.process(ctx, &mut p.attributes)),
                        Some(Data::Histogram(h)) => h
                            .data_points
                            .iter_mut()
                            .for_each(|p| a.process(ctx, &mut p.attributes)),
                        Some(Data::ExponentialHistogram(h)) => h
                            .data_points
                            .iter_mut()
                            .for_each(|p| a.process(ctx, &mut p.attributes)),
                        Some(Data::Summary(s)) => s
                            .data_points
                            .iter_mut()
                            .for_each(|p| a.process(ctx, &mut p.attributes)),
                        None => {}
                    }
                }
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Consumer for AttributesProcessor {
    fn has_room(&self) -> bool {
        self.next.has_room()
    }

    async fn consume(&self, mut batch: Batch) -> Result<(), ConsumeError> {
        let ctx = batch.context.clone();
        let result = match batch.payload_mut()? {
            Payload::Traces(r) => self.process_traces(r, &ctx),
            // payload_mut decoded it.
            Payload::RawTraces(_) => Ok(()),
            Payload::Logs(r) => self.process_logs(r, &ctx),
            Payload::Metrics(r) => self.process_metrics(r, &ctx),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "attributes processor: include/exclude invalid for this signal");
            return Err(ConsumeError::Permanent(format!(
                "attributes processor misconfigured: {e}"
            )));
        }
        self.next.consume(batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::{get, str_value};
    use crate::testutil::{span, trace_request, Sink};
    use osprey_model::otlp::common::v1::KeyValue;
    use std::sync::Arc;

    fn config(yaml: &str) -> AttributesConfig {
        osprey_pipeline::decode_config(&serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn applies_to_included_spans_only() {
        let cfg = config(
            "include: {match_type: strict, span_names: [checkout]}\nactions: [{key: team, value: payments, action: insert}]",
        );
        let sink = Arc::new(Sink::default());
        let p = AttributesProcessor::new(cfg, sink.clone()).unwrap();
        let req = trace_request("svc", vec![span(1, 1, "checkout"), span(1, 2, "other")]);
        let mut batch = Batch::traces(req);
        batch.encoded = Some(bytes::Bytes::from_static(b"stale"));
        p.consume(batch).await.unwrap();
        let got = sink.take();
        assert_eq!(got.len(), 1);
        assert!(got[0].encoded.is_none(), "the cached encoding is dropped");
        let spans = &got[0].trace_request().unwrap().resource_spans[0].scope_spans[0].spans;
        assert_eq!(
            get(&spans[0].attributes, "team"),
            Some(&str_value("payments"))
        );
        assert!(get(&spans[1].attributes, "team").is_none());
    }

    #[test]
    fn logs_and_metrics_get_the_actions() {
        use osprey_model::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        let cfg = config("actions: [{key: env, value: prod, action: upsert}]");
        let p = AttributesProcessor::new(cfg, Arc::new(Sink::default())).unwrap();
        let mut logs = LogsRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        p.process_logs(&mut logs, &Context::default()).unwrap();
        let attrs: &[KeyValue] = &logs.resource_logs[0].scope_logs[0].log_records[0].attributes;
        assert_eq!(get(attrs, "env"), Some(&str_value("prod")));
    }

    #[test]
    fn missing_actions_and_signal_specific_properties() {
        let e = config("include: {match_type: strict, services: [a]}")
            .validate()
            .unwrap_err();
        assert_eq!(e.path, "actions");
        let cfg = config(
            "include: {match_type: strict, services: [a]}\nactions: [{key: k, action: delete}]",
        );
        cfg.validate_for(Signal::Traces).unwrap();
        let e = cfg.validate_for(Signal::Logs).unwrap_err();
        assert_eq!(e.path, "include");
    }
}
