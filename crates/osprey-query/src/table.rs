//! The `spans` table: one DataFusion table over a store [`Snapshot`], covering both the
//! in-memory buffer and the Parquet segments.
//!
//! Segments are pruned by the manifest's start-time range before any file is opened; the
//! remaining files are scanned through DataFusion's Parquet reader, which prunes row groups
//! and pages by statistics (each file is sorted by `trace_id`, so a trace lookup touches one
//! row group per file) and by the `trace_id` bloom filter.

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::ExecutionPlan;
use osprey_model::schema::col;
use osprey_store::{Snapshot, Store};

use std::sync::Arc;

/// Where a table's data comes from.
#[derive(Clone)]
pub(crate) enum Source {
    /// One instant: every scan of a query sees the same data.
    Snapshot(Snapshot),
    /// The store now: each scan takes a fresh snapshot (for long-lived sessions).
    Live(Store),
}

/// The `spans` table.
#[derive(Clone)]
pub struct SpansTable {
    source: Source,
    /// What the table shows: every stored column, or the public ones.
    schema: SchemaRef,
    /// The stored (file) schema.
    stored: SchemaRef,
}

impl SpansTable {
    /// The public `spans` table (without the attribute type columns) at one instant.
    pub fn new(snapshot: Snapshot) -> Self {
        Self::public(Source::Snapshot(snapshot))
    }

    /// The public `spans` table over the live store (a new snapshot per scan).
    pub fn live(store: Store) -> Self {
        Self::public(Source::Live(store))
    }

    fn public(source: Source) -> Self {
        let stored = osprey_model::spans_schema();
        let public: Vec<usize> = (0..osprey_model::schema::PUBLIC_COLUMNS).collect();
        let schema = Arc::new(
            stored
                .project(&public)
                .unwrap_or_else(|_| (*stored).clone()),
        );
        SpansTable {
            source,
            schema,
            stored,
        }
    }

    /// Every stored column, for the typed APIs (Jaeger, Tempo).
    pub fn with_types(snapshot: Snapshot) -> Self {
        let stored = osprey_model::spans_schema();
        SpansTable {
            source: Source::Snapshot(snapshot),
            schema: stored.clone(),
            stored,
        }
    }

    fn snapshot(&self) -> Snapshot {
        self.source.snapshot()
    }
}

impl Source {
    pub(crate) fn snapshot(&self) -> Snapshot {
        match self {
            Source::Snapshot(s) => s.clone(),
            Source::Live(store) => store.snapshot(),
        }
    }
}

impl std::fmt::Debug for SpansTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let live = matches!(self.source, Source::Live(_));
        f.debug_struct("SpansTable")
            .field("live", &live)
            .field("columns", &self.schema.fields().len())
            .finish()
    }
}

/// An inclusive range of span start times (ns since the epoch) a query can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub min: i64,
    pub max: i64,
}

impl TimeRange {
    pub const ALL: TimeRange = TimeRange {
        min: i64::MIN,
        max: i64::MAX,
    };

    /// Narrows the range by the `start_time` comparisons among `filters` (an AND list).
    pub fn from_filters(filters: &[Expr]) -> TimeRange {
        Self::from_filters_on(filters, col::START_TIME)
    }

    /// Narrows the range by the comparisons of the timestamp column `column` among `filters`.
    pub fn from_filters_on(filters: &[Expr], column: &str) -> TimeRange {
        let mut r = TimeRange::ALL;
        for f in filters {
            r.narrow(f, column);
        }
        r
    }

    fn narrow(&mut self, e: &Expr, column: &str) {
        let start_time_col = |e: &Expr| matches!(e, Expr::Column(c) if c.name == column);
        match e {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::And,
                right,
            }) => {
                self.narrow(left, column);
                self.narrow(right, column);
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (op, ts) = match (
                    start_time_col(left),
                    timestamp_literal(right),
                    start_time_col(right),
                    timestamp_literal(left),
                ) {
                    (true, Some(ts), _, _) => (*op, ts),
                    (_, _, true, Some(ts)) => match op.swap() {
                        Some(op) => (op, ts),
                        None => return,
                    },
                    _ => return,
                };
                match op {
                    Operator::Eq => {
                        self.min = self.min.max(ts);
                        self.max = self.max.min(ts);
                    }
                    Operator::Gt | Operator::GtEq => self.min = self.min.max(ts),
                    Operator::Lt | Operator::LtEq => self.max = self.max.min(ts),
                    _ => {}
                }
            }
            Expr::Between(b) if !b.negated && start_time_col(&b.expr) => {
                if let (Some(lo), Some(hi)) =
                    (timestamp_literal(&b.low), timestamp_literal(&b.high))
                {
                    self.min = self.min.max(lo);
                    self.max = self.max.min(hi);
                }
            }
            _ => {}
        }
    }

    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        min <= self.max && max >= self.min
    }
}

/// The ids of a `trace_id = '<literal>'` or `trace_id IN (<literals>)` conjunct among
/// `filters` (or an OR of such equalities), if there is one: files whose bloom filters rule
/// out every id are not scanned at all.
pub fn trace_id_literals(filters: &[Expr]) -> Option<Vec<String>> {
    fn literal(v: &Expr) -> Option<String> {
        match v {
            Expr::Literal(
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)),
                _,
            ) => Some(s.clone()),
            _ => None,
        }
    }
    fn is_trace_id(e: &Expr) -> bool {
        matches!(e, Expr::Column(c) if c.name == col::TRACE_ID)
    }
    fn ids(e: &Expr) -> Option<Vec<String>> {
        match e {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) => {
                if is_trace_id(left) {
                    literal(right).map(|s| vec![s])
                } else if is_trace_id(right) {
                    literal(left).map(|s| vec![s])
                } else {
                    None
                }
            }
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Or,
                right,
            }) => {
                let mut l = ids(left)?;
                l.extend(ids(right)?);
                Some(l)
            }
            Expr::InList(list) if !list.negated && is_trace_id(&list.expr) => {
                list.list.iter().map(literal).collect()
            }
            _ => None,
        }
    }
    fn find(e: &Expr) -> Option<Vec<String>> {
        match e {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::And,
                right,
            }) => find(left).or_else(|| find(right)),
            other => ids(other),
        }
    }
    filters.iter().find_map(find)
}

/// A timestamp literal as ns since the epoch (any unit; casts of literals are folded before
/// a scan sees them).
fn timestamp_literal(e: &Expr) -> Option<i64> {
    let Expr::Literal(v, _) = e else { return None };
    match v {
        ScalarValue::TimestampNanosecond(Some(t), _) => Some(*t),
        ScalarValue::TimestampMicrosecond(Some(t), _) => t.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(t), _) => t.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(t), _) => t.checked_mul(1_000_000_000),
        _ => None,
    }
}

#[async_trait]
impl TableProvider for SpansTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
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
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let snapshot = self.snapshot();
        let range = TimeRange::from_filters(filters);
        let traces = trace_id_literals(filters);
        // Public-table column indices are the same in the stored schema (the hidden
        // columns come last), so a projection carries over as it is.
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let projection = Some(projection.unwrap_or(&all));
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        let files: Vec<ListingTableUrl> = snapshot
            .segments
            .iter()
            .filter(|s| range.overlaps(s.meta.min_time, s.meta.max_time))
            .filter(|s| {
                traces
                    .as_ref()
                    .is_none_or(|ids| ids.iter().any(|t| s.may_contain_trace(t)))
            })
            .map(|s| ListingTableUrl::parse(s.path.to_string_lossy()))
            .collect::<Result<_>>()?;
        if !files.is_empty() {
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet");
            let config = ListingTableConfig::new_with_multi_paths(files)
                .with_listing_options(options)
                .with_schema(self.stored.clone());
            let table = ListingTable::try_new(config)?;
            inputs.push(table.scan(state, projection, filters, limit).await?);
        }
        let batches: Vec<_> = snapshot
            .batches
            .iter()
            .filter(|b| batch_overlaps(b, &range))
            .cloned()
            .collect();
        if !batches.is_empty() {
            // Two partitions so both cores can work on the buffer.
            let half = batches.len().div_ceil(2);
            let parts: Vec<Vec<_>> = batches.chunks(half.max(1)).map(|c| c.to_vec()).collect();
            inputs.push(MemorySourceConfig::try_new_exec(
                &parts,
                self.stored.clone(),
                projection.cloned(),
            )?);
        }
        if inputs.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        UnionExec::try_new(inputs)
    }
}

/// Whether any row of an in-memory batch may fall in `range`.
fn batch_overlaps(batch: &arrow::record_batch::RecordBatch, range: &TimeRange) -> bool {
    if *range == TimeRange::ALL {
        return true;
    }
    use arrow::array::AsArray;
    use arrow::datatypes::TimestampNanosecondType;
    let Some(starts) = batch
        .column_by_name(col::START_TIME)
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
    else {
        return true;
    };
    match (arrow::compute::min(starts), arrow::compute::max(starts)) {
        (Some(lo), Some(hi)) => range.overlaps(lo, hi),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col as c, lit};

    fn ts(v: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(
            Some(v),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn time_range_from_filters() {
        let f = vec![
            c("start_time").gt_eq(ts(100)),
            ts(200).gt(c("start_time")),
            c("service_name").eq(lit("x")),
        ];
        assert_eq!(
            TimeRange::from_filters(&f),
            TimeRange { min: 100, max: 200 }
        );
        let f = vec![c("start_time")
            .between(ts(5), ts(9))
            .and(c("start_time").lt(ts(7)))];
        assert_eq!(TimeRange::from_filters(&f), TimeRange { min: 5, max: 7 });
        let f = vec![c("start_time").gt(ts(1)).or(c("start_time").lt(ts(0)))];
        assert_eq!(TimeRange::from_filters(&f), TimeRange::ALL);
        assert!(TimeRange { min: 5, max: 7 }.overlaps(7, 100));
        let f = vec![c("service_name")
            .eq(lit("x"))
            .and(lit("ab").eq(c("trace_id")))];
        assert_eq!(trace_id_literals(&f), Some(vec!["ab".into()]));
        assert_eq!(trace_id_literals(&[c("trace_id").gt(lit("ab"))]), None);
        assert_eq!(
            trace_id_literals(&[c("trace_id").eq(lit("a")).or(c("trace_id").eq(lit("b")))]),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            trace_id_literals(&[c("trace_id").eq(lit("a")).or(c("span_id").eq(lit("b")))]),
            None
        );
        assert_eq!(
            trace_id_literals(&[c("trace_id").in_list(vec![lit("a"), lit("b")], false)]),
            Some(vec!["a".into(), "b".into()])
        );
        assert!(!TimeRange { min: 5, max: 7 }.overlaps(8, 100));
    }
}
