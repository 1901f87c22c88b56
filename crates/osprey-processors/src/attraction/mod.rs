//! The attribute action list shared by the `attributes` and `resource` processors (the
//! Collector's `coreinternal/attraction`): `insert`, `update`, `upsert`, `delete`, `hash`,
//! `extract` and `convert`, applied in order to one attribute map.
//!
//! `hash` replaces a value by the lower-case hex SHA-256 of its bytes (strings as UTF-8,
//! booleans as one byte, ints and doubles as 8 little-endian bytes; other types hash to "").

use crate::attrs;
use osprey_model::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use osprey_pipeline::{ConfigError, Context};
use regex::Regex;
use sha2::{Digest, Sha256};

/// One entry of an `actions` (or, for `resource`, `attributes`) list.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionConfig {
    /// The attribute acted on.
    pub key: String,
    /// The literal value for insert/update/upsert (any YAML scalar, list or map).
    pub value: Option<serde_yaml::Value>,
    /// A regular expression: for `extract`, named groups become attributes; for `delete` and
    /// `hash`, attribute keys matching it are acted on too.
    pub pattern: String,
    /// Take the value from this attribute of the same map.
    pub from_attribute: String,
    /// Take the value from the request context: `client.address`, `metadata.<key>`,
    /// `auth.<attr>` (no authenticators here: never found) or a bare metadata key.
    pub from_context: String,
    /// For `convert`: `int`, `double` or `string`.
    pub converted_type: String,
    /// `insert`, `update`, `upsert`, `delete`, `hash`, `extract` or `convert` (any case).
    pub action: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Insert,
    Update,
    Upsert,
    Delete,
    Hash,
    Extract,
    Convert,
}

#[derive(Debug, Clone)]
enum Source {
    Value(AnyValue),
    Attribute(String),
    Context(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Int,
    Double,
    Str,
}

#[derive(Debug, Clone)]
struct Action {
    key: String,
    kind: Kind,
    source: Option<Source>,
    regex: Option<Regex>,
    convert_to: Option<Target>,
}

/// A validated action list, ready to apply.
#[derive(Debug, Clone, Default)]
pub struct AttrProc {
    actions: Vec<Action>,
}

impl AttrProc {
    /// Validates `list` (found under the config key `list_key`, e.g. `actions`); errors name
    /// the entry, e.g. `actions[2].action`.
    pub fn new(list: &[ActionConfig], list_key: &str) -> Result<Self, ConfigError> {
        let mut actions = Vec::with_capacity(list.len());
        for (i, a) in list.iter().enumerate() {
            let err = |field: &str, msg: String| {
                ConfigError::new(format!("{list_key}[{i}].{field}"), msg)
            };
            let kind = match a.action.to_ascii_lowercase().as_str() {
                "insert" => Kind::Insert,
                "update" => Kind::Update,
                "upsert" => Kind::Upsert,
                "delete" => Kind::Delete,
                "hash" => Kind::Hash,
                "extract" => Kind::Extract,
                "convert" => Kind::Convert,
                "" => return Err(err("action", "missing required field \"action\"".into())),
                other => {
                    return Err(err(
                        "action",
                        format!("unsupported action {other:?} (expected insert, update, upsert, delete, hash, extract or convert)"),
                    ))
                }
            };
            if matches!(kind, Kind::Delete | Kind::Hash) {
                if a.key.is_empty() && a.pattern.is_empty() {
                    return Err(err(
                        "key",
                        "at least one of \"key\" and \"pattern\" must be set".into(),
                    ));
                }
            } else if a.key.is_empty() {
                return Err(err("key", "missing required field \"key\"".into()));
            }
            let sources = usize::from(a.value.is_some())
                + usize::from(!a.from_attribute.is_empty())
                + usize::from(!a.from_context.is_empty());
            let name = a.action.to_ascii_lowercase();
            let mut action = Action {
                key: a.key.clone(),
                kind,
                source: None,
                regex: None,
                convert_to: None,
            };
            let no_converted_type = |a: &ActionConfig| {
                if a.converted_type.is_empty() {
                    Ok(())
                } else {
                    Err(err(
                        "converted_type",
                        format!("action {name:?} does not use \"converted_type\""),
                    ))
                }
            };
            match kind {
                Kind::Insert | Kind::Update | Kind::Upsert => {
                    if sources == 0 {
                        return Err(err(
                            "value",
                            "one of \"value\", \"from_attribute\" or \"from_context\" must be set"
                                .into(),
                        ));
                    }
                    if sources > 1 {
                        return Err(err("value", "only one of \"value\", \"from_attribute\" and \"from_context\" may be set".into()));
                    }
                    if !a.pattern.is_empty() {
                        return Err(err(
                            "pattern",
                            format!("action {name:?} does not use \"pattern\""),
                        ));
                    }
                    no_converted_type(a)?;
                    action.source = Some(match &a.value {
                        Some(v) => Source::Value(attrs::from_yaml(v).map_err(|e| err("value", e))?),
                        None if !a.from_attribute.is_empty() => {
                            Source::Attribute(a.from_attribute.clone())
                        }
                        None => Source::Context(a.from_context.clone()),
                    });
                }
                Kind::Delete | Kind::Hash => {
                    if a.value.is_some() || !a.from_attribute.is_empty() {
                        return Err(err(
                            "value",
                            format!("action {name:?} does not use \"value\" or \"from_attribute\""),
                        ));
                    }
                    if !a.pattern.is_empty() {
                        action.regex = Some(
                            Regex::new(&a.pattern)
                                .map_err(|e| err("pattern", format!("invalid pattern: {e}")))?,
                        );
                    }
                    no_converted_type(a)?;
                }
                Kind::Extract => {
                    if sources > 0 {
                        return Err(err(
                            "value",
                            "action \"extract\" does not use a value source".into(),
                        ));
                    }
                    if a.pattern.is_empty() {
                        return Err(err(
                            "pattern",
                            "missing required field \"pattern\" for action \"extract\"".into(),
                        ));
                    }
                    no_converted_type(a)?;
                    let re = Regex::new(&a.pattern)
                        .map_err(|e| err("pattern", format!("invalid pattern: {e}")))?;
                    let names: Vec<Option<&str>> = re.capture_names().skip(1).collect();
                    if names.is_empty() {
                        return Err(err(
                            "pattern",
                            "pattern contains no named matcher groups".into(),
                        ));
                    }
                    if names.iter().any(|n| n.is_none()) {
                        return Err(err(
                            "pattern",
                            "pattern contains at least one unnamed matcher group".into(),
                        ));
                    }
                    action.regex = Some(re);
                }
                Kind::Convert => {
                    if sources > 0 || !a.pattern.is_empty() {
                        return Err(err(
                            "value",
                            "action \"convert\" does not use value sources or \"pattern\"".into(),
                        ));
                    }
                    action.convert_to = Some(match a.converted_type.as_str() {
                        "int" => Target::Int,
                        "double" => Target::Double,
                        "string" => Target::Str,
                        "" => {
                            return Err(err(
                                "converted_type",
                                "missing required field \"converted_type\" for action \"convert\""
                                    .into(),
                            ))
                        }
                        other => {
                            return Err(err(
                                "converted_type",
                                format!("invalid value {other:?} (expected int, double or string)"),
                            ))
                        }
                    });
                }
            }
            actions.push(action);
        }
        Ok(AttrProc { actions })
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Applies every action, in order, to `map`; `ctx` serves `from_context`.
    pub fn process(&self, ctx: &Context, map: &mut Vec<KeyValue>) {
        for a in &self.actions {
            match a.kind {
                Kind::Delete => {
                    attrs::remove(map, &a.key);
                    if let Some(re) = &a.regex {
                        map.retain(|kv| !re.is_match(&kv.key));
                    }
                }
                Kind::Insert => {
                    if attrs::contains(map, &a.key) {
                        continue;
                    }
                    if let Some(v) = source_value(a, ctx, map) {
                        attrs::put(map, &a.key, v);
                    }
                }
                Kind::Update => {
                    if !attrs::contains(map, &a.key) {
                        continue;
                    }
                    if let Some(v) = source_value(a, ctx, map) {
                        attrs::put(map, &a.key, v);
                    }
                }
                Kind::Upsert => {
                    if let Some(v) = source_value(a, ctx, map) {
                        attrs::put(map, &a.key, v);
                    }
                }
                Kind::Hash => {
                    if let Some(v) = attrs::get_mut(map, &a.key) {
                        hash_value(v);
                    }
                    if let Some(re) = &a.regex {
                        for kv in map.iter_mut().filter(|kv| re.is_match(&kv.key)) {
                            hash_value(kv.value.get_or_insert_with(AnyValue::default));
                        }
                    }
                }
                Kind::Extract => extract(a, map),
                Kind::Convert => {
                    if let (Some(v), Some(to)) = (attrs::get_mut(map, &a.key), a.convert_to) {
                        convert(v, to);
                    }
                }
            }
        }
    }
}

fn source_value(a: &Action, ctx: &Context, map: &[KeyValue]) -> Option<AnyValue> {
    match a.source.as_ref()? {
        Source::Value(v) => Some(v.clone()),
        Source::Attribute(k) => attrs::get(map, k).cloned(),
        Source::Context(k) => context_value(ctx, k).map(attrs::str_value),
    }
}

/// A `from_context` value: `client.address`, `metadata.<key>`, `auth.<attr>` or a bare
/// metadata key; multiple metadata values are joined with `;`.
pub fn context_value(ctx: &Context, key: &str) -> Option<String> {
    if key == "client.address" {
        return ctx.client_addr.map(|a| a.to_string());
    }
    if key.starts_with("auth.") {
        return None;
    }
    let md_key = key
        .strip_prefix("metadata.")
        .unwrap_or(key)
        .to_ascii_lowercase();
    let values = ctx.metadata.get(&md_key)?;
    if values.is_empty() {
        None
    } else {
        Some(values.join(";"))
    }
}

/// Replaces `v` by the hex SHA-256 of its value (see the module docs).
pub fn hash_value(v: &mut AnyValue) {
    let bytes: Vec<u8> = match &v.value {
        Some(Value::StringValue(s)) => s.as_bytes().to_vec(),
        Some(Value::BoolValue(b)) => vec![u8::from(*b)],
        Some(Value::IntValue(i)) => i.to_le_bytes().to_vec(),
        Some(Value::DoubleValue(d)) => d.to_bits().to_le_bytes().to_vec(),
        _ => Vec::new(),
    };
    let hashed = if bytes.is_empty() {
        String::new()
    } else {
        hex::encode(Sha256::digest(&bytes))
    };
    *v = attrs::str_value(hashed);
}

fn extract(a: &Action, map: &mut Vec<KeyValue>) {
    let Some(re) = &a.regex else { return };
    let Some(text) = attrs::get(map, &a.key)
        .and_then(attrs::as_str)
        .map(str::to_string)
    else {
        return;
    };
    let Some(caps) = re.captures(&text) else {
        return;
    };
    for name in re.capture_names().flatten() {
        let value = caps.name(name).map_or("", |m| m.as_str());
        attrs::put(map, name, attrs::str_value(value));
    }
}

fn convert(v: &mut AnyValue, to: Target) {
    let new = match (to, &v.value) {
        (Target::Str, Some(Value::StringValue(_))) => return,
        (Target::Str, _) => Value::StringValue(attrs::as_string(v)),
        (Target::Int, Some(Value::DoubleValue(d))) => Value::IntValue(*d as i64),
        (Target::Int, Some(Value::BoolValue(b))) => Value::IntValue(i64::from(*b)),
        (Target::Int, Some(Value::StringValue(s))) => match s.parse::<i64>() {
            Ok(n) => Value::IntValue(n),
            Err(_) => {
                tracing::debug!(value = %s, "string could not be converted to int");
                return;
            }
        },
        (Target::Double, Some(Value::IntValue(i))) => Value::DoubleValue(*i as f64),
        (Target::Double, Some(Value::BoolValue(b))) => {
            Value::DoubleValue(if *b { 1.0 } else { 0.0 })
        }
        (Target::Double, Some(Value::StringValue(s))) => match s.parse::<f64>() {
            Ok(n) => Value::DoubleValue(n),
            Err(_) => {
                tracing::debug!(value = %s, "string could not be converted to double");
                return;
            }
        },
        _ => return,
    };
    v.value = Some(new);
}

#[cfg(test)]
mod tests;
