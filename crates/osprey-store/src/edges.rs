//! Calls between services, per minute: the rows of the `call_edges` table.
//!
//! A call is a CLIENT or PRODUCER span (the caller's) whose child is a SERVER or CONSUMER span
//! of another service (the callee's); the row counts it in the minute the child started, with
//! the child's status and duration. Each unit's rollup resolves the calls whose two ends it
//! holds, and keeps the ends it could not pair ([`EdgeRollup::callers`] and
//! [`EdgeRollup::callees`], ids parsed to integers): [`stitch`] pairs those across the units
//! of a query, since a parent and its child often arrive in different requests and flushes.

use crate::error::{Result, StoreError};
use crate::hist::LogHist;
use crate::rollup::Names;
use arrow::array::{
    ArrayRef, BinaryBuilder, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use osprey_model::schema::timestamp_type;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Column names of `call_edges` (besides `minute`, `calls`, `errors`, `sum_ms`, `hist`).
pub mod edge_col {
    pub const CALLER_SERVICE: &str = "caller_service";
    pub const CALLER_SPAN_NAME: &str = "caller_span_name";
    pub const CALLEE_SERVICE: &str = "callee_service";
    pub const CALLEE_SPAN_NAME: &str = "callee_span_name";
}

/// The schema of `call_edges`.
pub fn call_edges_schema() -> SchemaRef {
    use crate::rollup::stats_col::*;
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new(MINUTE, timestamp_type(), false),
                Field::new(edge_col::CALLER_SERVICE, DataType::Utf8, false),
                Field::new(edge_col::CALLER_SPAN_NAME, DataType::Utf8, false),
                Field::new(edge_col::CALLEE_SERVICE, DataType::Utf8, false),
                Field::new(edge_col::CALLEE_SPAN_NAME, DataType::Utf8, false),
                Field::new(CALLS, DataType::Int64, false),
                Field::new(ERRORS, DataType::Int64, false),
                Field::new(SUM_MS, DataType::Float64, false),
                Field::new(HIST, DataType::Binary, false),
            ]))
        })
        .clone()
}

/// Parses a hex trace id (up to 32 digits).
pub fn parse_trace_id(s: &str) -> Option<u128> {
    (!s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u128::from_str_radix(s, 16).ok())
        .flatten()
}

/// Parses a hex span id (up to 16 digits).
pub fn parse_span_id(s: &str) -> Option<u64> {
    (!s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
}

/// A caller span no child in its unit pointed to (or a producer, whose consumers may be
/// many). Names are ids in the unit's [`Names`].
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub trace: u128,
    pub span: u64,
    pub service: u32,
    pub name: u32,
    /// A PRODUCER span: kept for other units even when a child in its own unit was found.
    pub fan_out: bool,
}

/// A callee span whose parent is not among its unit's callers.
#[derive(Debug, Clone, Copy)]
pub struct Callee {
    pub trace: u128,
    pub parent: u64,
    pub minute: i64,
    pub service: u32,
    pub name: u32,
    pub ms: f64,
    pub error: bool,
}

/// One unit's calls: the rows it resolved itself, and the ends it could not pair.
#[derive(Debug, Clone)]
pub struct EdgeRollup {
    pub batch: RecordBatch,
    pub callers: Vec<Caller>,
    pub callees: Vec<Callee>,
    pub names: Arc<Vec<Arc<str>>>,
}

impl EdgeRollup {
    /// Approximate heap bytes held.
    pub fn size(&self) -> usize {
        self.batch.get_array_memory_size()
            + self.callers.capacity() * std::mem::size_of::<Caller>()
            + self.callees.capacity() * std::mem::size_of::<Callee>()
    }
}

#[derive(Default)]
struct EdgeAgg {
    calls: i64,
    errors: i64,
    sum_ms: f64,
    hist: LogHist,
}

type EdgeKey = (i64, u32, u32, u32, u32);

/// Sums calls per (minute, caller service, caller span name, callee service, callee span
/// name); the ids are those of one [`Names`].
#[derive(Default)]
pub struct EdgeAggregator {
    groups: HashMap<EdgeKey, EdgeAgg>,
}

impl EdgeAggregator {
    /// Counts one call: `caller` and `callee` are (service, span name) ids.
    pub fn add(&mut self, minute: i64, caller: (u32, u32), callee: (u32, u32), ms: f64, err: bool) {
        let g = self
            .groups
            .entry((minute, caller.0, caller.1, callee.0, callee.1))
            .or_default();
        g.calls += 1;
        g.errors += i64::from(err);
        g.sum_ms += ms;
        g.hist.record(ms);
    }

    /// The rows, ordered by key.
    pub fn finish(self, names: &[Arc<str>]) -> Result<RecordBatch> {
        let mut rows: Vec<(EdgeKey, EdgeAgg)> = self.groups.into_iter().collect();
        rows.sort_by_key(|(k, _)| *k);
        let name = |id: u32| names.get(id as usize).map(|s| &**s).unwrap_or("");
        let text = |pick: fn(&EdgeKey) -> u32| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(k, _)| name(pick(k))),
            ))
        };
        let mut hist = BinaryBuilder::new();
        for (_, a) in &rows {
            hist.append_value(a.hist.encode());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(
                TimestampNanosecondArray::from_iter_values(rows.iter().map(|(k, _)| k.0))
                    .with_timezone("UTC"),
            ),
            text(|k| k.1),
            text(|k| k.2),
            text(|k| k.3),
            text(|k| k.4),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|(_, a)| a.calls),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|(_, a)| a.errors),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|(_, a)| a.sum_ms),
            )),
            Arc::new(hist.finish()),
        ];
        Ok(RecordBatch::try_new(call_edges_schema(), columns)?)
    }
}

/// Collects one unit's caller and callee spans, then pairs them.
#[derive(Default)]
pub struct EdgeBuilder {
    /// (trace, span) -> (the caller, paired).
    callers: HashMap<(u128, u64), (Caller, bool)>,
    callees: Vec<Callee>,
}

impl EdgeBuilder {
    pub fn caller(&mut self, c: Caller) {
        self.callers.insert((c.trace, c.span), (c, false));
    }

    pub fn callee(&mut self, c: Callee) {
        self.callees.push(c);
    }

    /// Pairs the unit's ends; calls within one service are not edges.
    pub fn finish(mut self, names: Arc<Vec<Arc<str>>>) -> Result<EdgeRollup> {
        let mut agg = EdgeAggregator::default();
        let mut dangling = Vec::new();
        for c in self.callees {
            match self.callers.get_mut(&(c.trace, c.parent)) {
                Some((p, paired)) => {
                    *paired = true;
                    if p.service != c.service {
                        agg.add(
                            c.minute,
                            (p.service, p.name),
                            (c.service, c.name),
                            c.ms,
                            c.error,
                        );
                    }
                }
                None => dangling.push(c),
            }
        }
        // A client span has one child; a producer's consumers may be in other units too.
        let mut callers: Vec<Caller> = self
            .callers
            .drain()
            .filter(|(_, (c, paired))| !paired || c.fan_out)
            .map(|(_, (c, _))| c)
            .collect();
        callers.shrink_to_fit();
        dangling.shrink_to_fit();
        Ok(EdgeRollup {
            batch: agg.finish(&names)?,
            callers,
            callees: dangling,
            names,
        })
    }
}

/// The calls whose two ends are in different units of `units`, counted in the child's minute;
/// only children whose minute is in `[lo, hi]` count. `None` when there are none.
pub fn stitch(units: &[&EdgeRollup], lo: i64, hi: i64) -> Result<Option<RecordBatch>> {
    let mut wanted: HashMap<(u128, u64), Vec<(usize, usize)>> = HashMap::new();
    for (u, unit) in units.iter().enumerate() {
        for (i, c) in unit.callees.iter().enumerate() {
            if c.minute >= lo && c.minute <= hi {
                wanted.entry((c.trace, c.parent)).or_default().push((u, i));
            }
        }
    }
    if wanted.is_empty() {
        return Ok(None);
    }
    let mut names = Names::default();
    let mut agg = EdgeAggregator::default();
    let mut found = false;
    for (pu, unit) in units.iter().enumerate() {
        let text = |id: u32| {
            unit.names
                .get(id as usize)
                .cloned()
                .unwrap_or_else(|| "".into())
        };
        for p in &unit.callers {
            let Some(children) = wanted.get(&(p.trace, p.span)) else {
                continue;
            };
            for &(cu, ci) in children {
                if cu == pu {
                    continue;
                }
                let c = &units[cu].callees[ci];
                let ctext = |id: u32| {
                    units[cu]
                        .names
                        .get(id as usize)
                        .cloned()
                        .unwrap_or_else(|| "".into())
                };
                let (ps, cs) = (text(p.service), ctext(c.service));
                if ps == cs {
                    continue;
                }
                let caller = (names.intern_arc(ps), names.intern_arc(text(p.name)));
                let callee = (names.intern_arc(cs), names.intern_arc(ctext(c.name)));
                agg.add(c.minute, caller, callee, c.ms, c.error);
                found = true;
            }
        }
    }
    if !found {
        return Ok(None);
    }
    agg.finish(&names.into_vec()).map(Some)
}

/// An error for a unit whose rollup input lacks a column.
pub(crate) fn missing(what: &str) -> StoreError {
    StoreError::Arrow(arrow::error::ArrowError::SchemaError(format!(
        "rollup input: column {what} missing or of another type"
    )))
}
