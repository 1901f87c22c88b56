//! The pipeline's component contract: what flows between receivers, processors and exporters,
//! and how a refusal travels back to the client.
//!
//! A receiver decodes a request, sanitizes it, and hands a [`TraceBatch`] to a
//! [`TraceConsumer`] (a processor or an exporter). It acknowledges its client only after
//! `consume_traces` returned `Ok`: for the store exporter that means the spans are in the
//! write-ahead log. A [`ConsumeError`] says whether the client should retry.

use bytes::Bytes;
use osprey_model::TraceRequest;
use std::sync::Arc;
use std::time::Duration;

/// Trace data in flight.
#[derive(Debug, Clone, Default)]
pub struct TraceBatch {
    /// The spans, as OTLP messages (already sanitized by the receiver).
    pub request: TraceRequest,
    /// The protobuf encoding of exactly `request`, when the receiver already has it
    /// (saves the store exporter a re-encode).
    pub encoded: Option<Bytes>,
}

impl TraceBatch {
    pub fn new(request: TraceRequest) -> Self {
        TraceBatch {
            request,
            encoded: None,
        }
    }
    pub fn span_count(&self) -> usize {
        osprey_model::span_count(&self.request)
    }
}

/// Why a consumer did not take a batch. Receivers map each case to the protocol's own code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConsumeError {
    /// Temporarily over capacity: the client should retry after the given delay
    /// (gRPC UNAVAILABLE, HTTP 503 + Retry-After).
    #[error("overloaded, retry after {retry_after:?}: {reason}")]
    Overloaded {
        retry_after: Duration,
        reason: String,
    },
    /// A failure that may pass (disk error, shutdown in progress): retryable.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The data can never be accepted: not retryable.
    #[error("refused: {0}")]
    Permanent(String),
}

/// Something that takes trace batches: a processor or an exporter.
#[async_trait::async_trait]
pub trait TraceConsumer: Send + Sync + 'static {
    /// Takes ownership of `batch`. `Ok` means the batch is safe: the receiver may acknowledge.
    async fn consume_traces(&self, batch: TraceBatch) -> Result<(), ConsumeError>;
}

/// A shared consumer handle.
pub type SharedConsumer = Arc<dyn TraceConsumer>;
