//! The `span_stats` table: per-minute rollups of `spans` (calls, errors, summed duration and a
//! latency histogram per minute, service, span name and kind), read from the rollup each
//! segment file and buffered batch keeps (see `osprey_store::rollup`).
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
use osprey_store::rollup::{minute_of, span_stats_schema, stats_col};
use osprey_store::{Snapshot, Store};
use std::sync::Arc;

/// The `span_stats` table.
#[derive(Clone)]
pub struct SpanStatsTable {
    source: Source,
}

impl std::fmt::Debug for SpanStatsTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanStatsTable").finish()
    }
}

impl SpanStatsTable {
    /// The table at one instant.
    pub fn new(snapshot: Snapshot) -> Self {
        SpanStatsTable {
            source: Source::Snapshot(snapshot),
        }
    }

    /// The table over the live store (a new snapshot per scan).
    pub fn live(store: Store) -> Self {
        SpanStatsTable {
            source: Source::Live(store),
        }
    }
}

/// Registers `span_stats` and the histogram functions in `ctx`.
pub fn register(ctx: &SessionContext, table: SpanStatsTable) -> Result<()> {
    ctx.register_table("span_stats", Arc::new(table))?;
    crate::hist_fn::register(ctx);
    Ok(())
}

/// The rollup rows of `snapshot` whose minutes may fall in `range` (blocking: may read files).
fn collect(snapshot: &Snapshot, range: TimeRange) -> osprey_store::error::Result<Vec<RecordBatch>> {
    // Minutes are the start of a minute: a unit holding spans in [min, max] has rows for the
    // minutes of min..=max.
    let (lo, hi) = (range.min, range.max);
    let mut out = Vec::new();
    for s in &snapshot.segments {
        if minute_of(s.meta.min_time) <= hi && minute_of(s.meta.max_time) >= lo {
            let stats = s.span_stats()?;
            if stats.overlaps(lo, hi) {
                out.push(stats.batch.clone());
            }
        }
    }
    for b in &snapshot.batch_stats {
        let stats = b.get()?;
        if stats.overlaps(lo, hi) {
            out.push(stats.batch.clone());
        }
    }
    Ok(out)
}

#[async_trait]
impl TableProvider for SpanStatsTable {
    fn schema(&self) -> SchemaRef {
        span_stats_schema()
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
        let batches = tokio::task::spawn_blocking(move || collect(&snapshot, range))
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
            MemorySourceConfig::try_new_exec(&parts, span_stats_schema(), projection.cloned())?;
        Ok(exec)
    }
}
