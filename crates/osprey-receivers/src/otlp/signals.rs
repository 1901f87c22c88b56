//! OTLP metrics and logs: passed on as they arrive (no sanitizing beyond protobuf decoding),
//! for collector pipelines. `osprey up` does not store them yet and gives no consumer.

use super::{ExportOutcome, IngestError, TraceIngest};
use osprey_pipeline::{Batch, LogsRequest, MetricsRequest, Payload, SharedConsumer};

impl TraceIngest {
    /// Whether this receiver takes metrics / logs.
    pub fn serves(&self, signal: osprey_pipeline::Signal) -> bool {
        match signal {
            osprey_pipeline::Signal::Traces => self.consumer.is_some(),
            osprey_pipeline::Signal::Metrics => self.metrics.is_some(),
            osprey_pipeline::Signal::Logs => self.logs.is_some(),
        }
    }

    pub async fn export_metrics(
        &self,
        req: MetricsRequest,
        client: Option<std::net::IpAddr>,
    ) -> Result<ExportOutcome, IngestError> {
        pass_on(self.metrics.as_ref(), Payload::Metrics(req), client).await
    }

    pub async fn export_logs(
        &self,
        req: LogsRequest,
        client: Option<std::net::IpAddr>,
    ) -> Result<ExportOutcome, IngestError> {
        pass_on(self.logs.as_ref(), Payload::Logs(req), client).await
    }
}

async fn pass_on(
    consumer: Option<&SharedConsumer>,
    payload: Payload,
    client: Option<std::net::IpAddr>,
) -> Result<ExportOutcome, IngestError> {
    let signal = payload.signal();
    let Some(consumer) = consumer else {
        return Err(IngestError::NotServed(format!(
            "OTLP {signal} are not supported yet by this receiver: it is in no {signal} pipeline \
             (osprey up stores traces only)"
        )));
    };
    let items = payload.item_count() as u64;
    if payload.is_empty() {
        return Ok(ExportOutcome::default());
    }
    let mut batch = Batch::from_payload(payload);
    if client.is_some() {
        batch.context = std::sync::Arc::new(osprey_pipeline::Context {
            client_addr: client,
            ..Default::default()
        });
    }
    match consumer.consume(batch).await {
        Ok(()) => Ok(ExportOutcome {
            accepted: items,
            ..Default::default()
        }),
        Err(e) => {
            tracing::warn!(error = %e, %signal, items, "export refused");
            Err(IngestError::from(e))
        }
    }
}
