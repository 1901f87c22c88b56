//! Attribute-map helpers over OTLP `KeyValue` lists, with the semantics of the Collector's
//! `pcommon.Map` (a key is looked up by its first occurrence; `put` replaces in place or
//! appends) and `pcommon.Value.AsString` (how a non-string value reads as text).

use base64::Engine;
use osprey_model::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use std::fmt::Write;

/// The value of `key`, if the map has the key (an unset value reads as an empty `AnyValue`).
pub fn get<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    const EMPTY: AnyValue = AnyValue { value: None };
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_ref().unwrap_or(&EMPTY))
}

/// Whether the map has `key`.
pub fn contains(attrs: &[KeyValue], key: &str) -> bool {
    attrs.iter().any(|kv| kv.key == key)
}

/// Mutable access to the value of `key`, if present.
pub fn get_mut<'a>(attrs: &'a mut [KeyValue], key: &str) -> Option<&'a mut AnyValue> {
    attrs
        .iter_mut()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.get_or_insert_with(AnyValue::default))
}

/// Sets `key` to `value`: replaces the first occurrence, or appends.
pub fn put(attrs: &mut Vec<KeyValue>, key: &str, value: AnyValue) {
    match attrs.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => kv.value = Some(value),
        None => attrs.push(KeyValue {
            key: key.to_string(),
            value: Some(value),
            ..Default::default()
        }),
    }
}

/// Removes every occurrence of `key`.
pub fn remove(attrs: &mut Vec<KeyValue>, key: &str) {
    attrs.retain(|kv| kv.key != key);
}

/// A string `AnyValue`.
pub fn str_value(s: impl Into<String>) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(s.into())),
    }
}

/// The string inside a string value.
pub fn as_str(v: &AnyValue) -> Option<&str> {
    match &v.value {
        Some(Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

/// The value as text, as `pcommon.Value.AsString` renders it: strings as they are, numbers
/// and booleans in their shortest form, bytes in base64, maps and arrays as JSON, an empty
/// value as "".
pub fn as_string(v: &AnyValue) -> String {
    match &v.value {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::StringValueStrindex(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => format_double(*d),
        Some(Value::BytesValue(b)) => base64::engine::general_purpose::STANDARD.encode(b),
        Some(other) => {
            let mut out = String::new();
            json_into(Some(other), &mut out);
            out
        }
    }
}

/// A double as Go's `encoding/json` (ES6 number-to-string) writes it: `1.5`, `100`, `1e-7`,
/// `1e+21`.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let abs = d.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{d:e}");
        // Rust writes `1e21` / `1e-7`; Go writes `1e+21` / `1e-7`.
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        }
    } else {
        format!("{d}")
    }
}

fn json_into(v: Option<&Value>, out: &mut String) {
    match v {
        None => out.push_str("null"),
        Some(Value::StringValue(s)) => out.push_str(&json_string(s)),
        Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Value::StringValueStrindex(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Value::DoubleValue(d)) => {
            if d.is_finite() {
                out.push_str(&format_double(*d));
            } else {
                out.push_str(&json_string(&format_double(*d)));
            }
        }
        Some(Value::BytesValue(b)) => out.push_str(&json_string(
            &base64::engine::general_purpose::STANDARD.encode(b),
        )),
        Some(Value::ArrayValue(a)) => {
            out.push('[');
            for (i, item) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_into(item.value.as_ref(), out);
            }
            out.push(']');
        }
        Some(Value::KvlistValue(kvs)) => {
            out.push('{');
            for (i, kv) in kvs.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json_string(&kv.key));
                out.push(':');
                json_into(kv.value.as_ref().and_then(|v| v.value.as_ref()), out);
            }
            out.push('}');
        }
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// Converts a YAML config value (an action's `value`, a matcher's `value`) to an OTLP value,
/// as `pcommon.Value.FromRaw` does for what the Collector's config decoder produces.
pub fn from_yaml(v: &serde_yaml::Value) -> Result<AnyValue, String> {
    use osprey_model::otlp::common::v1::{ArrayValue, KeyValueList};
    let value = match v {
        serde_yaml::Value::Null => None,
        serde_yaml::Value::Bool(b) => Some(Value::BoolValue(*b)),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(Value::IntValue(i))
            } else if let Some(u) = n.as_u64() {
                Some(Value::IntValue(u as i64))
            } else {
                Some(Value::DoubleValue(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        serde_yaml::Value::String(s) => Some(Value::StringValue(s.clone())),
        serde_yaml::Value::Sequence(items) => Some(Value::ArrayValue(ArrayValue {
            values: items.iter().map(from_yaml).collect::<Result<_, _>>()?,
        })),
        serde_yaml::Value::Mapping(m) => {
            let mut values = Vec::with_capacity(m.len());
            for (k, v) in m {
                let key = match k {
                    serde_yaml::Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .map_err(|e| e.to_string())?
                        .trim()
                        .to_string(),
                };
                values.push(KeyValue {
                    key,
                    value: Some(from_yaml(v)?),
                    ..Default::default()
                });
            }
            Some(Value::KvlistValue(KeyValueList { values }))
        }
        serde_yaml::Value::Tagged(t) => return from_yaml(&t.value),
    };
    Ok(AnyValue { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_read_as_go_writes_them() {
        assert_eq!(format_double(1.5), "1.5");
        assert_eq!(format_double(100.0), "100");
        assert_eq!(format_double(1e-7), "1e-7");
        assert_eq!(format_double(1e21), "1e+21");
        assert_eq!(format_double(0.0), "0");
    }

    #[test]
    fn put_replaces_first_or_appends() {
        let mut attrs = Vec::new();
        put(&mut attrs, "a", str_value("1"));
        put(&mut attrs, "a", str_value("2"));
        assert_eq!(attrs.len(), 1);
        assert_eq!(as_str(get(&attrs, "a").unwrap()), Some("2"));
        remove(&mut attrs, "a");
        assert!(attrs.is_empty());
    }

    #[test]
    fn maps_render_as_json() {
        let v: serde_yaml::Value = serde_yaml::from_str("{k: [1, \"x\", 2.5, true]}").unwrap();
        assert_eq!(
            as_string(&from_yaml(&v).unwrap()),
            r#"{"k":[1,"x",2.5,true]}"#
        );
    }
}
