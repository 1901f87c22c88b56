//! The store engine: ties the WAL, the buffer, segments and the manifest together.

use crate::cache::RollupCache;
use crate::config::StoreConfig;
use crate::error::{Result, StoreError};
use crate::manifest::{Manifest, SegmentMeta};
use crate::rollup::{self, BufferedStats};
use crate::segment::{self, SegmentFile};
use crate::wal::{self, WalWriter};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use prost::Message;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Largest group commit, in records and bytes.
const GROUP_MAX_RECORDS: usize = 4096;
const GROUP_MAX_BYTES: usize = 32 << 20;
/// How far back the rollup warm-up after open goes (older files compute on first use).
const WARM_WINDOW: Duration = Duration::from_secs(24 * 3600);

struct Buffered {
    seq: u64,
    batch: RecordBatch,
    /// The batch again, with its rollup computed on first use.
    stats: Arc<BufferedStats>,
}

struct State {
    manifest: Manifest,
    segments: Vec<Arc<SegmentFile>>,
    active: Vec<Buffered>,
    active_bytes: u64,
    oldest_active: Option<Instant>,
    /// Being written to Parquet; still served to readers until the manifest names the files.
    flushing: Vec<Buffered>,
    flushing_bytes: u64,
}

struct WalJob {
    payload: Bytes,
    batch: RecordBatch,
    reply: oneshot::Sender<Result<u64>>,
}

#[derive(Default)]
struct Counters {
    spans: AtomicU64,
    requests: AtomicU64,
    wal_bytes: AtomicU64,
    wal_groups: AtomicU64,
    flushes: AtomicU64,
    compactions: AtomicU64,
    overload_refusals: AtomicU64,
    expired_segments: AtomicU64,
}

/// A point-in-time view for one query: the live files and the buffered batches.
#[derive(Clone)]
pub struct Snapshot {
    pub segments: Vec<Arc<SegmentFile>>,
    pub batches: Vec<RecordBatch>,
    /// The rollups of `batches` (same order), for the `span_stats` table.
    pub batch_stats: Vec<Arc<BufferedStats>>,
}

/// Figures for `/metrics` and benchmarks.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StoreStats {
    pub spans_appended: u64,
    pub requests_appended: u64,
    pub wal_bytes: u64,
    pub wal_groups: u64,
    pub flushes: u64,
    pub compactions: u64,
    pub overload_refusals: u64,
    pub expired_segments: u64,
    pub buffered_bytes: u64,
    pub buffered_rows: u64,
    pub segment_files: u64,
    pub segment_rows: u64,
    pub segment_bytes: u64,
    /// Bytes of segment rollups held in memory, and how many were dropped to stay within
    /// `rollup_cache_bytes`.
    pub rollup_bytes: u64,
    pub rollup_evictions: u64,
}

struct Inner {
    cfg: StoreConfig,
    rollups: Arc<RollupCache>,
    state: RwLock<State>,
    wal_tx: Mutex<Option<mpsc::Sender<WalJob>>>,
    wal_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// One flush at a time.
    flush_lock: Mutex<()>,
    /// One compaction or retention pass at a time (they run beside flushes).
    compact_lock: Mutex<()>,
    /// Serialises manifest changes: each is a short clone-edit-save-publish of the current
    /// manifest, so a flush and a compaction writing files at the same time both land.
    manifest_lock: Mutex<()>,
    /// The last segment id handed out (ids are taken before a file is written).
    last_id: AtomicU64,
    counters: Counters,
    _lock: File,
}

/// The embedded trace store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn lock_poisoned() -> StoreError {
    StoreError::Wal("internal lock poisoned".into())
}

impl Store {
    /// Opens (or creates) the store in `cfg.data_dir`, replaying the WAL. Blocking.
    pub fn open(cfg: StoreConfig) -> Result<Store> {
        let dir = cfg.data_dir.clone();
        fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let lock_path = dir.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::io(&lock_path, e))?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Locked(dir));
        }
        let manifest = Manifest::load(&dir)?;
        remove_strays(&dir, &manifest)?;
        let rollups = RollupCache::new(cfg.rollup_cache_bytes);
        let segments = manifest
            .segments
            .iter()
            .map(|m| SegmentFile::new(m.clone(), &dir, &rollups))
            .collect();
        let flushed = manifest.flushed_seq;
        let last_id = AtomicU64::new(manifest.next_id);
        let state = State {
            manifest,
            segments,
            active: Vec::new(),
            active_bytes: 0,
            oldest_active: None,
            flushing: Vec::new(),
            flushing_bytes: 0,
        };
        let inner = Arc::new(Inner {
            cfg,
            rollups,
            state: RwLock::new(state),
            wal_tx: Mutex::new(None),
            wal_thread: Mutex::new(None),
            flush_lock: Mutex::new(()),
            compact_lock: Mutex::new(()),
            manifest_lock: Mutex::new(()),
            last_id,
            counters: Counters::default(),
            _lock: lock,
        });
        let store = Store { inner };
        let started = Instant::now();
        let report = store.replay(flushed)?;
        tracing::info!(
            applied = report.applied,
            skipped = report.skipped,
            discarded_bytes = report.discarded_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "WAL replay finished"
        );
        let next_seq = report.last_seq.max(flushed) + 1;
        let writer = WalWriter::create(
            &store.wal_dir(),
            next_seq,
            store.inner.cfg.wal_segment_bytes,
            store.inner.cfg.fsync,
        )?;
        let (tx, rx) = mpsc::channel::<WalJob>(8192);
        let weak = Arc::downgrade(&store.inner);
        let handle = std::thread::Builder::new()
            .name("osprey-wal".into())
            .spawn(move || wal_loop(writer, rx, weak))
            .map_err(|e| StoreError::io("wal thread", e))?;
        *store.inner.wal_tx.lock().map_err(|_| lock_poisoned())? = Some(tx);
        *store.inner.wal_thread.lock().map_err(|_| lock_poisoned())? = Some(handle);
        Ok(store)
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    fn wal_dir(&self) -> PathBuf {
        self.inner.cfg.data_dir.join("wal")
    }

    fn replay(&self, flushed: u64) -> Result<wal::ReplayReport> {
        let limits = osprey_model::Limits::default();
        let dir = self.wal_dir();
        wal::replay(&dir, flushed, |seq, payload| {
            let mut req = match osprey_model::TraceRequest::decode(payload) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(seq, error = %e, "WAL record does not decode; skipping it");
                    return Ok(());
                }
            };
            osprey_model::sanitize_request(&mut req, &limits);
            let batch = osprey_model::request_to_batch(&req)?;
            self.push_active(seq, batch)?;
            if self.buffered_bytes() >= self.inner.cfg.flush_bytes {
                self.flush()?;
            }
            Ok(())
        })
    }

    fn push_active(&self, seq: u64, batch: RecordBatch) -> Result<()> {
        let bytes = segment::memory_size(&batch);
        let mut st = self.inner.state.write().map_err(|_| lock_poisoned())?;
        let stats = BufferedStats::new(batch.clone());
        st.active.push(Buffered { seq, batch, stats });
        st.active_bytes += bytes;
        st.oldest_active.get_or_insert_with(Instant::now);
        Ok(())
    }

    fn buffered_bytes(&self) -> u64 {
        self.inner
            .state
            .read()
            .map(|s| s.active_bytes + s.flushing_bytes)
            .unwrap_or(0)
    }

    /// Appends one request: `payload` is its protobuf encoding (what the WAL keeps), `batch`
    /// its rows. Resolves once the record is in the WAL (and fsynced, per policy) and the
    /// rows are visible to queries; returns the record's sequence number.
    pub async fn append(&self, payload: Bytes, batch: RecordBatch) -> Result<u64> {
        let buffered = self.buffered_bytes();
        let limit = self.inner.cfg.max_buffer_bytes;
        if buffered > limit {
            self.inner
                .counters
                .overload_refusals
                .fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Overloaded { buffered, limit });
        }
        let tx = self
            .inner
            .wal_tx
            .lock()
            .map_err(|_| lock_poisoned())?
            .clone()
            .ok_or(StoreError::ShuttingDown)?;
        let rows = batch.num_rows() as u64;
        let (reply, rx) = oneshot::channel();
        tx.send(WalJob {
            payload,
            batch,
            reply,
        })
        .await
        .map_err(|_| StoreError::ShuttingDown)?;
        let seq = rx.await.map_err(|_| StoreError::ShuttingDown)??;
        self.inner.counters.spans.fetch_add(rows, Ordering::Relaxed);
        self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
        Ok(seq)
    }

    /// The data a query should see, consistent at one instant.
    pub fn snapshot(&self) -> Snapshot {
        match self.inner.state.read() {
            Ok(st) => Snapshot {
                segments: st.segments.clone(),
                batches: st
                    .flushing
                    .iter()
                    .chain(st.active.iter())
                    .map(|b| b.batch.clone())
                    .collect(),
                batch_stats: st
                    .flushing
                    .iter()
                    .chain(st.active.iter())
                    .map(|b| b.stats.clone())
                    .collect(),
            },
            Err(_) => Snapshot {
                segments: Vec::new(),
                batches: Vec::new(),
                batch_stats: Vec::new(),
            },
        }
    }

    pub fn stats(&self) -> StoreStats {
        let c = &self.inner.counters;
        let mut s = StoreStats {
            spans_appended: c.spans.load(Ordering::Relaxed),
            requests_appended: c.requests.load(Ordering::Relaxed),
            wal_bytes: c.wal_bytes.load(Ordering::Relaxed),
            wal_groups: c.wal_groups.load(Ordering::Relaxed),
            flushes: c.flushes.load(Ordering::Relaxed),
            compactions: c.compactions.load(Ordering::Relaxed),
            overload_refusals: c.overload_refusals.load(Ordering::Relaxed),
            expired_segments: c.expired_segments.load(Ordering::Relaxed),
            rollup_bytes: self.inner.rollups.used() as u64,
            rollup_evictions: self.inner.rollups.evicted(),
            ..Default::default()
        };
        if let Ok(st) = self.inner.state.read() {
            s.buffered_bytes = st.active_bytes + st.flushing_bytes;
            s.buffered_rows = st
                .active
                .iter()
                .chain(st.flushing.iter())
                .map(|b| b.batch.num_rows() as u64)
                .sum();
            s.segment_files = st.segments.len() as u64;
            s.segment_rows = st.segments.iter().map(|f| f.meta.rows).sum();
            s.segment_bytes = st.segments.iter().map(|f| f.meta.bytes).sum();
        }
        s
    }

    /// Whether the buffer is due for a flush (size or age).
    pub fn flush_due(&self) -> bool {
        match self.inner.state.read() {
            Ok(st) => {
                st.active_bytes >= self.inner.cfg.flush_bytes
                    || st
                        .oldest_active
                        .map(|t| t.elapsed() >= self.inner.cfg.flush_interval)
                        .unwrap_or(false)
                    || !st.flushing.is_empty()
            }
            Err(_) => false,
        }
    }

    /// Writes everything buffered to Parquet segments and advances the manifest. Blocking.
    /// Returns whether anything was written.
    pub fn flush(&self) -> Result<bool> {
        let _guard = self.inner.flush_lock.lock().map_err(|_| lock_poisoned())?;
        let (batches, max_seq) = {
            let mut st = self.inner.state.write().map_err(|_| lock_poisoned())?;
            let moved = std::mem::take(&mut st.active);
            st.flushing_bytes += st.active_bytes;
            st.active_bytes = 0;
            st.oldest_active = None;
            st.flushing.extend(moved);
            if st.flushing.is_empty() {
                return Ok(false);
            }
            let max_seq = st.flushing.iter().map(|b| b.seq).max().unwrap_or(0);
            let batches: Vec<RecordBatch> = st.flushing.iter().map(|b| b.batch.clone()).collect();
            (batches, max_seq)
        };
        let mut written = Vec::new();
        for (p, order) in segment::sorted_runs(&batches)? {
            match self.write_new_segment(p, &batches, &order) {
                Ok(meta) => written.push(meta),
                Err(e) => {
                    self.discard(&written);
                    return Err(e);
                }
            }
        }
        // Publishing the files and dropping the flushed batches happen under one state
        // lock, so a reader sees each span exactly once.
        let committed = self.commit(&HashSet::new(), written.clone(), Some(max_seq), |st| {
            st.flushing.clear();
            st.flushing_bytes = 0;
        });
        if let Err(e) = committed {
            self.discard(&written);
            return Err(e);
        }
        wal::remove_obsolete(&self.wal_dir(), max_seq)?;
        self.inner.counters.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Removes files that were written but never named by the manifest.
    fn discard(&self, written: &[SegmentMeta]) {
        for m in written {
            let _ = fs::remove_file(self.inner.cfg.data_dir.join(&m.file));
        }
    }

    /// One manifest change, made durable and then visible at once: removes the segments
    /// `remove`, adds `add`, raises `flushed_seq` to `flushed`, and applies `also` to the
    /// state under the same lock. Returns false, changing nothing, when a segment of
    /// `remove` is no longer live (retention or another compaction took it).
    fn commit(
        &self,
        remove: &HashSet<u64>,
        add: Vec<SegmentMeta>,
        flushed: Option<u64>,
        also: impl FnOnce(&mut State),
    ) -> Result<bool> {
        let _guard = self
            .inner
            .manifest_lock
            .lock()
            .map_err(|_| lock_poisoned())?;
        let mut manifest = self
            .inner
            .state
            .read()
            .map_err(|_| lock_poisoned())?
            .manifest
            .clone();
        let live = |id: &u64| manifest.segments.iter().any(|s| s.id == *id);
        if !remove.iter().all(live) {
            return Ok(false);
        }
        manifest.segments.retain(|s| !remove.contains(&s.id));
        manifest.segments.extend(add.iter().cloned());
        if let Some(seq) = flushed {
            manifest.flushed_seq = manifest.flushed_seq.max(seq);
        }
        manifest.next_id = manifest
            .next_id
            .max(self.inner.last_id.load(Ordering::SeqCst));
        manifest.save(&self.inner.cfg.data_dir)?;
        let mut st = self.inner.state.write().map_err(|_| lock_poisoned())?;
        st.manifest = manifest;
        st.segments.retain(|s| {
            let gone = remove.contains(&s.meta.id);
            if gone {
                s.mark_obsolete();
            }
            !gone
        });
        for m in add {
            st.segments.push(SegmentFile::new(
                m,
                &self.inner.cfg.data_dir,
                &self.inner.rollups,
            ));
        }
        also(&mut st);
        Ok(true)
    }

    /// Writes one new segment file (not yet named by the manifest).
    fn write_new_segment(
        &self,
        partition: i64,
        batches: &[RecordBatch],
        order: &[(usize, usize)],
    ) -> Result<SegmentMeta> {
        let id = self.inner.last_id.fetch_add(1, Ordering::SeqCst) + 1;
        let file = format!("segments/{partition}/{id:012}.parquet");
        let w = segment::write_rows(
            &self.inner.cfg.data_dir.join(&file),
            batches,
            order,
            self.inner.cfg.row_group_rows,
        )?;
        Ok(SegmentMeta {
            id,
            file,
            partition,
            rows: w.rows,
            bytes: w.bytes,
            min_time: w.min_time,
            max_time: w.max_time,
        })
    }

    /// Drops segments whose newest span is older than the retention period. Blocking.
    pub fn enforce_retention(&self) -> Result<usize> {
        let _guard = self
            .inner
            .compact_lock
            .lock()
            .map_err(|_| lock_poisoned())?;
        let cutoff = now_ns()
            .saturating_sub(self.inner.cfg.retention.as_nanos().min(i64::MAX as u128) as i64);
        self.replace_segments(
            |segs| {
                segs.iter()
                    .filter(|s| s.max_time < cutoff)
                    .map(|s| s.id)
                    .collect()
            },
            None,
        )
        .inspect(|n| {
            self.inner
                .counters
                .expired_segments
                .fetch_add(*n as u64, Ordering::Relaxed);
        })
    }

    /// Merges small files of each hour partition into larger sorted files. Blocking.
    /// Returns the number of files merged away.
    pub fn compact(&self) -> Result<usize> {
        let _guard = self
            .inner
            .compact_lock
            .lock()
            .map_err(|_| lock_poisoned())?;
        let plans = {
            let st = self.inner.state.read().map_err(|_| lock_poisoned())?;
            plan_compactions(
                &st.manifest.segments,
                self.inner.cfg.compact_min_files,
                self.inner.cfg.compact_max_rows,
            )
        };
        let mut merged = 0;
        for ids in plans {
            let inputs: Vec<Arc<SegmentFile>> = {
                let st = self.inner.state.read().map_err(|_| lock_poisoned())?;
                st.segments
                    .iter()
                    .filter(|s| ids.contains(&s.meta.id))
                    .cloned()
                    .collect()
            };
            if inputs.len() < 2 {
                continue;
            }
            let mut batches = Vec::new();
            for f in &inputs {
                batches.extend(segment::read_segment(&f.path)?);
            }
            let partition = inputs[0].meta.partition;
            let n = inputs.len();
            self.replace_segments(|_| ids.clone(), Some((partition, batches)))?;
            merged += n;
            self.inner
                .counters
                .compactions
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(merged)
    }

    /// Removes the segments chosen by `pick` and optionally adds one new segment made of
    /// `add`, as one manifest change.
    fn replace_segments(
        &self,
        pick: impl FnOnce(&[SegmentMeta]) -> HashSet<u64>,
        add: Option<(i64, Vec<RecordBatch>)>,
    ) -> Result<usize> {
        let remove = pick(
            &self
                .inner
                .state
                .read()
                .map_err(|_| lock_poisoned())?
                .manifest
                .segments,
        );
        if remove.is_empty() {
            return Ok(0);
        }
        let mut stats = None;
        let new_meta: Vec<SegmentMeta> = match add {
            Some((p, batches)) => {
                let order: Vec<(usize, usize)> = segment::sorted_runs(&batches)?
                    .into_iter()
                    .flat_map(|(_, rows)| rows)
                    .collect();
                // The new file's rollup, from the rows at hand, so that no page pays for it.
                stats = Some(Arc::new(rollup::from_batches(&batches)?));
                vec![self.write_new_segment(p, &batches, &order)?]
            }
            None => Vec::new(),
        };
        let new_ids: Vec<u64> = new_meta.iter().map(|m| m.id).collect();
        let keep_stats = |st: &mut State| {
            if let Some(stats) = stats {
                for s in st.segments.iter().filter(|s| new_ids.contains(&s.meta.id)) {
                    s.set_rollup(stats.clone());
                }
            }
        };
        match self.commit(&remove, new_meta.clone(), None, keep_stats) {
            Ok(true) => Ok(remove.len()),
            Ok(false) => {
                self.discard(&new_meta);
                Ok(0)
            }
            Err(e) => {
                self.discard(&new_meta);
                Err(e)
            }
        }
    }

    /// Runs the flush/retention/compaction loop until the store is closed, and once, after
    /// open, computes the rollups of the recent segments (see [`Store::warm_rollups`]).
    pub fn spawn_background(&self) -> tokio::task::JoinHandle<()> {
        // Two loops in one task: a long compaction never delays a flush (which would fill
        // the buffer and refuse writes).
        let (a, b, c) = (self.clone(), self.clone(), self.clone());
        tokio::spawn(async move {
            let warm = async move {
                let since = now_ns().saturating_sub(WARM_WINDOW.as_nanos() as i64);
                let res = tokio::task::spawn_blocking(move || c.warm_rollups(since)).await;
                if let Err(e) = res {
                    tracing::error!(error = %e, "rollup warm-up task failed");
                }
            };
            tokio::join!(a.flush_loop(), b.maintenance_loop(), warm);
        })
    }

    /// Computes and caches the rollup of every live segment holding spans newer than
    /// `since_ns`, newest first, so the first page after a restart does not pay for it.
    /// Blocking. Returns the number of files computed.
    pub fn warm_rollups(&self, since_ns: i64) -> usize {
        let started = Instant::now();
        let mut segments = self.snapshot().segments;
        segments.retain(|s| s.meta.max_time >= since_ns && !s.has_rollup());
        segments.sort_by_key(|s| std::cmp::Reverse(s.meta.max_time));
        let mut done = 0;
        let budget = self.inner.rollups.limit() / 10 * 9;
        for s in segments {
            // Older files would only push out the newer ones just computed.
            if self.is_closed() || self.inner.rollups.used() >= budget {
                break;
            }
            match s.rollup() {
                Ok(_) => done += 1,
                Err(e) => {
                    tracing::warn!(file = %s.path.display(), error = %e, "cannot compute the rollup of a segment")
                }
            }
        }
        tracing::info!(
            files = done,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "span_stats rollups warmed"
        );
        done
    }

    async fn flush_loop(self) {
        while !self.is_closed() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if self.flush_due() {
                let s = self.clone();
                match tokio::task::spawn_blocking(move || s.flush()).await {
                    Ok(Err(e)) => tracing::error!(error = %e, "flush failed; will retry"),
                    Err(e) => tracing::error!(error = %e, "flush task failed"),
                    Ok(Ok(_)) => {}
                }
            }
        }
    }

    async fn maintenance_loop(self) {
        loop {
            tokio::time::sleep(self.inner.cfg.maintenance_interval).await;
            if self.is_closed() {
                break;
            }
            let s = self.clone();
            let res = tokio::task::spawn_blocking(move || -> Result<(usize, usize)> {
                Ok((s.enforce_retention()?, s.compact()?))
            })
            .await;
            match res {
                Ok(Ok((expired, merged))) if expired + merged > 0 => {
                    tracing::info!(expired, merged, "maintenance")
                }
                Ok(Err(e)) => tracing::error!(error = %e, "maintenance failed"),
                Err(e) => tracing::error!(error = %e, "maintenance task failed"),
                _ => {}
            }
        }
    }

    fn is_closed(&self) -> bool {
        self.inner
            .wal_tx
            .lock()
            .map(|g| g.is_none())
            .unwrap_or(true)
    }

    /// Stops accepting writes, waits for the WAL thread, and flushes. Blocking.
    pub fn close(&self) -> Result<()> {
        self.inner
            .wal_tx
            .lock()
            .map_err(|_| lock_poisoned())?
            .take();
        if let Some(h) = self
            .inner
            .wal_thread
            .lock()
            .map_err(|_| lock_poisoned())?
            .take()
        {
            let _ = h.join();
        }
        self.flush()?;
        Ok(())
    }
}

/// Groups of small files to merge, per partition.
fn plan_compactions(
    segments: &[SegmentMeta],
    min_files: usize,
    max_rows: usize,
) -> Vec<HashSet<u64>> {
    let mut by_partition: BTreeMap<i64, Vec<&SegmentMeta>> = BTreeMap::new();
    for s in segments.iter().filter(|s| (s.rows as usize) < max_rows / 2) {
        by_partition.entry(s.partition).or_default().push(s);
    }
    let mut plans = Vec::new();
    for (_, mut files) in by_partition {
        if files.len() < min_files.max(2) {
            continue;
        }
        files.sort_by_key(|s| s.rows);
        let mut pick = HashSet::new();
        let mut rows = 0usize;
        for f in files {
            if rows + f.rows as usize > max_rows && pick.len() >= 2 {
                break;
            }
            rows += f.rows as usize;
            pick.insert(f.id);
        }
        if pick.len() >= 2 {
            plans.push(pick);
        }
    }
    plans
}

/// Deletes files under `segments/` the manifest does not name (left by a crash mid-flush).
fn remove_strays(dir: &Path, manifest: &Manifest) -> Result<()> {
    let live: HashSet<PathBuf> = manifest
        .segments
        .iter()
        .map(|s| dir.join(&s.file))
        .collect();
    let root = dir.join("segments");
    let Ok(parts) = fs::read_dir(&root) else {
        return Ok(());
    };
    for part in parts.flatten() {
        let Ok(files) = fs::read_dir(part.path()) else {
            continue;
        };
        for f in files.flatten() {
            if !live.contains(&f.path()) {
                tracing::info!(file = %f.path().display(), "removing segment file not named by the manifest");
                fs::remove_file(f.path()).map_err(|e| StoreError::io(f.path(), e))?;
            }
        }
    }
    Ok(())
}

fn wal_loop(mut writer: WalWriter, mut rx: mpsc::Receiver<WalJob>, inner: std::sync::Weak<Inner>) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        let mut bytes = jobs[0].payload.len();
        while jobs.len() < GROUP_MAX_RECORDS && bytes < GROUP_MAX_BYTES {
            match rx.try_recv() {
                Ok(j) => {
                    bytes += j.payload.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let Some(inner) = inner.upgrade() else { break };
        let store = Store { inner };
        let payloads: Vec<&[u8]> = jobs.iter().map(|j| j.payload.as_ref()).collect();
        match writer.append_group(&payloads) {
            Ok(first_seq) => {
                store
                    .inner
                    .counters
                    .wal_bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed);
                store
                    .inner
                    .counters
                    .wal_groups
                    .fetch_add(1, Ordering::Relaxed);
                let mut replies = Vec::with_capacity(jobs.len());
                for (i, job) in jobs.into_iter().enumerate() {
                    let seq = first_seq + i as u64;
                    replies.push((job.reply, store.push_active(seq, job.batch).map(|_| seq)));
                }
                // Let go of the store before waking writers, so a writer that drops the last
                // handle really closes it.
                drop(store);
                for (reply, res) in replies {
                    let _ = reply.send(res);
                }
            }
            Err(e) => {
                drop(store);
                tracing::error!(error = %e, "WAL write failed; refusing this group");
                let msg = e.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(StoreError::Wal(msg.clone())));
                }
            }
        }
    }
}
