//! Query: everything that reads the store.
//!
//! - [`table`]: the `spans` table, a DataFusion table over a store snapshot (buffer + Parquet);
//! - [`rollup`]: the `span_stats`, `call_edges` and `slow_spans` tables (per-minute rollups) and [`hist_fn`], its histogram
//!   aggregates `hist_quantile` / `hist_merge`;
//! - [`engine`]: the read-only SQL engine with time, row and memory limits;
//! - [`json`]: result rows as JSON;
//! - [`http`]: `POST /api/sql`;
//! - [`traces`]: what the trace APIs share (ids, durations, fetching whole traces);
//! - [`jaeger`]: Jaeger's HTTP query API;
//! - [`tempo`]: Tempo's HTTP API and a TraceQL subset;
//! - [`promscale`]: the `ps_trace` views and tag operators of Promscale;
//! - [`pg`]: the PostgreSQL wire protocol over the same engine.
//!
//! Each front end is a thin layer over the same engine.

pub mod engine;
pub mod hist_fn;
pub mod http;
pub mod jaeger;
pub mod json;
pub mod pg;
pub mod promscale;
pub mod rollup;
pub mod table;
pub mod tempo;
pub mod traces;

pub use engine::{QueryConfig, QueryEngine, QueryError, QueryResult};
