//! The tail sampling state machine, with time passed in (no clocks, no tasks):
//! [`TailSampler::add`] holds spans grouped by trace id, [`TailSampler::tick`] decides the
//! traces whose first span arrived `decision_wait` ago and returns the spans to forward.
//!
//! As upstream: a decided trace stays known (without its spans) until pushed out of the
//! `num_traces` window, so late spans follow its decision; the decision caches keep
//! decisions longer. A new trace beyond `num_traces` evicts the oldest one; an undecided
//! evicted trace is dropped and counted (`dropped_too_early`). With `block_on_overflow`,
//! decided traces are forgotten at once and a new trace beyond `num_traces` undecided ones
//! is refused instead.

use super::build::{build_policies, Policy};
use super::config::TailSamplingConfig;
use super::lru::Lru;
use super::policy::{Decision, TraceView};
use osprey_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use osprey_model::TraceRequest;
use osprey_pipeline::ConfigError;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Counters of what the sampler did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailStats {
    pub traces_sampled: u64,
    pub traces_not_sampled: u64,
    pub traces_dropped_too_early: u64,
    pub late_spans_forwarded: u64,
    pub late_spans_dropped: u64,
    pub policy_errors: u64,
    pub spans_held: u64,
    pub traces_held: u64,
}

/// `add` could not hold a trace (`block_on_overflow` with `num_traces` undecided traces).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tail_sampling holds {0} undecided traces (num_traces)")]
pub struct Overflow(pub u64);

enum State {
    Pending {
        batches: Vec<ResourceSpans>,
        spans: usize,
    },
    Decided(bool),
}

struct Entry {
    seq: u64,
    state: State,
}

/// The tail sampling core.
pub struct TailSampler {
    wait: Duration,
    num_traces: usize,
    first_match: bool,
    drop_pending_on_shutdown: bool,
    block_on_overflow: bool,
    policies: Vec<Policy>,
    traces: HashMap<Vec<u8>, Entry>,
    /// Arrival order, for eviction (unused with `block_on_overflow`).
    order: VecDeque<(u64, Vec<u8>)>,
    /// Decision deadlines in arrival order (constant wait keeps them sorted).
    deadlines: VecDeque<(Instant, u64, Vec<u8>)>,
    sampled_cache: Lru,
    not_sampled_cache: Lru,
    seq: u64,
    epoch: Option<Instant>,
    stats: TailStats,
}

/// Appends `rs` to `out`.
fn append(out: &mut TraceRequest, rs: Vec<ResourceSpans>) {
    out.resource_spans.extend(rs);
}

/// Splits one resource's spans by trace id, keeping resource and scopes.
fn split_by_trace(rs: ResourceSpans) -> Vec<(Vec<u8>, ResourceSpans, usize)> {
    let mut groups: Vec<(Vec<u8>, ResourceSpans, usize)> = Vec::new();
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    for ss in rs.scope_spans {
        let mut per_trace: HashMap<Vec<u8>, Vec<Span>> = HashMap::new();
        let mut trace_order: Vec<Vec<u8>> = Vec::new();
        for span in ss.spans {
            let list = per_trace.entry(span.trace_id.clone()).or_insert_with(|| {
                trace_order.push(span.trace_id.clone());
                Vec::new()
            });
            list.push(span);
        }
        for id in trace_order {
            let spans = per_trace.remove(&id).unwrap_or_default();
            let gi = *index.entry(id.clone()).or_insert_with(|| {
                groups.push((
                    id.clone(),
                    ResourceSpans {
                        resource: rs.resource.clone(),
                        scope_spans: Vec::new(),
                        schema_url: rs.schema_url.clone(),
                    },
                    0,
                ));
                groups.len() - 1
            });
            let g = &mut groups[gi];
            g.2 += spans.len();
            g.1.scope_spans.push(ScopeSpans {
                scope: ss.scope.clone(),
                spans,
                schema_url: ss.schema_url.clone(),
            });
        }
    }
    groups
}

impl TailSampler {
    pub fn new(c: &TailSamplingConfig) -> Result<Self, ConfigError> {
        c.validate()?;
        Ok(TailSampler {
            wait: c.decision_wait,
            num_traces: usize::try_from(c.num_traces).unwrap_or(usize::MAX),
            first_match: c.sample_on_first_match,
            drop_pending_on_shutdown: c.drop_pending_traces_on_shutdown,
            block_on_overflow: c.block_on_overflow,
            policies: build_policies(&c.policies)?,
            traces: HashMap::new(),
            order: VecDeque::new(),
            deadlines: VecDeque::new(),
            sampled_cache: Lru::new(c.decision_cache.sampled_cache_size),
            not_sampled_cache: Lru::new(c.decision_cache.non_sampled_cache_size),
            seq: 0,
            epoch: None,
            stats: TailStats::default(),
        })
    }

    pub fn stats(&self) -> TailStats {
        let mut s = self.stats;
        s.traces_held = self
            .traces
            .values()
            .filter(|e| matches!(e.state, State::Pending { .. }))
            .count() as u64;
        s
    }

    /// Holds the spans of `req`; returns the spans of already-sampled traces, to forward
    /// now. With `block_on_overflow`, a request that would exceed `num_traces` undecided
    /// traces is refused whole.
    pub fn add(&mut self, req: TraceRequest, now: Instant) -> Result<TraceRequest, Overflow> {
        self.epoch.get_or_insert(now);
        if self.block_on_overflow {
            let mut new_ids: Vec<&[u8]> = req
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| &ss.spans)
                .map(|s| s.trace_id.as_slice())
                .filter(|id| {
                    !self.traces.contains_key(*id)
                        && !self.sampled_cache.map.contains_key(*id)
                        && !self.not_sampled_cache.map.contains_key(*id)
                })
                .collect();
            new_ids.sort_unstable();
            new_ids.dedup();
            if self.traces.len() + new_ids.len() > self.num_traces {
                return Err(Overflow(self.traces.len() as u64));
            }
        }
        let mut out = TraceRequest::default();
        for rs in req.resource_spans {
            for (id, group, n) in split_by_trace(rs) {
                self.add_group(id, group, n, now, &mut out);
            }
        }
        Ok(out)
    }

    fn add_group(
        &mut self,
        id: Vec<u8>,
        group: ResourceSpans,
        n: usize,
        now: Instant,
        out: &mut TraceRequest,
    ) {
        if self.sampled_cache.touch(&id) {
            self.stats.late_spans_forwarded += n as u64;
            append(out, vec![group]);
            return;
        }
        if self.not_sampled_cache.touch(&id) {
            self.stats.late_spans_dropped += n as u64;
            return;
        }
        if let Some(entry) = self.traces.get_mut(&id) {
            match &mut entry.state {
                State::Pending { batches, spans } => {
                    batches.push(group);
                    *spans += n;
                    self.stats.spans_held += n as u64;
                }
                State::Decided(true) => {
                    self.stats.late_spans_forwarded += n as u64;
                    append(out, vec![group]);
                }
                State::Decided(false) => self.stats.late_spans_dropped += n as u64,
            }
            return;
        }
        if !self.block_on_overflow {
            while self.traces.len() >= self.num_traces {
                let Some((seq, old)) = self.order.pop_front() else {
                    break;
                };
                if self.traces.get(&old).is_some_and(|e| e.seq == seq) {
                    if let Some(Entry {
                        state: State::Pending { spans, .. },
                        ..
                    }) = self.traces.remove(&old)
                    {
                        self.stats.traces_dropped_too_early += 1;
                        self.stats.spans_held = self.stats.spans_held.saturating_sub(spans as u64);
                        tracing::warn!(trace_id = %hex::encode(&old), "tail_sampling: trace evicted before its decision (num_traces reached); dropped");
                    }
                }
            }
        }
        self.seq += 1;
        let seq = self.seq;
        self.traces.insert(
            id.clone(),
            Entry {
                seq,
                state: State::Pending {
                    batches: vec![group],
                    spans: n,
                },
            },
        );
        self.stats.spans_held += n as u64;
        if !self.block_on_overflow {
            self.order.push_back((seq, id.clone()));
        }
        self.deadlines.push_back((now + self.wait, seq, id));
    }

    /// Decides every trace whose wait is over at `now`; returns the sampled spans.
    pub fn tick(&mut self, now: Instant) -> TraceRequest {
        let mut out = TraceRequest::default();
        while self.deadlines.front().is_some_and(|(d, _, _)| *d <= now) {
            let Some((_, seq, id)) = self.deadlines.pop_front() else {
                break;
            };
            self.decide(&id, seq, now, &mut out);
        }
        out
    }

    /// Decides (or, with `drop_pending_traces_on_shutdown`, drops) every held trace.
    pub fn flush(&mut self, now: Instant) -> TraceRequest {
        let mut out = TraceRequest::default();
        while let Some((_, seq, id)) = self.deadlines.pop_front() {
            if self.drop_pending_on_shutdown {
                if let Some(Entry {
                    state: State::Pending { spans, .. },
                    ..
                }) = self.traces.remove(&id)
                {
                    self.stats.spans_held = self.stats.spans_held.saturating_sub(spans as u64);
                }
            } else {
                self.decide(&id, seq, now, &mut out);
            }
        }
        out
    }

    fn decide(&mut self, id: &[u8], seq: u64, now: Instant, out: &mut TraceRequest) {
        let Some(entry) = self.traces.get_mut(id) else {
            return;
        };
        if entry.seq != seq {
            return;
        }
        let State::Pending { batches, spans } =
            std::mem::replace(&mut entry.state, State::Decided(false))
        else {
            return;
        };
        self.stats.spans_held = self.stats.spans_held.saturating_sub(spans as u64);
        let view = TraceView {
            trace_id: id,
            batches: &batches,
            span_count: spans,
        };
        let epoch = self.epoch.unwrap_or(now);
        let decision = make_decision(
            &mut self.policies,
            &view,
            now,
            epoch,
            self.first_match,
            &mut self.stats.policy_errors,
        );
        let sampled = decision == Decision::Sampled;
        if sampled {
            self.stats.traces_sampled += 1;
            self.sampled_cache.insert(id);
            append(out, batches);
        } else {
            self.stats.traces_not_sampled += 1;
            self.not_sampled_cache.insert(id);
        }
        if self.block_on_overflow {
            self.traces.remove(id);
        } else if let Some(e) = self.traces.get_mut(id) {
            e.state = State::Decided(sampled);
        }
    }
}

/// Combines the policies' decisions as upstream: any drop wins, then an inverted
/// not-sample, then any sample, then an inverted sample with no plain not-sample;
/// otherwise the trace is not sampled.
fn make_decision(
    policies: &mut [Policy],
    view: &TraceView,
    now: Instant,
    epoch: Instant,
    first_match: bool,
    errors: &mut u64,
) -> Decision {
    let mut seen: Vec<Decision> = Vec::new();
    for p in policies.iter_mut() {
        match p.eval.evaluate(view, now, epoch) {
            Err(e) => {
                *errors += 1;
                tracing::debug!(policy = %p.name, error = %e, "tail_sampling: policy evaluation error");
            }
            Ok(d) => {
                seen.push(d);
                if d == Decision::Dropped || (first_match && d == Decision::Sampled) {
                    break;
                }
            }
        }
    }
    let has = |d: Decision| seen.contains(&d);
    if has(Decision::Dropped) || has(Decision::InvertNotSampled) {
        Decision::NotSampled
    } else if has(Decision::Sampled) || (has(Decision::InvertSampled) && !has(Decision::NotSampled))
    {
        Decision::Sampled
    } else {
        Decision::NotSampled
    }
}
