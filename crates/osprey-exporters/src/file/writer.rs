//! The file the `file` exporter writes, with lumberjack-style rotation: before a write that
//! would take the file past `max_megabytes`, it is renamed to `<name>-<timestamp><.ext>`
//! (`2006-01-02T15-04-05.000`, UTC unless `localtime`) and a new file is started; then backups
//! beyond `max_backups` or older than `max_days` are removed.

use super::RotationConfig;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

const TIMESTAMP: &str = "%Y-%m-%dT%H-%M-%S%.3f";

#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Option<RotationConfig>,
    max_bytes: Option<u64>,
    sync_every: Duration,
    last_sync: Instant,
    dirty: bool,
}

impl RotatingFile {
    /// Opens `path`: with rotation, appends to an existing file (as lumberjack does); without,
    /// truncates it unless `append`.
    pub fn open(
        path: &Path,
        append: bool,
        rotation: Option<RotationConfig>,
        sync_every: Duration,
    ) -> io::Result<RotatingFile> {
        let keep = append || rotation.is_some();
        let mut opts = OpenOptions::new();
        opts.create(true);
        if keep {
            opts.append(true);
        } else {
            opts.write(true).truncate(true);
        }
        let file = opts.open(path)?;
        let size = file.metadata()?.len();
        let max_bytes = rotation.as_ref().map(|r| {
            let mb = if r.max_megabytes == 0 {
                100
            } else {
                r.max_megabytes
            };
            mb * 1024 * 1024
        });
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file,
            size,
            rotation,
            max_bytes,
            sync_every,
            last_sync: Instant::now(),
            dirty: false,
        })
    }

    /// Rotation at `max` bytes instead of whole megabytes (tests).
    #[cfg(test)]
    pub fn with_max_bytes(mut self, max: u64) -> Self {
        self.max_bytes = Some(max);
        self
    }

    /// Writes `data` in one piece (rotating first if it would not fit), flushes it to the OS,
    /// and fsyncs when the last sync is older than the flush interval.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(max) = self.max_bytes {
            let len = data.len() as u64;
            if len > max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("write length {len} exceeds maximum file size {max}"),
                ));
            }
            if self.size + len > max && self.size > 0 {
                self.rotate()?;
            }
        }
        self.file.write_all(data)?;
        self.file.flush()?;
        self.size += data.len() as u64;
        self.dirty = true;
        if self.last_sync.elapsed() >= self.sync_every {
            self.sync()?;
        }
        Ok(())
    }

    /// fsyncs what was written since the last sync.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// `dir/name` split into (`name` without extension, extension with its dot).
    fn name_parts(&self) -> (PathBuf, String, String) {
        let dir = self
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let file = self
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        match file.rfind('.') {
            Some(i) if i > 0 => (dir, file[..i].to_string(), file[i..].to_string()),
            _ => (dir, file, String::new()),
        }
    }

    fn backup_name(&self, now: SystemTime) -> PathBuf {
        let (dir, stem, ext) = self.name_parts();
        let utc: chrono::DateTime<chrono::Utc> = now.into();
        let stamp = if self.rotation.as_ref().is_some_and(|r| r.localtime) {
            utc.with_timezone(&chrono::Local)
                .format(TIMESTAMP)
                .to_string()
        } else {
            utc.format(TIMESTAMP).to_string()
        };
        dir.join(format!("{stem}-{stamp}{ext}"))
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.sync()?;
        let first = self.backup_name(SystemTime::now());
        let (dir, _, ext) = self.name_parts();
        let first_name = first
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let first_stem = first_name
            .strip_suffix(ext.as_str())
            .unwrap_or(&first_name)
            .to_string();
        // Rotations within one millisecond get `.1`, `.2`, ... instead of overwriting.
        let mut backup = first;
        let mut n = 1;
        while backup.exists() {
            backup = dir.join(format!("{first_stem}.{n}{ext}"));
            n += 1;
        }
        std::fs::rename(&self.path, &backup)?;
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.size = 0;
        self.cleanup()
    }

    /// Backups of this file, newest first, with their timestamps.
    pub fn backups(&self) -> io::Result<Vec<(PathBuf, chrono::NaiveDateTime, u32)>> {
        let (dir, stem, ext) = self.name_parts();
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let prefix = format!("{stem}-");
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(&ext))
            else {
                continue;
            };
            // `<stamp>` or `<stamp>.<n>` (same-millisecond rotations).
            let (stamp, n) = match (rest.get(..23), rest.get(23..)) {
                (Some(stamp), Some("")) => (stamp, 0),
                (Some(stamp), Some(more)) => {
                    match more.strip_prefix('.').and_then(|n| n.parse().ok()) {
                        Some(n) => (stamp, n),
                        None => continue,
                    }
                }
                _ => continue,
            };
            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(stamp, TIMESTAMP) {
                found.push((entry.path(), t, n));
            }
        }
        found.sort_by_key(|b| std::cmp::Reverse((b.1, b.2)));
        Ok(found)
    }

    fn cleanup(&self) -> io::Result<()> {
        let Some(r) = &self.rotation else {
            return Ok(());
        };
        let backups = self.backups()?;
        let cutoff = (r.max_days > 0).then(|| {
            let now = if r.localtime {
                chrono::Local::now().naive_local()
            } else {
                chrono::Utc::now().naive_utc()
            };
            now - chrono::Duration::days(r.max_days as i64)
        });
        for (i, (path, t, _)) in backups.iter().enumerate() {
            let too_many = r.max_backups > 0 && i as u64 >= r.max_backups;
            let too_old = cutoff.is_some_and(|c| *t < c);
            if too_many || too_old {
                if let Err(e) = std::fs::remove_file(path) {
                    tracing::warn!(
                        "file exporter: cannot remove old backup {}: {e}",
                        path.display()
                    );
                }
            }
        }
        Ok(())
    }
}

impl Drop for RotatingFile {
    fn drop(&mut self) {
        let _ = self.sync();
    }
}
