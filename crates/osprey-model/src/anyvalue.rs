//! Rendering OTLP `AnyValue`s as text for the `span_attributes` / `resource_attributes` maps.
//!
//! The maps are `Map<Utf8, Utf8>` so that `span_attributes['http.method'] = 'GET'` works
//! without casts. Strings are stored as they are; every other type is stored as its compact
//! JSON text: `true`, `42`, `1.5`, `["a","b"]`, `{"k":1}`. Bytes are base64 (standard
//! alphabet, padded), as in OTLP/JSON.

use crate::otlp::common::v1::{any_value::Value, AnyValue};
use std::fmt::Write;

/// The OTLP type of an attribute value, stored as one byte per map entry beside the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ValueType {
    String = 0,
    Bool = 1,
    Int = 2,
    Double = 3,
    Bytes = 4,
    Array = 5,
    Kvlist = 6,
    /// No value (`AnyValue` unset); the map value is NULL.
    Empty = 7,
}

impl ValueType {
    /// The type stored as `byte`; unknown bytes read as strings.
    pub fn from_byte(byte: u8) -> ValueType {
        match byte {
            1 => ValueType::Bool,
            2 => ValueType::Int,
            3 => ValueType::Double,
            4 => ValueType::Bytes,
            5 => ValueType::Array,
            6 => ValueType::Kvlist,
            7 => ValueType::Empty,
            _ => ValueType::String,
        }
    }

    /// The type of entry `i` of a map whose type column value is `types` (empty = all strings).
    pub fn of_entry(types: &[u8], i: usize) -> ValueType {
        types
            .get(i)
            .map_or(ValueType::String, |b| ValueType::from_byte(*b))
    }
}

/// The [`ValueType`] of an OTLP value.
pub fn type_code(value: Option<&AnyValue>) -> ValueType {
    match value.and_then(|v| v.value.as_ref()) {
        None => ValueType::Empty,
        Some(Value::StringValue(_)) => ValueType::String,
        Some(Value::BoolValue(_)) => ValueType::Bool,
        Some(Value::IntValue(_)) | Some(Value::StringValueStrindex(_)) => ValueType::Int,
        Some(Value::DoubleValue(_)) => ValueType::Double,
        Some(Value::BytesValue(_)) => ValueType::Bytes,
        Some(Value::ArrayValue(_)) => ValueType::Array,
        Some(Value::KvlistValue(_)) => ValueType::Kvlist,
    }
}

/// Appends the text form of `value` to `out` (see the module docs).
pub fn render_into(value: Option<&AnyValue>, out: &mut String) {
    match value.and_then(|v| v.value.as_ref()) {
        None => {}
        Some(Value::StringValue(s)) => out.push_str(s),
        Some(other) => json_into(other, out),
    }
}

/// The text form of `value` as a new string.
pub fn render(value: Option<&AnyValue>) -> String {
    let mut s = String::new();
    render_into(value, &mut s);
    s
}

fn json_into(value: &Value, out: &mut String) {
    match value {
        Value::StringValue(s) => json_string(s, out),
        Value::BoolValue(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::IntValue(i) => {
            let _ = write!(out, "{i}");
        }
        Value::DoubleValue(d) => double_into(*d, out),
        Value::BytesValue(b) => {
            out.push('"');
            base64_into(b, out);
            out.push('"');
        }
        Value::ArrayValue(arr) => {
            out.push('[');
            for (i, v) in arr.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match &v.value {
                    Some(inner) => json_into(inner, out),
                    None => out.push_str("null"),
                }
            }
            out.push(']');
        }
        Value::KvlistValue(kv) => {
            out.push('{');
            for (i, pair) in kv.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(&pair.key, out);
                out.push(':');
                match pair.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(inner) => json_into(inner, out),
                    None => out.push_str("null"),
                }
            }
            out.push('}');
        }
        Value::StringValueStrindex(i) => {
            let _ = write!(out, "{i}");
        }
    }
}

/// Doubles print as the shortest text that parses back to the same value; non-finite
/// values use the OTLP/JSON spellings.
fn double_into(d: f64, out: &mut String) {
    if d.is_nan() {
        out.push_str("\"NaN\"");
    } else if d.is_infinite() {
        out.push_str(if d > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else {
        let _ = write!(out, "{d:?}");
    }
}

fn json_string(s: &str, out: &mut String) {
    // serde_json escapes exactly as JSON requires.
    match serde_json::to_string(s) {
        Ok(q) => out.push_str(&q),
        Err(_) => out.push_str("\"\""),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_into(bytes: &[u8], out: &mut String) {
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let idx = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, ix) in idx.iter().enumerate() {
            if i <= chunk.len() {
                out.push(B64[*ix as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::common::v1::{ArrayValue, KeyValue, KeyValueList};

    fn av(v: Value) -> AnyValue {
        AnyValue { value: Some(v) }
    }

    #[test]
    fn renders_every_type() {
        assert_eq!(render(Some(&av(Value::StringValue("GET".into())))), "GET");
        assert_eq!(render(Some(&av(Value::BoolValue(true)))), "true");
        assert_eq!(render(Some(&av(Value::IntValue(-42)))), "-42");
        assert_eq!(render(Some(&av(Value::DoubleValue(1.5)))), "1.5");
        assert_eq!(
            render(Some(&av(Value::DoubleValue(0.1 + 0.2)))),
            "0.30000000000000004"
        );
        assert_eq!(render(Some(&av(Value::DoubleValue(3.0)))), "3.0");
        assert_eq!(
            render(Some(&av(Value::BytesValue(b"hello".to_vec())))),
            "\"aGVsbG8=\""
        );
        let arr = ArrayValue {
            values: vec![
                av(Value::StringValue("a\"b".into())),
                av(Value::IntValue(2)),
            ],
        };
        assert_eq!(render(Some(&av(Value::ArrayValue(arr)))), r#"["a\"b",2]"#);
        let kv = KeyValueList {
            values: vec![KeyValue {
                key: "k".into(),
                value: Some(av(Value::BoolValue(false))),
                ..Default::default()
            }],
        };
        assert_eq!(render(Some(&av(Value::KvlistValue(kv)))), r#"{"k":false}"#);
        assert_eq!(render(None), "");
    }

    #[test]
    fn base64_padding() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            let mut s = String::new();
            base64_into(input.as_bytes(), &mut s);
            assert_eq!(s, want, "input {input:?}");
        }
    }
}
