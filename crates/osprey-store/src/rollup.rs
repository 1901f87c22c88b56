//! Per-minute span rollups: the rows of the `span_stats` table.
//!
//! One row per (minute of start time, service, span name, span kind) with the number of
//! spans, how many have status ERROR, the sum of their durations and a [`LogHist`] of them.
//! Rollups are derived data: computed from one immutable unit (a segment file, or one
//! buffered batch) on first use and cached with it, never written to disk. A unit's rows
//! cover only its own spans, so the rows of all units of a snapshot add up to exactly the
//! spans of that snapshot; compaction and retention need nothing special.

use crate::error::{Result, StoreError};
use crate::hist::LogHist;
use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef, TimestampNanosecondType};
use osprey_model::schema::{col, timestamp_type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

pub const NANOS_PER_MINUTE: i64 = 60_000_000_000;

/// Column names of `span_stats`.
pub mod stats_col {
    pub const MINUTE: &str = "minute";
    pub const CALLS: &str = "calls";
    pub const ERRORS: &str = "errors";
    pub const SUM_MS: &str = "sum_ms";
    pub const HIST: &str = "hist";
}

const ERROR_STATUS: &str = "STATUS_CODE_ERROR";

/// The columns of `spans` a rollup reads.
const INPUT_COLUMNS: [&str; 6] = [
    col::SERVICE_NAME,
    col::SPAN_NAME,
    col::SPAN_KIND,
    col::START_TIME,
    col::DURATION_MS,
    col::STATUS_CODE,
];

/// The start of the minute holding `ns`.
pub fn minute_of(ns: i64) -> i64 {
    ns.div_euclid(NANOS_PER_MINUTE) * NANOS_PER_MINUTE
}

/// The schema of `span_stats`.
pub fn span_stats_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new(stats_col::MINUTE, timestamp_type(), false),
                Field::new(col::SERVICE_NAME, DataType::Utf8, false),
                Field::new(col::SPAN_NAME, DataType::Utf8, false),
                Field::new(col::SPAN_KIND, DataType::Utf8, false),
                Field::new(stats_col::CALLS, DataType::Int64, false),
                Field::new(stats_col::ERRORS, DataType::Int64, false),
                Field::new(stats_col::SUM_MS, DataType::Float64, false),
                Field::new(stats_col::HIST, DataType::Binary, false),
            ]))
        })
        .clone()
}

/// The rollup rows of one unit, and the range of minutes they cover (both 0 when empty).
#[derive(Debug, Clone)]
pub struct SpanStats {
    pub batch: RecordBatch,
    pub min_minute: i64,
    pub max_minute: i64,
}

impl SpanStats {
    /// Whether a row may fall in the inclusive minute range `[min, max]`.
    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        self.batch.num_rows() > 0 && self.min_minute <= max && self.max_minute >= min
    }

    /// Total spans counted (for tests and checks).
    pub fn calls(&self) -> i64 {
        self.batch
            .column(4)
            .as_primitive_opt::<arrow::datatypes::Int64Type>()
            .map(|c| c.values().iter().sum())
            .unwrap_or(0)
    }
}

#[derive(Default)]
struct Agg {
    calls: i64,
    errors: i64,
    sum_ms: f64,
    hist: LogHist,
}

/// Builds rollup rows from span batches (any subset of the `spans` columns that includes
/// [`INPUT_COLUMNS`]).
#[derive(Default)]
pub struct Aggregator {
    ids: HashMap<String, u32>,
    names: Vec<String>,
    groups: HashMap<(i64, u32, u32, u32), usize>,
    keys: Vec<(i64, u32, u32, u32)>,
    aggs: Vec<Agg>,
}

fn missing(what: &str) -> StoreError {
    StoreError::Arrow(arrow::error::ArrowError::SchemaError(format!(
        "rollup input: column {what} missing or of another type"
    )))
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| missing(name))
}

impl Aggregator {
    pub fn new() -> Self {
        Self::default()
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        id
    }

    /// Counts every row of `batch`.
    pub fn add_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let services = strings(batch, col::SERVICE_NAME)?;
        let names = strings(batch, col::SPAN_NAME)?;
        let kinds = strings(batch, col::SPAN_KIND)?;
        let status = strings(batch, col::STATUS_CODE)?;
        let starts = batch
            .column_by_name(col::START_TIME)
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
            .ok_or_else(|| missing(col::START_TIME))?;
        let durations = batch
            .column_by_name(col::DURATION_MS)
            .and_then(|c| c.as_primitive_opt::<Float64Type>())
            .ok_or_else(|| missing(col::DURATION_MS))?;
        // Consecutive rows often share strings: remember the last id of each column.
        let cols: [&StringArray; 3] = [services, names, kinds];
        let mut last: [(Option<&str>, u32); 3] = [(None, 0); 3];
        for r in 0..batch.num_rows() {
            let mut id = |slot: usize, this: &mut Self| -> u32 {
                let a = cols[slot];
                let v = if a.is_null(r) { "" } else { a.value(r) };
                match last[slot] {
                    (Some(prev), id) if prev == v => id,
                    _ => {
                        let id = this.intern(v);
                        last[slot] = (Some(v), id);
                        id
                    }
                }
            };
            let key = (
                minute_of(starts.value(r)),
                id(0, self),
                id(1, self),
                id(2, self),
            );
            let g = match self.groups.get(&key) {
                Some(g) => *g,
                None => {
                    let g = self.aggs.len();
                    self.groups.insert(key, g);
                    self.keys.push(key);
                    self.aggs.push(Agg::default());
                    g
                }
            };
            let agg = &mut self.aggs[g];
            let ms = if durations.is_null(r) {
                0.0
            } else {
                durations.value(r)
            };
            agg.calls += 1;
            agg.errors += i64::from(!status.is_null(r) && status.value(r) == ERROR_STATUS);
            agg.sum_ms += ms;
            agg.hist.record(ms);
        }
        Ok(())
    }

    /// The rows, ordered by minute.
    pub fn finish(self) -> Result<SpanStats> {
        let mut order: Vec<usize> = (0..self.keys.len()).collect();
        order.sort_by_key(|&g| self.keys[g]);
        let text = |pick: fn(&(i64, u32, u32, u32)) -> u32| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(
                order
                    .iter()
                    .map(|&g| self.names[pick(&self.keys[g]) as usize].as_str()),
            ))
        };
        let minutes: Vec<i64> = order.iter().map(|&g| self.keys[g].0).collect();
        let (min_minute, max_minute) = (
            minutes.first().copied().unwrap_or(0),
            minutes.last().copied().unwrap_or(0),
        );
        let mut hist = BinaryBuilder::new();
        for &g in &order {
            hist.append_value(self.aggs[g].hist.encode());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from(minutes).with_timezone("UTC")),
            text(|k| k.1),
            text(|k| k.2),
            text(|k| k.3),
            Arc::new(Int64Array::from_iter_values(
                order.iter().map(|&g| self.aggs[g].calls),
            )),
            Arc::new(Int64Array::from_iter_values(
                order.iter().map(|&g| self.aggs[g].errors),
            )),
            Arc::new(Float64Array::from_iter_values(
                order.iter().map(|&g| self.aggs[g].sum_ms),
            )),
            Arc::new(hist.finish()),
        ];
        let batch = RecordBatch::try_new(span_stats_schema(), columns)?;
        Ok(SpanStats {
            batch,
            min_minute,
            max_minute,
        })
    }
}

/// The rollup of span batches.
pub fn from_batches<'a>(batches: impl IntoIterator<Item = &'a RecordBatch>) -> Result<SpanStats> {
    let mut agg = Aggregator::new();
    for b in batches {
        agg.add_batch(b)?;
    }
    agg.finish()
}

/// The rollup of a segment file, reading only the columns it needs.
pub fn from_segment(path: &Path) -> Result<SpanStats> {
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let roots = INPUT_COLUMNS
        .iter()
        .map(|c| builder.schema().index_of(c).map_err(StoreError::Arrow))
        .collect::<Result<Vec<usize>>>()?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()?;
    let mut agg = Aggregator::new();
    for batch in reader {
        agg.add_batch(&batch?)?;
    }
    agg.finish()
}

/// A rollup computed on first use and kept: one per segment file or buffered batch.
/// Concurrent first users wait for one computation instead of each doing it.
#[derive(Debug, Default)]
pub struct LazyStats {
    cell: OnceLock<Arc<SpanStats>>,
    computing: Mutex<()>,
}

impl LazyStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached rollup, if computed.
    pub fn cached(&self) -> Option<Arc<SpanStats>> {
        self.cell.get().cloned()
    }

    /// Stores a rollup computed elsewhere (ignored when one is there already).
    pub fn set(&self, stats: Arc<SpanStats>) {
        let _ = self.cell.set(stats);
    }

    /// The rollup, computing it with `compute` if needed. Errors are not cached.
    pub fn get_or_compute(
        &self,
        compute: impl FnOnce() -> Result<SpanStats>,
    ) -> Result<Arc<SpanStats>> {
        if let Some(s) = self.cell.get() {
            return Ok(s.clone());
        }
        let _guard = self.computing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = self.cell.get() {
            return Ok(s.clone());
        }
        let stats = Arc::new(compute()?);
        let _ = self.cell.set(stats.clone());
        Ok(stats)
    }
}

/// One buffered batch and its lazily computed rollup.
#[derive(Debug)]
pub struct BufferedStats {
    batch: RecordBatch,
    stats: LazyStats,
}

impl BufferedStats {
    pub fn new(batch: RecordBatch) -> Arc<BufferedStats> {
        Arc::new(BufferedStats {
            batch,
            stats: LazyStats::new(),
        })
    }

    pub fn get(&self) -> Result<Arc<SpanStats>> {
        self.stats
            .get_or_compute(|| from_batches(std::iter::once(&self.batch)))
    }
}
