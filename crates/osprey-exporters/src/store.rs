//! The store exporter: hands each batch to the embedded store and reports success only once
//! the store has it in its write-ahead log.

use bytes::Bytes;
use osprey_pipeline::{Batch, ConsumeError, Consumer, Payload};
use osprey_store::{Store, StoreError};
use prost::Message;
use std::time::Duration;

/// How long an overloaded store asks clients to wait before retrying.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct StoreExporter {
    store: Store,
}

impl StoreExporter {
    pub fn new(store: Store) -> Self {
        StoreExporter { store }
    }
}

#[async_trait::async_trait]
impl Consumer for StoreExporter {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let signal = batch.signal();
        // The WAL keeps the encoding: the receiver's bytes when they are at hand.
        let (request, encoded) = match batch.payload {
            Payload::Traces(request) => (request, batch.encoded),
            Payload::RawTraces(raw) => {
                let raw = raw.flatten();
                (raw.decode_or_count()?, Some(raw.to_bytes()))
            }
            _ => {
                return Err(ConsumeError::Permanent(format!(
                    "the osprey store keeps traces only; {signal} are not stored yet"
                )))
            }
        };
        if request.resource_spans.is_empty() {
            return Ok(());
        }
        let rows = osprey_model::request_to_batch(&request)
            .map_err(|e| ConsumeError::Permanent(format!("cannot convert spans: {e}")))?;
        let payload = encoded.unwrap_or_else(|| Bytes::from(request.encode_to_vec()));
        match self.store.append(payload, rows).await {
            Ok(_) => Ok(()),
            Err(StoreError::Overloaded { buffered, limit }) => Err(ConsumeError::Overloaded {
                retry_after: RETRY_AFTER,
                reason: format!(
                    "store buffer full ({buffered} of {limit} bytes); flushing to disk"
                ),
            }),
            Err(e) => Err(ConsumeError::Unavailable(e.to_string())),
        }
    }
}
