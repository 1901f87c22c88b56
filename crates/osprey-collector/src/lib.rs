//! `osprey collector`: the OpenTelemetry Collector's YAML configuration (parsing, `${env:VAR}`
//! expansion, merging several files, validation that names the bad key), the pipeline graph
//! built from it, the built-in processors that shape flow (batch, memory_limiter), the exporter
//! helper (sending queue, retry, persistent queue), and the service around it (health_check,
//! own telemetry on 8888).

pub mod batch;
pub mod config;
pub mod exporters;
pub mod extensions;
pub mod factories;
pub mod graph;
pub mod memory_limiter;
pub mod otlp_receiver;
pub mod sending;
pub mod split;
pub mod telemetry;
pub mod validate;

pub use config::{load, parse_str, LoadError};
pub use graph::{start, Running};
