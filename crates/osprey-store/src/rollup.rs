//! Per-minute span rollups: the rows of the `span_stats`, `call_edges` and `slow_spans` tables.
//!
//! `span_stats` has one row per (minute of start time, service, span name, span kind) with the
//! number of spans, how many have status ERROR, the sum of their durations and a [`LogHist`]
//! of them; `slow_spans` the longest spans of each such key ([`crate::slow`]); `call_edges`
//! the calls between services ([`crate::edges`]). Rollups are derived data: computed from one immutable unit (a segment file, or one
//! buffered batch) on first use and cached with it, never written to disk. A unit's rows
//! cover only its own spans, so the rows of all units of a snapshot add up to exactly the
//! spans of that snapshot; compaction and retention need nothing special. (Calls whose parent
//! and child are in different units are paired at query time, see [`crate::edges::stitch`].)

use crate::edges::{
    missing, parse_span_id, parse_trace_id, Callee, Caller, EdgeBuilder, EdgeRollup,
};
use crate::error::{Result, StoreError};
use crate::hist::LogHist;
use crate::slow::{self, SlowKey, SlowSpan, TopSlow};
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
const INPUT_COLUMNS: [&str; 9] = [
    col::TRACE_ID,
    col::SPAN_ID,
    col::PARENT_SPAN_ID,
    col::SERVICE_NAME,
    col::SPAN_NAME,
    col::SPAN_KIND,
    col::START_TIME,
    col::DURATION_MS,
    col::STATUS_CODE,
];

/// The start of the minute holding `ns` (saturating at the ends of the range).
pub fn minute_of(ns: i64) -> i64 {
    ns.div_euclid(NANOS_PER_MINUTE)
        .saturating_mul(NANOS_PER_MINUTE)
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

/// One unit's rollup: its `span_stats`, `call_edges` and `slow_spans` rows, and the range of
/// minutes they cover (both 0 when empty).
#[derive(Debug, Clone)]
pub struct Rollup {
    pub stats: RecordBatch,
    pub edges: EdgeRollup,
    pub slow: RecordBatch,
    pub min_minute: i64,
    pub max_minute: i64,
}

impl Rollup {
    /// Whether a row may fall in the inclusive minute range `[min, max]`.
    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        self.stats.num_rows() > 0 && self.min_minute <= max && self.max_minute >= min
    }

    /// Total spans counted (for tests and checks).
    pub fn calls(&self) -> i64 {
        self.stats
            .column(4)
            .as_primitive_opt::<arrow::datatypes::Int64Type>()
            .map(|c| c.values().iter().sum())
            .unwrap_or(0)
    }

    /// Approximate heap bytes held.
    pub fn size(&self) -> usize {
        self.stats.get_array_memory_size() + self.slow.get_array_memory_size() + self.edges.size()
    }
}

/// Interned strings: services, span names, kinds and statuses of one unit.
#[derive(Default)]
pub struct Names {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Names {
    pub fn intern(&mut self, s: &str) -> u32 {
        match self.ids.get(s) {
            Some(id) => *id,
            None => self.intern_arc(Arc::from(s)),
        }
    }

    pub fn intern_arc(&mut self, s: Arc<str>) -> u32 {
        if let Some(id) = self.ids.get(&s) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.clone());
        self.ids.insert(s, id);
        id
    }

    pub fn get(&self, id: u32) -> &str {
        self.names.get(id as usize).map(|s| &**s).unwrap_or("")
    }

    pub fn into_vec(self) -> Vec<Arc<str>> {
        self.names
    }
}

#[derive(Default)]
struct Agg {
    calls: i64,
    errors: i64,
    sum_ms: f64,
    hist: LogHist,
    slow: TopSlow,
}

/// What a span kind makes a span in a call between services.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Caller,
    Producer,
    Callee,
    Neither,
}

fn role_of(kind: &str) -> Role {
    match kind {
        "SPAN_KIND_CLIENT" => Role::Caller,
        "SPAN_KIND_PRODUCER" => Role::Producer,
        "SPAN_KIND_SERVER" | "SPAN_KIND_CONSUMER" => Role::Callee,
        _ => Role::Neither,
    }
}

/// Builds a unit's rollup from span batches (any subset of the `spans` columns that includes
/// [`INPUT_COLUMNS`]).
#[derive(Default)]
pub struct Aggregator {
    names: Names,
    /// The role of each interned name, when used as a kind.
    roles: Vec<Option<Role>>,
    groups: HashMap<(i64, u32, u32, u32), usize>,
    keys: Vec<(i64, u32, u32, u32)>,
    aggs: Vec<Agg>,
    edges: EdgeBuilder,
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| missing(name))
}

fn text(a: &StringArray, r: usize) -> &str {
    if a.is_null(r) {
        ""
    } else {
        a.value(r)
    }
}

impl Aggregator {
    pub fn new() -> Self {
        Self::default()
    }

    fn role(&mut self, kind: u32) -> Role {
        let i = kind as usize;
        if self.roles.len() <= i {
            self.roles.resize(i + 1, None);
        }
        *self.roles[i].get_or_insert_with(|| role_of(self.names.get(kind)))
    }

    /// Counts every row of `batch`.
    pub fn add_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let services = strings(batch, col::SERVICE_NAME)?;
        let names = strings(batch, col::SPAN_NAME)?;
        let kinds = strings(batch, col::SPAN_KIND)?;
        let status = strings(batch, col::STATUS_CODE)?;
        let traces = strings(batch, col::TRACE_ID)?;
        let span_ids = strings(batch, col::SPAN_ID)?;
        let parents = strings(batch, col::PARENT_SPAN_ID)?;
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
                let v = text(cols[slot], r);
                match last[slot] {
                    (Some(prev), id) if prev == v => id,
                    _ => {
                        let id = this.names.intern(v);
                        last[slot] = (Some(v), id);
                        id
                    }
                }
            };
            let minute = minute_of(starts.value(r));
            let key = (minute, id(0, self), id(1, self), id(2, self));
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
            let ms = if durations.is_null(r) {
                0.0
            } else {
                durations.value(r)
            };
            let st = text(status, r);
            let error = st == ERROR_STATUS;
            let agg = &mut self.aggs[g];
            agg.calls += 1;
            agg.errors += i64::from(error);
            agg.sum_ms += ms;
            agg.hist.record(ms);
            if agg.slow.wants(ms) {
                let status = self.names.intern(st);
                self.aggs[g].slow.offer(SlowSpan {
                    ms,
                    start: starts.value(r),
                    trace: text(traces, r).into(),
                    span: text(span_ids, r).into(),
                    status,
                });
            }
            match self.role(key.3) {
                role @ (Role::Caller | Role::Producer) => {
                    if let (Some(trace), Some(span)) = (
                        parse_trace_id(text(traces, r)),
                        parse_span_id(text(span_ids, r)),
                    ) {
                        self.edges.caller(Caller {
                            trace,
                            span,
                            service: key.1,
                            name: key.2,
                            fan_out: role == Role::Producer,
                        });
                    }
                }
                Role::Callee => {
                    if let (Some(trace), Some(parent)) = (
                        parse_trace_id(text(traces, r)),
                        parse_span_id(text(parents, r)),
                    ) {
                        self.edges.callee(Callee {
                            trace,
                            parent,
                            minute,
                            service: key.1,
                            name: key.2,
                            ms,
                            error,
                        });
                    }
                }
                Role::Neither => {}
            }
        }
        Ok(())
    }

    /// The rollup, rows ordered by minute.
    pub fn finish(self) -> Result<Rollup> {
        let Aggregator {
            names,
            groups: _,
            keys,
            aggs,
            edges,
            roles: _,
        } = self;
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by_key(|&g| keys[g]);
        let text = |pick: fn(&(i64, u32, u32, u32)) -> u32| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(
                order.iter().map(|&g| names.get(pick(&keys[g]))),
            ))
        };
        let minutes: Vec<i64> = order.iter().map(|&g| keys[g].0).collect();
        let (min_minute, max_minute) = (
            minutes.first().copied().unwrap_or(0),
            minutes.last().copied().unwrap_or(0),
        );
        let mut hist = BinaryBuilder::new();
        for &g in &order {
            hist.append_value(aggs[g].hist.encode());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from(minutes).with_timezone("UTC")),
            text(|k| k.1),
            text(|k| k.2),
            text(|k| k.3),
            Arc::new(Int64Array::from_iter_values(
                order.iter().map(|&g| aggs[g].calls),
            )),
            Arc::new(Int64Array::from_iter_values(
                order.iter().map(|&g| aggs[g].errors),
            )),
            Arc::new(Float64Array::from_iter_values(
                order.iter().map(|&g| aggs[g].sum_ms),
            )),
            Arc::new(hist.finish()),
        ];
        let stats = RecordBatch::try_new(span_stats_schema(), columns)?;
        let mut aggs: Vec<Option<Agg>> = aggs.into_iter().map(Some).collect();
        let groups: Vec<(SlowKey, Vec<SlowSpan>)> = order
            .iter()
            .filter_map(|&g| {
                let k = keys[g];
                let agg = aggs[g].take()?;
                let key = (k.0, names.get(k.1), names.get(k.2), names.get(k.3));
                Some((key, agg.slow.into_sorted()))
            })
            .collect();
        let slow = slow::batch(&groups, |id| names.get(id))?;
        drop(groups);
        let edges = edges.finish(Arc::new(names.into_vec()))?;
        Ok(Rollup {
            stats,
            edges,
            slow,
            min_minute,
            max_minute,
        })
    }
}

/// The rollup of span batches.
pub fn from_batches<'a>(batches: impl IntoIterator<Item = &'a RecordBatch>) -> Result<Rollup> {
    let mut agg = Aggregator::new();
    for b in batches {
        agg.add_batch(b)?;
    }
    agg.finish()
}

/// The rollup of a segment file, reading only the columns it needs.
pub fn from_segment(path: &Path) -> Result<Rollup> {
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
    cell: OnceLock<Arc<Rollup>>,
    computing: Mutex<()>,
}

impl LazyStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached rollup, if computed.
    pub fn cached(&self) -> Option<Arc<Rollup>> {
        self.cell.get().cloned()
    }

    /// Stores a rollup computed elsewhere (ignored when one is there already).
    pub fn set(&self, stats: Arc<Rollup>) {
        let _ = self.cell.set(stats);
    }

    /// The rollup, computing it with `compute` if needed. Errors are not cached.
    pub fn get_or_compute(&self, compute: impl FnOnce() -> Result<Rollup>) -> Result<Arc<Rollup>> {
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

    pub fn get(&self) -> Result<Arc<Rollup>> {
        self.stats
            .get_or_compute(|| from_batches(std::iter::once(&self.batch)))
    }
}
