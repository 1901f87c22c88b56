//! Store settings and their defaults.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// When the WAL forces written records to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// fdatasync once per group commit, before any request in the group is acknowledged.
    /// Survives power loss. Costs one fdatasync per group (group commit amortizes it).
    #[default]
    Always,
    /// write(2) only: acknowledged data survives a process crash (`kill -9`) but not a
    /// power loss or kernel crash.
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            other => Err(format!(
                "fsync policy must be `always` or `never`, got `{other}`"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub fsync: FsyncPolicy,
    /// Spans whose start time is older than this are dropped, a whole hour partition at a time.
    pub retention: Duration,
    /// How often retention and compaction run.
    pub maintenance_interval: Duration,
    /// Flush the buffer once it holds this many bytes of Arrow data...
    pub flush_bytes: u64,
    /// ...or once its oldest batch is this old.
    pub flush_interval: Duration,
    /// Refuse writes (retryable) while the buffer holds more than this.
    pub max_buffer_bytes: u64,
    /// Start a new WAL file after this many bytes.
    pub wal_segment_bytes: u64,
    /// Compact a partition once it has this many files.
    pub compact_min_files: usize,
    /// Largest compacted file, in rows.
    pub compact_max_rows: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// Memory for the rollups of segment files; beyond it the least recently used are
    /// dropped and computed again when needed.
    pub rollup_cache_bytes: usize,
}

impl StoreConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            fsync: FsyncPolicy::Always,
            retention: Duration::from_secs(7 * 24 * 3600),
            maintenance_interval: Duration::from_secs(30),
            flush_bytes: 128 << 20,
            flush_interval: Duration::from_secs(30),
            max_buffer_bytes: 512 << 20,
            wal_segment_bytes: 64 << 20,
            compact_min_files: 4,
            compact_max_rows: 1_000_000,
            row_group_rows: 64 * 1024,
            rollup_cache_bytes: 512 << 20,
        }
    }
}
