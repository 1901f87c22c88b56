//! A small LRU set of trace ids (the decision caches).

use std::collections::{HashMap, VecDeque};

/// A small LRU set of trace ids.
pub(super) struct Lru {
    cap: usize,
    tick: u64,
    pub(super) map: HashMap<Vec<u8>, u64>,
    order: VecDeque<(u64, Vec<u8>)>,
}

impl Lru {
    pub(super) fn new(cap: usize) -> Self {
        Lru {
            cap,
            tick: 0,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub(super) fn touch(&mut self, id: &[u8]) -> bool {
        if self.cap == 0 {
            return false;
        }
        match self.map.get_mut(id) {
            Some(t) => {
                self.tick += 1;
                *t = self.tick;
                self.order.push_back((self.tick, id.to_vec()));
                self.compact();
                true
            }
            None => false,
        }
    }

    pub(super) fn insert(&mut self, id: &[u8]) {
        if self.cap == 0 {
            return;
        }
        self.tick += 1;
        self.map.insert(id.to_vec(), self.tick);
        self.order.push_back((self.tick, id.to_vec()));
        while self.map.len() > self.cap {
            let Some((t, k)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&k) == Some(&t) {
                self.map.remove(&k);
            }
        }
        self.compact();
    }

    /// Drops stale order entries so the queue stays within a small multiple of the map.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.cap + 16 {
            let map = &self.map;
            self.order.retain(|(t, k)| map.get(k) == Some(t));
        }
    }
}
