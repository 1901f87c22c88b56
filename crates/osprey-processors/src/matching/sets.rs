//! String sets (`strict` or `regexp`) and attribute matchers of match properties.

use super::AttributeConfig;
use crate::attrs;
use osprey_model::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use osprey_pipeline::ConfigError;
use regex::Regex;

/// A list of strings matched exactly or by regular expression.
#[derive(Debug, Clone)]
pub(super) enum StringSet {
    Strict(Vec<String>),
    Regexp(Vec<Regex>),
}

impl StringSet {
    pub(super) fn new(items: &[String], match_type: &str, path: &str) -> Result<Self, ConfigError> {
        match match_type {
            "strict" => Ok(StringSet::Strict(items.to_vec())),
            "regexp" => items
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    Regex::new(p).map_err(|e| {
                        ConfigError::new(format!("{path}[{i}]"), format!("invalid regexp: {e}"))
                    })
                })
                .collect::<Result<_, _>>()
                .map(StringSet::Regexp),
            other => Err(ConfigError::new(
                "match_type",
                format!("unrecognized match_type: {other:?}, valid types are: [regexp strict]"),
            )),
        }
    }

    pub(super) fn matches(&self, s: &str) -> bool {
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
pub(super) struct AttrMatcher(Vec<(String, ValueMatch)>);

impl AttrMatcher {
    pub(super) fn new(
        list: &[AttributeConfig],
        match_type: &str,
        path: &str,
    ) -> Result<Self, ConfigError> {
        let mut out = Vec::with_capacity(list.len());
        for (i, a) in list.iter().enumerate() {
            let at = |f: &str| format!("{path}[{i}].{f}");
            if a.key.is_empty() {
                return Err(ConfigError::new(
                    at("key"),
                    "can't have empty key in the list of attributes",
                ));
            }
            let m = match &a.value {
                None | Some(serde_yaml::Value::Null) => ValueMatch::Exists,
                Some(v) => {
                    let value =
                        attrs::from_yaml(v).map_err(|e| ConfigError::new(at("value"), e))?;
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

    pub(super) fn matches(&self, map: &[KeyValue]) -> bool {
        if self.0.is_empty() {
            return true;
        }
        if map.is_empty() {
            return false;
        }
        self.0.iter().all(|(key, m)| {
            let Some(v) = attrs::get(map, key) else {
                return false;
            };
            match m {
                ValueMatch::Exists => true,
                ValueMatch::Equal(want) => values_equal(want, v),
                ValueMatch::Regexp(set) => match &v.value {
                    Some(
                        Value::StringValue(_)
                        | Value::BoolValue(_)
                        | Value::IntValue(_)
                        | Value::DoubleValue(_),
                    ) => set.matches(&attrs::as_string(v)),
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
