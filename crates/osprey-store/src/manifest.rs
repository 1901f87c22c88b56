//! The manifest: which Parquet files are live, and which WAL records they already hold.
//!
//! Stored as JSON in `<data_dir>/MANIFEST`, replaced by write-temp + fsync + rename, so a
//! reader after any crash sees one complete version.

use crate::error::{Result, StoreError};
use crate::wal::sync_dir;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::Path;

pub const FILE_NAME: &str = "MANIFEST";

/// One immutable Parquet file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMeta {
    pub id: u64,
    /// Path relative to the data directory.
    pub file: String,
    /// Hour since the epoch of every span's start time in the file.
    pub partition: i64,
    pub rows: u64,
    pub bytes: u64,
    /// Smallest and largest span start time, ns since the epoch.
    pub min_time: i64,
    pub max_time: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// Every WAL record with a sequence number up to this one is in `segments`.
    pub flushed_seq: u64,
    pub next_id: u64,
    pub segments: Vec<SegmentMeta>,
}

impl Manifest {
    pub fn load(data_dir: &Path) -> Result<Manifest> {
        let path = data_dir.join(FILE_NAME);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Manifest {
                path: path.clone(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest {
                version: 1,
                ..Default::default()
            }),
            Err(e) => Err(StoreError::io(path, e)),
        }
    }

    pub fn save(&self, data_dir: &Path) -> Result<()> {
        let tmp = data_dir.join(format!("{FILE_NAME}.tmp"));
        let path = data_dir.join(FILE_NAME);
        let bytes = serde_json::to_vec(self).map_err(|e| StoreError::Manifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut f = fs::File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| StoreError::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
        sync_dir(data_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_load() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        assert_eq!(Manifest::load(tmp.path())?.segments.len(), 0);
        let m = Manifest {
            version: 1,
            flushed_seq: 9,
            next_id: 2,
            segments: vec![SegmentMeta {
                id: 1,
                file: "segments/1/1.parquet".into(),
                partition: 1,
                rows: 3,
                bytes: 100,
                min_time: 5,
                max_time: 6,
            }],
        };
        m.save(tmp.path())?;
        assert_eq!(Manifest::load(tmp.path())?, m);
        fs::write(tmp.path().join(FILE_NAME), b"{not json").map_err(|e| StoreError::io("m", e))?;
        assert!(matches!(
            Manifest::load(tmp.path()),
            Err(StoreError::Manifest { .. })
        ));
        Ok(())
    }
}
