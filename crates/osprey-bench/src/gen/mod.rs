//! The synthetic workload shared by `osprey loadgen` and the PostgreSQL baseline of
//! `osprey bench`: realistic multi-service traces, produced as OTLP export requests.
//!
//! The workload is a sequence of batches; batch `i` depends only on the seed and `i` (and,
//! without a start offset, on the wall clock), so any worker can produce any batch and two
//! runs with the same seed send the same spans.
//!
//! A [`Generator`] keeps its spans between batches and overwrites them in place, and encodes
//! a batch straight from them, so producing a batch allocates very little.

pub mod catalog;
pub mod emit;
pub mod spec;
pub mod tree;

use anyhow::Result;
use catalog::{Catalog, INSTANCES};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, message, WireType};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What to generate.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    pub seed: u64,
    pub services: usize,
    /// Zero: traces end "now" (wall clock at generation). Otherwise trace start times are
    /// spread uniformly over `[base - offset, base]`.
    pub start_offset: Duration,
    /// "Now" for the start offset, nanoseconds since the epoch.
    pub base_time_ns: u64,
}

impl WorkloadConfig {
    pub fn new(seed: u64, services: usize, start_offset: Duration) -> Self {
        WorkloadConfig {
            seed,
            services,
            start_offset,
            base_time_ns: now_ns(),
        }
    }
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// SplitMix64 finalizer: spreads seeds so that neighbouring batch numbers are unrelated.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Default)]
struct Group {
    spans: Vec<Span>,
    used: usize,
}

/// Produces batches of whole traces.
pub struct Generator {
    cat: Arc<Catalog>,
    cfg: WorkloadConfig,
    rng: SmallRng,
    nodes: Vec<tree::Node>,
    /// One group per (service, instance): the resource's spans.
    groups: Vec<Group>,
    /// Groups with spans in the current batch, in first-use order.
    touched: Vec<usize>,
    scope: InstrumentationScope,
    spans: usize,
    traces: usize,
}

impl Generator {
    pub fn new(cfg: WorkloadConfig) -> Result<Generator> {
        let cat = Arc::new(Catalog::new(cfg.services)?);
        let groups = (0..cat.services.len() * INSTANCES)
            .map(|_| Group::default())
            .collect();
        Ok(Generator {
            cat,
            rng: SmallRng::seed_from_u64(cfg.seed),
            cfg,
            nodes: Vec::with_capacity(tree::MAX_SPANS),
            groups,
            touched: Vec::new(),
            scope: InstrumentationScope {
                name: "osprey-loadgen".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            },
            spans: 0,
            traces: 0,
        })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.cat
    }

    /// Generates batch number `index`: whole traces until at least `target` spans, never
    /// more than `hard_limit` spans. Returns the span count (0: nothing fitted the limit).
    pub fn fill_batch(&mut self, index: u64, target: usize, hard_limit: usize) -> usize {
        self.rng = SmallRng::seed_from_u64(mix(self.cfg.seed ^ mix(index)));
        for &g in &self.touched {
            self.groups[g].used = 0;
        }
        self.touched.clear();
        self.spans = 0;
        self.traces = 0;
        let offset_ns = self.cfg.start_offset.as_nanos() as u64;
        let mut misses = 0;
        while self.spans < target.max(1) {
            let trace_id = loop {
                let id: [u8; 16] = self.rng.random();
                if id != [0; 16] {
                    break id;
                }
            };
            let (base, jitter) = if offset_ns > 0 {
                (self.cfg.base_time_ns, self.rng.random_range(0..offset_ns))
            } else {
                (now_ns(), 0)
            };
            tree::build_trace(&self.cat, &mut self.rng, &mut self.nodes, |dur| {
                base.saturating_sub(dur).saturating_sub(jitter)
            });
            if self.spans + self.nodes.len() > hard_limit {
                misses += 1;
                if self.spans > 0 || misses >= 8 {
                    break;
                }
                continue;
            }
            self.emit(&trace_id);
        }
        self.spans
    }

    fn emit(&mut self, trace_id: &[u8; 16]) {
        let instance_salt = usize::from(trace_id[15]);
        for node in &self.nodes {
            let g = usize::from(node.svc) * INSTANCES
                + (instance_salt + usize::from(node.svc)) % INSTANCES;
            let group = &mut self.groups[g];
            if group.used == 0 {
                self.touched.push(g);
            }
            if group.used == group.spans.len() {
                group.spans.push(Span::default());
            }
            emit::write_span(
                &mut group.spans[group.used],
                &self.cat,
                trace_id,
                &self.nodes,
                node,
            );
            group.used += 1;
        }
        self.spans += self.nodes.len();
        self.traces += 1;
    }

    /// Spans in the current batch.
    pub fn span_count(&self) -> usize {
        self.spans
    }

    /// Traces in the current batch.
    pub fn trace_count(&self) -> usize {
        self.traces
    }

    fn resource(&self, g: usize) -> &Resource {
        &self.cat.services[g / INSTANCES].resources[g % INSTANCES]
    }

    /// Calls `f(service_name, resource, span)` for every span of the current batch.
    pub fn for_each_span(&self, mut f: impl FnMut(&str, &Resource, &Span)) {
        for &g in &self.touched {
            let name = &self.cat.services[g / INSTANCES].name;
            let res = self.resource(g);
            for span in &self.groups[g].spans[..self.groups[g].used] {
                f(name, res, span);
            }
        }
    }

    /// The current batch as an `ExportTraceServiceRequest` protobuf, appended to `buf`.
    /// Byte-for-byte what encoding [`Generator::to_request`] gives.
    pub fn encode(&self, buf: &mut impl bytes::BufMut) {
        for &g in &self.touched {
            let res = self.resource(g);
            let spans = &self.groups[g].spans[..self.groups[g].used];
            let spans_len: usize = spans.iter().map(|s| message::encoded_len(2, s)).sum();
            let scope_spans_len = message::encoded_len(1, &self.scope) + spans_len;
            let rs_len = message::encoded_len(1, res)
                + key_len(2)
                + encoded_len_varint(scope_spans_len as u64)
                + scope_spans_len;
            encode_key(1, WireType::LengthDelimited, buf);
            encode_varint(rs_len as u64, buf);
            message::encode(1, res, buf);
            encode_key(2, WireType::LengthDelimited, buf);
            encode_varint(scope_spans_len as u64, buf);
            message::encode(1, &self.scope, buf);
            for s in spans {
                message::encode(2, s, buf);
            }
        }
    }

    /// The encoded size of the current batch.
    pub fn encoded_len(&self) -> usize {
        let mut n = 0;
        for &g in &self.touched {
            let spans = &self.groups[g].spans[..self.groups[g].used];
            let spans_len: usize = spans.iter().map(|s| message::encoded_len(2, s)).sum();
            let ss = message::encoded_len(1, &self.scope) + spans_len;
            let rs = message::encoded_len(1, self.resource(g))
                + key_len(2)
                + encoded_len_varint(ss as u64)
                + ss;
            n += key_len(1) + encoded_len_varint(rs as u64) + rs;
        }
        n
    }

    /// The current batch as an owned request (copies; for tests and tools).
    pub fn to_request(&self) -> ExportTraceServiceRequest {
        let resource_spans = self
            .touched
            .iter()
            .map(|&g| ResourceSpans {
                resource: Some(self.resource(g).clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(self.scope.clone()),
                    spans: self.groups[g].spans[..self.groups[g].used].to_vec(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }
    }
}

#[cfg(test)]
mod tests;
