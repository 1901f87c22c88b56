//! Receivers: the components at the start of a pipeline. Each one speaks a wire protocol,
//! decodes and sanitizes what arrives, hands it to the next [`osprey_pipeline::Consumer`],
//! and acknowledges its client only once that consumer accepted the data.
//!
//! - [`otlp`]: OTLP over gRPC (`TraceService/Export`) and over HTTP (`POST /v1/traces`,
//!   protobuf or JSON, optionally gzip), with the OTLP spec's partial-success and retry rules.
//!
//! Jaeger, Zipkin and Prometheus remote-write receivers join this crate later.

pub mod jaeger;
pub mod otlp;
pub mod zipkin;

pub use otlp::{OtlpConfig, TraceIngest};
