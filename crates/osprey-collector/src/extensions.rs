//! Extensions: `health_check` (HTTP status of the collector, port 13133) and `file_storage`
//! (a directory persistent sending queues keep their batches in).

use osprey_pipeline::{bind_addr, ConfigError};
use serde_yaml::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    pub endpoint: String,
    pub path: String,
    pub response_body: Value,
    pub check_collector_pipeline: Value,
    pub tls: Value,
    pub cors: Value,
    pub include_metadata: bool,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            endpoint: "localhost:13133".into(),
            path: "/".into(),
            response_body: Value::Null,
            check_collector_pipeline: Value::Null,
            tls: Value::Null,
            cors: Value::Null,
            include_metadata: false,
        }
    }
}

impl HealthCheckConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.addr()?;
        if !self.path.starts_with('/') {
            return Err(ConfigError::new("path", "must start with /"));
        }
        if !self.tls.is_null() {
            return Err(ConfigError::new(
                "tls",
                "TLS is not supported for health_check yet",
            ));
        }
        Ok(())
    }
    pub fn addr(&self) -> Result<SocketAddr, ConfigError> {
        bind_addr(&self.endpoint).map_err(|m| ConfigError::new("endpoint", m))
    }
}

/// Whether the collector is ready (all pipelines started) or not (starting, shutting down).
#[derive(Clone)]
pub struct Health {
    ready: Arc<AtomicBool>,
    since: Instant,
    since_wall: SystemTime,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            ready: Arc::new(AtomicBool::new(false)),
            since: Instant::now(),
            since_wall: SystemTime::now(),
        }
    }
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
    /// The status body, shaped like the Collector's health_check answer.
    pub fn body(&self) -> serde_json::Value {
        let up = chrono::DateTime::<chrono::Utc>::from(self.since_wall).to_rfc3339();
        let uptime = self.since.elapsed();
        if self.is_ready() {
            serde_json::json!({"status": "Server available", "upSince": up, "uptime": format!("{:?}", Duration::from_millis(uptime.as_millis() as u64))})
        } else {
            serde_json::json!({"status": "Server not available", "upSince": up, "uptime": format!("{:?}", Duration::from_millis(uptime.as_millis() as u64))})
        }
    }
}

/// The health_check router.
pub fn health_router(cfg: &HealthCheckConfig, health: Health) -> axum::Router {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let custom = match &cfg.response_body {
        Value::Mapping(m) => Some((
            m.get("healthy").and_then(Value::as_str).map(str::to_string),
            m.get("unhealthy")
                .and_then(Value::as_str)
                .map(str::to_string),
        )),
        _ => None,
    };
    axum::Router::new().route(
        &cfg.path,
        axum::routing::get(move || {
            let health = health.clone();
            let custom = custom.clone();
            async move {
                let ready = health.is_ready();
                let code = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                match custom.and_then(|(h, u)| if ready { h } else { u }) {
                    Some(text) => (code, text).into_response(),
                    None => (code, axum::Json(health.body())).into_response(),
                }
            }
        }),
    )
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileStorageConfig {
    pub directory: PathBuf,
    #[serde(with = "osprey_pipeline::go_duration")]
    pub timeout: Duration,
    pub create_directory: bool,
    pub directory_permissions: Option<String>,
    pub compaction: Value,
    pub fsync: bool,
}

impl Default for FileStorageConfig {
    fn default() -> Self {
        FileStorageConfig {
            directory: PathBuf::from("/var/lib/otelcol/file_storage"),
            timeout: Duration::from_secs(1),
            create_directory: false,
            directory_permissions: None,
            compaction: Value::Null,
            fsync: false,
        }
    }
}

impl FileStorageConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.create_directory {
            return Ok(());
        }
        match std::fs::metadata(&self.directory) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(ConfigError::new(
                "directory",
                format!("{} is not a directory", self.directory.display()),
            )),
            Err(e) => Err(ConfigError::new(
                "directory",
                format!(
                    "{} cannot be used: {e} (create it, or set create_directory: true)",
                    self.directory.display()
                ),
            )),
        }
    }
}
