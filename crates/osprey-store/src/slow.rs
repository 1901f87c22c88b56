//! The slowest spans per minute and `span_stats` key: the rows of the `slow_spans` table.
//!
//! Each (minute, service, span name, kind) keeps its [`SLOW_PER_KEY`] longest spans. The
//! longest N spans (N ≤ [`SLOW_PER_KEY`]) of any set of whole minutes and keys are among those
//! rows, so "the slowest requests of this service" needs no scan of `spans`.

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use osprey_model::schema::{col, timestamp_type};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, OnceLock};

/// Spans kept per minute and key.
pub const SLOW_PER_KEY: usize = 15;

/// The schema of `slow_spans`.
pub fn slow_spans_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new(crate::rollup::stats_col::MINUTE, timestamp_type(), false),
                Field::new(col::SERVICE_NAME, DataType::Utf8, false),
                Field::new(col::SPAN_NAME, DataType::Utf8, false),
                Field::new(col::SPAN_KIND, DataType::Utf8, false),
                Field::new(col::TRACE_ID, DataType::Utf8, false),
                Field::new(col::SPAN_ID, DataType::Utf8, false),
                Field::new(col::START_TIME, timestamp_type(), false),
                Field::new(col::DURATION_MS, DataType::Float64, false),
                Field::new(col::STATUS_CODE, DataType::Utf8, false),
            ]))
        })
        .clone()
}

/// One kept span (names live in the key and the unit's string table).
#[derive(Debug, Clone)]
pub struct SlowSpan {
    pub ms: f64,
    pub start: i64,
    pub trace: Box<str>,
    pub span: Box<str>,
    pub status: u32,
}

// Ordered so that the heap's top is the shortest kept span (the one to drop).
impl PartialEq for SlowSpan {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for SlowSpan {}
impl PartialOrd for SlowSpan {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SlowSpan {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .ms
            .total_cmp(&self.ms)
            .then_with(|| other.start.cmp(&self.start))
    }
}

/// The longest [`SLOW_PER_KEY`] spans offered.
#[derive(Debug, Default)]
pub struct TopSlow {
    heap: BinaryHeap<SlowSpan>,
}

impl TopSlow {
    /// Whether a span of `ms` would be kept (cheap check before building a [`SlowSpan`]).
    pub fn wants(&self, ms: f64) -> bool {
        self.heap.len() < SLOW_PER_KEY || self.heap.peek().is_some_and(|m| ms > m.ms)
    }

    pub fn offer(&mut self, span: SlowSpan) {
        if !self.wants(span.ms) {
            return;
        }
        self.heap.push(span);
        if self.heap.len() > SLOW_PER_KEY {
            self.heap.pop();
        }
    }

    /// The kept spans, longest first.
    pub fn into_sorted(self) -> Vec<SlowSpan> {
        // Ascending in this order is longest first.
        self.heap.into_sorted_vec()
    }
}

/// The key of a group of kept spans: minute, service, span name, kind.
pub type SlowKey<'a> = (i64, &'a str, &'a str, &'a str);

/// Builds the `slow_spans` batch from each key's kept spans; `status` names a status id.
pub fn batch<'a>(
    groups: &[(SlowKey<'a>, Vec<SlowSpan>)],
    status: impl Fn(u32) -> &'a str,
) -> arrow::error::Result<RecordBatch> {
    let rows: Vec<(&SlowKey<'a>, &SlowSpan)> = groups
        .iter()
        .flat_map(|(k, spans)| spans.iter().map(move |s| (k, s)))
        .collect();
    let times = |f: fn(&(&SlowKey<'a>, &SlowSpan)) -> i64| -> ArrayRef {
        Arc::new(
            TimestampNanosecondArray::from_iter_values(rows.iter().map(f)).with_timezone("UTC"),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        times(|(k, _)| k.0),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|(k, _)| k.1))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|(k, _)| k.2))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|(k, _)| k.3))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(_, s)| &*s.trace),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(_, s)| &*s.span),
        )),
        times(|(_, s)| s.start),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|(_, s)| s.ms),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(_, s)| status(s.status)),
        )),
    ];
    RecordBatch::try_new(slow_spans_schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(ms: f64) -> SlowSpan {
        SlowSpan {
            ms,
            start: 0,
            trace: "t".into(),
            span: "s".into(),
            status: 0,
        }
    }

    #[test]
    fn keeps_the_longest_in_order() {
        let mut top = TopSlow::default();
        for i in 0..100 {
            top.offer(span(f64::from((i * 37) % 100)));
        }
        let kept: Vec<f64> = top.into_sorted().iter().map(|s| s.ms).collect();
        let want: Vec<f64> = (85..100).rev().map(f64::from).collect();
        assert_eq!(kept, want);
    }

    #[test]
    fn fewer_than_k_are_all_kept() {
        let mut top = TopSlow::default();
        for ms in [3.0, 1.0, 2.0] {
            top.offer(span(ms));
        }
        let kept: Vec<f64> = top.into_sorted().iter().map(|s| s.ms).collect();
        assert_eq!(kept, vec![3.0, 2.0, 1.0]);
    }
}
