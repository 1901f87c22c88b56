//! Immutable Parquet segment files: writing (sorted by trace id), reading, lifetime, and the
//! per-file caches (trace id bloom filters, per-minute rollup).

use crate::cache::{RollupCache, RollupCell};
use crate::error::{Result, StoreError};
use crate::manifest::SegmentMeta;
use crate::rollup::Rollup;
use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::compute::{concat, interleave_record_batch, lexsort_to_indices, SortColumn};
use arrow::datatypes::{Int64Type, TimestampNanosecondType};
use osprey_model::schema::{col, spans_schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::ReaderProperties;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::{ReadOptionsBuilder, SerializedFileReader};
use parquet::schema::types::ColumnPath;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

pub const NANOS_PER_HOUR: i64 = 3_600_000_000_000;

/// The hour partition of a start time.
pub fn partition_of(start_ns: i64) -> i64 {
    start_ns.div_euclid(NANOS_PER_HOUR)
}

/// A live segment file. When it has been replaced (compaction) or expired (retention) it is
/// marked obsolete and deleted once the last reader holding it lets go.
#[derive(Debug)]
pub struct SegmentFile {
    pub meta: SegmentMeta,
    pub path: PathBuf,
    obsolete: AtomicBool,
    /// The file's `trace_id` bloom filters (one per row group), loaded on the first lookup
    /// by trace id and kept: deciding which files may hold a trace then costs no I/O.
    trace_filters: OnceLock<Option<Vec<Sbbf>>>,
    /// The file's per-minute rollup, computed on first use and kept while the store's
    /// rollup budget allows.
    rollup: Arc<RollupCell>,
}

impl SegmentFile {
    /// The file of `meta` under `data_dir`; its rollup counts against `cache`.
    pub fn new(meta: SegmentMeta, data_dir: &Path, cache: &Arc<RollupCache>) -> Arc<SegmentFile> {
        let path = data_dir.join(&meta.file);
        let rollup = RollupCell::new(meta.id, cache.clone());
        Arc::new(SegmentFile {
            meta,
            path,
            obsolete: AtomicBool::new(false),
            trace_filters: OnceLock::new(),
            rollup,
        })
    }

    /// The file's rollup: cached, or computed from the file (blocking I/O).
    pub fn rollup(&self) -> Result<Arc<Rollup>> {
        self.rollup
            .get_or_compute(|| crate::rollup::from_segment(&self.path))
    }

    /// Whether [`SegmentFile::rollup`] is cached.
    pub fn has_rollup(&self) -> bool {
        self.rollup.held()
    }

    /// Caches rollup rows computed from the file's rows elsewhere (compaction has them).
    pub fn set_rollup(&self, stats: Arc<Rollup>) {
        self.rollup.set(stats);
    }

    /// Whether the file may hold spans of `trace_id` (lowercase hex). False only when its
    /// bloom filters say no; true when the filters cannot be read.
    pub fn may_contain_trace(&self, trace_id: &str) -> bool {
        let filters = self
            .trace_filters
            .get_or_init(|| match read_trace_filters(&self.path) {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(file = %self.path.display(), error = %e, "cannot read trace_id bloom filters");
                    None
                }
            });
        match filters {
            Some(f) if !f.is_empty() => f.iter().any(|b| b.check(trace_id)),
            _ => true,
        }
    }
    pub fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::SeqCst);
    }
}

impl Drop for SegmentFile {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::SeqCst) {
            if let Err(e) = fs::remove_file(&self.path) {
                tracing::warn!(file = %self.path.display(), error = %e, "could not delete obsolete segment");
            }
        }
    }
}

/// The `trace_id` bloom filter of every row group of a segment file (empty when one is
/// missing, meaning "cannot tell").
fn read_trace_filters(path: &Path) -> Result<Vec<Sbbf>> {
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let props = ReaderProperties::builder()
        .set_read_bloom_filter(true)
        .build();
    let reader = SerializedFileReader::new_with_options(
        file,
        ReadOptionsBuilder::new()
            .with_reader_properties(props)
            .build(),
    )?;
    let meta = reader.metadata();
    let Some(col_idx) = meta
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().string() == col::TRACE_ID)
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(meta.num_row_groups());
    for rg in 0..meta.num_row_groups() {
        match reader.get_row_group(rg)?.get_column_bloom_filter(col_idx) {
            Some(f) => out.push(f.clone()),
            None => return Ok(Vec::new()),
        }
    }
    Ok(out)
}

fn start_times(batch: &RecordBatch) -> Result<&arrow::array::TimestampNanosecondArray> {
    batch
        .column_by_name(col::START_TIME)
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or_else(|| {
            StoreError::Arrow(arrow::error::ArrowError::SchemaError(
                "start_time column missing".into(),
            ))
        })
}

fn writer_properties(row_group_rows: usize) -> Result<WriterProperties> {
    let no_dict = |c: &str| ColumnPath::from(c);
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_data_page_row_count_limit(8 * 1024)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_column_dictionary_enabled(no_dict(col::SPAN_ID), false)
        .set_column_dictionary_enabled(no_dict(col::PARENT_SPAN_ID), false)
        .set_column_statistics_enabled(no_dict(col::SPAN_ID), EnabledStatistics::None)
        .set_column_statistics_enabled(no_dict(col::PARENT_SPAN_ID), EnabledStatistics::None)
        // Row-group min/max on the sorted trace_id narrows a lookup to one row group per
        // file; the bloom filter then skips files that do not hold the trace at all.
        .set_column_bloom_filter_enabled(no_dict(col::TRACE_ID), true)
        .set_column_bloom_filter_fpp(no_dict(col::TRACE_ID), 0.01)
        .set_column_bloom_filter_max_ndv(
            no_dict(col::TRACE_ID),
            (row_group_rows as u64 / 4).max(1024),
        )
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: 0,
            descending: false,
            nulls_first: false,
        }]))
        .build())
}

/// What was written.
pub struct Written {
    pub rows: u64,
    pub bytes: u64,
    pub min_time: i64,
    pub max_time: i64,
}

/// One hour partition's rows, as `(batch, row)` positions in segment order.
pub type Run = (i64, Vec<(usize, usize)>);

/// The rows of `batches` in segment order, grouped by hour partition: for each partition (in
/// ascending order) its rows as `(batch, row)` pairs sorted by (trace_id, start_time).
///
/// Only the key columns are copied to sort; the rows themselves are gathered later, one row
/// group at a time, by [`write_rows`], so a flush or a merge holds its input plus one row
/// group, never a second sorted copy of everything.
pub fn sorted_runs(batches: &[RecordBatch]) -> Result<Vec<Run>> {
    let mut trace_ids = Vec::with_capacity(batches.len());
    let mut starts = Vec::with_capacity(batches.len());
    let mut origin = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        let ids = batch
            .column_by_name(col::TRACE_ID)
            .cloned()
            .ok_or_else(|| {
                StoreError::Arrow(arrow::error::ArrowError::SchemaError(
                    "trace_id column missing".into(),
                ))
            })?;
        trace_ids.push(ids);
        starts.push(Arc::new(start_times(batch)?.clone()) as ArrayRef);
        origin.extend((0..batch.num_rows()).map(|r| (b, r)));
    }
    if origin.is_empty() {
        return Ok(Vec::new());
    }
    let ids = concat(&trace_ids.iter().map(|a| a.as_ref()).collect::<Vec<_>>())?;
    let starts = concat(&starts.iter().map(|a| a.as_ref()).collect::<Vec<_>>())?;
    let parts: Int64Array = starts
        .as_primitive::<TimestampNanosecondType>()
        .values()
        .iter()
        .map(|t| partition_of(*t))
        .collect();
    let parts: ArrayRef = Arc::new(parts);
    let key = |values: &ArrayRef| SortColumn {
        values: values.clone(),
        options: None,
    };
    let order = lexsort_to_indices(&[key(&parts), key(&ids), key(&starts)], None)?;
    let parts = parts.as_primitive::<Int64Type>();
    let mut runs: Vec<Run> = Vec::new();
    for &i in order.values() {
        let p = parts.value(i as usize);
        match runs.last_mut() {
            Some((q, rows)) if *q == p => rows.push(origin[i as usize]),
            _ => runs.push((p, vec![origin[i as usize]])),
        }
    }
    Ok(runs)
}

/// Writes the rows `order` of `batches`, in that order, into a new Parquet file at `path`,
/// durably: temp file, fsync, rename, fsync of the directory.
pub fn write_rows(
    path: &Path,
    batches: &[RecordBatch],
    order: &[(usize, usize)],
    row_group_rows: usize,
) -> Result<Written> {
    let schema = spans_schema();
    let dir = path
        .parent()
        .ok_or_else(|| StoreError::Wal(format!("segment path {} has no parent", path.display())))?;
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    let tmp = path.with_extension("parquet.tmp");
    let file = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
    let mut writer = ArrowWriter::try_new(file, schema, Some(writer_properties(row_group_rows)?))?;
    let inputs: Vec<&RecordBatch> = batches.iter().collect();
    let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
    for chunk in order.chunks(row_group_rows.max(1)) {
        let rows = interleave_record_batch(&inputs, chunk)?;
        let starts = start_times(&rows)?;
        min_time = min_time.min(arrow::compute::min(starts).unwrap_or(i64::MAX));
        max_time = max_time.max(arrow::compute::max(starts).unwrap_or(i64::MIN));
        writer.write(&rows)?;
    }
    let file = writer.into_inner()?;
    file.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
    let bytes = file.metadata().map_err(|e| StoreError::io(&tmp, e))?.len();
    fs::rename(&tmp, path).map_err(|e| StoreError::io(path, e))?;
    crate::wal::sync_dir(dir)?;
    Ok(Written {
        rows: order.len() as u64,
        bytes,
        min_time: if order.is_empty() { 0 } else { min_time },
        max_time: if order.is_empty() { 0 } else { max_time },
    })
}

/// Writes `batches` (rows of one partition) sorted into a new Parquet file at `path`.
pub fn write_segment(
    path: &Path,
    batches: &[RecordBatch],
    row_group_rows: usize,
) -> Result<Written> {
    let order: Vec<(usize, usize)> = sorted_runs(batches)?
        .into_iter()
        .flat_map(|(_, rows)| rows)
        .collect();
    write_rows(path, batches, &order, row_group_rows)
}

/// Reads a whole segment file.
pub fn read_segment(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?
        .with_batch_size(64 * 1024)
        .build()?;
    let mut out = Vec::new();
    for batch in reader {
        out.push(batch?);
    }
    Ok(out)
}

/// Total rows in `batches`.
pub fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

/// Sum of the Arrow memory held by `batch`.
pub fn memory_size(batch: &RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|c| c.get_array_memory_size() as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use osprey_model::TraceRequest;

    fn batch(spans: &[(u8, i64)]) -> RecordBatch {
        let spans = spans
            .iter()
            .enumerate()
            .map(|(i, &(t, start))| Span {
                trace_id: vec![t; 16],
                span_id: vec![t, i as u8 + 1, 1, 1, 1, 1, 1, 1],
                name: "op".into(),
                start_time_unix_nano: start as u64,
                end_time_unix_nano: start as u64 + 10,
                ..Default::default()
            })
            .collect();
        let req = TraceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        osprey_model::request_to_batch(&req).expect("batch")
    }

    #[test]
    fn runs_are_per_partition_and_sorted_by_trace_then_start() {
        let h = NANOS_PER_HOUR;
        let a = batch(&[(3, 10 * h + 5), (1, 11 * h), (1, 10 * h + 9)]);
        let b = batch(&[(2, 10 * h + 1), (1, 10 * h + 2), (3, 11 * h + 1)]);
        let runs = sorted_runs(&[a.clone(), b.clone()]).expect("runs");
        let parts: Vec<i64> = runs.iter().map(|(p, _)| *p).collect();
        assert_eq!(parts, vec![10, 11]);
        let key = |&(bi, r): &(usize, usize)| {
            let src = if bi == 0 { &a } else { &b };
            let ids = src
                .column_by_name(col::TRACE_ID)
                .expect("ids")
                .as_string::<i32>();
            let st = start_times(src).expect("starts");
            (ids.value(r).to_string(), st.value(r))
        };
        let first: Vec<(String, i64)> = runs[0].1.iter().map(key).collect();
        let t = |n: u8| format!("{n:02x}").repeat(16);
        assert_eq!(
            first,
            vec![
                (t(1), 10 * h + 2),
                (t(1), 10 * h + 9),
                (t(2), 10 * h + 1),
                (t(3), 10 * h + 5)
            ]
        );
        assert_eq!(runs[1].1.len(), 2);

        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("p/1.parquet");
        let w = write_rows(&path, &[a, b], &runs[0].1, 2).expect("write");
        assert_eq!(
            (w.rows, w.min_time, w.max_time),
            (4, 10 * h + 1, 10 * h + 9)
        );
        let back = read_segment(&path).expect("read");
        assert_eq!(rows(&back), 4);

        let meta = SegmentMeta {
            id: 1,
            file: "p/1.parquet".into(),
            partition: 10,
            rows: w.rows,
            bytes: w.bytes,
            min_time: w.min_time,
            max_time: w.max_time,
        };
        let seg = SegmentFile::new(meta, dir.path(), &RollupCache::new(usize::MAX));
        assert!(seg.may_contain_trace(&t(1)) && seg.may_contain_trace(&t(3)));
        let absent = (0..50u8)
            .filter(|n| *n > 3)
            .filter(|n| seg.may_contain_trace(&t(*n)))
            .count();
        assert!(
            absent < 5,
            "the bloom filter rules out most absent traces ({absent} of 46 passed)"
        );
    }
}
