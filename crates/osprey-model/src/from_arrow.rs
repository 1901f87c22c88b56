//! Arrow record batches with the `spans` schema → typed span records, and those → OTLP.
//!
//! The reverse of [`crate::to_arrow`], used by the APIs that must give spans back in another
//! system's shape (Jaeger, Tempo). Attribute values come back with their OTLP types from the
//! type columns; arrays and key-value lists are parsed back from their JSON text.

use crate::anyvalue::ValueType;
use crate::otlp::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use crate::otlp::resource::v1::Resource;
use crate::otlp::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use crate::schema::col;
use crate::to_arrow::{SPAN_KINDS, STATUS_CODES};
use arrow::array::{Array, AsArray, BinaryArray, MapArray, RecordBatch, StringArray, StructArray};
use arrow::datatypes::{Float64Type, TimestampNanosecondType, UInt32Type};
use arrow::error::ArrowError;
use base64::Engine;
use std::collections::BTreeMap;

/// One attribute value with its OTLP type.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    /// Bytes, as their standard base64 text.
    Bytes(String),
    /// An array, as its JSON text.
    Array(String),
    /// A key-value list, as its JSON text.
    Kvlist(String),
    Empty,
}

impl Typed {
    /// The value stored as `text` with type `t`. Text that does not parse as its type
    /// (which the writer never produces) is returned as a string.
    pub fn parse(text: Option<&str>, t: ValueType) -> Typed {
        let Some(text) = text else {
            return Typed::Empty;
        };
        let s = || Typed::Str(text.to_string());
        match t {
            ValueType::String => s(),
            ValueType::Bool => match text {
                "true" => Typed::Bool(true),
                "false" => Typed::Bool(false),
                _ => s(),
            },
            ValueType::Int => text.parse().map_or_else(|_| s(), Typed::Int),
            ValueType::Double => match text {
                "\"NaN\"" => Typed::Double(f64::NAN),
                "\"Infinity\"" => Typed::Double(f64::INFINITY),
                "\"-Infinity\"" => Typed::Double(f64::NEG_INFINITY),
                _ => text.parse().map_or_else(|_| s(), Typed::Double),
            },
            ValueType::Bytes => Typed::Bytes(text.trim_matches('"').to_string()),
            ValueType::Array => Typed::Array(text.to_string()),
            ValueType::Kvlist => Typed::Kvlist(text.to_string()),
            ValueType::Empty => Typed::Empty,
        }
    }

    /// The value as text: strings as they are, everything else as stored (JSON text).
    pub fn text(&self) -> String {
        match self {
            Typed::Str(s) | Typed::Bytes(s) | Typed::Array(s) | Typed::Kvlist(s) => s.clone(),
            Typed::Bool(b) => b.to_string(),
            Typed::Int(i) => i.to_string(),
            Typed::Double(d) => {
                let mut out = String::new();
                crate::anyvalue::render_into(
                    Some(&AnyValue {
                        value: Some(Value::DoubleValue(*d)),
                    }),
                    &mut out,
                );
                out
            }
            Typed::Empty => String::new(),
        }
    }

    /// The OTLP value.
    pub fn to_any_value(&self) -> AnyValue {
        let value = match self {
            Typed::Str(s) => Some(Value::StringValue(s.clone())),
            Typed::Bool(b) => Some(Value::BoolValue(*b)),
            Typed::Int(i) => Some(Value::IntValue(*i)),
            Typed::Double(d) => Some(Value::DoubleValue(*d)),
            Typed::Bytes(b) => Some(Value::BytesValue(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .unwrap_or_default(),
            )),
            Typed::Array(j) | Typed::Kvlist(j) => match serde_json::from_str(j) {
                Ok(v) => json_to_value(&v),
                Err(_) => Some(Value::StringValue(j.clone())),
            },
            Typed::Empty => None,
        };
        AnyValue { value }
    }
}

/// JSON (as the writer renders arrays and lists) back to an OTLP value. Numbers written
/// with a fraction or exponent are doubles; others are integers.
fn json_to_value(v: &serde_json::Value) -> Option<Value> {
    use serde_json::Value as J;
    Some(match v {
        J::Null => return None,
        J::Bool(b) => Value::BoolValue(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::IntValue(i),
            None => Value::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::StringValue(s.clone()),
        J::Array(items) => Value::ArrayValue(ArrayValue {
            values: items
                .iter()
                .map(|i| AnyValue {
                    value: json_to_value(i),
                })
                .collect(),
        }),
        J::Object(map) => Value::KvlistValue(KeyValueList {
            values: map
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: Some(AnyValue {
                        value: json_to_value(v),
                    }),
                    ..Default::default()
                })
                .collect(),
        }),
    })
}

/// One attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    pub key: String,
    pub value: Typed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub time_ns: i64,
    pub name: String,
    pub attributes: Vec<Attr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LinkRecord {
    pub trace_id: String,
    pub span_id: String,
    pub trace_state: String,
    pub attributes: Vec<Attr>,
}

/// One span, as read back from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub trace_state: String,
    pub service_name: String,
    pub span_name: String,
    /// The OTLP name (`SPAN_KIND_SERVER`, ...).
    pub span_kind: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub duration_ms: f64,
    /// The OTLP name (`STATUS_CODE_ERROR`, ...).
    pub status_code: String,
    pub status_message: String,
    pub attributes: Vec<Attr>,
    pub resource: Vec<Attr>,
    pub scope_name: String,
    pub scope_version: String,
    pub events: Vec<EventRecord>,
    pub links: Vec<LinkRecord>,
    pub dropped_attributes_count: u32,
    pub dropped_events_count: u32,
    pub dropped_links_count: u32,
    pub flags: u32,
}

impl SpanRecord {
    /// The OTLP span kind number.
    pub fn kind_number(&self) -> i32 {
        SPAN_KINDS
            .iter()
            .position(|k| *k == self.span_kind)
            .unwrap_or(0) as i32
    }

    /// The OTLP status code number.
    pub fn status_number(&self) -> i32 {
        STATUS_CODES
            .iter()
            .position(|k| *k == self.status_code)
            .unwrap_or(0) as i32
    }
}

fn missing(name: &str) -> ArrowError {
    ArrowError::SchemaError(format!(
        "column {name} is missing or has the wrong type; select every column of spans_internal"
    ))
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, ArrowError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| missing(name))
}

fn binary<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a BinaryArray, ArrowError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_binary_opt::<i32>())
        .ok_or_else(|| missing(name))
}

fn attrs_of(map: &MapArray, types: &BinaryArray, row: usize) -> Vec<Attr> {
    attrs_with(map, row, types, Some(row))
}

/// The attributes of map entry `row`, typed by `types[type_row]` (all strings when the
/// type entry is missing).
fn attrs_with(
    map: &MapArray,
    row: usize,
    types: &BinaryArray,
    type_row: Option<usize>,
) -> Vec<Attr> {
    let entries = map.value(row);
    let keys = entries.column(0).as_string::<i32>();
    let values = entries.column(1).as_string::<i32>();
    let t = type_row
        .filter(|r| *r < types.len())
        .map_or(&[][..], |r| types.value(r));
    (0..entries.len())
        .map(|i| Attr {
            key: keys.value(i).to_string(),
            value: Typed::parse(
                (!values.is_null(i)).then(|| values.value(i)),
                ValueType::of_entry(t, i),
            ),
        })
        .collect()
}

fn struct_field<'a>(s: &'a StructArray, name: &str) -> Result<&'a dyn Array, ArrowError> {
    s.column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| missing(name))
}

/// Every span of `batch`, which must have the full [`crate::spans_schema`] columns (any order).
pub fn records_from_batch(batch: &RecordBatch) -> Result<Vec<SpanRecord>, ArrowError> {
    let trace_id = strings(batch, col::TRACE_ID)?;
    let span_id = strings(batch, col::SPAN_ID)?;
    let parent = strings(batch, col::PARENT_SPAN_ID)?;
    let trace_state = strings(batch, col::TRACE_STATE)?;
    let service = strings(batch, col::SERVICE_NAME)?;
    let name = strings(batch, col::SPAN_NAME)?;
    let kind = strings(batch, col::SPAN_KIND)?;
    let col_of = |n: &str| batch.column_by_name(n).ok_or_else(|| missing(n));
    let start = col_of(col::START_TIME)?
        .as_primitive_opt::<TimestampNanosecondType>()
        .ok_or_else(|| missing(col::START_TIME))?;
    let end = col_of(col::END_TIME)?
        .as_primitive_opt::<TimestampNanosecondType>()
        .ok_or_else(|| missing(col::END_TIME))?;
    let duration = col_of(col::DURATION_MS)?
        .as_primitive_opt::<Float64Type>()
        .ok_or_else(|| missing(col::DURATION_MS))?;
    let status_code = strings(batch, col::STATUS_CODE)?;
    let status_msg = strings(batch, col::STATUS_MESSAGE)?;
    let attrs = col_of(col::SPAN_ATTRIBUTES)?
        .as_map_opt()
        .ok_or_else(|| missing(col::SPAN_ATTRIBUTES))?;
    let attr_types = binary(batch, col::SPAN_ATTRIBUTE_TYPES)?;
    let res = col_of(col::RESOURCE_ATTRIBUTES)?
        .as_map_opt()
        .ok_or_else(|| missing(col::RESOURCE_ATTRIBUTES))?;
    let res_types = binary(batch, col::RESOURCE_ATTRIBUTE_TYPES)?;
    let scope_name = strings(batch, col::SCOPE_NAME)?;
    let scope_version = strings(batch, col::SCOPE_VERSION)?;
    let events = col_of(col::EVENTS)?
        .as_list_opt::<i32>()
        .ok_or_else(|| missing(col::EVENTS))?;
    let links = col_of(col::LINKS)?
        .as_list_opt::<i32>()
        .ok_or_else(|| missing(col::LINKS))?;
    let u32s = |n: &str| {
        col_of(n)?
            .as_primitive_opt::<UInt32Type>()
            .ok_or_else(|| missing(n))
    };
    let dropped_attrs = u32s(col::DROPPED_ATTRIBUTES_COUNT)?;
    let dropped_events = u32s(col::DROPPED_EVENTS_COUNT)?;
    let dropped_links = u32s(col::DROPPED_LINKS_COUNT)?;
    let flags = u32s(col::FLAGS)?;

    let ev_items = events
        .values()
        .as_struct_opt()
        .ok_or_else(|| missing("events.item"))?;
    let ev_time = struct_field(ev_items, "time")?
        .as_primitive_opt::<TimestampNanosecondType>()
        .ok_or_else(|| missing("events.time"))?;
    let ev_name = struct_field(ev_items, "name")?
        .as_string_opt::<i32>()
        .ok_or_else(|| missing("events.name"))?;
    let ev_attrs = struct_field(ev_items, "attributes")?
        .as_map_opt()
        .ok_or_else(|| missing("events.attributes"))?;
    let ev_types_list = col_of(col::EVENT_ATTRIBUTE_TYPES)?
        .as_list_opt::<i32>()
        .ok_or_else(|| missing(col::EVENT_ATTRIBUTE_TYPES))?;
    let ev_types = ev_types_list
        .values()
        .as_binary_opt::<i32>()
        .ok_or_else(|| missing(col::EVENT_ATTRIBUTE_TYPES))?;
    let ln_items = links
        .values()
        .as_struct_opt()
        .ok_or_else(|| missing("links.item"))?;
    let ln_str = |n: &str| {
        struct_field(ln_items, n)?
            .as_string_opt::<i32>()
            .ok_or_else(|| missing(n))
    };
    let (ln_trace, ln_span, ln_state) = (
        ln_str("trace_id")?,
        ln_str("span_id")?,
        ln_str("trace_state")?,
    );
    let ln_attrs = struct_field(ln_items, "attributes")?
        .as_map_opt()
        .ok_or_else(|| missing("links.attributes"))?;
    let ln_types_list = col_of(col::LINK_ATTRIBUTE_TYPES)?
        .as_list_opt::<i32>()
        .ok_or_else(|| missing(col::LINK_ATTRIBUTE_TYPES))?;
    let ln_types = ln_types_list
        .values()
        .as_binary_opt::<i32>()
        .ok_or_else(|| missing(col::LINK_ATTRIBUTE_TYPES))?;

    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let ev_offsets = events.value_offsets();
        let (e0, e1) = (ev_offsets[row] as usize, ev_offsets[row + 1] as usize);
        let ln_offsets = links.value_offsets();
        let (l0, l1) = (ln_offsets[row] as usize, ln_offsets[row + 1] as usize);
        // The type lists have their own offsets; item k of this span's events is at
        // et0 + k there.
        let et0 = ev_types_list.value_offsets()[row] as usize;
        let lt0 = ln_types_list.value_offsets()[row] as usize;
        out.push(SpanRecord {
            trace_id: trace_id.value(row).to_string(),
            span_id: span_id.value(row).to_string(),
            parent_span_id: (!parent.is_null(row)).then(|| parent.value(row).to_string()),
            trace_state: trace_state.value(row).to_string(),
            service_name: service.value(row).to_string(),
            span_name: name.value(row).to_string(),
            span_kind: kind.value(row).to_string(),
            start_ns: start.value(row),
            end_ns: end.value(row),
            duration_ms: duration.value(row),
            status_code: status_code.value(row).to_string(),
            status_message: status_msg.value(row).to_string(),
            attributes: attrs_of(attrs, attr_types, row),
            resource: attrs_of(res, res_types, row),
            scope_name: scope_name.value(row).to_string(),
            scope_version: scope_version.value(row).to_string(),
            events: (e0..e1)
                .map(|i| EventRecord {
                    time_ns: ev_time.value(i),
                    name: ev_name.value(i).to_string(),
                    attributes: attrs_with(ev_attrs, i, ev_types, Some(et0 + i - e0)),
                })
                .collect(),
            links: (l0..l1)
                .map(|i| LinkRecord {
                    trace_id: ln_trace.value(i).to_string(),
                    span_id: ln_span.value(i).to_string(),
                    trace_state: ln_state.value(i).to_string(),
                    attributes: attrs_with(ln_attrs, i, ln_types, Some(lt0 + i - l0)),
                })
                .collect(),
            dropped_attributes_count: dropped_attrs.value(row),
            dropped_events_count: dropped_events.value(row),
            dropped_links_count: dropped_links.value(row),
            flags: flags.value(row),
        });
    }
    Ok(out)
}

fn key_values(attrs: &[Attr]) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|a| KeyValue {
            key: a.key.clone(),
            value: Some(a.value.to_any_value()),
            ..Default::default()
        })
        .collect()
}

/// Lowercase hex back to bytes (ids are always valid hex in the store).
pub fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// The OTLP span of a record.
pub fn to_otlp_span(r: &SpanRecord) -> Span {
    Span {
        trace_id: hex_bytes(&r.trace_id),
        span_id: hex_bytes(&r.span_id),
        trace_state: r.trace_state.clone(),
        parent_span_id: r
            .parent_span_id
            .as_deref()
            .map(hex_bytes)
            .unwrap_or_default(),
        flags: r.flags,
        name: r.span_name.clone(),
        kind: r.kind_number(),
        start_time_unix_nano: r.start_ns.max(0) as u64,
        end_time_unix_nano: r.end_ns.max(0) as u64,
        attributes: key_values(&r.attributes),
        dropped_attributes_count: r.dropped_attributes_count,
        events: r
            .events
            .iter()
            .map(|e| span::Event {
                time_unix_nano: e.time_ns.max(0) as u64,
                name: e.name.clone(),
                attributes: key_values(&e.attributes),
                dropped_attributes_count: 0,
            })
            .collect(),
        dropped_events_count: r.dropped_events_count,
        links: r
            .links
            .iter()
            .map(|l| span::Link {
                trace_id: hex_bytes(&l.trace_id),
                span_id: hex_bytes(&l.span_id),
                trace_state: l.trace_state.clone(),
                attributes: key_values(&l.attributes),
                dropped_attributes_count: 0,
                flags: 0,
            })
            .collect(),
        dropped_links_count: r.dropped_links_count,
        status: (r.status_number() != 0 || !r.status_message.is_empty()).then(|| Status {
            message: r.status_message.clone(),
            code: r.status_number(),
        }),
    }
}

/// The spans of one instrumentation scope: (name, version, spans).
type ScopeGroup = (String, String, Vec<Span>);

/// Records grouped back into OTLP `ResourceSpans` (one per distinct resource, one
/// `ScopeSpans` per scope), in the order first seen.
pub fn to_resource_spans(records: &[SpanRecord]) -> Vec<ResourceSpans> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, (Vec<Attr>, Vec<ScopeGroup>)> = BTreeMap::new();
    for r in records {
        let key = format!("{:?}", r.resource);
        let group = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            (r.resource.clone(), Vec::new())
        });
        let span = to_otlp_span(r);
        match group
            .1
            .iter_mut()
            .find(|(n, v, _)| *n == r.scope_name && *v == r.scope_version)
        {
            Some(scope) => scope.2.push(span),
            None => group
                .1
                .push((r.scope_name.clone(), r.scope_version.clone(), vec![span])),
        }
    }
    order
        .iter()
        .filter_map(|k| groups.remove(k))
        .map(|(resource, scopes)| ResourceSpans {
            resource: Some(Resource {
                attributes: key_values(&resource),
                ..Default::default()
            }),
            scope_spans: scopes
                .into_iter()
                .map(|(name, version, spans)| ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name,
                        version,
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                })
                .collect(),
            schema_url: String::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::collector::trace::v1::ExportTraceServiceRequest;

    fn kv(k: &str, v: Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    #[test]
    fn round_trips_typed_attributes_events_and_links() -> Result<(), ArrowError> {
        let attrs = vec![
            kv("s", Value::StringValue("5".into())),
            kv("i", Value::IntValue(5)),
            kv("b", Value::BoolValue(true)),
            kv("d", Value::DoubleValue(2.0)),
            kv("bytes", Value::BytesValue(b"hi".to_vec())),
            kv(
                "arr",
                Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(Value::IntValue(1)),
                        },
                        AnyValue {
                            value: Some(Value::DoubleValue(1.5)),
                        },
                    ],
                }),
            ),
        ];
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            name: "op".into(),
            kind: 2,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 3_000,
            attributes: attrs.clone(),
            events: vec![span::Event {
                time_unix_nano: 2_000,
                name: "ev".into(),
                attributes: vec![kv("n", Value::IntValue(7))],
                dropped_attributes_count: 0,
            }],
            links: vec![span::Link {
                trace_id: vec![4; 16],
                span_id: vec![5; 8],
                attributes: vec![kv("l", Value::StringValue("x".into()))],
                ..Default::default()
            }],
            status: Some(Status {
                message: "bad".into(),
                code: 2,
            }),
            ..Default::default()
        };
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", Value::StringValue("svc".into())),
                        kv("pid", Value::IntValue(42)),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        version: "1".into(),
                        ..Default::default()
                    }),
                    spans: vec![span.clone()],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let batch = crate::request_to_batch(&req)?;
        let records = records_from_batch(&batch)?;
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.attributes[0].value, Typed::Str("5".into()));
        assert_eq!(r.attributes[1].value, Typed::Int(5));
        assert_eq!(r.attributes[2].value, Typed::Bool(true));
        assert_eq!(r.attributes[3].value, Typed::Double(2.0));
        assert_eq!(r.resource[1].value, Typed::Int(42));
        assert_eq!(r.events[0].attributes[0].value, Typed::Int(7));
        let back = to_resource_spans(&records);
        assert_eq!(back.len(), 1);
        let got = &back[0].scope_spans[0].spans[0];
        assert_eq!(got, &span);
        Ok(())
    }
}
