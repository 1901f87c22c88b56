//! The Arrow schema of the `spans` table (column names fixed by `shared/interfaces.md`).
//!
//! Attribute maps hold every value as text (see [`crate::anyvalue`]) so SQL can compare them
//! without casts. The OTLP type of each value is kept beside the map in a `Binary` column:
//! byte *i* is the [`crate::anyvalue::ValueType`] of entry *i*, and an empty value means
//! "every entry is a string". The Jaeger and Tempo APIs read it to give typed tags back.
//! Events and links keep theirs in `List<Binary>` columns parallel to `events`/`links`.
//! The type columns come last in the table and are hidden from the public `spans` table
//! (see [`PUBLIC_COLUMNS`]).

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use std::sync::{Arc, OnceLock};

/// Timestamps are nanoseconds since the epoch, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// `Map<Utf8, Utf8>` with the field names `entries`/`key`/`value` (the Parquet and
/// DataFusion convention; `to_arrow` configures its `MapBuilder` to match).
pub fn attr_map_type() -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Utf8, true),
        ])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

pub fn event_fields() -> Fields {
    Fields::from(vec![
        Field::new("time", timestamp_type(), false),
        Field::new("name", DataType::Utf8, false),
        Field::new("attributes", attr_map_type(), false),
    ])
}

pub fn link_fields() -> Fields {
    Fields::from(vec![
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("span_id", DataType::Utf8, false),
        Field::new("trace_state", DataType::Utf8, false),
        Field::new("attributes", attr_map_type(), false),
    ])
}

pub fn events_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(event_fields()),
        false,
    )))
}

pub fn links_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(link_fields()),
        false,
    )))
}

/// Column names, in table order.
pub mod col {
    pub const TRACE_ID: &str = "trace_id";
    pub const SPAN_ID: &str = "span_id";
    pub const PARENT_SPAN_ID: &str = "parent_span_id";
    pub const TRACE_STATE: &str = "trace_state";
    pub const SERVICE_NAME: &str = "service_name";
    pub const SPAN_NAME: &str = "span_name";
    pub const SPAN_KIND: &str = "span_kind";
    pub const START_TIME: &str = "start_time";
    pub const END_TIME: &str = "end_time";
    pub const DURATION_MS: &str = "duration_ms";
    pub const STATUS_CODE: &str = "status_code";
    pub const STATUS_MESSAGE: &str = "status_message";
    pub const SPAN_ATTRIBUTES: &str = "span_attributes";
    pub const RESOURCE_ATTRIBUTES: &str = "resource_attributes";
    pub const SCOPE_NAME: &str = "scope_name";
    pub const SCOPE_VERSION: &str = "scope_version";
    pub const EVENTS: &str = "events";
    pub const LINKS: &str = "links";
    pub const DROPPED_ATTRIBUTES_COUNT: &str = "dropped_attributes_count";
    pub const DROPPED_EVENTS_COUNT: &str = "dropped_events_count";
    pub const DROPPED_LINKS_COUNT: &str = "dropped_links_count";
    pub const FLAGS: &str = "flags";
    pub const SPAN_ATTRIBUTE_TYPES: &str = "span_attribute_types";
    pub const RESOURCE_ATTRIBUTE_TYPES: &str = "resource_attribute_types";
    pub const EVENT_ATTRIBUTE_TYPES: &str = "event_attribute_types";
    pub const LINK_ATTRIBUTE_TYPES: &str = "link_attribute_types";
}

/// `List<Binary>`: the type column of each event's (or link's) attributes, one per item.
pub fn types_list_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Binary, false)))
}

/// How many leading columns of [`spans_schema`] the public `spans` table shows; the rest
/// (the attribute type columns) are for Osprey's own typed APIs.
pub const PUBLIC_COLUMNS: usize = 22;

/// The schema of the `spans` table; the same for in-memory batches and Parquet files.
pub fn spans_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            use col::*;
            Arc::new(Schema::new(vec![
                Field::new(TRACE_ID, DataType::Utf8, false),
                Field::new(SPAN_ID, DataType::Utf8, false),
                Field::new(PARENT_SPAN_ID, DataType::Utf8, true),
                Field::new(TRACE_STATE, DataType::Utf8, false),
                Field::new(SERVICE_NAME, DataType::Utf8, false),
                Field::new(SPAN_NAME, DataType::Utf8, false),
                Field::new(SPAN_KIND, DataType::Utf8, false),
                Field::new(START_TIME, timestamp_type(), false),
                Field::new(END_TIME, timestamp_type(), false),
                Field::new(DURATION_MS, DataType::Float64, false),
                Field::new(STATUS_CODE, DataType::Utf8, false),
                Field::new(STATUS_MESSAGE, DataType::Utf8, false),
                Field::new(SPAN_ATTRIBUTES, attr_map_type(), false),
                Field::new(RESOURCE_ATTRIBUTES, attr_map_type(), false),
                Field::new(SCOPE_NAME, DataType::Utf8, false),
                Field::new(SCOPE_VERSION, DataType::Utf8, false),
                Field::new(EVENTS, events_type(), false),
                Field::new(LINKS, links_type(), false),
                Field::new(DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, false),
                Field::new(DROPPED_EVENTS_COUNT, DataType::UInt32, false),
                Field::new(DROPPED_LINKS_COUNT, DataType::UInt32, false),
                Field::new(FLAGS, DataType::UInt32, false),
                Field::new(SPAN_ATTRIBUTE_TYPES, DataType::Binary, false),
                Field::new(RESOURCE_ATTRIBUTE_TYPES, DataType::Binary, false),
                Field::new(EVENT_ATTRIBUTE_TYPES, types_list_type(), false),
                Field::new(LINK_ATTRIBUTE_TYPES, types_list_type(), false),
            ]))
        })
        .clone()
}
