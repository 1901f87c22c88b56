//! The parsed configuration: component ids, sections, pipelines, telemetry settings.

use super::{merge, LoadError, Source};
use osprey_pipeline::Signal;
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

/// The five component sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Receiver,
    Processor,
    Exporter,
    Connector,
    Extension,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Receiver,
        Kind::Processor,
        Kind::Exporter,
        Kind::Connector,
        Kind::Extension,
    ];
    /// The top-level key of the section (`receivers`).
    pub fn section(self) -> &'static str {
        match self {
            Kind::Receiver => "receivers",
            Kind::Processor => "processors",
            Kind::Exporter => "exporters",
            Kind::Connector => "connectors",
            Kind::Extension => "extensions",
        }
    }
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Receiver => "receiver",
            Kind::Processor => "processor",
            Kind::Exporter => "exporter",
            Kind::Connector => "connector",
            Kind::Extension => "extension",
        }
    }
}

/// `type` or `type/name`, as components are keyed in the config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId {
    pub type_name: String,
    pub name: Option<String>,
}

impl ComponentId {
    pub fn parse(text: &str) -> Result<ComponentId, String> {
        let (t, name) = match text.split_once('/') {
            Some((t, n)) => (t.trim(), Some(n.trim())),
            None => (text.trim(), None),
        };
        let valid_type = t.len() <= 63
            && t.starts_with(|c: char| c.is_ascii_alphabetic())
            && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_type {
            return Err(format!(
                "invalid component id {text:?}: the type must start with a letter and hold only \
                 letters, digits and `_`"
            ));
        }
        if let Some(n) = name {
            if n.is_empty()
                || n.len() > 1024
                || n.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(format!(
                    "invalid component id {text:?}: the name after `/` must be non-empty, without spaces"
                ));
            }
        }
        Ok(ComponentId {
            type_name: t.to_string(),
            name: name.map(str::to_string),
        })
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}/{}", self.type_name, n),
            None => f.write_str(&self.type_name),
        }
    }
}

/// `traces`, `metrics/2`, ...
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PipelineId {
    pub signal: Signal,
    pub name: Option<String>,
}

impl fmt::Display for PipelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}/{}", self.signal, n),
            None => write!(f, "{}", self.signal),
        }
    }
}

/// One entry of `service.pipelines`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pipeline {
    pub receivers: Vec<ComponentId>,
    pub processors: Vec<ComponentId>,
    pub exporters: Vec<ComponentId>,
}

/// `service.telemetry`: where the Collector's own metrics are served, and the log level.
#[derive(Debug, Clone, PartialEq)]
pub struct Telemetry {
    /// `None` when `metrics.level: none`.
    pub metrics_addr: Option<SocketAddr>,
    pub log_level: Option<String>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            metrics_addr: Some(SocketAddr::from(([127, 0, 0, 1], 8888))),
            log_level: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Service {
    pub extensions: Vec<ComponentId>,
    pub pipelines: BTreeMap<PipelineId, Pipeline>,
    pub telemetry: Telemetry,
}

/// The whole configuration, before semantic validation.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub components: BTreeMap<Kind, BTreeMap<ComponentId, Value>>,
    pub service: Service,
    /// The sources, in order, for naming the file an error comes from.
    pub sources: Vec<Source>,
}

impl Config {
    pub fn from_sources(sources: Vec<Source>) -> Result<Config, LoadError> {
        let mut merged = Value::Mapping(Default::default());
        for s in &sources {
            merge(&mut merged, s.value.clone());
        }
        let mut config = Config {
            sources,
            ..Default::default()
        };
        config
            .parse_merged(&merged)
            .map_err(|e| config.with_file(e))?;
        Ok(config)
    }

    /// The components of one section.
    pub fn section(&self, kind: Kind) -> impl Iterator<Item = (&ComponentId, &Value)> {
        self.components.get(&kind).into_iter().flatten()
    }

    pub fn component(&self, kind: Kind, id: &ComponentId) -> Option<&Value> {
        self.components.get(&kind).and_then(|m| m.get(id))
    }

    /// Adds the file the error's key was last set in (sources are searched newest first).
    pub fn with_file(&self, mut e: LoadError) -> LoadError {
        if e.file.is_some() {
            return e;
        }
        let keys: Vec<&str> = e.path.split('.').filter(|k| !k.is_empty()).collect();
        let found = self.sources.iter().rev().find(|s| {
            let mut v = &s.value;
            for k in &keys {
                let key = k.split('[').next().unwrap_or(k);
                match v.get(key) {
                    Some(next) => v = next,
                    None => return false,
                }
            }
            true
        });
        e.file = found
            .or_else(|| self.sources.last())
            .map(|s| s.name.clone());
        e
    }

    fn parse_merged(&mut self, merged: &Value) -> Result<(), LoadError> {
        let Value::Mapping(top) = merged else {
            return Err(LoadError::new("", "the config must be a YAML mapping"));
        };
        for (k, v) in top {
            let key = k.as_str().unwrap_or("");
            if key == "service" {
                continue;
            }
            let Some(kind) = Kind::ALL.into_iter().find(|kd| kd.section() == key) else {
                return Err(LoadError::new(
                    key,
                    "unknown top-level key (expected receivers, processors, exporters, connectors, extensions, service)",
                ));
            };
            let entries = self.components.entry(kind).or_default();
            match v {
                Value::Null => {}
                Value::Mapping(m) => {
                    for (id, body) in m {
                        let id_text = id.as_str().unwrap_or("");
                        let cid = ComponentId::parse(id_text)
                            .map_err(|msg| LoadError::new(format!("{key}.{id_text}"), msg))?;
                        entries.insert(cid, body.clone());
                    }
                }
                _ => {
                    return Err(LoadError::new(
                        key,
                        "must be a mapping of component id to settings",
                    ))
                }
            }
        }
        if let Some(service) = top.get("service") {
            self.service = parse_service(service)?;
        } else {
            return Err(LoadError::new(
                "service",
                "missing: the config needs a `service` with `pipelines`",
            ));
        }
        Ok(())
    }
}

fn parse_service(v: &Value) -> Result<Service, LoadError> {
    let Value::Mapping(m) = v else {
        return Err(LoadError::new("service", "must be a mapping"));
    };
    let mut service = Service::default();
    for (k, v) in m {
        let key = k.as_str().unwrap_or("");
        match key {
            "extensions" => service.extensions = id_list(v, "service.extensions")?,
            "pipelines" => service.pipelines = parse_pipelines(v)?,
            "telemetry" => service.telemetry = parse_telemetry(v)?,
            _ => {
                return Err(LoadError::new(
                    format!("service.{key}"),
                    "unknown key (expected extensions, pipelines, telemetry)",
                ))
            }
        }
    }
    Ok(service)
}

fn id_list(v: &Value, path: &str) -> Result<Vec<ComponentId>, LoadError> {
    match v {
        Value::Null => Ok(vec![]),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let text = item.as_str().ok_or_else(|| {
                    LoadError::new(format!("{path}[{i}]"), "must be a component id string")
                })?;
                ComponentId::parse(text).map_err(|m| LoadError::new(format!("{path}[{i}]"), m))
            })
            .collect(),
        _ => Err(LoadError::new(path, "must be a list of component ids")),
    }
}

fn parse_pipelines(v: &Value) -> Result<BTreeMap<PipelineId, Pipeline>, LoadError> {
    let Value::Mapping(m) = v else {
        return Err(LoadError::new("service.pipelines", "must be a mapping"));
    };
    let mut out = BTreeMap::new();
    for (k, body) in m {
        let key = k.as_str().unwrap_or("");
        let path = format!("service.pipelines.{key}");
        let (sig, name) = match key.split_once('/') {
            Some((s, n)) => (s, Some(n.to_string())),
            None => (key, None),
        };
        let signal = Signal::parse(sig).ok_or_else(|| {
            LoadError::new(
                &path,
                format!("unknown signal {sig:?} (expected traces, metrics or logs)"),
            )
        })?;
        if name.as_deref() == Some("") {
            return Err(LoadError::new(&path, "empty pipeline name after `/`"));
        }
        let mut p = Pipeline::default();
        match body {
            Value::Mapping(fields) => {
                for (fk, fv) in fields {
                    let f = fk.as_str().unwrap_or("");
                    let fpath = format!("{path}.{f}");
                    match f {
                        "receivers" => p.receivers = id_list(fv, &fpath)?,
                        "processors" => p.processors = id_list(fv, &fpath)?,
                        "exporters" => p.exporters = id_list(fv, &fpath)?,
                        _ => {
                            return Err(LoadError::new(
                                fpath,
                                "unknown key (expected receivers, processors, exporters)",
                            ))
                        }
                    }
                }
            }
            Value::Null => {}
            _ => return Err(LoadError::new(path, "must be a mapping")),
        }
        out.insert(PipelineId { signal, name }, p);
    }
    Ok(out)
}

fn parse_telemetry(v: &Value) -> Result<Telemetry, LoadError> {
    let mut t = Telemetry::default();
    if v.is_null() {
        return Ok(t);
    }
    let metrics = v.get("metrics");
    if let Some(level) = metrics.and_then(|m| m.get("level")).and_then(Value::as_str) {
        match level {
            "none" => t.metrics_addr = None,
            "basic" | "normal" | "detailed" => {}
            other => {
                return Err(LoadError::new(
                    "service.telemetry.metrics.level",
                    format!("unknown level {other:?} (expected none, basic, normal, detailed)"),
                ))
            }
        }
    }
    if let Some(addr) = metrics
        .and_then(|m| m.get("address"))
        .and_then(Value::as_str)
    {
        t.metrics_addr = Some(
            osprey_pipeline::bind_addr(addr)
                .map_err(|m| LoadError::new("service.telemetry.metrics.address", m))?,
        );
    }
    // The newer form: readers: [{pull: {exporter: {prometheus: {host, port}}}}].
    if let Some(readers) = metrics
        .and_then(|m| m.get("readers"))
        .and_then(Value::as_sequence)
    {
        for (i, r) in readers.iter().enumerate() {
            if let Some(p) = r
                .get("pull")
                .and_then(|p| p.get("exporter"))
                .and_then(|e| e.get("prometheus"))
            {
                let host = p.get("host").and_then(Value::as_str).unwrap_or("localhost");
                let port = p.get("port").and_then(Value::as_u64).unwrap_or(8888);
                let path =
                    format!("service.telemetry.metrics.readers[{i}].pull.exporter.prometheus");
                t.metrics_addr = Some(
                    osprey_pipeline::bind_addr(&format!("{host}:{port}"))
                        .map_err(|m| LoadError::new(path, m))?,
                );
            }
        }
    }
    if let Some(level) = v
        .get("logs")
        .and_then(|l| l.get("level"))
        .and_then(Value::as_str)
    {
        t.log_level = Some(level.to_ascii_lowercase());
    }
    Ok(t)
}
