//! The `file` exporter (Collector-contrib `fileexporter`): appends every batch, whatever its
//! signal, to one file as OTLP/JSON lines (`format: json`, the default: one
//! `Export*ServiceRequest` per line) or length-prefixed protobuf (`format: proto`: a 4-byte
//! big-endian size, then the message). With `compression: zstd` each message is a zstd frame,
//! length-prefixed in both formats. `rotation:` renames the file when it would pass
//! `max_megabytes` ([`writer`]).
//!
//! Durability: each batch is written with one `write` and flushed to the OS before `consume`
//! returns, so acknowledged data survives a crash of this process; it is fsynced at most once
//! per `flush_interval` (on the next write after the interval, and when the exporter is
//! dropped), so a power loss may lose up to that interval.

pub mod writer;

#[cfg(test)]
mod tests;

use crate::otlp::common::present_means_default;
use osprey_pipeline::{go_duration, Batch, ConfigError, ConsumeError, Consumer, Payload};
use prost::Message;
use serde::Deserialize;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use writer::RotatingFile;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub path: String,
    /// Append to an existing file instead of truncating it at start.
    pub append: bool,
    /// Present (even empty) means rotation on, with the defaults below.
    #[serde(deserialize_with = "present_means_default")]
    pub rotation: Option<RotationConfig>,
    /// `json` or `proto`.
    pub format: String,
    /// An encoding extension: not supported.
    pub encoding: serde_yaml::Value,
    /// Empty or `zstd`.
    pub compression: String,
    /// Longest time written data may wait for an fsync; 0 means the default 1s.
    #[serde(with = "go_duration")]
    pub flush_interval: Duration,
    pub group_by: Option<GroupByConfig>,
    pub create_directory: bool,
    /// Octal, e.g. `"0755"`; only with `create_directory`.
    pub directory_permissions: String,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            path: String::new(),
            append: false,
            rotation: None,
            format: "json".into(),
            encoding: serde_yaml::Value::Null,
            compression: String::new(),
            flush_interval: Duration::from_secs(1),
            group_by: None,
            create_directory: false,
            directory_permissions: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RotationConfig {
    /// 0 means the default 100.
    pub max_megabytes: u64,
    /// 0 keeps backups of any age.
    pub max_days: u64,
    /// 0 keeps any number of backups.
    pub max_backups: u64,
    /// Backup timestamps in local time instead of UTC.
    pub localtime: bool,
}

impl Default for RotationConfig {
    fn default() -> Self {
        RotationConfig {
            max_megabytes: 100,
            max_days: 0,
            max_backups: 100,
            localtime: false,
        }
    }
}

/// `group_by:` (a file per resource attribute value): accepted, `enabled: true` is not
/// supported yet.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupByConfig {
    pub enabled: bool,
    pub resource_attribute: String,
    pub max_open_files: u64,
}

impl FileConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.path.is_empty() {
            return Err(ConfigError::new("path", "path must be non-empty"));
        }
        if self.append && !self.compression.is_empty() {
            return Err(ConfigError::new(
                "append",
                "append and compression enabled at the same time is not supported",
            ));
        }
        if self.append && self.rotation.is_some() {
            return Err(ConfigError::new(
                "append",
                "append and rotation enabled at the same time is not supported",
            ));
        }
        if self.format != "json" && self.format != "proto" {
            return Err(ConfigError::new("format", "format type is not supported"));
        }
        if !self.compression.is_empty() && self.compression != "zstd" {
            return Err(ConfigError::new(
                "compression",
                "compression is not supported",
            ));
        }
        if !self.encoding.is_null() {
            return Err(ConfigError::new(
                "encoding",
                "encoding extensions are not supported yet (use format: json or proto)",
            ));
        }
        if self.group_by.as_ref().is_some_and(|g| g.enabled) {
            return Err(ConfigError::new(
                "group_by",
                "group_by is not supported yet",
            ));
        }
        if self.create_directory {
            self.permissions()?;
        } else if !self.directory_permissions.is_empty() {
            return Err(ConfigError::new(
                "directory_permissions",
                "directory_permissions requires create_directory to be true",
            ));
        }
        Ok(())
    }

    /// `directory_permissions` as mode bits (default 0755).
    fn permissions(&self) -> Result<u32, ConfigError> {
        let text = if self.directory_permissions.is_empty() {
            "0755"
        } else {
            &self.directory_permissions
        };
        let bad = |m: &str| ConfigError::new("directory_permissions", m);
        let mode = u32::from_str_radix(text, 8)
            .map_err(|_| bad("directory_permissions value must be a valid octal representation"))?;
        if mode & 0o777 != mode {
            return Err(bad(
                "directory_permissions contain invalid bits for file access",
            ));
        }
        Ok(mode)
    }
}

pub struct FileExporter {
    proto: bool,
    zstd: bool,
    file: Arc<Mutex<RotatingFile>>,
}

impl std::fmt::Debug for FileExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileExporter")
            .field("proto", &self.proto)
            .field("zstd", &self.zstd)
            .finish()
    }
}

fn create_dir(path: &Path, mode: u32) -> std::io::Result<()> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, mode);
    #[cfg(not(unix))]
    let _ = mode;
    builder.create(dir)
}

impl FileExporter {
    /// Validates `config` and opens the file (truncating it unless `append` or `rotation`).
    /// Build one per exporter id: every signal shares the file.
    pub fn new(config: FileConfig) -> Result<FileExporter, ConfigError> {
        config.validate()?;
        let path = Path::new(&config.path);
        if config.create_directory {
            create_dir(path, config.permissions()?).map_err(|e| {
                ConfigError::new("path", format!("cannot create the directory: {e}"))
            })?;
        }
        let sync_every = if config.flush_interval.is_zero() {
            Duration::from_secs(1)
        } else {
            config.flush_interval
        };
        let file = RotatingFile::open(path, config.append, config.rotation.clone(), sync_every)
            .map_err(|e| ConfigError::new("path", format!("cannot open {}: {e}", config.path)))?;
        Ok(Self::with_file(&config, file))
    }

    fn with_file(config: &FileConfig, file: RotatingFile) -> FileExporter {
        FileExporter {
            proto: config.format == "proto",
            zstd: config.compression == "zstd",
            file: Arc::new(Mutex::new(file)),
        }
    }

    /// The bytes one batch adds to the file.
    pub fn encode(&self, batch: &Batch) -> Result<Vec<u8>, ConsumeError> {
        let message = if self.proto {
            match (&batch.encoded, &batch.payload) {
                (Some(bytes), _) => bytes.to_vec(),
                (None, Payload::Traces(r)) => r.encode_to_vec(),
                (None, Payload::RawTraces(r)) => r.to_bytes().to_vec(),
                (None, Payload::Metrics(r)) => r.encode_to_vec(),
                (None, Payload::Logs(r)) => r.encode_to_vec(),
            }
        } else {
            match &batch.payload {
                Payload::Traces(r) => serde_json::to_vec(r),
                Payload::RawTraces(r) => serde_json::to_vec(&r.decode_or_count()?),
                Payload::Metrics(r) => serde_json::to_vec(r),
                Payload::Logs(r) => serde_json::to_vec(r),
            }
            .map_err(|e| ConsumeError::Permanent(format!("cannot encode OTLP/JSON: {e}")))?
        };
        let message = if self.zstd {
            zstd::bulk::compress(&message, 0)
                .map_err(|e| ConsumeError::Permanent(format!("zstd compression failed: {e}")))?
        } else {
            message
        };
        if !self.proto && !self.zstd {
            let mut line = message;
            line.push(b'\n');
            return Ok(line);
        }
        let len = u32::try_from(message.len())
            .map_err(|_| ConsumeError::Permanent("message larger than 4 GiB".into()))?;
        let mut out = Vec::with_capacity(4 + message.len());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&message);
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Consumer for FileExporter {
    async fn consume(&self, batch: Batch) -> Result<(), ConsumeError> {
        let data = self.encode(&batch)?;
        let file = self.file.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
            f.write(&data)
        })
        .await
        .map_err(|e| ConsumeError::Unavailable(format!("file write task failed: {e}")))?;
        written.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput => ConsumeError::Permanent(e.to_string()),
            _ => ConsumeError::Unavailable(format!("cannot write the file: {e}")),
        })
    }
}
