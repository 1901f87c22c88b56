//! Query results as JSON: `{"columns": [...], "rows": [[...], ...]}`.
//!
//! Timestamps are RFC 3339 with nanoseconds (`2026-11-25T08:00:00.123456789Z`), maps become
//! objects, lists arrays, structs objects; any other type is rendered as Arrow displays it.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimeUnit,
};
use arrow::datatypes::{UInt16Type, UInt32Type, UInt64Type, UInt8Type};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Number, Value};

/// Column names and rows of `batches`.
pub fn to_rows(
    schema: &arrow::datatypes::Schema,
    batches: &[RecordBatch],
) -> (Vec<String>, Vec<Vec<Value>>) {
    let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut rows = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            rows.push(b.columns().iter().map(|c| value_at(c, i)).collect());
        }
    }
    (columns, rows)
}

fn float(v: f64) -> Value {
    Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(v.to_string()))
}

/// RFC 3339 with nanoseconds, `Z` for UTC-zoned timestamps.
pub fn format_ns(ns: i64, zoned: bool) -> String {
    let dt = chrono::DateTime::from_timestamp_nanos(ns);
    if zoned {
        dt.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
    } else {
        dt.format("%Y-%m-%dT%H:%M:%S%.9f").to_string()
    }
}

fn timestamp(a: &ArrayRef, i: usize, unit: &TimeUnit, zoned: bool) -> Value {
    use arrow::datatypes::{
        TimestampMicrosecondType as Us, TimestampMillisecondType as Ms,
        TimestampNanosecondType as Ns, TimestampSecondType as S,
    };
    let ns = match unit {
        TimeUnit::Nanosecond => Some(a.as_primitive::<Ns>().value(i)),
        TimeUnit::Microsecond => a.as_primitive::<Us>().value(i).checked_mul(1_000),
        TimeUnit::Millisecond => a.as_primitive::<Ms>().value(i).checked_mul(1_000_000),
        TimeUnit::Second => a.as_primitive::<S>().value(i).checked_mul(1_000_000_000),
    };
    match ns {
        Some(ns) => Value::String(format_ns(ns, zoned)),
        None => display(a, i),
    }
}

fn display(a: &ArrayRef, i: usize) -> Value {
    match ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default()) {
        Ok(f) => Value::String(f.value(i).to_string()),
        Err(_) => Value::Null,
    }
}

fn list(values: ArrayRef) -> Value {
    Value::Array((0..values.len()).map(|j| value_at(&values, j)).collect())
}

/// The JSON value of row `i` of `a`.
pub fn value_at(a: &ArrayRef, i: usize) -> Value {
    // A NullArray (the type of a bare `null`) has no validity buffer: is_null says false.
    if a.data_type() == &DataType::Null || a.is_null(i) {
        return Value::Null;
    }
    match a.data_type() {
        DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
        DataType::Int8 => a.as_primitive::<Int8Type>().value(i).into(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(i).into(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).into(),
        DataType::UInt8 => a.as_primitive::<UInt8Type>().value(i).into(),
        DataType::UInt16 => a.as_primitive::<UInt16Type>().value(i).into(),
        DataType::UInt32 => a.as_primitive::<UInt32Type>().value(i).into(),
        DataType::UInt64 => a.as_primitive::<UInt64Type>().value(i).into(),
        DataType::Float32 => float(f64::from(a.as_primitive::<Float32Type>().value(i))),
        DataType::Float64 => float(a.as_primitive::<Float64Type>().value(i)),
        DataType::Utf8 => Value::String(a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Value::String(a.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Value::String(a.as_string_view().value(i).to_string()),
        DataType::Timestamp(unit, tz) => timestamp(a, i, unit, tz.is_some()),
        DataType::Map(..) => {
            let entries = a.as_map().value(i);
            let (keys, values) = (entries.column(0), entries.column(1));
            let mut obj = Map::new();
            for j in 0..entries.len() {
                let key = match value_at(keys, j) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                obj.insert(key, value_at(values, j));
            }
            Value::Object(obj)
        }
        DataType::List(_) => list(a.as_list::<i32>().value(i)),
        DataType::LargeList(_) => list(a.as_list::<i64>().value(i)),
        DataType::FixedSizeList(..) => list(a.as_fixed_size_list().value(i)),
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let mut obj = Map::new();
            for (f, c) in fields.iter().zip(s.columns()) {
                obj.insert(f.name().clone(), value_at(c, i));
            }
            Value::Object(obj)
        }
        DataType::Decimal128(..) | DataType::Decimal256(..) => match display(a, i) {
            Value::String(s) => s.parse::<f64>().map(float).unwrap_or(Value::String(s)),
            other => other,
        },
        _ => display(a, i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_nanoseconds() {
        assert_eq!(
            format_ns(1_764_057_600_123_456_789, true),
            "2025-11-25T08:00:00.123456789Z"
        );
        assert_eq!(format_ns(0, false), "1970-01-01T00:00:00.000000000");
    }

    #[test]
    fn converts_a_spans_batch() {
        use osprey_model::otlp::common::v1::{any_value, AnyValue, KeyValue};
        use osprey_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let kv = |k: &str, v| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "op".into(),
            start_time_unix_nano: 1_000_000_001,
            end_time_unix_nano: 1_500_000_001,
            attributes: vec![kv("n", any_value::Value::IntValue(7))],
            ..Default::default()
        };
        let req = osprey_model::TraceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let Ok(batch) = osprey_model::request_to_batch(&req) else {
            panic!("convert")
        };
        let (cols, rows) = to_rows(&batch.schema(), &[batch]);
        let get = |name: &str| {
            cols.iter()
                .position(|c| c == name)
                .map(|p| rows[0][p].clone())
                .unwrap_or(Value::Null)
        };
        assert_eq!(
            get("start_time"),
            Value::String("1970-01-01T00:00:01.000000001Z".into())
        );
        assert_eq!(get("duration_ms"), serde_json::json!(500.0));
        assert_eq!(get("parent_span_id"), Value::Null);
        assert_eq!(get("span_attributes"), serde_json::json!({"n": "7"}));
        assert_eq!(get("events"), serde_json::json!([]));
        assert_eq!(get("service_name"), Value::String("unknown_service".into()));
    }
}
