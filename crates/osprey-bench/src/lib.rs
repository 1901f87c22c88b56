//! `osprey-bench` owns Osprey's synthetic load and its benchmarks:
//! - [`gen`]: the realistic multi-service trace workload (OTLP export requests), shared by
//!   the load generator and the PostgreSQL baseline;
//! - [`loadgen`]: `osprey loadgen`, which sends that workload to an OTLP endpoint (gRPC or
//!   HTTP) at a target rate and reports throughput and export latency;
//! - [`bench`]: `osprey bench`, which starts an Osprey server as a child process, measures
//!   ingest, storage and query figures against the targets, compares them with a
//!   PostgreSQL (Promscale-like) baseline, and writes BENCHMARKS.md.

pub mod bench;
pub mod gen;
pub mod loadgen;

pub use loadgen::{run_loadgen, LoadgenArgs, LoadgenReport, Protocol};
