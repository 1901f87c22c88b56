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
use osprey_model::otlp::common::v1::{any_value::Value, AnyValue, InstrumentationScope, KeyValue};
use osprey_model::otlp::logs::v1::LogRecord;
use osprey_model::otlp::trace::v1::Span;
use osprey_pipeline::ConfigError;
use regex::Regex;

/// `regexp:` options of a match property set (accepted; matches are not cached here).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegexpConfig {
    pub cacheenabled: bool,
    pub cachemaxnumentries: usize,
}

/// An attribute to match: the key must be present; when `value` is set it must equal it
/// (`strict`) or match it (`regexp`, string values only).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributeConfig {
    pub key: String,
    pub value: Option<serde_yaml::Value>,
}

/// An instrumentation scope to match; `version` unset matches any version.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LibraryConfig {
    pub name: String,
    pub version: Option<String>,
}

/// `log_severity_number`: matches records at or above `min`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeverityNumberConfig {
    pub min: Option<serde_yaml::Value>,
    pub match_undefined: bool,
}

/// One `include` or `exclude` block.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchProperties {
    pub match_type: String,
    pub regexp: Option<RegexpConfig>,
    pub services: Vec<String>,
    pub span_names: Vec<String>,
    pub span_kinds: Vec<String>,
    pub attributes: Vec<AttributeConfig>,
    pub resources: Vec<AttributeConfig>,
    pub libraries: Vec<LibraryConfig>,
    pub log_bodies: Vec<String>,
    pub log_severity_texts: Vec<String>,
    pub log_severity_number: Option<SeverityNumberConfig>,
    pub metric_names: Vec<String>,
}

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
    usize::try_from(kind).ok().and_then(|k| SPAN_KINDS.get(k)).copied().unwrap_or("")
}

/// A list of strings matched exactly or by regular expression.
#[derive(Debug, Clone)]
enum StringSet {
    Strict(Vec<String>),
    Regexp(Vec<Regex>),
}

impl StringSet {
    fn new(items: &[String], match_type: &str, path: &str) -> Result<Self, ConfigError> {
        match match_type {
            "strict" => Ok(StringSet::Strict(items.to_vec())),
            "regexp" => items
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    Regex::new(p).map_err(|e| ConfigError::new(format!("{path}[{i}]"), format!("invalid regexp: {e}")))
                })
                .collect::<Result<_, _>>()
                .map(StringSet::Regexp),
            other => Err(ConfigError::new(
                "match_type",
                format!("unrecognized match_type: {other:?}, valid types are: [regexp strict]"),
            )),
        }
    }

    fn matches(&self, s: &str) -> bool {
        match self {
            StringSet::Strict(items) => items.iter().any(|i| i == s),
            StringSet::Regexp(res) => res.iter().any(|r| r.is_match(s)),
        }
    }
}

#[derive(Debug, Clone)]
enum ValueMatch {
    Exists,
    Equal(AnyValue),
    Regexp(StringSet),
}

#[derive(Debug, Clone, Default)]
struct AttrMatcher(Vec<(String, ValueMatch)>);

impl AttrMatcher {
    fn new(list: &[AttributeConfig], match_type: &str, path: &str) -> Result<Self, ConfigError> {
        let mut out = Vec::with_capacity(list.len());
        for (i, a) in list.iter().enumerate() {
            let at = |f: &str| format!("{path}[{i}].{f}");
            if a.key.is_empty() {
                return Err(ConfigError::new(at("key"), "can't have empty key in the list of attributes"));
            }
            let m = match &a.value {
                None | Some(serde_yaml::Value::Null) => ValueMatch::Exists,
                Some(v) => {
                    let value = attrs::from_yaml(v).map_err(|e| ConfigError::new(at("value"), e))?;
                    match match_type {
                        "regexp" => match &value.value {
                            Some(Value::StringValue(s)) => {
                                ValueMatch::Regexp(StringSet::new(std::slice::from_ref(s), "regexp", &at("value"))?)
                            }
                            _ => {
                                return Err(ConfigError::new(
                                    at("value"),
                                    format!("match_type=regexp for {:?} only supports Str", a.key),
                                ))
                            }
                        },
                        "strict" => ValueMatch::Equal(value),
                        other => {
                            return Err(ConfigError::new(
                                "match_type",
                                format!("unrecognized match_type: {other:?}, valid types are: [regexp strict]"),
                            ))
                        }
                    }
                }
            };
            out.push((a.key.clone(), m));
        }
        Ok(AttrMatcher(out))
    }

    fn matches(&self, map: &[KeyValue]) -> bool {
        if self.0.is_empty() {
            return true;
        }
        if map.is_empty() {
            return false;
        }
        self.0.iter().all(|(key, m)| {
            let Some(v) = attrs::get(map, key) else { return false };
            match m {
                ValueMatch::Exists => true,
                ValueMatch::Equal(want) => values_equal(want, v),
                ValueMatch::Regexp(set) => match &v.value {
                    Some(Value::StringValue(_) | Value::BoolValue(_) | Value::IntValue(_) | Value::DoubleValue(_)) => {
                        set.matches(&attrs::as_string(v))
                    }
                    _ => false,
                },
            }
        })
    }
}

fn values_equal(a: &AnyValue, b: &AnyValue) -> bool {
    match (&a.value, &b.value) {
        (Some(Value::DoubleValue(x)), Some(Value::DoubleValue(y))) => x == y,
        (x, y) => x == y,
    }
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
                if !p.log_bodies.is_empty() || !p.log_severity_texts.is_empty() || p.log_severity_number.is_some() {
                    return Err(ConfigError::new("", "log_bodies, log_severity_texts and log_severity_number should not be specified for trace spans"));
                }
                if p.services.is_empty() && p.span_names.is_empty() && p.attributes.is_empty() && p.libraries.is_empty() && p.resources.is_empty() && p.span_kinds.is_empty() {
                    return Err(ConfigError::new("", "at least one of \"services\", \"span_names\", \"span_kinds\", \"attributes\", \"libraries\" or \"resources\" must be specified"));
                }
                if mt == "strict" {
                    if let Some((i, _)) = p.span_kinds.iter().enumerate().find(|(_, k)| !SPAN_KINDS[1..].contains(&k.as_str())) {
                        return Err(ConfigError::new(format!("span_kinds[{i}]"), format!("span_kinds string must match one of the standard span kinds when match_type=strict: {:?}", &SPAN_KINDS[1..])));
                    }
                }
            }
            Target::Logs => {
                if !p.span_names.is_empty() || !p.services.is_empty() || !p.span_kinds.is_empty() {
                    return Err(ConfigError::new("", "services, span_names, and span_kinds are not valid for log records"));
                }
                if p.attributes.is_empty() && p.libraries.is_empty() && p.resources.is_empty() && p.log_bodies.is_empty() && p.log_severity_texts.is_empty() && p.log_severity_number.is_none() {
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
                    Some(v) => severity_number(v).ok_or_else(|| ConfigError::new("log_severity_number.min", "not a valid severity"))?,
                };
                Some((min, c.match_undefined))
            }
        };
        let mut libraries = Vec::new();
        for (i, l) in p.libraries.iter().enumerate() {
            let name = StringSet::new(std::slice::from_ref(&l.name), mt, &format!("libraries[{i}].name"))?;
            let version = match &l.version {
                Some(v) => Some(StringSet::new(std::slice::from_ref(v), mt, &format!("libraries[{i}].version"))?),
                None => None,
            };
            libraries.push((name, version));
        }
        Ok(Props {
            services: opt_set(&p.services, mt, "services")?,
            names: opt_set(&p.span_names, mt, "span_names")?,
            kinds: opt_set(&p.span_kinds, mt, "span_kinds")?,
            attributes: AttrMatcher::new(&p.attributes, mt, "attributes")?,
            resources: if p.resources.is_empty() { None } else { Some(AttrMatcher::new(&p.resources, mt, "resources")?) },
            libraries,
            bodies: opt_set(&p.log_bodies, mt, "log_bodies")?,
            severity_texts: opt_set(&p.log_severity_texts, mt, "log_severity_texts")?,
            severity_min,
            metric_names: opt_set(&p.metric_names, mt, "metric_names")?,
        })
    }

    fn common(&self, attributes: &[KeyValue], resource: &[KeyValue], scope: Option<&InstrumentationScope>) -> bool {
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

    fn span(&self, resource: &[KeyValue], scope: Option<&InstrumentationScope>, span: &Span) -> bool {
        if let Some(s) = &self.services {
            let service = attrs::get(resource, "service.name").map_or_else(|| "<nil-service-name>".to_string(), attrs::as_string);
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

    fn log(&self, resource: &[KeyValue], scope: Option<&InstrumentationScope>, log: &LogRecord) -> bool {
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
            let ok = if log.severity_number == 0 { undefined } else { log.severity_number >= min };
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
    pub fn new(include: Option<&MatchProperties>, exclude: Option<&MatchProperties>, target: Target) -> Result<Self, ConfigError> {
        let compile = |p: Option<&MatchProperties>, at: &str| -> Result<Option<Props>, ConfigError> {
            p.map(|p| Props::compile(p, target).map_err(|e| e.under(at))).transpose()
        };
        Ok(SkipMatcher { include: compile(include, "include")?, exclude: compile(exclude, "exclude")? })
    }

    pub fn is_noop(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }

    fn skip(&self, f: impl Fn(&Props) -> bool) -> bool {
        self.include.as_ref().is_some_and(|p| !f(p)) || self.exclude.as_ref().is_some_and(f)
    }

    pub fn skip_span(&self, resource: &[KeyValue], scope: Option<&InstrumentationScope>, span: &Span) -> bool {
        self.skip(|p| p.span(resource, scope, span))
    }

    pub fn skip_log(&self, resource: &[KeyValue], scope: Option<&InstrumentationScope>, log: &LogRecord) -> bool {
        self.skip(|p| p.log(resource, scope, log))
    }

    pub fn skip_metric(&self, resource: &[KeyValue], name: &str) -> bool {
        self.skip(|p| p.metric(resource, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::str_value;

    fn props(yaml: &str) -> MatchProperties {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue { key: k.into(), value: Some(str_value(v)), ..Default::default() }
    }

    #[test]
    fn span_properties() {
        let inc = props("{match_type: regexp, services: ['^svc-'], span_names: ['^GET '], attributes: [{key: http.status_code}]}");
        let m = SkipMatcher::new(Some(&inc), None, Target::Spans).unwrap();
        let res = vec![kv("service.name", "svc-a")];
        let mut span = Span { name: "GET /x".into(), attributes: vec![kv("http.status_code", "200")], ..Default::default() };
        assert!(!m.skip_span(&res, None, &span));
        span.name = "POST /x".into();
        assert!(m.skip_span(&res, None, &span));
        span.name = "GET /x".into();
        span.attributes.clear();
        assert!(m.skip_span(&res, None, &span), "attribute key required");
        assert!(m.skip_span(&[], None, &Span { name: "GET /".into(), attributes: vec![kv("http.status_code", "1")], ..Default::default() }), "<nil-service-name> doesn't match");
    }

    #[test]
    fn exclude_kinds_and_strict_values() {
        let ex = props("{match_type: strict, span_kinds: [SPAN_KIND_CLIENT], attributes: [{key: env, value: prod}]}");
        let m = SkipMatcher::new(None, Some(&ex), Target::Spans).unwrap();
        let span = Span { kind: 3, attributes: vec![kv("env", "prod")], ..Default::default() };
        assert!(m.skip_span(&[], None, &span));
        let span = Span { kind: 2, attributes: vec![kv("env", "prod")], ..Default::default() };
        assert!(!m.skip_span(&[], None, &span));
        let bad = props("{match_type: strict, span_kinds: [client]}");
        let e = SkipMatcher::new(Some(&bad), None, Target::Spans).unwrap_err();
        assert_eq!(e.path, "include.span_kinds[0]");
        let e = SkipMatcher::new(Some(&props("{match_type: strict}")), None, Target::Spans).unwrap_err();
        assert_eq!(e.path, "include");
        let e = SkipMatcher::new(Some(&props("{match_type: fuzzy, services: [a]}")), None, Target::Spans).unwrap_err();
        assert_eq!(e.path, "include.match_type");
    }

    #[test]
    fn logs_by_severity_and_body() {
        let inc = props("{match_type: strict, log_severity_number: {min: WARN}, log_bodies: [boom]}");
        let m = SkipMatcher::new(Some(&inc), None, Target::Logs).unwrap();
        let log = LogRecord { severity_number: 17, body: Some(str_value("boom")), ..Default::default() };
        assert!(!m.skip_log(&[], None, &log));
        let log = LogRecord { severity_number: 9, body: Some(str_value("boom")), ..Default::default() };
        assert!(m.skip_log(&[], None, &log));
    }
}
