//! One trace as a tree of [`Node`]s: which spans exist, who is whose parent, their
//! durations and start times. Turning nodes into OTLP spans is [`super::emit`]'s job.
//!
//! Nodes are stored in pre-order (a parent always comes before its children), which lets
//! durations be summed bottom-up in one reverse pass and laid out top-down in one forward
//! pass: every child fits inside its parent.

use super::catalog::{Action, Catalog};
use rand::rngs::SmallRng;
use rand::Rng;

/// No trace has more spans than this.
pub const MAX_SPANS: usize = 30;
/// Every trace has at least this many spans.
pub const MIN_SPANS: usize = 5;
/// Root depth is 0; no node is deeper than `MAX_DEPTH - 1`.
pub const MAX_DEPTH: usize = 12;
pub const NO_PARENT: u32 = u32::MAX;

/// Probability that a server span fails (its client span fails with it).
const P_ERR_SERVER: f64 = 0.012;
/// Probability that a database call fails.
const P_ERR_DB: f64 = 0.008;
/// Probability of an informational event on a server span.
const P_EVENT: f64 = 0.04;
/// Probability of a slow outlier (x10 self time) on a server span.
const P_SLOW: f64 = 0.01;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// Endpoint index.
    Server(u16),
    /// Client side of a call to the endpoint.
    Client(u16),
    Db(u16),
    /// Topic index.
    Producer(u16),
    /// Consumer endpoint index.
    Consumer(u16),
    Internal(&'static str),
}

#[derive(Clone, Debug)]
pub struct Node {
    pub parent: u32,
    pub svc: u16,
    pub kind: NodeKind,
    pub depth: u8,
    pub self_ns: u64,
    pub dur_ns: u64,
    pub start: u64,
    /// Where the next child starts (layout only).
    cursor: u64,
    pub error: bool,
    pub event: bool,
    pub id: [u8; 8],
    /// A random number for `{id}` placeholders in paths and statements.
    pub num: u32,
}

impl Node {
    pub fn end(&self) -> u64 {
        self.start + self.dur_ns
    }
}

/// A standard normal sample (Box-Muller).
fn normal(rng: &mut SmallRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A log-normal duration in nanoseconds with the given median (ms).
pub fn lognormal_ns(rng: &mut SmallRng, median_ms: f64, sigma: f64) -> u64 {
    let ms = median_ms * (sigma * normal(rng)).exp();
    (ms * 1e6).clamp(1_000.0, 60e9) as u64
}

pub fn random_id(rng: &mut SmallRng) -> [u8; 8] {
    loop {
        let id: [u8; 8] = rng.random();
        if id != [0; 8] {
            return id;
        }
    }
}

struct Builder<'a> {
    cat: &'a Catalog,
    rng: &'a mut SmallRng,
    nodes: &'a mut Vec<Node>,
}

impl Builder<'_> {
    fn push(&mut self, parent: u32, svc: u16, kind: NodeKind, self_ns: u64) -> u32 {
        let depth = if parent == NO_PARENT {
            0
        } else {
            self.nodes[parent as usize].depth + 1
        };
        let node = Node {
            parent,
            svc,
            kind,
            depth,
            self_ns,
            dur_ns: 0,
            start: 0,
            cursor: 0,
            error: false,
            event: false,
            id: random_id(self.rng),
            num: self.rng.random_range(1..100_000),
        };
        self.nodes.push(node);
        (self.nodes.len() - 1) as u32
    }

    fn room(&self, spans: usize, depth: u8) -> bool {
        self.nodes.len() + spans <= MAX_SPANS && usize::from(depth) < MAX_DEPTH
    }

    fn server(&mut self, parent: u32, ep: u16, consumer: bool) -> u32 {
        let e = &self.cat.endpoints[ep as usize];
        let slow = if self.rng.random_bool(P_SLOW) {
            10.0
        } else {
            1.0
        };
        let self_ns = lognormal_ns(self.rng, e.self_ms * slow, 0.7);
        let kind = if consumer {
            NodeKind::Consumer(ep)
        } else {
            NodeKind::Server(ep)
        };
        let idx = self.push(parent, e.svc, kind, self_ns);
        let error = self.rng.random_bool(P_ERR_SERVER);
        let event = self.rng.random_bool(P_EVENT);
        let n = &mut self.nodes[idx as usize];
        n.error = error;
        n.event = event;
        if error
            && parent != NO_PARENT
            && matches!(self.nodes[parent as usize].kind, NodeKind::Client(_))
        {
            self.nodes[parent as usize].error = true;
        }
        idx
    }

    fn expand(&mut self, at: u32, ep: u16) {
        let cat = self.cat;
        let svc = self.nodes[at as usize].svc;
        let depth = self.nodes[at as usize].depth;
        for step in &cat.endpoints[ep as usize].steps {
            if step.p < 1.0 && !self.rng.random_bool(f64::from(step.p)) {
                continue;
            }
            let times = if step.repeat > 1 {
                self.rng.random_range(1..=step.repeat)
            } else {
                1
            };
            for _ in 0..times {
                match &step.action {
                    Action::Call(alts) => {
                        if !self.room(2, depth + 2) {
                            return;
                        }
                        let target = alts[self.rng.random_range(0..alts.len())];
                        let net = lognormal_ns(self.rng, 0.4, 0.5);
                        let client = self.push(at, svc, NodeKind::Client(target), net);
                        let server = self.server(client, target, false);
                        self.expand(server, target);
                    }
                    Action::Db(op) => {
                        if !self.room(1, depth + 1) {
                            return;
                        }
                        let ms = cat.db_ops[*op as usize].median_ms;
                        let self_ns = lognormal_ns(self.rng, ms, 0.9);
                        let idx = self.push(at, svc, NodeKind::Db(*op), self_ns);
                        let error = self.rng.random_bool(P_ERR_DB);
                        self.nodes[idx as usize].error = error;
                    }
                    Action::Publish(topic) => {
                        if !self.room(1, depth + 1) {
                            return;
                        }
                        let self_ns = lognormal_ns(self.rng, 1.0, 0.6);
                        let producer = self.push(at, svc, NodeKind::Producer(*topic), self_ns);
                        for group in &cat.topics[*topic as usize].consumers {
                            if !self.room(1, depth + 2) {
                                break;
                            }
                            let ep = group[self.rng.random_range(0..group.len())];
                            let consumer = self.server(producer, ep, true);
                            self.expand(consumer, ep);
                        }
                    }
                    Action::Internal(name, ms) => {
                        if !self.room(1, depth + 1) {
                            return;
                        }
                        let self_ns = lognormal_ns(self.rng, *ms, 0.8);
                        self.push(at, svc, NodeKind::Internal(name), self_ns);
                    }
                }
            }
        }
    }
}

/// Builds one trace into `nodes` (cleared first). `root_start` receives the root duration in
/// nanoseconds and returns the root's start time.
pub fn build_trace(
    cat: &Catalog,
    rng: &mut SmallRng,
    nodes: &mut Vec<Node>,
    root_start: impl FnOnce(u64) -> u64,
) {
    nodes.clear();
    let total = cat.roots.last().map(|r| r.1).unwrap_or(1);
    let pick = rng.random_range(0..total);
    let root_ep = cat
        .roots
        .iter()
        .find(|r| pick < r.1)
        .or(cat.roots.last())
        .map(|r| r.0)
        .unwrap_or(0);
    {
        let mut b = Builder {
            cat,
            rng: &mut *rng,
            nodes: &mut *nodes,
        };
        let root = b.server(NO_PARENT, root_ep, false);
        b.expand(root, root_ep);
        while b.nodes.len() < MIN_SPANS {
            let self_ns = lognormal_ns(b.rng, 0.2, 0.5);
            b.push(root, 0, NodeKind::Internal("middleware"), self_ns);
        }
    }
    // Durations, bottom-up: children come after their parent.
    for i in (0..nodes.len()).rev() {
        nodes[i].dur_ns += nodes[i].self_ns;
        let p = nodes[i].parent;
        if p != NO_PARENT {
            let d = nodes[i].dur_ns;
            nodes[p as usize].dur_ns += d;
        }
    }
    let root_start = root_start(nodes[0].dur_ns);
    // Layout, top-down: each node spends part of its self time before its first child.
    for i in 0..nodes.len() {
        let p = nodes[i].parent;
        let start = if p == NO_PARENT {
            root_start
        } else {
            let dur = nodes[i].dur_ns;
            let parent = &mut nodes[p as usize];
            let s = parent.cursor;
            parent.cursor += dur;
            s
        };
        let lead = match nodes[i].kind {
            NodeKind::Client(_) | NodeKind::Producer(_) => nodes[i].self_ns / 2,
            _ => (nodes[i].self_ns as f64 * rng.random_range(0.1..0.6)) as u64,
        };
        nodes[i].start = start;
        nodes[i].cursor = start + lead;
    }
}
