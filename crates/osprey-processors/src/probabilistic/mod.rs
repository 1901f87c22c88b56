//! The `probabilistic_sampler` processor for traces: keeps a percentage of spans, decided
//! per span from its trace id, so every collector keeps or drops a whole trace alike.
//!
//! Modes, as upstream:
//! - `hash_seed` (the default): FNV-1a-32 over the seed (4 bytes, little-endian) and the
//!   trace id; the low 14 bits are the bucket, kept when below
//!   `uint32(float32(pct) * 163.84)`. Kept spans get `ot=rv:..;th:..` in their tracestate.
//! - `equalizing` / `proportional`: OTEP 235 consistent sampling from the trace id's low 56
//!   bits (or an `rv` in the tracestate), raising the `th` in the tracestate.
//!
//! A `sampling.priority` span attribute of 0 forces a drop, above 0 a keep. Spans whose
//! randomness cannot be determined (no trace id, bad tracestate) are dropped when
//! `fail_closed` (the default) and kept otherwise.

pub mod otep235;

use osprey_model::otlp::common::v1::any_value::Value;
use osprey_model::otlp::trace::v1::Span;
use osprey_model::TraceRequest;
use osprey_pipeline::{Batch, ConfigError, ConsumeError, Consumer, Payload, SharedConsumer};
use otep235::{
    Randomness, Threshold, TraceState, ALL_PROBABILITIES, ALWAYS_SAMPLE, MIN_PROBABILITY,
    NEVER_SAMPLE,
};

/// `processors.probabilistic_sampler` config.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbabilisticSamplerConfig {
    /// Percentage of traces kept; >= 100 keeps all, 0 none.
    pub sampling_percentage: f32,
    pub hash_seed: u32,
    /// `hash_seed`, `equalizing` or `proportional`; empty means `hash_seed`.
    pub mode: String,
    pub fail_closed: bool,
    /// Hex digits of `th` written by equalizing/proportional (1..=14).
    pub sampling_precision: u32,
    /// Logs only (accepted): `traceID` or `record`.
    pub attribute_source: String,
    /// Logs only (accepted).
    pub from_attribute: String,
    /// Logs only (accepted).
    pub sampling_priority: String,
}

impl Default for ProbabilisticSamplerConfig {
    fn default() -> Self {
        ProbabilisticSamplerConfig {
            sampling_percentage: 0.0,
            hash_seed: 0,
            mode: String::new(),
            fail_closed: true,
            sampling_precision: 4,
            attribute_source: "traceID".into(),
            from_attribute: String::new(),
            sampling_priority: String::new(),
        }
    }
}

impl ProbabilisticSamplerConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let pct = f64::from(self.sampling_percentage);
        if !pct.is_finite() {
            return Err(ConfigError::new(
                "sampling_percentage",
                format!("sampling rate is invalid: {pct}%"),
            ));
        }
        let ratio = pct / 100.0;
        if ratio < 0.0 {
            return Err(ConfigError::new(
                "sampling_percentage",
                format!("sampling rate is negative: {pct}%"),
            ));
        }
        if ratio > 0.0 && ratio < MIN_PROBABILITY {
            return Err(ConfigError::new(
                "sampling_percentage",
                format!("sampling rate is too small: {pct}%"),
            ));
        }
        if !matches!(
            self.mode.as_str(),
            "" | "hash_seed" | "equalizing" | "proportional"
        ) {
            return Err(ConfigError::new(
                "mode",
                format!("unsupported sampler mode {:?}", self.mode),
            ));
        }
        if !matches!(self.attribute_source.as_str(), "" | "traceID" | "record") {
            return Err(ConfigError::new(
                "attribute_source",
                format!(
                    "invalid attribute source: {}. Expected: traceID or record",
                    self.attribute_source
                ),
            ));
        }
        if self.sampling_precision == 0 {
            return Err(ConfigError::new(
                "sampling_precision",
                "invalid sampling precision: 0",
            ));
        }
        if self.sampling_precision > 14 {
            return Err(ConfigError::new(
                "sampling_precision",
                format!(
                    "sampling precision is too great, should be <= 14: {}",
                    self.sampling_precision
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Sampler {
    Never,
    Hash { seed: u32, threshold: Threshold },
    Equalizing(Threshold),
    Proportional { ratio: f64, precision: usize },
}

/// Continues an FNV-1a 32-bit hash (start from [`FNV32_OFFSET`]).
pub fn fnv1a32_update(mut h: u32, bytes: &[u8]) -> u32 {
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

pub const FNV32_OFFSET: u32 = 0x811c_9dc5;

/// FNV-1a 32-bit over `seed` (little-endian) then `bytes`.
pub fn fnv1a32(seed: u32, bytes: &[u8]) -> u32 {
    fnv1a32_update(fnv1a32_update(FNV32_OFFSET, &seed.to_le_bytes()), bytes)
}

/// The 56-bit randomness `hash_seed` mode derives from an id (14 bits decide).
pub fn hash_randomness(bytes: &[u8], seed: u32) -> Randomness {
    const BUCKETS: u64 = 0x4000;
    let hashed32 = fnv1a32(seed, bytes);
    let hashed = u64::from(hashed32) & (BUCKETS - 1);
    let rprime14 = BUCKETS - 1 - hashed;
    let unused18 = u64::from(hashed32 >> 14);
    let mixed28 = unused18 ^ (unused18 << 10);
    Randomness((rprime14 << 42) | (mixed28 << 14) | hashed)
}

enum Priority {
    Defer,
    Keep,
    Drop,
}

fn span_priority(span: &Span) -> Priority {
    let Some(v) = crate::attrs::get(&span.attributes, "sampling.priority") else {
        return Priority::Defer;
    };
    let n = match &v.value {
        Some(Value::IntValue(i)) => *i as f64,
        Some(Value::DoubleValue(d)) => *d,
        Some(Value::StringValue(s)) => match s.parse::<f64>() {
            Ok(n) => n,
            Err(_) => return Priority::Defer,
        },
        _ => return Priority::Defer,
    };
    if n == 0.0 {
        Priority::Drop
    } else if n > 0.0 {
        Priority::Keep
    } else {
        Priority::Defer
    }
}

/// The sampling decision for traces.
#[derive(Debug, Clone)]
pub struct TraceSampler {
    sampler: Sampler,
    fail_closed: bool,
}

impl TraceSampler {
    pub fn new(c: &ProbabilisticSamplerConfig) -> Result<Self, ConfigError> {
        c.validate()?;
        let pct = c.sampling_percentage.min(100.0);
        let sampler = if pct == 0.0 {
            Sampler::Never
        } else {
            let ratio = (f64::from(pct) / 100.0).max(MIN_PROBABILITY);
            match c.mode.as_str() {
                "equalizing" => Sampler::Equalizing(
                    Threshold::from_probability(ratio, c.sampling_precision as usize)
                        .unwrap_or(ALWAYS_SAMPLE),
                ),
                "proportional" => Sampler::Proportional {
                    ratio,
                    precision: c.sampling_precision as usize,
                },
                _ => {
                    // Kept as upstream computes it: float32 multiply, truncated.
                    let scaled = (pct * 163.84_f32) as u32;
                    if scaled == 0 {
                        Sampler::Never
                    } else {
                        let reject = 0x4000u64 - u64::from(scaled.min(0x4000));
                        Sampler::Hash {
                            seed: c.hash_seed,
                            threshold: Threshold(reject << 42),
                        }
                    }
                }
            }
        };
        Ok(TraceSampler {
            sampler,
            fail_closed: c.fail_closed,
        })
    }

    /// Decides for one span; a kept span's tracestate is updated as upstream does.
    pub fn keep_span(&self, span: &mut Span) -> bool {
        let empty_id = span.trace_id.iter().all(|b| *b == 0);
        let parsed = TraceState::parse(&span.trace_state);
        // (randomness, carrier, error)
        let (rnd, mut carrier, mut err): (Option<Randomness>, Option<TraceState>, Option<String>) =
            match self.sampler {
                Sampler::Never => match parsed {
                    Ok(ts) => (Some(ALL_PROBABILITIES), Some(ts), None),
                    Err(e) => (Some(ALL_PROBABILITIES), None, Some(e)),
                },
                Sampler::Hash { seed, .. } => {
                    let rnd = (!empty_id).then(|| hash_randomness(&span.trace_id, seed));
                    match parsed {
                    Err(e) => (rnd, None, Some(e)),
                    Ok(ts) if ts.rv.is_some() => (rnd, None, Some("item has sampling randomness, equalizing or proportional mode recommended".into())),
                    Ok(ts) if ts.th.is_some() => (rnd, None, Some("item has sampling threshold, equalizing or proportional mode recommended".into())),
                    Ok(mut ts) => {
                        ts.rv = Some(rnd.unwrap_or(ALL_PROBABILITIES));
                        (rnd, Some(ts), None)
                    }
                }
                }
                Sampler::Equalizing(_) | Sampler::Proportional { .. } => match parsed {
                    Err(e) => (None, None, Some(e)),
                    Ok(ts) => {
                        let rnd = ts.rv.or_else(|| {
                            (!empty_id).then(|| Randomness::from_trace_id(&span.trace_id))
                        });
                        (rnd, Some(ts), None)
                    }
                },
            };
        if err.is_none() {
            match rnd {
                None => err = Some("missing randomness".into()),
                Some(r) => {
                    if let Some(ts) = carrier.as_mut() {
                        if ts.th.is_some_and(|th| !th.should_sample(r)) {
                            ts.th = None;
                            err = Some("inconsistent arriving threshold: item should not have been sampled".into());
                        }
                    }
                }
            }
        }
        let mut threshold = match &err {
            Some(e) => {
                tracing::debug!(error = %e, "probabilistic sampler");
                if self.fail_closed {
                    NEVER_SAMPLE
                } else {
                    ALWAYS_SAMPLE
                }
            }
            None => self.decide(carrier.as_ref()),
        };
        match span_priority(span) {
            Priority::Drop => threshold = NEVER_SAMPLE,
            Priority::Keep => threshold = ALWAYS_SAMPLE,
            Priority::Defer => {}
        }
        let sampled = threshold.should_sample(rnd.unwrap_or(ALL_PROBABILITIES));
        if sampled {
            if let Some(mut ts) = carrier {
                if let Err(e) = ts.update_threshold(threshold) {
                    tracing::debug!(error = %e, "probabilistic sampler");
                }
                span.trace_state = ts.serialize();
            }
        }
        sampled
    }

    fn decide(&self, carrier: Option<&TraceState>) -> Threshold {
        let incoming = carrier.and_then(|ts| ts.th);
        match self.sampler {
            Sampler::Never => NEVER_SAMPLE,
            Sampler::Hash { threshold, .. } => threshold,
            Sampler::Equalizing(t) => match incoming {
                Some(tv) if t < tv => tv,
                _ => t,
            },
            Sampler::Proportional { ratio, precision } => {
                let p = incoming.map_or(1.0, Threshold::probability);
                Threshold::from_probability(p * ratio, precision).unwrap_or(NEVER_SAMPLE)
            }
        }
    }

    /// Removes the spans not sampled (and emptied scopes and resources); returns how many
    /// spans were dropped.
    pub fn sample_traces(&self, req: &mut TraceRequest) -> usize {
        let before = osprey_model::span_count(req);
        req.resource_spans.retain_mut(|rs| {
            rs.scope_spans.retain_mut(|ss| {
                ss.spans.retain_mut(|s| self.keep_span(s));
                !ss.spans.is_empty()
            });
            !rs.scope_spans.is_empty()
        });
        before - osprey_model::span_count(req)
    }
}

/// The `probabilistic_sampler` processor (traces).
pub struct ProbabilisticSamplerProcessor {
    sampler: TraceSampler,
    next: SharedConsumer,
}

impl ProbabilisticSamplerProcessor {
    pub fn new(
        config: ProbabilisticSamplerConfig,
        next: SharedConsumer,
    ) -> Result<Self, ConfigError> {
        Ok(ProbabilisticSamplerProcessor {
            sampler: TraceSampler::new(&config)?,
            next,
        })
    }
}

#[async_trait::async_trait]
impl Consumer for ProbabilisticSamplerProcessor {
    fn has_room(&self) -> bool {
        self.next.has_room()
    }

    async fn consume(&self, mut batch: Batch) -> Result<(), ConsumeError> {
        batch.materialize()?;
        let Payload::Traces(req) = &mut batch.payload else {
            return Err(ConsumeError::Permanent(
                "probabilistic_sampler: only traces are supported".into(),
            ));
        };
        self.sampler.sample_traces(req);
        // Kept spans carry a rewritten tracestate.
        batch.encoded = None;
        if batch.payload.is_empty() {
            return Ok(());
        }
        self.next.consume(batch).await
    }
}

#[cfg(test)]
mod tests;
