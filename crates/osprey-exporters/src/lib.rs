//! Exporters: the components at the end of a pipeline.
//!
//! For now this holds the `osprey` store exporter, which writes batches into the embedded
//! store ([`store::StoreExporter`]). The OTLP, debug and remote-write exporters of the
//! collector join it here.

pub mod basic;
pub mod debug;
pub mod file;
pub mod otlp;
pub mod otlphttp;
pub mod prw;
pub mod store;

pub use basic::{build_basic, validate_basic, BASIC_TYPES};
