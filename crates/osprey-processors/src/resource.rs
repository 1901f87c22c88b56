//! The `resource` processor: applies an action list (the `attributes` key, same actions as
//! the `attributes` processor) to the resource attributes of every resource of every signal.

use crate::attraction::{ActionConfig, AttrProc};
use osprey_model::otlp::resource::v1::Resource;
use osprey_pipeline::{
    Batch, ConfigError, ConsumeError, Consumer, Context, Payload, SharedConsumer,
};

/// `processors.resource` config.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceConfig {
    pub attributes: Vec<ActionConfig>,
}

impl ResourceConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        compile(self).map(|_| ())
    }
}

fn compile(c: &ResourceConfig) -> Result<AttrProc, ConfigError> {
    if c.attributes.is_empty() {
        return Err(ConfigError::new(
            "attributes",
            "missing required field \"attributes\"",
        ));
    }
    AttrProc::new(&c.attributes, "attributes")
}

/// The `resource` processor.
pub struct ResourceProcessor {
    actions: AttrProc,
    next: SharedConsumer,
}

impl ResourceProcessor {
    pub fn new(config: ResourceConfig, next: SharedConsumer) -> Result<Self, ConfigError> {
        Ok(ResourceProcessor {
            actions: compile(&config)?,
            next,
        })
    }

    /// Applies the actions to every resource of the payload.
    pub fn process(&self, payload: &mut Payload, ctx: &Context) {
        let apply = |r: &mut Option<Resource>| {
            let res = r.get_or_insert_with(Resource::default);
            self.actions.process(ctx, &mut res.attributes);
        };
        match payload {
            Payload::Traces(t) => t
                .resource_spans
                .iter_mut()
                .for_each(|rs| apply(&mut rs.resource)),
            Payload::Metrics(m) => m
                .resource_metrics
                .iter_mut()
                .for_each(|rm| apply(&mut rm.resource)),
            Payload::Logs(l) => l
                .resource_logs
                .iter_mut()
                .for_each(|rl| apply(&mut rl.resource)),
            // Undecoded: the caller decodes first (`Batch::payload_mut`).
            Payload::RawTraces(_) => {}
        }
    }
}

#[async_trait::async_trait]
impl Consumer for ResourceProcessor {
    fn has_room(&self) -> bool {
        self.next.has_room()
    }

    async fn consume(&self, mut batch: Batch) -> Result<(), ConsumeError> {
        let ctx = batch.context.clone();
        self.process(batch.payload_mut()?, &ctx);
        self.next.consume(batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::{get, str_value};
    use crate::testutil::{span, trace_request, Sink};
    use std::sync::Arc;

    #[tokio::test]
    async fn rewrites_resource_attributes() {
        let cfg: ResourceConfig = osprey_pipeline::decode_config(
            &serde_yaml::from_str(
                "attributes: [{key: deployment.environment, value: prod, action: insert},
                              {key: service.name, action: hash},
                              {key: cloud.region, from_attribute: region, action: upsert}]",
            )
            .unwrap(),
        )
        .unwrap();
        let sink = Arc::new(Sink::default());
        let p = ResourceProcessor::new(cfg, sink.clone()).unwrap();
        p.consume(Batch::traces(trace_request("svc", vec![span(1, 1, "a")])))
            .await
            .unwrap();
        let got = sink.take();
        let res = &got[0].trace_request().unwrap().resource_spans[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes;
        assert_eq!(get(res, "deployment.environment"), Some(&str_value("prod")));
        assert_eq!(
            crate::attrs::as_str(get(res, "service.name").unwrap())
                .unwrap()
                .len(),
            64
        );
        assert!(
            get(res, "cloud.region").is_none(),
            "source attribute absent: no action"
        );
    }

    #[test]
    fn requires_attributes() {
        let e = ResourceConfig::default().validate().unwrap_err();
        assert_eq!(e.path, "attributes");
        let cfg: ResourceConfig = osprey_pipeline::decode_config(
            &serde_yaml::from_str("attributes: [{key: a, action: nope}]").unwrap(),
        )
        .unwrap();
        assert_eq!(cfg.validate().unwrap_err().path, "attributes[0].action");
    }
}
