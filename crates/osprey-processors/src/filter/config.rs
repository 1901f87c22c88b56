//! `processors.filter` config: OTTL conditions per context (`traces.resource|span|spanevent`,
//! `logs.resource|log_record`, or the context-inferred `trace_conditions` /
//! `log_conditions` lists), or the legacy `spans` / `logs` `include`/`exclude` properties.
//! Items matching any condition are dropped.

use crate::matching::{
    AttributeConfig, MatchProperties, SeverityNumberConfig, SkipMatcher, Target,
};
use crate::ottl::{paths::infer_context, Conditions, ContextKind, ErrorMode};
use osprey_pipeline::ConfigError;

/// The whole config.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// `ignore` (default, as upstream since the `defaultErrorModeIgnore` gate went stable),
    /// `propagate` or `silent`.
    pub error_mode: ErrorMode,
    /// Legacy span match properties.
    pub spans: LegacySpans,
    pub traces: TraceFilters,
    pub logs: LogFilters,
    /// Accepted; metric filtering is not implemented (logged at startup).
    pub metrics: serde_yaml::Value,
    pub profiles: serde_yaml::Value,
    pub trace_conditions: Vec<ContextConditions>,
    pub log_conditions: Vec<ContextConditions>,
    pub metric_conditions: Vec<serde_yaml::Value>,
    pub profile_conditions: Vec<serde_yaml::Value>,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            error_mode: ErrorMode::Ignore,
            spans: LegacySpans::default(),
            traces: TraceFilters::default(),
            logs: LogFilters::default(),
            metrics: serde_yaml::Value::Null,
            profiles: serde_yaml::Value::Null,
            trace_conditions: Vec::new(),
            log_conditions: Vec::new(),
            metric_conditions: Vec::new(),
            profile_conditions: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LegacySpans {
    pub include: Option<MatchProperties>,
    pub exclude: Option<MatchProperties>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceFilters {
    pub resource: Vec<String>,
    pub span: Vec<String>,
    pub spanevent: Vec<String>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogFilters {
    pub include: Option<LogMatchProperties>,
    pub exclude: Option<LogMatchProperties>,
    pub resource: Vec<String>,
    pub log_record: Vec<String>,
}

/// The filter processor's own log match properties.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogMatchProperties {
    pub match_type: String,
    pub resource_attributes: Vec<AttributeConfig>,
    pub record_attributes: Vec<AttributeConfig>,
    pub severity_texts: Vec<String>,
    pub severity_number: Option<SeverityNumberConfig>,
    pub bodies: Vec<String>,
}

impl LogMatchProperties {
    fn is_empty(&self) -> bool {
        self.resource_attributes.is_empty()
            && self.record_attributes.is_empty()
            && self.severity_texts.is_empty()
            && self.bodies.is_empty()
            && self.severity_number.is_none()
    }

    fn to_match_properties(&self) -> MatchProperties {
        MatchProperties {
            match_type: self.match_type.clone(),
            resources: self.resource_attributes.clone(),
            attributes: self.record_attributes.clone(),
            log_severity_texts: self.severity_texts.clone(),
            log_bodies: self.bodies.clone(),
            log_severity_number: self.severity_number.clone(),
            ..Default::default()
        }
    }
}

/// One entry of `trace_conditions` / `log_conditions`: a bare condition (context inferred
/// from its path prefixes) or a group with an explicit context.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum ContextConditions {
    Flat(String),
    Group(ConditionGroup),
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConditionGroup {
    pub context: String,
    pub conditions: Vec<String>,
    pub error_mode: Option<ErrorMode>,
}

/// Compiled conditions of one context.
#[derive(Debug, Clone)]
pub struct Group {
    pub ctx: ContextKind,
    pub conditions: Conditions,
    pub mode: ErrorMode,
}

/// Compiled rules for one signal.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub groups: Vec<Group>,
    pub legacy: Option<SkipMatcher>,
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.legacy.is_none()
    }

    pub fn of(&self, ctx: ContextKind) -> impl Iterator<Item = &Group> {
        self.groups.iter().filter(move |g| g.ctx == ctx)
    }
}

fn push(
    groups: &mut Vec<Group>,
    list: &[String],
    ctx: ContextKind,
    path: &str,
    mode: ErrorMode,
) -> Result<(), ConfigError> {
    if !list.is_empty() {
        groups.push(Group {
            ctx,
            conditions: Conditions::compile(list, ctx, path)?,
            mode,
        });
    }
    Ok(())
}

fn contextual(
    list: &[ContextConditions],
    key: &str,
    allowed: &[ContextKind],
    mode: ErrorMode,
    groups: &mut Vec<Group>,
) -> Result<(), ConfigError> {
    for (i, entry) in list.iter().enumerate() {
        match entry {
            ContextConditions::Flat(c) => {
                let at = format!("{key}[{i}]");
                let ctx = infer_context(c, allowed)
                    .map_err(|e| ConfigError::new(&at, format!("condition {c:?}: {e}")))?;
                let conditions = Conditions::compile_one(c, ctx, &at)?;
                groups.push(Group {
                    ctx,
                    conditions,
                    mode,
                });
            }
            ContextConditions::Group(g) => {
                let ctx = match g.context.to_ascii_lowercase().as_str() {
                    "resource" => ContextKind::Resource,
                    "span" => ContextKind::Span,
                    "spanevent" => ContextKind::SpanEvent,
                    "log" => ContextKind::Log,
                    other => {
                        return Err(ConfigError::new(
                            format!("{key}[{i}].context"),
                            format!("unsupported context {other:?}"),
                        ))
                    }
                };
                if !allowed.contains(&ctx) {
                    return Err(ConfigError::new(
                        format!("{key}[{i}].context"),
                        format!("context {:?} is not valid here", g.context),
                    ));
                }
                push(
                    groups,
                    &g.conditions,
                    ctx,
                    &format!("{key}[{i}].conditions"),
                    g.error_mode.unwrap_or(mode),
                )?;
            }
        }
    }
    Ok(())
}

impl FilterConfig {
    /// Compiles the trace rules.
    pub fn trace_rules(&self) -> Result<Rules, ConfigError> {
        let t = &self.traces;
        let has_ottl = !t.span.is_empty()
            || !t.spanevent.is_empty()
            || !t.resource.is_empty()
            || !self.trace_conditions.is_empty();
        let has_legacy = self.spans.include.is_some() || self.spans.exclude.is_some();
        if has_ottl && has_legacy {
            return Err(ConfigError::new(
                "",
                "cannot use ottl conditions and include/exclude for spans at the same time",
            ));
        }
        let mut rules = Rules::default();
        let m = self.error_mode;
        push(
            &mut rules.groups,
            &t.resource,
            ContextKind::Resource,
            "traces.resource",
            m,
        )?;
        push(
            &mut rules.groups,
            &t.span,
            ContextKind::Span,
            "traces.span",
            m,
        )?;
        push(
            &mut rules.groups,
            &t.spanevent,
            ContextKind::SpanEvent,
            "traces.spanevent",
            m,
        )?;
        let allowed = [
            ContextKind::Resource,
            ContextKind::Span,
            ContextKind::SpanEvent,
        ];
        contextual(
            &self.trace_conditions,
            "trace_conditions",
            &allowed,
            m,
            &mut rules.groups,
        )?;
        if has_legacy {
            rules.legacy = Some(
                SkipMatcher::new(
                    self.spans.include.as_ref(),
                    self.spans.exclude.as_ref(),
                    Target::Spans,
                )
                .map_err(|e| e.under("spans"))?,
            );
        }
        Ok(rules)
    }

    /// Compiles the log rules.
    pub fn log_rules(&self) -> Result<Rules, ConfigError> {
        let l = &self.logs;
        let has_ottl =
            !l.log_record.is_empty() || !l.resource.is_empty() || !self.log_conditions.is_empty();
        let include = l
            .include
            .as_ref()
            .filter(|p| !p.is_empty())
            .map(LogMatchProperties::to_match_properties);
        let exclude = l
            .exclude
            .as_ref()
            .filter(|p| !p.is_empty())
            .map(LogMatchProperties::to_match_properties);
        let has_legacy = include.is_some() || exclude.is_some();
        if has_ottl && has_legacy {
            return Err(ConfigError::new(
                "",
                "cannot use ottl conditions and include/exclude for logs at the same time",
            ));
        }
        let mut rules = Rules::default();
        let m = self.error_mode;
        push(
            &mut rules.groups,
            &l.resource,
            ContextKind::Resource,
            "logs.resource",
            m,
        )?;
        push(
            &mut rules.groups,
            &l.log_record,
            ContextKind::Log,
            "logs.log_record",
            m,
        )?;
        contextual(
            &self.log_conditions,
            "log_conditions",
            &[ContextKind::Resource, ContextKind::Log],
            m,
            &mut rules.groups,
        )?;
        if has_legacy {
            rules.legacy = Some(
                SkipMatcher::new(include.as_ref(), exclude.as_ref(), Target::Logs)
                    .map_err(|e| e.under("logs"))?,
            );
        }
        Ok(rules)
    }

    /// Whether metric or profile filters were configured (not implemented here).
    pub fn has_unsupported_filters(&self) -> bool {
        let set =
            |v: &serde_yaml::Value| !v.is_null() && v.as_mapping().is_none_or(|m| !m.is_empty());
        set(&self.metrics)
            || set(&self.profiles)
            || !self.metric_conditions.is_empty()
            || !self.profile_conditions.is_empty()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.trace_rules()?;
        self.log_rules()?;
        Ok(())
    }
}
