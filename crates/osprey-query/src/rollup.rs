//! The rollup tables, read from the rollup each segment file and buffered batch keeps (see
//! `osprey_store::rollup`):
//! - `span_stats`: per minute, service, span name and kind: calls, errors, summed duration and
//!   a latency histogram;
//! - `call_edges`: per minute, caller (service, span name) and callee (service, span name):
//!   calls, errors, summed duration and histogram of the callee spans; calls whose two ends
//!   are in different units are paired here, over the units the query reads;
//! - `slow_spans`: the 15 longest spans of each `span_stats` key.
//!
//! Units whose minutes cannot match the `minute` range of the query are skipped before their
//! rollup is looked at; rollups not yet cached are computed on a blocking thread. Every row of
//! a unit is handed to DataFusion, which applies the filters itself.

use crate::table::{Source, TimeRange};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use osprey_store::edges::{call_edges_schema, stitch};
use osprey_store::rollup::{minute_of, span_stats_schema, stats_col};
use osprey_store::slow::slow_spans_schema;
use osprey_store::{Rollup, Snapshot, Store};
use std::sync::Arc;

/// Which rollup table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    SpanStats,
    CallEdges,
    SlowSpans,
}

impl Which {
    pub const ALL: [Which; 3] = [Which::SpanStats, Which::CallEdges, Which::SlowSpans];

    pub fn name(self) -> &'static str {
        match self {
            Which::SpanStats => "span_stats",
            Which::CallEdges => "call_edges",
            Which::SlowSpans => "slow_spans",
        }
    }

    fn schema(self) -> SchemaRef {
        match self {
            Which::SpanStats => span_stats_schema(),
            Which::CallEdges => call_edges_schema(),
            Which::SlowSpans => slow_spans_schema(),
        }
    }
}

/// A rollup table.
#[derive(Clone)]
pub struct RollupTable {
    source: Source,
    which: Which,
}

impl std::fmt::Debug for RollupTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollupTable")
            .field("which", &self.which)
            .finish()
    }
}

impl RollupTable {
    /// The table at one instant.
    pub fn new(snapshot: Snapshot, which: Which) -> Self {
        RollupTable {
            source: Source::Snapshot(snapshot),
            which,
        }
    }

    /// The table over the live store (a new snapshot per scan).
    pub fn live(store: Store, which: Which) -> Self {
        RollupTable {
            source: Source::Live(store),
            which,
        }
    }
}

/// Registers the rollup tables (each from `table(which)`) and the histogram functions.
pub fn register(ctx: &SessionContext, table: impl Fn(Which) -> RollupTable) -> Result<()> {
    for which in Which::ALL {
        ctx.register_table(which.name(), Arc::new(table(which)))?;
    }
    crate::hist_fn::register(ctx);
    Ok(())
}

/// The rollups of `snapshot` whose minutes may fall in `[lo, hi]` (blocking: may read files).
fn units(snapshot: &Snapshot, lo: i64, hi: i64) -> osprey_store::error::Result<Vec<Arc<Rollup>>> {
    // Minutes are the start of a minute: a unit holding spans in [min, max] has rows for the
    // minutes of min..=max.
    let mut out = Vec::new();
    for s in &snapshot.segments {
        if minute_of(s.meta.min_time) <= hi && minute_of(s.meta.max_time) >= lo {
            let r = s.rollup()?;
            if r.overlaps(lo, hi) {
                out.push(r);
            }
        }
    }
    for b in &snapshot.batch_stats {
        let r = b.get()?;
        if r.overlaps(lo, hi) {
            out.push(r);
        }
    }
    Ok(out)
}

/// The rows of table `which` that may fall in `range` (blocking).
fn collect(
    snapshot: &Snapshot,
    range: TimeRange,
    which: Which,
) -> osprey_store::error::Result<Vec<RecordBatch>> {
    let (lo, hi) = (range.min, range.max);
    let units = units(snapshot, lo, hi)?;
    let mut out: Vec<RecordBatch> = units
        .iter()
        .map(|u| match which {
            Which::SpanStats => u.stats.clone(),
            Which::CallEdges => u.edges.batch.clone(),
            Which::SlowSpans => u.slow.clone(),
        })
        .filter(|b| b.num_rows() > 0)
        .collect();
    if which == Which::CallEdges {
        let edges: Vec<_> = units.iter().map(|u| &u.edges).collect();
        out.extend(stitch(&edges, minute_of(lo), hi)?);
    }
    Ok(out)
}

#[async_trait]
impl TableProvider for RollupTable {
    fn schema(&self) -> SchemaRef {
        self.which.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Used for pruning only; DataFusion still applies every filter to the rows.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let snapshot = self.source.snapshot();
        let range = TimeRange::from_filters_on(filters, stats_col::MINUTE);
        let which = self.which;
        let batches = tokio::task::spawn_blocking(move || collect(&snapshot, range, which))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        // Two partitions so both cores can work.
        let half = batches.len().div_ceil(2).max(1);
        let parts: Vec<Vec<RecordBatch>> = batches.chunks(half).map(|c| c.to_vec()).collect();
        let parts = if parts.is_empty() {
            vec![Vec::new()]
        } else {
            parts
        };
        let exec: Arc<dyn ExecutionPlan> =
            MemorySourceConfig::try_new_exec(&parts, self.which.schema(), projection.cloned())?;
        Ok(exec)
    }
}
