//! The Collector's configuration file: loading (several files deep-merged, `${env:VAR}`
//! expansion), the model (components by `type[/name]`, `service.pipelines`), and errors that
//! name the file and the path of the bad key.

pub mod expand;
mod model;

pub use model::{ComponentId, Config, Kind, Pipeline, PipelineId, Service, Telemetry};

use serde_yaml::Value;
use std::fmt;
use std::path::Path;

/// A configuration problem: which file, which key, what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    /// The file the bad key came from, when known.
    pub file: Option<String>,
    /// Dotted path of the key (`exporters.otlp.endpoint`); empty for the whole file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl LoadError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        LoadError {
            file: None,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl From<osprey_pipeline::ConfigError> for LoadError {
    fn from(e: osprey_pipeline::ConfigError) -> Self {
        LoadError::new(e.path, e.message)
    }
}

/// One configuration source as given on the command line: a file path, or `yaml:` inline
/// text (`yaml:processors::batch::timeout: 2s`, where `::` separates keys, as the Collector
/// accepts it).
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub value: Value,
}

impl Source {
    /// Reads and parses one `--config` argument, expanding environment references.
    pub fn load(arg: &str, env: &dyn expand::Env) -> Result<Source, LoadError> {
        let (name, text) = if let Some(inline) = arg.strip_prefix("yaml:") {
            let (keys, value) = inline
                .split_once(": ")
                .or_else(|| inline.split_once(':').filter(|(k, _)| !k.contains("::")))
                .ok_or_else(|| {
                    LoadError::new(
                        "",
                        format!("inline config {arg:?} is not `yaml:key::key: value`"),
                    )
                })?;
            let mut text = String::new();
            for (depth, key) in keys.split("::").enumerate() {
                text.push_str(&"  ".repeat(depth));
                text.push_str(key);
                text.push_str(":\n");
            }
            text.pop();
            text.push(' ');
            text.push_str(value);
            (arg.to_string(), text)
        } else if let Some(var) = arg.strip_prefix("env:") {
            // The Collector's env provider: the whole config in one variable (the operator's
            // sidecars pass `--config=env:OTEL_CONFIG`).
            let text = env.get(var).ok_or_else(|| {
                LoadError::new(
                    "",
                    format!("--config {arg}: environment variable {var} is not set"),
                )
            })?;
            (arg.to_string(), text)
        } else {
            let path = arg.strip_prefix("file:").unwrap_or(arg);
            let text = std::fs::read_to_string(Path::new(path)).map_err(|e| LoadError {
                file: Some(path.to_string()),
                path: String::new(),
                message: format!("cannot read the config file: {e}"),
            })?;
            (path.to_string(), text)
        };
        Source::parse(&name, &text, env)
    }

    /// Parses config text; `name` is used in errors.
    pub fn parse(name: &str, text: &str, env: &dyn expand::Env) -> Result<Source, LoadError> {
        let at_file = |path: &str, message: String| LoadError {
            file: Some(name.to_string()),
            path: path.to_string(),
            message,
        };
        let mut value: Value = if text.trim().is_empty() {
            Value::Mapping(Default::default())
        } else {
            serde_yaml::from_str(text).map_err(|e| at_file("", format!("invalid YAML: {e}")))?
        };
        if value.is_null() {
            value = Value::Mapping(Default::default());
        }
        if !value.is_mapping() {
            return Err(at_file("", "the config must be a YAML mapping".into()));
        }
        expand::expand_value(&mut value, env, "").map_err(|m| at_file("", m))?;
        Ok(Source {
            name: name.to_string(),
            value,
        })
    }
}

/// Merges `over` into `base`: mappings merge key by key, anything else is replaced (lists too,
/// as the Collector does).
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) if existing.is_mapping() && v.is_mapping() => merge(existing, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Loads, merges and parses the `--config` arguments (later ones override earlier ones).
pub fn load(args: &[String], env: &dyn expand::Env) -> Result<Config, LoadError> {
    if args.is_empty() {
        return Err(LoadError::new("", "no --config given"));
    }
    let sources = args
        .iter()
        .map(|a| Source::load(a, env))
        .collect::<Result<Vec<_>, _>>()?;
    Config::from_sources(sources)
}

/// Parses one config text (tests, the operator's validation of a CR's `config` string).
pub fn parse_str(name: &str, text: &str, env: &dyn expand::Env) -> Result<Config, LoadError> {
    Config::from_sources(vec![Source::parse(name, text, env)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn env_source_reads_the_whole_config_from_a_variable() {
        let env: HashMap<String, String> = [(
            "OTEL_CONFIG".to_string(),
            "receivers:\n  otlp:\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n".to_string(),
        )]
        .into();
        let source = Source::load("env:OTEL_CONFIG", &env).expect("loads");
        assert!(source.value.get("receivers").is_some());
        let err = Source::load("env:MISSING", &env).expect_err("unset");
        assert!(err.to_string().contains("MISSING"), "{err}");
    }
}
