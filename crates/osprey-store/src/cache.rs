//! A memory budget for the rollups of segment files.
//!
//! Each segment file keeps its rollup in a [`RollupCell`] once computed. All cells of a store
//! share one [`RollupCache`], which adds up their sizes; when a new rollup takes the total past
//! the budget, the least recently used rollups of other files are dropped (they are computed
//! again from the file when a query needs them). Buffered batches are not counted: they live
//! for one flush interval.

use crate::error::Result;
use crate::rollup::Rollup;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

fn relock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The shared budget.
#[derive(Debug)]
pub struct RollupCache {
    limit: usize,
    used: AtomicUsize,
    clock: AtomicU64,
    evicted: AtomicU64,
    /// The cells holding a rollup, by segment id.
    held: Mutex<HashMap<u64, Weak<RollupCell>>>,
}

impl RollupCache {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<RollupCache> {
        Arc::new(RollupCache {
            limit,
            used: AtomicUsize::new(0),
            clock: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            held: Mutex::new(HashMap::new()),
        })
    }

    /// Bytes of rollups held.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Rollups dropped to stay within the budget, since open.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Records that `cell` (of segment `id`) now holds `size` bytes, then evicts the least
    /// recently used other cells while over the budget.
    fn admit(&self, id: u64, cell: &Arc<RollupCell>, size: usize) {
        let mut held = relock(&self.held);
        held.insert(id, Arc::downgrade(cell));
        self.used.fetch_add(size, Ordering::Relaxed);
        // Cells of dropped files gave their memory back in their Drop.
        held.retain(|_, w| w.strong_count() > 0);
        if self.used() <= self.limit {
            return;
        }
        let mut lru: Vec<(u64, u64, Arc<RollupCell>)> = held
            .iter()
            .filter(|(other, _)| **other != id)
            .filter_map(|(other, w)| w.upgrade().map(|c| (c.last_used(), *other, c)))
            .collect();
        lru.sort_by_key(|(t, _, _)| *t);
        for (_, other, c) in lru {
            if self.used() <= self.limit {
                break;
            }
            if c.clear() {
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
            held.remove(&other);
        }
    }

    fn release(&self, size: usize) {
        self.used.fetch_sub(size, Ordering::Relaxed);
    }
}

/// One segment file's rollup: computed on first use, kept while the budget allows.
/// Concurrent first users wait for one computation instead of each doing it.
#[derive(Debug)]
pub struct RollupCell {
    id: u64,
    cache: Arc<RollupCache>,
    value: Mutex<Option<(Arc<Rollup>, usize)>>,
    computing: Mutex<()>,
    last_used: AtomicU64,
}

impl RollupCell {
    pub fn new(id: u64, cache: Arc<RollupCache>) -> Arc<RollupCell> {
        Arc::new(RollupCell {
            id,
            cache,
            value: Mutex::new(None),
            computing: Mutex::new(()),
            last_used: AtomicU64::new(0),
        })
    }

    fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// Whether a rollup is held (not a use).
    pub fn held(&self) -> bool {
        relock(&self.value).is_some()
    }

    /// The cached rollup, if held (counts as a use).
    pub fn cached(&self) -> Option<Arc<Rollup>> {
        let v = relock(&self.value).as_ref().map(|(r, _)| r.clone());
        if v.is_some() {
            self.last_used.store(self.cache.tick(), Ordering::Relaxed);
        }
        v
    }

    /// Drops the rollup; true if one was held.
    fn clear(&self) -> bool {
        match relock(&self.value).take() {
            Some((_, size)) => {
                self.cache.release(size);
                true
            }
            None => false,
        }
    }

    /// Keeps `rollup` unless one is held already.
    pub fn set(self: &Arc<Self>, rollup: Arc<Rollup>) {
        let size = rollup.size();
        {
            let mut v = relock(&self.value);
            if v.is_some() {
                return;
            }
            *v = Some((rollup, size));
        }
        self.last_used.store(self.cache.tick(), Ordering::Relaxed);
        self.cache.admit(self.id, self, size);
    }

    /// The rollup, computing it with `compute` if not held. Errors are not cached.
    pub fn get_or_compute(
        self: &Arc<Self>,
        compute: impl FnOnce() -> Result<Rollup>,
    ) -> Result<Arc<Rollup>> {
        if let Some(r) = self.cached() {
            return Ok(r);
        }
        let _guard = relock(&self.computing);
        if let Some(r) = self.cached() {
            return Ok(r);
        }
        let rollup = Arc::new(compute()?);
        self.set(rollup.clone());
        Ok(rollup)
    }
}

impl Drop for RollupCell {
    fn drop(&mut self) {
        if let Some((_, size)) = relock(&self.value).take() {
            self.cache.release(size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::from_batches;

    fn rollup() -> Rollup {
        use osprey_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "op".into(),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2_000_000,
            ..Default::default()
        };
        let req = osprey_model::TraceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let batch = osprey_model::request_to_batch(&req).expect("batch");
        from_batches([&batch]).expect("rollup")
    }

    #[test]
    fn evicts_least_recently_used_beyond_the_budget() {
        let one = rollup().size();
        assert!(one > 0);
        let cache = RollupCache::new(one * 2);
        let cells: Vec<_> = (0..3).map(|i| RollupCell::new(i, cache.clone())).collect();
        cells[0].get_or_compute(|| Ok(rollup())).expect("0");
        cells[1].get_or_compute(|| Ok(rollup())).expect("1");
        assert_eq!(cache.used(), one * 2);
        // Touch 0, so 1 is the least recently used when 2 arrives.
        assert!(cells[0].cached().is_some());
        cells[2].get_or_compute(|| Ok(rollup())).expect("2");
        assert!(cells[0].cached().is_some());
        assert!(cells[1].cached().is_none());
        assert!(cells[2].cached().is_some());
        assert_eq!((cache.used(), cache.evicted()), (one * 2, 1));
        // Computed again on the next use.
        let mut computed = false;
        cells[1]
            .get_or_compute(|| {
                computed = true;
                Ok(rollup())
            })
            .expect("1 again");
        assert!(computed);
        assert_eq!(cache.used(), one * 2);
        // A dropped file gives its bytes back.
        drop(cells);
        assert_eq!(cache.used(), 0);
    }
}
