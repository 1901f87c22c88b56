//! OTLP trace requests → Arrow record batches with the `spans` schema.
//!
//! Run [`crate::sanitize_request`] first: this conversion assumes ids have valid lengths and
//! times fit in an `i64`.

use crate::anyvalue::render_into;
use crate::anyvalue::{type_code, ValueType};
use crate::otlp::common::v1::{any_value::Value, KeyValue};
use crate::otlp::trace::v1::{span::Event, span::Link, Span};
use crate::schema::{event_fields, link_fields, spans_schema};
use crate::TraceRequest;
use arrow::array::{
    ArrayRef, BinaryBuilder, Float64Array, ListArray, MapBuilder, MapFieldNames, StringBuilder,
    StructArray, TimestampNanosecondArray, UInt32Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// OTLP's names for span kinds, indexed by the enum value.
pub const SPAN_KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];

/// OTLP's names for status codes, indexed by the enum value.
pub const STATUS_CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

fn kind_name(kind: i32) -> &'static str {
    usize::try_from(kind)
        .ok()
        .and_then(|k| SPAN_KINDS.get(k))
        .copied()
        .unwrap_or(SPAN_KINDS[0])
}

fn status_name(code: i32) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|c| STATUS_CODES.get(c))
        .copied()
        .unwrap_or(STATUS_CODES[0])
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes`, appended to `out`.
pub fn hex_into(bytes: &[u8], out: &mut String) {
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

/// An attribute map column and its parallel type column (see [`crate::schema`]): the text
/// of every value in the map, and one [`ValueType`] byte per entry, or no bytes when every
/// value is a string (the common case, which then costs nothing).
struct AttrBuilder {
    map: MapBuilder<StringBuilder, StringBuilder>,
    types: BinaryBuilder,
    scratch_types: Vec<u8>,
}

impl AttrBuilder {
    fn new() -> Self {
        AttrBuilder {
            map: new_map(),
            types: BinaryBuilder::new(),
            scratch_types: Vec::new(),
        }
    }

    fn append(&mut self, attrs: &[KeyValue], scratch: &mut String) -> Result<(), ArrowError> {
        self.scratch_types.clear();
        let mut all_strings = true;
        for kv in attrs {
            self.map.keys().append_value(&kv.key);
            let t = type_code(kv.value.as_ref());
            all_strings &= t == ValueType::String;
            self.scratch_types.push(t as u8);
            match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => self.map.values().append_value(s),
                None => self.map.values().append_null(),
                Some(_) => {
                    scratch.clear();
                    render_into(kv.value.as_ref(), scratch);
                    self.map.values().append_value(scratch.as_str());
                }
            }
        }
        if all_strings {
            self.types.append_value([]);
        } else {
            self.types.append_value(&self.scratch_types);
        }
        self.map.append(true)
    }

    fn finish(mut self) -> (ArrayRef, ArrayRef) {
        (Arc::new(self.map.finish()), Arc::new(self.types.finish()))
    }
}

fn new_map() -> MapBuilder<StringBuilder, StringBuilder> {
    let names = MapFieldNames {
        entry: "entries".into(),
        key: "key".into(),
        value: "value".into(),
    };
    MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new())
}

/// Column builders for one batch.
struct Builders {
    trace_id: StringBuilder,
    span_id: StringBuilder,
    parent: StringBuilder,
    trace_state: StringBuilder,
    service: StringBuilder,
    name: StringBuilder,
    kind: StringBuilder,
    start: Vec<i64>,
    end: Vec<i64>,
    duration: Vec<f64>,
    status_code: StringBuilder,
    status_msg: StringBuilder,
    attrs: AttrBuilder,
    res_attrs: AttrBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    events: EventsBuilder,
    links: LinksBuilder,
    dropped_attrs: Vec<u32>,
    dropped_events: Vec<u32>,
    dropped_links: Vec<u32>,
    flags: Vec<u32>,
    scratch: String,
}

struct EventsBuilder {
    offsets: Vec<i32>,
    time: Vec<i64>,
    name: StringBuilder,
    attrs: AttrBuilder,
}

struct LinksBuilder {
    offsets: Vec<i32>,
    count: usize,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    trace_state: StringBuilder,
    attrs: AttrBuilder,
}

impl EventsBuilder {
    fn push(&mut self, events: &[Event], scratch: &mut String) -> Result<(), ArrowError> {
        for e in events {
            self.time.push(e.time_unix_nano.min(i64::MAX as u64) as i64);
            self.name.append_value(&e.name);
            self.attrs.append(&e.attributes, scratch)?;
        }
        self.offsets
            .push(i32::try_from(self.time.len()).map_err(|_| too_big("events"))?);
        Ok(())
    }
    fn finish(mut self) -> Result<(ArrayRef, ArrayRef), ArrowError> {
        let fields = event_fields();
        let time: ArrayRef =
            Arc::new(TimestampNanosecondArray::from(self.time).with_timezone("UTC"));
        let (attrs, types) = self.attrs.finish();
        let children: Vec<ArrayRef> = vec![time, Arc::new(self.name.finish()), attrs];
        let item = StructArray::try_new(fields.clone(), children, None)?;
        let types = types_list(self.offsets.clone(), types)?;
        Ok((
            list_array(crate::schema::events_type(), "events", self.offsets, item)?,
            types,
        ))
    }
}

/// The per-item attribute type column of events or links (same offsets as the list).
fn types_list(offsets: Vec<i32>, types: ArrayRef) -> Result<ArrayRef, ArrowError> {
    let arrow::datatypes::DataType::List(field) = crate::schema::types_list_type() else {
        return Err(ArrowError::SchemaError("types list is not a list".into()));
    };
    Ok(Arc::new(ListArray::try_new(
        field,
        OffsetBuffer::new(offsets.into()),
        types,
        None,
    )?))
}

/// A list column of type `list_type` from per-span offsets and the flattened items.
fn list_array(
    list_type: arrow::datatypes::DataType,
    what: &str,
    offsets: Vec<i32>,
    item: StructArray,
) -> Result<ArrayRef, ArrowError> {
    let arrow::datatypes::DataType::List(field) = list_type else {
        return Err(ArrowError::SchemaError(format!(
            "{what} type is not a list"
        )));
    };
    Ok(Arc::new(ListArray::try_new(
        field,
        OffsetBuffer::new(offsets.into()),
        Arc::new(item),
        None,
    )?))
}

impl LinksBuilder {
    fn push(&mut self, links: &[Link], scratch: &mut String) -> Result<(), ArrowError> {
        for l in links {
            scratch.clear();
            hex_into(&l.trace_id, scratch);
            self.trace_id.append_value(scratch.as_str());
            scratch.clear();
            hex_into(&l.span_id, scratch);
            self.span_id.append_value(scratch.as_str());
            self.trace_state.append_value(&l.trace_state);
            self.attrs.append(&l.attributes, scratch)?;
        }
        self.count += links.len();
        self.offsets
            .push(i32::try_from(self.count).map_err(|_| too_big("links"))?);
        Ok(())
    }
    fn finish(mut self) -> Result<(ArrayRef, ArrayRef), ArrowError> {
        let (attrs, types) = self.attrs.finish();
        let children: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.trace_state.finish()),
            attrs,
        ];
        let item = StructArray::try_new(link_fields(), children, None)?;
        let types = types_list(self.offsets.clone(), types)?;
        Ok((
            list_array(crate::schema::links_type(), "links", self.offsets, item)?,
            types,
        ))
    }
}

fn too_big(what: &str) -> ArrowError {
    ArrowError::ComputeError(format!("too many {what} in one batch"))
}

impl Builders {
    fn new(capacity: usize) -> Self {
        Builders {
            trace_id: StringBuilder::with_capacity(capacity, capacity * 32),
            span_id: StringBuilder::with_capacity(capacity, capacity * 16),
            parent: StringBuilder::with_capacity(capacity, capacity * 16),
            trace_state: StringBuilder::new(),
            service: StringBuilder::new(),
            name: StringBuilder::new(),
            kind: StringBuilder::new(),
            start: Vec::with_capacity(capacity),
            end: Vec::with_capacity(capacity),
            duration: Vec::with_capacity(capacity),
            status_code: StringBuilder::new(),
            status_msg: StringBuilder::new(),
            attrs: AttrBuilder::new(),
            res_attrs: AttrBuilder::new(),
            scope_name: StringBuilder::new(),
            scope_version: StringBuilder::new(),
            events: EventsBuilder {
                offsets: vec![0],
                time: Vec::new(),
                name: StringBuilder::new(),
                attrs: AttrBuilder::new(),
            },
            links: LinksBuilder {
                offsets: vec![0],
                count: 0,
                trace_id: StringBuilder::new(),
                span_id: StringBuilder::new(),
                trace_state: StringBuilder::new(),
                attrs: AttrBuilder::new(),
            },
            dropped_attrs: Vec::with_capacity(capacity),
            dropped_events: Vec::with_capacity(capacity),
            dropped_links: Vec::with_capacity(capacity),
            flags: Vec::with_capacity(capacity),
            scratch: String::with_capacity(64),
        }
    }

    fn push(
        &mut self,
        span: &Span,
        service: &str,
        res_attrs: &[KeyValue],
        scope: (&str, &str),
    ) -> Result<(), ArrowError> {
        let s = &mut self.scratch;
        s.clear();
        hex_into(&span.trace_id, s);
        self.trace_id.append_value(s.as_str());
        s.clear();
        hex_into(&span.span_id, s);
        self.span_id.append_value(s.as_str());
        if span.parent_span_id.is_empty() {
            self.parent.append_null();
        } else {
            s.clear();
            hex_into(&span.parent_span_id, s);
            self.parent.append_value(s.as_str());
        }
        self.trace_state.append_value(&span.trace_state);
        self.service.append_value(service);
        self.name.append_value(&span.name);
        self.kind.append_value(kind_name(span.kind));
        let start = span.start_time_unix_nano.min(i64::MAX as u64) as i64;
        let end = span.end_time_unix_nano.min(i64::MAX as u64) as i64;
        self.start.push(start);
        self.end.push(end);
        self.duration.push((end.saturating_sub(start)) as f64 / 1e6);
        let (code, msg) = span
            .status
            .as_ref()
            .map(|st| (st.code, st.message.as_str()))
            .unwrap_or((0, ""));
        self.status_code.append_value(status_name(code));
        self.status_msg.append_value(msg);
        self.attrs.append(&span.attributes, s)?;
        self.res_attrs.append(res_attrs, s)?;
        self.scope_name.append_value(scope.0);
        self.scope_version.append_value(scope.1);
        self.events.push(&span.events, s)?;
        self.links.push(&span.links, s)?;
        self.dropped_attrs.push(span.dropped_attributes_count);
        self.dropped_events.push(span.dropped_events_count);
        self.dropped_links.push(span.dropped_links_count);
        self.flags.push(span.flags);
        Ok(())
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let ts = |v: Vec<i64>| -> ArrayRef {
            Arc::new(TimestampNanosecondArray::from(v).with_timezone("UTC"))
        };
        let (attrs, attr_types) = self.attrs.finish();
        let (res_attrs, res_attr_types) = self.res_attrs.finish();
        let (events, event_types) = self.events.finish()?;
        let (links, link_types) = self.links.finish()?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.service.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            ts(self.start),
            ts(self.end),
            Arc::new(Float64Array::from(self.duration)),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_msg.finish()),
            attrs,
            res_attrs,
            Arc::new(self.scope_name.finish()),
            Arc::new(self.scope_version.finish()),
            events,
            links,
            Arc::new(UInt32Array::from(self.dropped_attrs)),
            Arc::new(UInt32Array::from(self.dropped_events)),
            Arc::new(UInt32Array::from(self.dropped_links)),
            Arc::new(UInt32Array::from(self.flags)),
            attr_types,
            res_attr_types,
            event_types,
            link_types,
        ];
        RecordBatch::try_new(spans_schema(), columns)
    }
}

/// The `service.name` resource attribute, or OpenTelemetry's `unknown_service` default.
pub fn service_name(res_attrs: &[KeyValue]) -> &str {
    res_attrs
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(
            |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => Some(s.as_str()),
                _ => None,
            },
        )
        .unwrap_or("unknown_service")
}

/// Converts every span of `req` into one record batch with [`spans_schema`].
pub fn request_to_batch(req: &TraceRequest) -> Result<RecordBatch, ArrowError> {
    let mut b = Builders::new(crate::span_count(req));
    for rs in &req.resource_spans {
        let res_attrs: &[KeyValue] = rs
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or(&[]);
        let service = service_name(res_attrs);
        for ss in &rs.scope_spans {
            let scope = ss
                .scope
                .as_ref()
                .map(|s| (s.name.as_str(), s.version.as_str()))
                .unwrap_or(("", ""));
            for span in &ss.spans {
                b.push(span, service, res_attrs, scope)?;
            }
        }
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::common::v1::{AnyValue, InstrumentationScope};
    use crate::otlp::resource::v1::Resource;
    use crate::otlp::trace::v1::{ResourceSpans, ScopeSpans, Status};
    use arrow::array::{Array, AsArray, MapArray};

    fn kv(k: &str, v: Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn sample() -> TraceRequest {
        let span = Span {
            trace_id: vec![0xab; 16],
            span_id: vec![0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08],
            parent_span_id: vec![],
            name: "GET /users".into(),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_250_000_000,
            attributes: vec![
                kv("http.route", Value::StringValue("/users".into())),
                kv("http.status_code", Value::IntValue(200)),
            ],
            events: vec![Event {
                time_unix_nano: 1_700_000_000_100_000_000,
                name: "cache miss".into(),
                attributes: vec![],
                dropped_attributes_count: 0,
            }],
            links: vec![Link {
                trace_id: vec![0xcd; 16],
                span_id: vec![0xef; 8],
                ..Default::default()
            }],
            status: Some(Status {
                code: 2,
                message: "boom".into(),
            }),
            ..Default::default()
        };
        TraceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", Value::StringValue("users".into()))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        version: "1.0".into(),
                        ..Default::default()
                    }),
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn converts_a_span() -> Result<(), ArrowError> {
        let batch = request_to_batch(&sample())?;
        assert_eq!(batch.num_rows(), 1);
        let s = |name: &str| {
            batch
                .column_by_name(name)
                .map(|c| c.as_string::<i32>().value(0).to_string())
        };
        assert_eq!(
            s("trace_id").as_deref(),
            Some("abababababababababababababababab")
        );
        assert_eq!(s("span_id").as_deref(), Some("0102030405060708"));
        assert_eq!(s("service_name").as_deref(), Some("users"));
        assert_eq!(s("span_kind").as_deref(), Some("SPAN_KIND_SERVER"));
        assert_eq!(s("status_code").as_deref(), Some("STATUS_CODE_ERROR"));
        assert!(batch
            .column_by_name("parent_span_id")
            .map(|c| c.is_null(0))
            .unwrap_or(false));
        let dur = batch
            .column_by_name("duration_ms")
            .map(|c| c.as_primitive::<arrow::datatypes::Float64Type>().value(0));
        assert_eq!(dur, Some(250.0));
        let attrs = batch
            .column_by_name("span_attributes")
            .and_then(|c| c.as_any().downcast_ref::<MapArray>().cloned());
        let attrs = attrs.ok_or_else(|| ArrowError::SchemaError("no map".into()))?;
        let entries = attrs.value(0);
        let keys = entries.column(0).as_string::<i32>();
        let vals = entries.column(1).as_string::<i32>();
        assert_eq!((keys.value(1), vals.value(1)), ("http.status_code", "200"));
        let events = batch
            .column_by_name("events")
            .map(|c| c.as_list::<i32>().value(0).len());
        assert_eq!(events, Some(1));
        Ok(())
    }

    #[test]
    fn empty_request_gives_empty_batch() -> Result<(), ArrowError> {
        let batch = request_to_batch(&TraceRequest::default())?;
        assert_eq!(batch.num_rows(), 0);
        assert_eq!(batch.schema(), spans_schema());
        Ok(())
    }
}
