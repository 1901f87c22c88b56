//! The embedded trace store: write-ahead log, in-memory Arrow buffer, Parquet segments,
//! compaction and retention.
//!
//! Write path (append-only): a request's protobuf bytes go to the [`wal`] (group commit,
//! optional fdatasync), then its Arrow batch joins the in-memory buffer, then the writer is
//! acknowledged. A flush task turns the buffer into immutable Parquet [`segment`]s, one folder
//! per hour of span start time, each file sorted by `trace_id` so a trace lookup reads one row
//! group per file. The [`manifest`] names the live files and the last WAL record they contain;
//! it is replaced atomically, so a crash at any point leaves either the old or the new set,
//! and WAL replay re-applies exactly the records after it. Readers take a [`Snapshot`]; files
//! they hold stay on disk until the last snapshot using them is dropped. Each file and each
//! buffered batch also gives its per-minute [`rollup`] (`span_stats`, `call_edges`,
//! `slow_spans`), computed on first use.

pub mod cache;
pub mod config;
pub mod edges;
pub mod engine;
pub mod error;
pub mod hist;
pub mod manifest;
pub mod rollup;
pub mod segment;
pub mod slow;
pub mod wal;

pub use config::{FsyncPolicy, StoreConfig};
pub use engine::{Snapshot, Store, StoreStats};
pub use error::StoreError;
pub use rollup::{BufferedStats, Rollup};
pub use segment::SegmentFile;
