//! The YAML shape of `include` / `exclude` match properties.

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
