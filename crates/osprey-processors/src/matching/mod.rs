//! The Collector's legacy `include`/`exclude` match properties (`internal/filter/filterconfig`,
//! `filterspan`, `filterlog`, `filtermetric`): which spans, log records or metrics a processor
//! acts on (`attributes`) or drops (`filter`'s `spans:` form).
//!
//! A property set matches when every property given matches: `services` (the resource's
//! `service.name`), `span_names`, `span_kinds` (`SPAN_KIND_SERVER`...) match if any listed
//! item matches; `attributes` and `resources` need every listed key present (and equal, or
//! matching, when a value is given); each `libraries` entry must match the scope. With
//! `match_type: regexp` items are unanchored regular expressions. An item is skipped when it
//! does not match `include`, or matches `exclude`.

use crate::attrs;
use osprey_model::otlp::common::v1::{InstrumentationScope, KeyValue};
use osprey_model::otlp::logs::v1::LogRecord;
use osprey_model::otlp::trace::v1::Span;
use osprey_pipeline::ConfigError;

mod config;
mod sets;

pub use config::{
    AttributeConfig, LibraryConfig, MatchProperties, RegexpConfig, SeverityNumberConfig,
};
use sets::{AttrMatcher, StringSet};

/// Which data a property set is validated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Spans,
    Logs,
    Metrics,
}

const SPAN_KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];

/// The proto name of a span kind number.
pub fn span_kind_name(kind: i32) -> &'static str {
    usize::try_from(kind)
        .ok()
        .and_then(|k| SPAN_KINDS.get(k))
        .copied()
        .unwrap_or("")
}

/// A compiled property set.
#[derive(Debug, Clone, Default)]
struct Props {
    services: Option<StringSet>,
    names: Option<StringSet>,
    kinds: Option<StringSet>,
    attributes: AttrMatcher,
    resources: Option<AttrMatcher>,
    libraries: Vec<(StringSet, Option<StringSet>)>,
    bodies: Option<StringSet>,
    severity_texts: Option<StringSet>,
    severity_min: Option<(i32, bool)>,
    metric_names: Option<StringSet>,
}

fn opt_set(items: &[String], mt: &str, path: &str) -> Result<Option<StringSet>, ConfigError> {
    if items.is_empty() {
        Ok(None)
    } else {
        StringSet::new(items, mt, path).map(Some)
    }
}

fn severity_number(v: &serde_yaml::Value) -> Option<i32> {
    const NAMES: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    if let Some(n) = v.as_i64() {
        return i32::try_from(n).ok().filter(|n| (0..=24).contains(n));
    }
    let s = v.as_str()?.to_ascii_uppercase();
    let (base, step) = match s.find(|c: char| c.is_ascii_digit()) {
        Some(i) => (&s[..i], s[i..].parse::<i32>().ok()?),
        None => (s.as_str(), 1),
    };
    let idx = NAMES.iter().position(|n| *n == base)? as i32;
    (1..=4).contains(&step).then_some(idx * 4 + step)
}

impl Props {
    fn compile(p: &MatchProperties, target: Target) -> Result<Self, ConfigError> {
        let mt = p.match_type.as_str();
        match target {
            Target::Spans => {
                if !p.log_bodies.is_empty()
                    || !p.log_severity_texts.is_empty()
                    || p.log_severity_number.is_some()
                {
                    return Err(ConfigError::new("", "log_bodies, log_severity_texts and log_severity_number should not be specified for trace spans"));
                }
                if p.services.is_empty()
                    && p.span_names.is_empty()
                    && p.attributes.is_empty()
                    && p.libraries.is_empty()
                    && p.resources.is_empty()
                    && p.span_kinds.is_empty()
                {
                    return Err(ConfigError::new("", "at least one of \"services\", \"span_names\", \"span_kinds\", \"attributes\", \"libraries\" or \"resources\" must be specified"));
                }
                if mt == "strict" {
                    if let Some((i, _)) = p
                        .span_kinds
                        .iter()
                        .enumerate()
                        .find(|(_, k)| !SPAN_KINDS[1..].contains(&k.as_str()))
                    {
                        return Err(ConfigError::new(format!("span_kinds[{i}]"), format!("span_kinds string must match one of the standard span kinds when match_type=strict: {:?}", &SPAN_KINDS[1..])));
                    }
                }
            }
            Target::Logs => {
                if !p.span_names.is_empty() || !p.services.is_empty() || !p.span_kinds.is_empty() {
                    return Err(ConfigError::new(
                        "",
                        "services, span_names, and span_kinds are not valid for log records",
                    ));
                }
                if p.attributes.is_empty()
                    && p.libraries.is_empty()
                    && p.resources.is_empty()
                    && p.log_bodies.is_empty()
                    && p.log_severity_texts.is_empty()
                    && p.log_severity_number.is_none()
                {
                    return Err(ConfigError::new("", "at least one of \"attributes\", \"libraries\", \"resources\", \"log_bodies\", \"log_severity_texts\" or \"log_severity_number\" must be specified"));
                }
            }
            Target::Metrics => {}
        }
        let severity_min = match &p.log_severity_number {
            None => None,
            Some(c) => {
                let min = match &c.min {
                    None => 0,
                    Some(v) => severity_number(v).ok_or_else(|| {
                        ConfigError::new("log_severity_number.min", "not a valid severity")
                    })?,
                };
                Some((min, c.match_undefined))
            }
        };
        let mut libraries = Vec::new();
        for (i, l) in p.libraries.iter().enumerate() {
            let name = StringSet::new(
                std::slice::from_ref(&l.name),
                mt,
                &format!("libraries[{i}].name"),
            )?;
            let version = match &l.version {
                Some(v) => Some(StringSet::new(
                    std::slice::from_ref(v),
                    mt,
                    &format!("libraries[{i}].version"),
                )?),
                None => None,
            };
            libraries.push((name, version));
        }
        Ok(Props {
            services: opt_set(&p.services, mt, "services")?,
            names: opt_set(&p.span_names, mt, "span_names")?,
            kinds: opt_set(&p.span_kinds, mt, "span_kinds")?,
            attributes: AttrMatcher::new(&p.attributes, mt, "attributes")?,
            resources: if p.resources.is_empty() {
                None
            } else {
                Some(AttrMatcher::new(&p.resources, mt, "resources")?)
            },
            libraries,
            bodies: opt_set(&p.log_bodies, mt, "log_bodies")?,
            severity_texts: opt_set(&p.log_severity_texts, mt, "log_severity_texts")?,
            severity_min,
            metric_names: opt_set(&p.metric_names, mt, "metric_names")?,
        })
    }

    fn common(
        &self,
        attributes: &[KeyValue],
        resource: &[KeyValue],
        scope: Option<&InstrumentationScope>,
    ) -> bool {
        let (sname, sversion) = scope.map_or(("", ""), |s| (s.name.as_str(), s.version.as_str()));
        for (name, version) in &self.libraries {
            if !name.matches(sname) {
                return false;
            }
            if let Some(v) = version {
                if !v.matches(sversion) {
                    return false;
                }
            }
        }
        if let Some(r) = &self.resources {
            if !r.matches(resource) {
                return false;
            }
        }
        self.attributes.matches(attributes)
    }

    fn span(
        &self,
        resource: &[KeyValue],
        scope: Option<&InstrumentationScope>,
        span: &Span,
    ) -> bool {
        if let Some(s) = &self.services {
            let service = attrs::get(resource, "service.name")
                .map_or_else(|| "<nil-service-name>".to_string(), attrs::as_string);
            if !s.matches(&service) {
                return false;
            }
        }
        if let Some(n) = &self.names {
            if !n.matches(&span.name) {
                return false;
            }
        }
        if let Some(k) = &self.kinds {
            if !k.matches(span_kind_name(span.kind)) {
                return false;
            }
        }
        self.common(&span.attributes, resource, scope)
    }

    fn log(
        &self,
        resource: &[KeyValue],
        scope: Option<&InstrumentationScope>,
        log: &LogRecord,
    ) -> bool {
        if let Some(b) = &self.bodies {
            let body = log.body.as_ref().map(attrs::as_string).unwrap_or_default();
            if !b.matches(&body) {
                return false;
            }
        }
        if let Some(t) = &self.severity_texts {
            if !t.matches(&log.severity_text) {
                return false;
            }
        }
        if let Some((min, undefined)) = self.severity_min {
            let ok = if log.severity_number == 0 {
                undefined
            } else {
                log.severity_number >= min
            };
            if !ok {
                return false;
            }
        }
        self.common(&log.attributes, resource, scope)
    }

    fn metric(&self, resource: &[KeyValue], name: &str) -> bool {
        if let Some(n) = &self.metric_names {
            if !n.matches(name) {
                return false;
            }
        }
        self.resources.as_ref().is_none_or(|r| r.matches(resource))
    }
}

/// Compiled `include`/`exclude`: says whether an item is skipped.
#[derive(Debug, Clone, Default)]
pub struct SkipMatcher {
    include: Option<Props>,
    exclude: Option<Props>,
}

impl SkipMatcher {
    /// Compiles the blocks for `target`; errors are under `include.` / `exclude.`.
    pub fn new(
        include: Option<&MatchProperties>,
        exclude: Option<&MatchProperties>,
        target: Target,
    ) -> Result<Self, ConfigError> {
        let compile =
            |p: Option<&MatchProperties>, at: &str| -> Result<Option<Props>, ConfigError> {
                p.map(|p| Props::compile(p, target).map_err(|e| e.under(at)))
                    .transpose()
            };
        Ok(SkipMatcher {
            include: compile(include, "include")?,
            exclude: compile(exclude, "exclude")?,
        })
    }

    pub fn is_noop(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }

    fn skip(&self, f: impl Fn(&Props) -> bool) -> bool {
        self.include.as_ref().is_some_and(|p| !f(p)) || self.exclude.as_ref().is_some_and(f)
    }

    pub fn skip_span(
        &self,
        resource: &[KeyValue],
        scope: Option<&InstrumentationScope>,
        span: &Span,
    ) -> bool {
        self.skip(|p| p.span(resource, scope, span))
    }

    pub fn skip_log(
        &self,
        resource: &[KeyValue],
        scope: Option<&InstrumentationScope>,
        log: &LogRecord,
    ) -> bool {
        self.skip(|p| p.log(resource, scope, log))
    }

    pub fn skip_metric(&self, resource: &[KeyValue], name: &str) -> bool {
        self.skip(|p| p.metric(resource, name))
    }
}

#[cfg(test)]
mod tests;
