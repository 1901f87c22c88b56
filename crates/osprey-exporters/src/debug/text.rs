//! Text renderings shared by the debug exporter's `normal` and `detailed` outputs, following
//! the Collector's pdata `String()` / `AsString()` forms.

use base64::Engine;
use osprey_model::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use std::fmt::Write;

/// pdata's value type name (`Str`, `Int`, `Double`, `Bool`, `Map`, `Slice`, `Bytes`, `Empty`).
pub fn type_name(v: Option<&AnyValue>) -> &'static str {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(_)) | Some(Value::StringValueStrindex(_)) => "Str",
        Some(Value::IntValue(_)) => "Int",
        Some(Value::DoubleValue(_)) => "Double",
        Some(Value::BoolValue(_)) => "Bool",
        Some(Value::KvlistValue(_)) => "Map",
        Some(Value::ArrayValue(_)) => "Slice",
        Some(Value::BytesValue(_)) => "Bytes",
        None => "Empty",
    }
}

/// A double as pdata prints it (ES6 number-to-string: exponent form outside 1e-6..1e21).
pub fn double(f: f64) -> String {
    if f.is_nan() || f.is_infinite() {
        let text = if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        };
        return format!("json: unsupported value: {text}");
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        format!("{f:e}")
    } else {
        format!("{f}")
    }
}

/// The raw JSON form of a value (maps sorted by key, as Go's `json.Marshal` of `AsRaw`).
fn raw_json(v: Option<&AnyValue>) -> serde_json::Value {
    use serde_json::Value as J;
    match v.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => J::String(s.clone()),
        Some(Value::StringValueStrindex(i)) => J::String(i.to_string()),
        Some(Value::IntValue(i)) => J::from(*i),
        Some(Value::DoubleValue(d)) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        Some(Value::BoolValue(b)) => J::Bool(*b),
        Some(Value::BytesValue(b)) => {
            J::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Some(Value::ArrayValue(a)) => {
            J::Array(a.values.iter().map(|v| raw_json(Some(v))).collect())
        }
        Some(Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|kv| (kv.key.clone(), raw_json(kv.value.as_ref())))
                .collect(),
        ),
        None => J::Null,
    }
}

/// pdata's `AsString()`: strings as-is, maps and slices as JSON, bytes as base64.
pub fn as_string(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        // A profiles dictionary index; no dictionary here, so the index itself.
        Some(Value::StringValueStrindex(i)) => i.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => double(*d),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::BytesValue(b)) => base64::engine::general_purpose::STANDARD.encode(b),
        Some(Value::ArrayValue(_)) | Some(Value::KvlistValue(_)) => raw_json(v).to_string(),
        None => String::new(),
    }
}

/// `Str(value)`, as the detailed output prints values.
pub fn typed(v: Option<&AnyValue>) -> String {
    format!("{}({})", type_name(v), as_string(v))
}

/// `k=v` pairs, as the normal output prints attributes.
pub fn pairs(attrs: &[KeyValue]) -> Vec<String> {
    attrs
        .iter()
        .map(|kv| format!("{}={}", kv.key, as_string(kv.value.as_ref())))
        .collect()
}

/// A Unix-nanosecond timestamp as Go prints a UTC `time.Time`:
/// `2020-02-11 20:26:12.000000321 +0000 UTC` (fraction trimmed of trailing zeros).
pub fn timestamp(nanos: u64) -> String {
    let secs = (nanos / 1_000_000_000) as i64;
    let frac = (nanos % 1_000_000_000) as u32;
    let Some(t) = chrono::DateTime::from_timestamp(secs, frac) else {
        return nanos.to_string();
    };
    let mut out = t.format("%Y-%m-%d %H:%M:%S").to_string();
    if frac != 0 {
        let digits = format!("{frac:09}");
        let _ = write!(out, ".{}", digits.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

/// Lower-case hex of an id (empty for an empty id, as pdata prints an all-zero id).
pub fn id(bytes: &[u8]) -> String {
    if bytes.iter().all(|b| *b == 0) {
        String::new()
    } else {
        hex::encode(bytes)
    }
}

pub fn span_kind(kind: i32) -> &'static str {
    match kind {
        1 => "Internal",
        2 => "Server",
        3 => "Client",
        4 => "Producer",
        5 => "Consumer",
        _ => "Unspecified",
    }
}

pub fn status_code(code: i32) -> &'static str {
    match code {
        1 => "Ok",
        2 => "Error",
        _ => "Unset",
    }
}

pub fn temporality(t: i32) -> &'static str {
    match t {
        1 => "Delta",
        2 => "Cumulative",
        _ => "Unspecified",
    }
}

/// plog's `SeverityNumber.String()`: `Info`, `Info2`, ..., `Unspecified`.
pub fn severity(n: i32) -> String {
    const NAMES: [&str; 6] = ["Trace", "Debug", "Info", "Warn", "Error", "Fatal"];
    if !(1..=24).contains(&n) {
        return if n == 0 {
            "Unspecified".into()
        } else {
            format!("SeverityNumber({n})")
        };
    }
    let base = NAMES[((n - 1) / 4) as usize];
    match (n - 1) % 4 {
        0 => base.to_string(),
        k => format!("{base}{}", k + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_model::otlp::common::v1::{ArrayValue, KeyValueList};

    fn v(value: Value) -> AnyValue {
        AnyValue { value: Some(value) }
    }

    #[test]
    fn values_print_like_pdata() {
        assert_eq!(typed(Some(&v(Value::StringValue("x".into())))), "Str(x)");
        assert_eq!(typed(Some(&v(Value::IntValue(-3)))), "Int(-3)");
        assert_eq!(typed(Some(&v(Value::DoubleValue(1.5)))), "Double(1.5)");
        assert_eq!(typed(Some(&v(Value::BoolValue(true)))), "Bool(true)");
        assert_eq!(
            typed(Some(&v(Value::BytesValue(vec![1, 2])))),
            "Bytes(AQI=)"
        );
        assert_eq!(typed(None), "Empty()");
        let list = v(Value::ArrayValue(ArrayValue {
            values: vec![v(Value::IntValue(1)), v(Value::StringValue("a".into()))],
        }));
        assert_eq!(typed(Some(&list)), r#"Slice([1,"a"])"#);
        let map = v(Value::KvlistValue(KeyValueList {
            values: vec![
                KeyValue {
                    key: "z".into(),
                    value: Some(v(Value::BoolValue(false))),
                    ..Default::default()
                },
                KeyValue {
                    key: "a".into(),
                    value: Some(v(Value::IntValue(2))),
                    ..Default::default()
                },
            ],
        }));
        assert_eq!(typed(Some(&map)), r#"Map({"a":2,"z":false})"#);
    }

    #[test]
    fn timestamps_and_names() {
        assert_eq!(
            timestamp(1_581_452_772_000_000_321),
            "2020-02-11 20:26:12.000000321 +0000 UTC"
        );
        assert_eq!(timestamp(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(timestamp(1_500_000_000), "1970-01-01 00:00:01.5 +0000 UTC");
        assert_eq!(severity(9), "Info");
        assert_eq!(severity(10), "Info2");
        assert_eq!(severity(24), "Fatal4");
        assert_eq!(severity(0), "Unspecified");
        assert_eq!(id(&[0; 8]), "");
        assert_eq!(id(&[1, 0xab]), "01ab");
        assert_eq!(double(1e-7), "1e-7");
    }
}
