//! The three signals and the batch that carries one of them through a pipeline.
//!
//! Traces travel either decoded ([`Payload::Traces`]) or as the protobuf bytes a receiver got
//! ([`Payload::RawTraces`], the collector's fast path: a clean request is passed on, batched
//! and exported without being decoded). A component that needs the structure calls
//! [`Batch::materialize`] (or [`Batch::payload_mut`] / [`Batch::traces_mut`]) first.

use crate::raw::RawTraces;
use crate::ConsumeError;
use bytes::Bytes;
use osprey_model::otlp::collector::logs::v1::ExportLogsServiceRequest;
use osprey_model::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use osprey_model::otlp::metrics::v1::metric::Data;
use osprey_model::TraceRequest;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

pub type MetricsRequest = ExportMetricsServiceRequest;
pub type LogsRequest = ExportLogsServiceRequest;

/// A pipeline's data type, as named in `service.pipelines` (`traces`, `traces/2`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    /// What one item of this signal is called in counters (`spans`, `metric_points`,
    /// `log_records`), as the Collector's own metrics name them.
    pub fn item_name(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "metric_points",
            Signal::Logs => "log_records",
        }
    }

    pub fn parse(text: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The data of one batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Traces(TraceRequest),
    /// An encoded `ExportTraceServiceRequest` known to decode (see [`RawTraces`]).
    RawTraces(RawTraces),
    Metrics(MetricsRequest),
    Logs(LogsRequest),
}

impl Payload {
    pub fn signal(&self) -> Signal {
        match self {
            Payload::Traces(_) | Payload::RawTraces(_) => Signal::Traces,
            Payload::Metrics(_) => Signal::Metrics,
            Payload::Logs(_) => Signal::Logs,
        }
    }

    /// Spans, metric data points or log records.
    pub fn item_count(&self) -> usize {
        match self {
            Payload::Traces(r) => osprey_model::span_count(r),
            Payload::RawTraces(r) => r.spans(),
            Payload::Metrics(r) => metric_point_count(r),
            Payload::Logs(r) => r
                .resource_logs
                .iter()
                .flat_map(|rl| &rl.scope_logs)
                .map(|sl| sl.log_records.len())
                .sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Payload::Traces(r) => r.resource_spans.is_empty(),
            Payload::RawTraces(r) => r.is_empty(),
            Payload::Metrics(r) => r.resource_metrics.is_empty(),
            Payload::Logs(r) => r.resource_logs.is_empty(),
        }
    }
}

/// Data points in a metrics request (what `otelcol_*_metric_points` count).
pub fn metric_point_count(r: &MetricsRequest) -> usize {
    r.resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        })
        .sum()
}

/// Where a batch came from: the client's address (what `k8sattributes` keys pods by) and the
/// request metadata (gRPC metadata or HTTP headers, lower-case keys) when a receiver was asked
/// to keep it (`include_metadata`), for `batch`'s `metadata_keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    pub client_addr: Option<IpAddr>,
    pub metadata: BTreeMap<String, Vec<String>>,
}

/// One unit of work flowing through a pipeline.
#[derive(Debug, Clone)]
pub struct Batch {
    pub payload: Payload,
    /// The protobuf encoding of exactly `payload`, when the receiver already has it (saves
    /// the store or an OTLP exporter a re-encode). Anything that changes `payload` must clear it.
    pub encoded: Option<Bytes>,
    pub context: Arc<Context>,
}

impl Default for Batch {
    fn default() -> Self {
        Batch::traces(TraceRequest::default())
    }
}

impl Batch {
    pub fn from_payload(payload: Payload) -> Self {
        Batch {
            payload,
            encoded: None,
            context: Arc::default(),
        }
    }
    pub fn traces(request: TraceRequest) -> Self {
        Batch::from_payload(Payload::Traces(request))
    }
    pub fn metrics(request: MetricsRequest) -> Self {
        Batch::from_payload(Payload::Metrics(request))
    }
    pub fn logs(request: LogsRequest) -> Self {
        Batch::from_payload(Payload::Logs(request))
    }
    pub fn signal(&self) -> Signal {
        self.payload.signal()
    }
    pub fn item_count(&self) -> usize {
        self.payload.item_count()
    }
    /// Span count (0 for other signals).
    pub fn span_count(&self) -> usize {
        match &self.payload {
            Payload::Traces(r) => osprey_model::span_count(r),
            Payload::RawTraces(r) => r.spans(),
            _ => 0,
        }
    }
    /// The decoded traces in this batch, if it carries decoded traces (`None` for
    /// [`Payload::RawTraces`]: [`Batch::materialize`] first).
    pub fn trace_request(&self) -> Option<&TraceRequest> {
        match &self.payload {
            Payload::Traces(r) => Some(r),
            _ => None,
        }
    }
    /// Whether the traces are still the receiver's bytes.
    pub fn is_raw(&self) -> bool {
        matches!(self.payload, Payload::RawTraces(_))
    }
    /// Decodes [`Payload::RawTraces`] in place (a no-op for anything else). The bytes stay as
    /// [`Batch::encoded`], since they encode exactly the decoded request. A decode failure
    /// (which a skimmed request cannot have) is logged, counted in
    /// [`crate::raw::decode_failures`], and returned as a permanent error: the batch is dropped.
    pub fn materialize(&mut self) -> Result<(), ConsumeError> {
        let Payload::RawTraces(raw) = &self.payload else {
            return Ok(());
        };
        let raw = raw.clone().flatten();
        let request = raw.decode_or_count()?;
        let bytes = raw.to_bytes();
        self.payload = Payload::Traces(request);
        if self.encoded.is_none() {
            self.encoded = Some(bytes);
        }
        Ok(())
    }
    /// Mutable access to the payload, decoded; drops the cached encoding, since the caller may
    /// change it.
    pub fn payload_mut(&mut self) -> Result<&mut Payload, ConsumeError> {
        self.materialize()?;
        self.encoded = None;
        Ok(&mut self.payload)
    }
    /// Mutable access to the decoded traces (`None` for other signals); drops the cached
    /// encoding.
    pub fn traces_mut(&mut self) -> Result<Option<&mut TraceRequest>, ConsumeError> {
        match self.payload_mut()? {
            Payload::Traces(r) => Ok(Some(r)),
            _ => Ok(None),
        }
    }
}
