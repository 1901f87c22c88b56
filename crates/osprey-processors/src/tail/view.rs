//! What policies see of a held trace, and the arithmetic helpers they share: a token
//! bucket (`golang.org/x/time/rate` semantics), FNV-1a 64 and the probabilistic policy's
//! threshold.

use super::policy::Decision;
use osprey_model::otlp::common::v1::KeyValue;
use osprey_model::otlp::trace::v1::{ResourceSpans, Span};
use std::time::Instant;

/// What a policy sees of a held trace.
pub struct TraceView<'a> {
    pub trace_id: &'a [u8],
    pub batches: &'a [ResourceSpans],
    pub span_count: usize,
}

impl TraceView<'_> {
    pub(super) fn spans(&self) -> impl Iterator<Item = &Span> {
        self.batches
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
    }

    pub(super) fn any_span(&self, f: impl Fn(&Span) -> bool) -> Decision {
        if self.spans().any(f) {
            Decision::Sampled
        } else {
            Decision::NotSampled
        }
    }

    pub(super) fn resource(rs: &ResourceSpans) -> &[KeyValue] {
        rs.resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default()
    }

    /// Sampled when any resource or span satisfies its check.
    pub(super) fn any_resource_or_span(
        &self,
        res: impl Fn(&[KeyValue]) -> bool,
        span: impl Fn(&Span) -> bool,
    ) -> Decision {
        for rs in self.batches {
            if res(Self::resource(rs)) || rs.scope_spans.iter().flat_map(|ss| &ss.spans).any(&span)
            {
                return Decision::Sampled;
            }
        }
        Decision::NotSampled
    }

    /// Inverted: `InvertNotSampled` when any resource or span fails its check.
    pub(super) fn all_resources_and_spans(
        &self,
        res: impl Fn(&[KeyValue]) -> bool,
        span: impl Fn(&Span) -> bool,
    ) -> Decision {
        for rs in self.batches {
            if !res(Self::resource(rs))
                || !rs.scope_spans.iter().flat_map(|ss| &ss.spans).all(&span)
            {
                return Decision::InvertNotSampled;
            }
        }
        Decision::InvertSampled
    }
}

/// A token bucket with `golang.org/x/time/rate`'s `AllowN` behaviour.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: None,
        }
    }

    pub fn allow(&mut self, now: Instant, n: f64) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        }
        self.last = Some(now);
        if n > self.burst || self.tokens < n {
            return false;
        }
        self.tokens -= n;
        true
    }
}

/// FNV-1a 64-bit over `salt` then `bytes`.
pub fn fnv1a64(salt: &[u8], bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.iter().chain(bytes) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// floor(u64::MAX * ratio), exactly (ratio in [0, 1]; saturating above).
pub fn probability_threshold(ratio: f64) -> u64 {
    if ratio.is_nan() || ratio <= 0.0 {
        return 0;
    }
    if ratio >= 1.0 {
        return u64::MAX;
    }
    let bits = ratio.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let (mant, exp) = if exp == 0 {
        (bits & ((1 << 52) - 1), -1074)
    } else {
        ((bits & ((1 << 52) - 1)) | (1 << 52), exp - 1075)
    };
    // ratio = mant * 2^exp with exp < 0 here.
    let product = u128::from(u64::MAX) * u128::from(mant);
    let shift = (-exp) as u32;
    if shift >= 128 {
        0
    } else {
        (product >> shift) as u64
    }
}
