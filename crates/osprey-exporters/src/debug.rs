//! The `debug` exporter (and its deprecated predecessor `logging`): writes what it receives to
//! the collector's log (`tracing`, level info) or, with `use_internal_logger: false`, to
//! `output_paths` (`stdout`, `stderr` or files, appended).
//!
//! Per batch it writes a summary line (`Traces {"resource spans": 1, "spans": 2}`); at
//! `verbosity: normal` also one line per span / data point / log record ([`normal`]), at
//! `detailed` a full dump ([`detailed`]). The summary line is sampled like the Collector's zap
//! sampler: per second, the first `sampling_initial` are written, then every
//! `sampling_thereafter`th. The text is built by pure functions ([`summary_line`], [`render`]).

pub mod detailed;
pub mod normal;
pub mod text;

use osprey_pipeline::signal::metric_point_count;
use osprey_pipeline::{Batch, ConfigError, ConsumeError, Consumer, Payload};
use serde::{Deserialize, Deserializer};
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    #[default]
    Basic,
    Normal,
    Detailed,
}

impl<'de> Deserialize<'de> for Verbosity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.to_ascii_lowercase().as_str() {
            "basic" => Ok(Verbosity::Basic),
            "normal" => Ok(Verbosity::Normal),
            "detailed" => Ok(Verbosity::Detailed),
            _ => Err(serde::de::Error::custom(format!(
                "verbosity level {text:?} is not supported (basic, normal or detailed)"
            ))),
        }
    }
}

/// `exporters: debug:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebugConfig {
    pub verbosity: Verbosity,
    pub sampling_initial: u64,
    pub sampling_thereafter: u64,
    pub use_internal_logger: bool,
    /// Used when `use_internal_logger` is false: `stdout`, `stderr` or file paths.
    pub output_paths: Vec<String>,
    /// Handled by the pipeline's exporter helper, not here.
    pub sending_queue: serde_yaml::Value,
}

impl Default for DebugConfig {
    fn default() -> Self {
        DebugConfig {
            verbosity: Verbosity::Basic,
            sampling_initial: 2,
            sampling_thereafter: 1,
            use_internal_logger: true,
            output_paths: vec!["stdout".into()],
            sending_queue: serde_yaml::Value::Null,
        }
    }
}

impl DebugConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.use_internal_logger && self.output_paths.is_empty() {
            return Err(ConfigError::new(
                "output_paths",
                "output_paths must be specified and non-empty when use_internal_logger is false",
            ));
        }
        Ok(())
    }
}

/// `exporters: logging:` (removed upstream in v0.111; kept as an alias of `debug`).
/// `loglevel: debug` means detailed output; `normal` prints only the summary, as it did there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    pub loglevel: Option<String>,
    pub verbosity: Option<Verbosity>,
    pub sampling_initial: u64,
    pub sampling_thereafter: u64,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            loglevel: None,
            verbosity: None,
            sampling_initial: 2,
            sampling_thereafter: 500,
        }
    }
}

impl LoggingConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.loglevel.is_some() && self.verbosity.is_some() {
            return Err(ConfigError::new(
                "loglevel",
                "'loglevel' and 'verbosity' are incompatible. Use only 'verbosity' instead",
            ));
        }
        self.effective_verbosity().map(|_| ())
    }

    /// The output level: detailed for `loglevel: debug` / `verbosity: detailed`, else basic.
    pub fn effective_verbosity(&self) -> Result<Verbosity, ConfigError> {
        let v = match (&self.loglevel, self.verbosity) {
            (Some(level), _) => match level.to_ascii_lowercase().as_str() {
                "debug" => Verbosity::Detailed,
                "info" | "warn" | "error" => Verbosity::Basic,
                _ => {
                    return Err(ConfigError::new(
                        "loglevel",
                        format!("unknown log level {level:?} (debug, info, warn or error)"),
                    ))
                }
            },
            (None, Some(Verbosity::Detailed)) => Verbosity::Detailed,
            _ => Verbosity::Basic,
        };
        Ok(v)
    }
}

/// zap's sampler: per one-second window, the first `initial` pass, then every `thereafter`th.
#[derive(Debug)]
pub struct Sampler {
    initial: u64,
    thereafter: u64,
    window: Mutex<Option<(Instant, u64)>>,
}

impl Sampler {
    pub fn new(initial: u64, thereafter: u64) -> Self {
        Sampler {
            initial,
            thereafter,
            window: Mutex::new(None),
        }
    }

    /// Whether a message at `now` is written.
    pub fn allow(&self, now: Instant) -> bool {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let n = match &mut *w {
            Some((start, n)) if now.duration_since(*start) < Duration::from_secs(1) => {
                *n += 1;
                *n
            }
            slot => {
                *slot = Some((now, 1));
                1
            }
        };
        n <= self.initial
            || (self.thereafter != 0 && (n - self.initial).is_multiple_of(self.thereafter))
    }
}

/// The per-batch summary, as the Collector logs it: `Traces {"resource spans": 1, "spans": 2}`
/// (`TracesExporter ...` for the legacy `logging` exporter).
pub fn summary_line(payload: &Payload, legacy: bool) -> String {
    let suffix = if legacy { "Exporter" } else { "" };
    match payload {
        Payload::Traces(r) => format!(
            "Traces{suffix} {{\"resource spans\": {}, \"spans\": {}}}",
            r.resource_spans.len(),
            osprey_model::span_count(r)
        ),
        Payload::Metrics(r) => format!(
            "Metrics{suffix} {{\"resource metrics\": {}, \"metrics\": {}, \"data points\": {}}}",
            r.resource_metrics.len(),
            r.resource_metrics
                .iter()
                .flat_map(|rm| &rm.scope_metrics)
                .map(|sm| sm.metrics.len())
                .sum::<usize>(),
            metric_point_count(r)
        ),
        Payload::Logs(r) => format!(
            "Logs{suffix} {{\"resource logs\": {}, \"log records\": {}}}",
            r.resource_logs.len(),
            payload.item_count()
        ),
        Payload::RawTraces(raw) => match raw.decode() {
            Ok(r) => summary_line(&Payload::Traces(r), legacy),
            Err(_) => format!("Traces{suffix} {{\"spans\": {}}}", raw.spans()),
        },
    }
}

/// The per-record text for `verbosity` (`None` at basic).
pub fn render(verbosity: Verbosity, payload: &Payload) -> Option<String> {
    Some(match (verbosity, payload) {
        (Verbosity::Basic, _) => return None,
        (v, Payload::RawTraces(raw)) => return render(v, &Payload::Traces(raw.decode().ok()?)),
        (Verbosity::Normal, Payload::Traces(r)) => normal::traces(r),
        (Verbosity::Normal, Payload::Metrics(r)) => normal::metrics(r),
        (Verbosity::Normal, Payload::Logs(r)) => normal::logs(r),
        (Verbosity::Detailed, Payload::Traces(r)) => detailed::traces(r),
        (Verbosity::Detailed, Payload::Metrics(r)) => detailed::metrics(r),
        (Verbosity::Detailed, Payload::Logs(r)) => detailed::logs(r),
    })
}

enum Output {
    Log,
    Writers(Vec<(String, Mutex<Box<dyn Write + Send>>)>),
}

pub struct DebugExporter {
    verbosity: Verbosity,
    legacy: bool,
    sampler: Sampler,
    output: Output,
}

impl std::fmt::Debug for DebugExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DebugExporter")
            .field("verbosity", &self.verbosity)
            .finish()
    }
}

impl DebugExporter {
    pub fn new(config: DebugConfig) -> Result<DebugExporter, ConfigError> {
        config.validate()?;
        let output = if config.use_internal_logger {
            Output::Log
        } else {
            let mut writers = Vec::new();
            for path in &config.output_paths {
                let w: Box<dyn Write + Send> = match path.as_str() {
                    "stdout" => Box::new(std::io::stdout()),
                    "stderr" => Box::new(std::io::stderr()),
                    file => Box::new(
                        std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(file)
                            .map_err(|e| {
                                ConfigError::new("output_paths", format!("cannot open {file}: {e}"))
                            })?,
                    ),
                };
                writers.push((path.clone(), Mutex::new(w)));
            }
            Output::Writers(writers)
        };
        Ok(DebugExporter {
            verbosity: config.verbosity,
            legacy: false,
            sampler: Sampler::new(config.sampling_initial, config.sampling_thereafter),
            output,
        })
    }

    /// The `logging` exporter: same output, legacy message names, always to the log.
    pub fn new_logging(config: LoggingConfig) -> Result<DebugExporter, ConfigError> {
        config.validate()?;
        Ok(DebugExporter {
            verbosity: config.effective_verbosity()?,
            legacy: true,
            sampler: Sampler::new(config.sampling_initial, config.sampling_thereafter),
            output: Output::Log,
        })
    }

    fn emit(&self, text: &str) {
        match &self.output {
            Output::Log => tracing::info!(target: "osprey::exporter::debug", "{text}"),
            Output::Writers(writers) => {
                for (path, w) in writers {
                    let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                    if let Err(e) = writeln!(w, "{text}").and_then(|_| w.flush()) {
                        tracing::warn!("debug exporter cannot write to {path}: {e}");
                    }
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Consumer for DebugExporter {
    async fn consume(&self, mut batch: Batch) -> Result<(), ConsumeError> {
        batch.materialize()?;
        if self.sampler.allow(Instant::now()) {
            self.emit(&summary_line(&batch.payload, self.legacy));
        }
        if let Some(text) = render(self.verbosity, &batch.payload) {
            self.emit(text.trim_end_matches('\n'));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
