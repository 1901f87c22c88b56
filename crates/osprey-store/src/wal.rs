//! The write-ahead log: numbered records in append-only segment files.
//!
//! A record is `len: u32 LE | crc32: u32 LE | seq: u64 LE | payload[len]`, the CRC covering
//! the sequence number and the payload. Segment files are named by their first sequence
//! number (`00000000000000000001.wal`) so ordering and obsolescence need no index.
//! A torn or corrupt tail (a crash during write) ends replay of that file: every record before
//! it is kept and the damage is reported, never fatal.

use crate::config::FsyncPolicy;
use crate::error::{Result, StoreError};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const HEADER: usize = 16;
/// A single record may not exceed this (a larger length field means corruption).
pub const MAX_RECORD: usize = 1 << 30;

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.wal")
}

/// WAL segment files in `dir`, sorted by first sequence number.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    for entry in rd {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".wal") {
            if let Ok(seq) = stem.parse::<u64>() {
                out.push((seq, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends records; owned by one thread.
pub struct WalWriter {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    offset: u64,
    next_seq: u64,
    segment_bytes: u64,
    fsync: FsyncPolicy,
    scratch: Vec<u8>,
}

impl WalWriter {
    /// Starts a fresh segment whose first record will be `next_seq`.
    pub fn create(
        dir: &Path,
        next_seq: u64,
        segment_bytes: u64,
        fsync: FsyncPolicy,
    ) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let path = dir.join(segment_name(next_seq));
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        sync_dir(dir)?;
        Ok(WalWriter {
            dir: dir.to_path_buf(),
            file,
            path,
            offset: 0,
            next_seq,
            segment_bytes,
            fsync,
            scratch: Vec::new(),
        })
    }

    /// The sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Writes `payloads` as consecutive records with one write (and one fdatasync under
    /// [`FsyncPolicy::Always`]). Returns the sequence number of the first. On error nothing
    /// of the group remains in the file.
    pub fn append_group(&mut self, payloads: &[&[u8]]) -> Result<u64> {
        let first = self.next_seq;
        self.scratch.clear();
        for (i, p) in payloads.iter().enumerate() {
            if p.len() > MAX_RECORD {
                return Err(StoreError::Wal(format!(
                    "record of {} bytes exceeds the WAL record limit",
                    p.len()
                )));
            }
            let seq = first + i as u64;
            self.scratch
                .extend_from_slice(&(p.len() as u32).to_le_bytes());
            self.scratch
                .extend_from_slice(&checksum(seq, p).to_le_bytes());
            self.scratch.extend_from_slice(&seq.to_le_bytes());
            self.scratch.extend_from_slice(p);
        }
        let res = self
            .file
            .write_all(&self.scratch)
            .and_then(|_| match self.fsync {
                FsyncPolicy::Always => self.file.sync_data(),
                FsyncPolicy::Never => Ok(()),
            });
        if let Err(e) = res {
            // Cut off whatever part of the group reached the file, so later records are not
            // hidden behind a torn one.
            let _ = self.file.set_len(self.offset);
            return Err(StoreError::io(&self.path, e));
        }
        self.offset += self.scratch.len() as u64;
        self.next_seq += payloads.len() as u64;
        if self.offset >= self.segment_bytes {
            let fresh =
                WalWriter::create(&self.dir, self.next_seq, self.segment_bytes, self.fsync)?;
            *self = fresh;
        }
        Ok(first)
    }
}

/// What replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Records handed to the callback (seq > `after`).
    pub applied: u64,
    /// Records skipped because an earlier flush already holds them.
    pub skipped: u64,
    /// Bytes discarded as torn or corrupt.
    pub discarded_bytes: u64,
    /// Highest sequence number seen (0 if none).
    pub last_seq: u64,
}

/// Replays every intact record with sequence number greater than `after`, in order.
/// A damaged tail is cut off the file (it can only hold unacknowledged data) and counted.
pub fn replay(
    dir: &Path,
    after: u64,
    mut apply: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<ReplayReport> {
    let mut report = ReplayReport::default();
    for (_, path) in list_segments(dir)? {
        let data = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        let mut pos = 0usize;
        while pos < data.len() {
            let Some(rec) = parse_record(&data[pos..]) else {
                let lost = (data.len() - pos) as u64;
                tracing::warn!(file = %path.display(), offset = pos, bytes = lost, "WAL: torn or corrupt record; discarding the rest of this file");
                report.discarded_bytes += lost;
                truncate(&path, pos as u64)?;
                break;
            };
            let (seq, payload, used) = rec;
            if seq > after {
                apply(seq, payload)?;
                report.applied += 1;
            } else {
                report.skipped += 1;
            }
            report.last_seq = report.last_seq.max(seq);
            pos += used;
        }
    }
    Ok(report)
}

/// Parses one record at the start of `buf`: `(seq, payload, bytes used)`.
fn parse_record(buf: &[u8]) -> Option<(u64, &[u8], usize)> {
    if buf.len() < HEADER {
        return None;
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().ok()?);
    let seq = u64::from_le_bytes(buf[8..16].try_into().ok()?);
    if len > MAX_RECORD || buf.len() < HEADER + len {
        return None;
    }
    let payload = &buf[HEADER..HEADER + len];
    (checksum(seq, payload) == crc).then_some((seq, payload, HEADER + len))
}

fn truncate(path: &Path, len: u64) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    f.set_len(len)
        .and_then(|_| f.sync_all())
        .map_err(|e| StoreError::io(path, e))
}

/// Deletes segments whose every record is `<= flushed_seq`. The newest segment is kept.
pub fn remove_obsolete(dir: &Path, flushed_seq: u64) -> Result<usize> {
    let segs = list_segments(dir)?;
    let mut removed = 0;
    for pair in segs.windows(2) {
        let (_, path) = &pair[0];
        let (next_first, _) = pair[1];
        if next_first <= flushed_seq + 1 {
            fs::remove_file(path).map_err(|e| StoreError::io(path, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// fsyncs a directory so a created or renamed entry survives power loss.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(dir: &Path, after: u64) -> (Vec<(u64, Vec<u8>)>, ReplayReport) {
        let mut got = Vec::new();
        let rep = replay(dir, after, |s, p| {
            got.push((s, p.to_vec()));
            Ok(())
        })
        .unwrap_or_default();
        (got, rep)
    }

    #[test]
    fn round_trip_and_skip_flushed() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let mut w = WalWriter::create(tmp.path(), 1, 1 << 20, FsyncPolicy::Never)?;
        assert_eq!(w.append_group(&[b"a", b"bb"])?, 1);
        assert_eq!(w.append_group(&[b"ccc"])?, 3);
        let (got, rep) = collect(tmp.path(), 1);
        assert_eq!(got, vec![(2, b"bb".to_vec()), (3, b"ccc".to_vec())]);
        assert_eq!((rep.applied, rep.skipped, rep.last_seq), (2, 1, 3));
        Ok(())
    }

    /// Every possible torn tail keeps all complete records before it.
    #[test]
    fn truncation_at_every_byte_keeps_prefix() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let mut w = WalWriter::create(tmp.path(), 1, 1 << 20, FsyncPolicy::Never)?;
        w.append_group(&[b"first record", b"second"])?;
        let path = tmp.path().join(segment_name(1));
        let full = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        let first_len = HEADER + b"first record".len();
        for cut in 0..full.len() {
            fs::write(&path, &full[..cut]).map_err(|e| StoreError::io(&path, e))?;
            let (got, rep) = collect(tmp.path(), 0);
            let want = if cut >= full.len() {
                2
            } else if cut >= first_len {
                1
            } else {
                0
            };
            assert_eq!(got.len(), want, "cut at {cut}");
            assert_eq!(
                rep.discarded_bytes as usize,
                cut - if want == 1 { first_len } else { 0 },
                "cut at {cut}"
            );
        }
        Ok(())
    }

    /// Flipping any byte of the second record drops that record only.
    #[test]
    fn corruption_is_detected() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let mut w = WalWriter::create(tmp.path(), 1, 1 << 20, FsyncPolicy::Never)?;
        w.append_group(&[b"keep me", b"damaged"])?;
        let path = tmp.path().join(segment_name(1));
        let full = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        let start = HEADER + 7;
        for i in start..full.len() {
            let mut bad = full.clone();
            bad[i] ^= 0x5a;
            fs::write(&path, &bad).map_err(|e| StoreError::io(&path, e))?;
            let (got, rep) = collect(tmp.path(), 0);
            assert_eq!(got, vec![(1, b"keep me".to_vec())], "flip at {i}");
            assert!(rep.discarded_bytes > 0);
        }
        Ok(())
    }

    #[test]
    fn rotation_and_obsolete_removal() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let mut w = WalWriter::create(tmp.path(), 1, 40, FsyncPolicy::Always)?;
        for _ in 0..5 {
            w.append_group(&[&[7u8; 30]])?;
        }
        assert_eq!(list_segments(tmp.path())?.len(), 6);
        assert_eq!(remove_obsolete(tmp.path(), 3)?, 3);
        let (got, _) = collect(tmp.path(), 3);
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![4, 5]);
        Ok(())
    }
}
