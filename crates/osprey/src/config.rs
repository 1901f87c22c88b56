//! `osprey up` settings: defaults, then the YAML file of `--config`, then flags and
//! `OSPREY_*` environment variables. Each listener can be turned off with `none`.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything `osprey up` can be told, as read from a config file (keys as the flags).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UpFile {
    pub data_dir: Option<PathBuf>,
    pub listen_all: Option<bool>,
    pub otlp_grpc_addr: Option<String>,
    pub otlp_http_addr: Option<String>,
    pub grpc_addr: Option<String>,
    pub http_addr: Option<String>,
    pub pg_addr: Option<String>,
    pub pg_password: Option<String>,
    pub pg_tls_cert: Option<PathBuf>,
    pub pg_tls_key: Option<PathBuf>,
    pub jaeger_thrift_addr: Option<String>,
    pub jaeger_grpc_addr: Option<String>,
    pub zipkin_addr: Option<String>,
    pub retention: Option<String>,
    pub fsync: Option<String>,
    pub flush_interval: Option<String>,
    pub maintenance_interval: Option<String>,
    pub max_buffer_bytes: Option<u64>,
    pub rollup_memory_bytes: Option<usize>,
    pub max_request_bytes: Option<usize>,
    pub query_timeout: Option<String>,
    pub query_max_rows: Option<usize>,
    pub query_memory_bytes: Option<usize>,
}

impl UpFile {
    pub fn load(path: &Path) -> Result<UpFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        serde_yaml::from_str(&text)
            .with_context(|| format!("config file {} is invalid", path.display()))
    }

    /// `other`'s values win where set.
    pub fn overlay(self, other: UpFile) -> UpFile {
        macro_rules! pick {
            ($($f:ident),*) => { UpFile { $($f: other.$f.or(self.$f)),* } };
        }
        pick!(
            data_dir,
            listen_all,
            otlp_grpc_addr,
            otlp_http_addr,
            grpc_addr,
            http_addr,
            pg_addr,
            pg_password,
            pg_tls_cert,
            pg_tls_key,
            jaeger_thrift_addr,
            jaeger_grpc_addr,
            zipkin_addr,
            retention,
            fsync,
            flush_interval,
            maintenance_interval,
            max_buffer_bytes,
            rollup_memory_bytes,
            max_request_bytes,
            query_timeout,
            query_max_rows,
            query_memory_bytes
        )
    }
}

/// A listener's address, or off.
pub fn listener(
    field: &str,
    value: Option<&str>,
    default_port: u16,
    listen_all: bool,
) -> Result<Option<SocketAddr>> {
    let host = if listen_all { "0.0.0.0" } else { "127.0.0.1" };
    let text = match value {
        None => format!("{host}:{default_port}"),
        Some(v) if v.eq_ignore_ascii_case("none") => return Ok(None),
        Some(v) => v.to_string(),
    };
    // Accept `:4317` as "the default host, this port".
    let text = if text.starts_with(':') {
        format!("{host}{text}")
    } else {
        text
    };
    match text.parse::<SocketAddr>() {
        Ok(a) => Ok(Some(a)),
        Err(_) => bail!("{field}: `{text}` is not an address; expected HOST:PORT (e.g. 127.0.0.1:{default_port}) or `none`"),
    }
}

pub fn duration(field: &str, value: Option<&str>, default: Duration) -> Result<Duration> {
    match value {
        None => Ok(default),
        Some(v) => humantime::parse_duration(v)
            .with_context(|| format!("{field}: `{v}` is not a duration (examples: 30s, 5m, 7d)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_parse_and_name_the_field() {
        assert_eq!(
            listener("x", None, 4317, false).ok().flatten(),
            "127.0.0.1:4317".parse().ok()
        );
        assert_eq!(
            listener("x", None, 4317, true).ok().flatten(),
            "0.0.0.0:4317".parse().ok()
        );
        assert_eq!(listener("x", Some("none"), 1, false).ok(), Some(None));
        assert_eq!(
            listener("x", Some(":99"), 1, false).ok().flatten(),
            "127.0.0.1:99".parse().ok()
        );
        let e = listener("--pg-addr", Some("nowhere"), 5433, false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("--pg-addr") && e.contains("nowhere"), "{e}");
    }

    #[test]
    fn config_file_rejects_unknown_keys() {
        let ok: Result<UpFile, _> = serde_yaml::from_str("retention: 3d\nhttp-addr: 127.0.0.1:1\n");
        assert_eq!(ok.ok().and_then(|f| f.retention), Some("3d".into()));
        let bad: Result<UpFile, _> = serde_yaml::from_str("retension: 3d\n");
        assert!(bad
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("retension"));
    }
}
