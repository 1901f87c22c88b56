//! Immutable Parquet segment files: writing (sorted by trace id), reading, and lifetime.

use crate::error::{Result, StoreError};
use crate::manifest::SegmentMeta;
use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::TimestampNanosecondType;
use osprey_model::schema::{col, spans_schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
}

impl SegmentFile {
    pub fn new(meta: SegmentMeta, data_dir: &Path) -> Arc<SegmentFile> {
        let path = data_dir.join(&meta.file);
        Arc::new(SegmentFile {
            meta,
            path,
            obsolete: AtomicBool::new(false),
        })
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

/// Splits rows by hour partition of `start_time`.
pub fn split_by_partition(batch: &RecordBatch) -> Result<BTreeMap<i64, RecordBatch>> {
    let starts = start_times(batch)?;
    let mut groups: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for (i, t) in starts.values().iter().enumerate() {
        groups.entry(partition_of(*t)).or_default().push(i as u32);
    }
    let mut out = BTreeMap::new();
    if groups.len() == 1 {
        if let Some((p, _)) = groups.iter().next() {
            out.insert(*p, batch.clone());
            return Ok(out);
        }
    }
    for (p, idx) in groups {
        out.insert(p, take_record_batch(batch, &UInt32Array::from(idx))?);
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

/// Sorts rows by (trace_id, start_time): a trace is contiguous and row-group statistics on
/// `trace_id` are narrow, so a lookup by id reads one row group per file.
pub fn sort_for_segment(batch: &RecordBatch) -> Result<RecordBatch> {
    let key = |name: &str| -> Result<SortColumn> {
        let values = batch.column_by_name(name).cloned().ok_or_else(|| {
            StoreError::Arrow(arrow::error::ArrowError::SchemaError(format!(
                "{name} missing"
            )))
        })?;
        Ok(SortColumn {
            values,
            options: None,
        })
    };
    let idx = lexsort_to_indices(&[key(col::TRACE_ID)?, key(col::START_TIME)?], None)?;
    Ok(take_record_batch(batch, &idx)?)
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

/// Writes `batches` (one partition's rows) sorted into a new Parquet file at `path`,
/// durably: temp file, fsync, rename, fsync of the directory.
pub fn write_segment(
    path: &Path,
    batches: &[RecordBatch],
    row_group_rows: usize,
) -> Result<Written> {
    let schema = spans_schema();
    let all = concat_batches(&schema, batches)?;
    let sorted = sort_for_segment(&all)?;
    let starts = start_times(&sorted)?;
    let min_time = arrow::compute::min(starts).unwrap_or(0);
    let max_time = arrow::compute::max(starts).unwrap_or(0);
    let dir = path
        .parent()
        .ok_or_else(|| StoreError::Wal(format!("segment path {} has no parent", path.display())))?;
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    let tmp = path.with_extension("parquet.tmp");
    let file = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
    let mut writer = ArrowWriter::try_new(file, schema, Some(writer_properties(row_group_rows)?))?;
    writer.write(&sorted)?;
    let file = writer.into_inner()?;
    file.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
    let bytes = file.metadata().map_err(|e| StoreError::io(&tmp, e))?.len();
    fs::rename(&tmp, path).map_err(|e| StoreError::io(path, e))?;
    crate::wal::sync_dir(dir)?;
    Ok(Written {
        rows: sorted.num_rows() as u64,
        bytes,
        min_time,
        max_time,
    })
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
