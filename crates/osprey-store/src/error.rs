//! Store errors.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the store buffer is full ({buffered} bytes buffered, limit {limit}); retry later")]
    Overloaded { buffered: u64, limit: u64 },
    #[error("the store is shutting down")]
    ShuttingDown,
    #[error("write-ahead log failure: {0}")]
    Wal(String),
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("manifest {path} is unreadable: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("data directory {0} is in use by another osprey process")]
    Locked(PathBuf),
}

impl StoreError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;
