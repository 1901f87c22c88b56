//! The OTLP trace receiver, shared by its gRPC and HTTP front ends.
//!
//! [`TraceIngest`] is the protocol-neutral core: it sanitizes a decoded request, passes it on,
//! and turns the outcome into an [`ExportOutcome`] (a success, maybe partial) or an
//! [`IngestError`] that each front end maps to its own status codes.
//!
//! Protobuf requests can also be taken as bytes ([`TraceIngest::export_bytes`], what the gRPC
//! front end does): a skim checks them without decoding, and a clean request (one sanitizing
//! would not change) is passed on as [`RawTraces`], never decoded; anything else is decoded and
//! takes the path above.

pub mod body;
pub mod grpc;
mod grpc_raw;
pub mod http;
mod signals;

use bytes::Bytes;
use osprey_model::otlp::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use osprey_model::{sanitize_request, Limits, TraceRequest};
use osprey_pipeline::{ConsumeError, Payload, RawTraces, SharedConsumer, TraceBatch};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Receiver settings (shared by gRPC and HTTP).
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// Largest request accepted, in bytes, after decompression.
    pub max_request_bytes: usize,
    /// Per-span bounds (attributes, events, links).
    pub limits: Limits,
    /// Spans that started longer ago than this are rejected (partial success) instead of
    /// acknowledged: the store's retention would delete them at once. `None`: no bound.
    pub max_span_age: Option<Duration>,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            max_request_bytes: 16 << 20,
            limits: Limits::default(),
            max_span_age: None,
        }
    }
}

/// Why a request was not (fully) taken.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    /// The request cannot be decoded or is malformed as a whole: not retryable.
    #[error("{0}")]
    BadRequest(String),
    /// The request is larger than the limit: not retryable.
    #[error("request too large: {0}")]
    TooLarge(String),
    /// Temporarily over capacity: retry after the delay.
    #[error("{reason}")]
    Overloaded {
        retry_after: Duration,
        reason: String,
    },
    /// A failure that may pass: retryable.
    #[error("{0}")]
    Unavailable(String),
    /// Accepted by nobody, never will be: not retryable.
    #[error("{0}")]
    Internal(String),
    /// This receiver does not take this signal (it is in no pipeline of that type).
    #[error("{0}")]
    NotServed(String),
}

/// A successful export, maybe with some spans rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOutcome {
    pub accepted: u64,
    pub rejected: u64,
    /// Set when something was rejected or repaired (OTLP leaves `partial_success` unset otherwise).
    pub message: Option<String>,
}

impl ExportOutcome {
    pub fn into_response(self) -> ExportTraceServiceResponse {
        ExportTraceServiceResponse {
            partial_success: self.message.map(|m| ExportTracePartialSuccess {
                rejected_spans: i64::try_from(self.rejected).unwrap_or(i64::MAX),
                error_message: m,
            }),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub requests: AtomicU64,
    pub spans_accepted: AtomicU64,
    pub spans_rejected: AtomicU64,
    pub requests_refused: AtomicU64,
}

/// The protocol-neutral core of the OTLP trace receiver. Cheap to clone.
#[derive(Clone)]
pub struct TraceIngest {
    consumer: Option<SharedConsumer>,
    metrics: Option<SharedConsumer>,
    logs: Option<SharedConsumer>,
    config: Arc<OtlpConfig>,
    stats: Arc<IngestStats>,
}

impl TraceIngest {
    /// A receiver for traces only (what `osprey up` stores).
    pub fn new(consumer: SharedConsumer, config: OtlpConfig) -> Self {
        TraceIngest::with_signals(Some(consumer), None, None, config)
    }

    /// A receiver for the signals that have a consumer; the others are answered
    /// "not served" (gRPC UNIMPLEMENTED, HTTP 501).
    pub fn with_signals(
        traces: Option<SharedConsumer>,
        metrics: Option<SharedConsumer>,
        logs: Option<SharedConsumer>,
        config: OtlpConfig,
    ) -> Self {
        TraceIngest {
            consumer: traces,
            metrics,
            logs,
            config: Arc::new(config),
            stats: Arc::new(IngestStats::default()),
        }
    }

    pub fn config(&self) -> &OtlpConfig {
        &self.config
    }

    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// Asked before reading a trace request's body: an error when the pipeline says a request
    /// now would be refused as overloaded ([`osprey_pipeline::Consumer::has_room`]), so that
    /// refusing costs no reading, copying or skimming.
    pub fn check_room(&self) -> Result<(), IngestError> {
        match &self.consumer {
            Some(c) if !c.has_room() => {
                self.stats.requests_refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("trace export refused unread: the pipeline is full");
                Err(IngestError::Overloaded {
                    retry_after: Duration::from_secs(1),
                    reason:
                        "the pipeline is full (a sending queue or the memory limiter); retry later"
                            .into(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Sanitizes `request` and hands it on. `encoded` is the request's protobuf encoding when
    /// the caller has it: sanitizing is deterministic, so the store may keep the original bytes
    /// and re-sanitize on replay.
    pub async fn export(
        &self,
        request: TraceRequest,
        encoded: Option<Bytes>,
    ) -> Result<ExportOutcome, IngestError> {
        self.export_from(request, encoded, None).await
    }

    /// [`TraceIngest::export`] for a request from `client` (kept in the batch's context, for
    /// processors that key on the sender, such as k8sattributes).
    pub async fn export_from(
        &self,
        mut request: TraceRequest,
        encoded: Option<Bytes>,
        client: Option<std::net::IpAddr>,
    ) -> Result<ExportOutcome, IngestError> {
        let Some(consumer) = &self.consumer else {
            return Err(IngestError::NotServed(
                "this OTLP receiver is in no traces pipeline".into(),
            ));
        };
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let mut report = sanitize_request(&mut request, &self.config.limits);
        let mut encoded = encoded;
        if let Some(age) = self.config.max_span_age {
            let cutoff = cutoff_ns(age);
            if osprey_model::reject_older_than(&mut request, cutoff, &mut report) > 0 {
                // The original bytes still hold the removed spans; the store re-encodes.
                encoded = None;
            }
        }
        self.stats
            .spans_rejected
            .fetch_add(report.rejected, Ordering::Relaxed);
        let outcome = ExportOutcome {
            accepted: report.accepted,
            rejected: report.rejected,
            message: report.message(),
        };
        if report.accepted == 0 {
            return Ok(outcome);
        }
        let mut batch = TraceBatch::traces(request);
        batch.encoded = encoded;
        self.hand_on(consumer, batch, outcome, client).await
    }

    /// Takes an encoded request. Bytes prost would refuse are a bad request (with prost's
    /// message); a clean request, all of whose spans are within `max_span_age`, goes on as
    /// [`RawTraces`]; anything else is decoded and goes through [`TraceIngest::export_from`].
    pub async fn export_bytes(
        &self,
        bytes: Bytes,
        client: Option<std::net::IpAddr>,
    ) -> Result<ExportOutcome, IngestError> {
        if self.consumer.is_none() {
            return Err(IngestError::NotServed(
                "this OTLP receiver is in no traces pipeline".into(),
            ));
        }
        let skim = match osprey_model::skim::skim(&bytes, &self.config.limits) {
            Ok(s) => s,
            Err(e) => {
                let msg = match osprey_model::skim::decode(&bytes) {
                    Err(prost) => prost.to_string(),
                    Ok(_) => format!("failed to decode Protobuf message: {e}"),
                };
                return Err(IngestError::BadRequest(msg));
            }
        };
        if !(skim.clean && self.young(skim.oldest_start)) {
            let request = osprey_model::skim::decode(&bytes)
                .map_err(|e| IngestError::BadRequest(e.to_string()))?;
            return self.export_from(request, None, client).await;
        }
        self.pass_raw(bytes, skim.spans, client).await
    }

    /// Whether spans starting at `oldest_start` are all within `max_span_age`.
    fn young(&self, oldest_start: u64) -> bool {
        self.config
            .max_span_age
            .is_none_or(|age| oldest_start >= cutoff_ns(age))
    }

    /// Passes on a request a skim found clean (`spans` spans), undecoded.
    pub(crate) async fn pass_raw(
        &self,
        bytes: Bytes,
        spans: usize,
        client: Option<std::net::IpAddr>,
    ) -> Result<ExportOutcome, IngestError> {
        let Some(consumer) = &self.consumer else {
            return Err(IngestError::NotServed(
                "this OTLP receiver is in no traces pipeline".into(),
            ));
        };
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let outcome = ExportOutcome {
            accepted: spans as u64,
            rejected: 0,
            message: None,
        };
        if spans == 0 {
            return Ok(outcome);
        }
        let batch = TraceBatch::from_payload(Payload::RawTraces(RawTraces::new(bytes, spans)));
        self.hand_on(consumer, batch, outcome, client).await
    }

    /// Passes a batch of `outcome.accepted` spans on and counts the result.
    async fn hand_on(
        &self,
        consumer: &SharedConsumer,
        mut batch: TraceBatch,
        outcome: ExportOutcome,
        client: Option<std::net::IpAddr>,
    ) -> Result<ExportOutcome, IngestError> {
        if client.is_some() {
            batch.context = Arc::new(osprey_pipeline::Context {
                client_addr: client,
                ..Default::default()
            });
        }
        match consumer.consume(batch).await {
            Ok(()) => {
                self.stats
                    .spans_accepted
                    .fetch_add(outcome.accepted, Ordering::Relaxed);
                Ok(outcome)
            }
            Err(e) => {
                self.stats.requests_refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, spans = outcome.accepted, "trace export refused");
                Err(IngestError::from(e))
            }
        }
    }
}

/// Nanoseconds since the epoch `age` ago.
pub(crate) fn cutoff_ns(age: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    now.saturating_sub(age).as_nanos() as u64
}

impl From<ConsumeError> for IngestError {
    fn from(e: ConsumeError) -> Self {
        match e {
            ConsumeError::Overloaded {
                retry_after,
                reason,
            } => IngestError::Overloaded {
                retry_after,
                reason,
            },
            ConsumeError::Unavailable(m) => IngestError::Unavailable(m),
            ConsumeError::Permanent(m) => IngestError::Internal(m),
        }
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use osprey_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use std::sync::Mutex;

    /// A consumer that records what it got, or refuses with a set error.
    #[derive(Default)]
    pub struct Recorder {
        pub got: Mutex<Vec<TraceBatch>>,
        pub refuse: Mutex<Option<ConsumeError>>,
        /// Answers `has_room() == false`.
        pub no_room: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl osprey_pipeline::Consumer for Recorder {
        fn has_room(&self) -> bool {
            !self.no_room.load(Ordering::Relaxed)
        }

        async fn consume(&self, batch: TraceBatch) -> Result<(), ConsumeError> {
            if let Some(e) = self
                .refuse
                .lock()
                .map_err(|_| ConsumeError::Unavailable("poisoned".into()))?
                .clone()
            {
                return Err(e);
            }
            self.got
                .lock()
                .map_err(|_| ConsumeError::Unavailable("poisoned".into()))?
                .push(batch);
            Ok(())
        }
    }

    pub fn span(trace: u8, id: u8) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            name: format!("op{id}"),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_100_000_000,
            ..Default::default()
        }
    }

    pub fn request(spans: Vec<Span>) -> TraceRequest {
        TraceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[tokio::test]
    async fn partial_success_counts_rejected_spans() {
        let rec = Arc::new(Recorder::default());
        let ingest = TraceIngest::new(rec.clone(), OtlpConfig::default());
        let mut bad = span(1, 2);
        bad.trace_id = vec![1; 15];
        let out = ingest.export(request(vec![span(1, 1), bad]), None).await;
        let out = out.unwrap_or_default();
        assert_eq!((out.accepted, out.rejected), (1, 1));
        let resp = out.into_response();
        let ps = resp.partial_success.unwrap_or_default();
        assert_eq!(ps.rejected_spans, 1);
        assert!(
            ps.error_message.contains("trace_id must be 16 bytes"),
            "{}",
            ps.error_message
        );
        assert_eq!(rec.got.lock().map(|g| g.len()).unwrap_or(0), 1);
    }

    #[tokio::test]
    async fn clean_request_has_no_partial_success() {
        let rec = Arc::new(Recorder::default());
        let ingest = TraceIngest::new(rec, OtlpConfig::default());
        let out = ingest
            .export(request(vec![span(1, 1)]), None)
            .await
            .unwrap_or_default();
        assert_eq!(out.into_response().partial_success, None);
    }

    #[tokio::test]
    async fn overload_is_passed_back() {
        let rec = Arc::new(Recorder::default());
        if let Ok(mut r) = rec.refuse.lock() {
            *r = Some(ConsumeError::Overloaded {
                retry_after: Duration::from_secs(2),
                reason: "full".into(),
            });
        }
        let ingest = TraceIngest::new(rec, OtlpConfig::default());
        let err = ingest.export(request(vec![span(1, 1)]), None).await;
        assert!(
            matches!(err, Err(IngestError::Overloaded { retry_after, .. }) if retry_after == Duration::from_secs(2))
        );
    }
}
