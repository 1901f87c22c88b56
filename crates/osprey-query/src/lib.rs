//! Query: everything that reads the store.
//!
//! - [`table`]: the `spans` table, a DataFusion table over a store snapshot (buffer + Parquet);
//! - [`engine`]: the read-only SQL engine with time, row and memory limits;
//! - [`json`]: result rows as JSON;
//! - [`http`]: `POST /api/sql`.
//!
//! The Jaeger, Tempo, Prometheus and PostgreSQL-wire front ends join this crate later, each
//! as a thin layer over the same engine.

pub mod engine;
pub mod http;
pub mod json;
pub mod table;

pub use engine::{QueryConfig, QueryEngine, QueryError, QueryResult};
