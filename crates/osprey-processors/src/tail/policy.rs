//! Tail sampling policy evaluators, each turning a held trace into a [`Decision`], with
//! upstream's semantics (string/numeric/boolean attribute policies look at resource and
//! span attributes; `invert_match` yields the deprecated "inverted" decisions at the top
//! level; `and`/`drop`/`not`/`composite` combine sub-policies).

pub use super::view::{fnv1a64, probability_threshold, TokenBucket, TraceView};
use crate::attrs;
use crate::ottl::{Conditions, ErrorMode, EventCtx, SpanCtx};
use osprey_model::otlp::common::v1::{any_value::Value, KeyValue};
use osprey_model::otlp::trace::v1::Span;
use regex::Regex;
use std::collections::HashSet;
use std::time::Instant;

/// A policy's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Sampled,
    NotSampled,
    InvertSampled,
    InvertNotSampled,
    Dropped,
}

#[derive(Debug, Clone)]
pub struct SubPolicy {
    pub(super) eval: Evaluator,
    pub(super) allocated: i64,
    pub(super) sampled_this_second: i64,
}

/// A policy evaluator.
#[derive(Debug, Clone)]
pub enum Evaluator {
    AlwaysSample,
    Latency {
        lower_ms: i64,
        upper_ms: i64,
    },
    Numeric {
        key: String,
        min: i64,
        max: i64,
        invert: bool,
    },
    Probabilistic {
        salt: String,
        threshold: u64,
    },
    StatusCode(Vec<i32>),
    StringAttr {
        key: String,
        exact: HashSet<String>,
        regexes: Option<Vec<Regex>>,
        invert: bool,
    },
    RateLimiting(TokenBucket),
    BytesLimiting(TokenBucket),
    SpanCount {
        min: i64,
        max: i64,
    },
    TraceState {
        key: String,
        values: HashSet<String>,
    },
    TraceFlags,
    Boolean {
        key: String,
        value: bool,
        invert: bool,
    },
    Ottl {
        span: Conditions,
        event: Conditions,
        mode: ErrorMode,
    },
    And(Vec<Evaluator>),
    Not(Box<Evaluator>),
    Drop(Vec<Evaluator>),
    Composite {
        max_total: i64,
        subs: Vec<SubPolicy>,
        second: Option<u64>,
    },
}

fn int_of(v: &osprey_model::otlp::common::v1::AnyValue) -> i64 {
    match v.value {
        Some(Value::IntValue(i)) => i,
        _ => 0,
    }
}

fn bool_of(v: &osprey_model::otlp::common::v1::AnyValue) -> bool {
    matches!(v.value, Some(Value::BoolValue(true)))
}

fn str_of(v: &osprey_model::otlp::common::v1::AnyValue) -> &str {
    attrs::as_str(v).unwrap_or("")
}

impl Evaluator {
    /// Evaluates the trace at time `now` (rate-based policies keep state).
    pub fn evaluate(
        &mut self,
        t: &TraceView,
        now: Instant,
        epoch: Instant,
    ) -> Result<Decision, String> {
        use Decision::*;
        Ok(match self {
            Evaluator::AlwaysSample => Sampled,
            Evaluator::Latency { lower_ms, upper_ms } => {
                let (mut min, mut max) = (u64::MAX, 0u64);
                for s in t.spans() {
                    min = min.min(s.start_time_unix_nano);
                    max = max.max(s.end_time_unix_nano);
                }
                let ms = if max >= min {
                    ((max - min) / 1_000_000) as i64
                } else {
                    -(((min - max) / 1_000_000) as i64)
                };
                let hit = if *upper_ms == 0 {
                    ms >= *lower_ms
                } else {
                    *lower_ms < ms && ms <= *upper_ms
                };
                if hit && t.span_count > 0 {
                    Sampled
                } else {
                    NotSampled
                }
            }
            Evaluator::Numeric {
                key,
                min,
                max,
                invert,
            } => {
                let in_range = |m: &[KeyValue]| {
                    attrs::get(m, key).is_some_and(|v| (*min..=*max).contains(&int_of(v)))
                };
                if *invert {
                    t.all_resources_and_spans(|r| !in_range(r), |s| !in_range(&s.attributes))
                } else {
                    t.any_resource_or_span(in_range, |s| in_range(&s.attributes))
                }
            }
            Evaluator::Probabilistic { salt, threshold } => {
                if fnv1a64(salt.as_bytes(), t.trace_id) <= *threshold {
                    Sampled
                } else {
                    NotSampled
                }
            }
            Evaluator::StatusCode(codes) => {
                t.any_span(|s| codes.contains(&s.status.as_ref().map_or(0, |st| st.code)))
            }
            Evaluator::StringAttr {
                key,
                exact,
                regexes,
                invert,
            } => {
                let (key, exact, regexes): (&str, &HashSet<String>, &Option<Vec<Regex>>) =
                    (key, exact, regexes);
                let matcher = |v: &str| match regexes {
                    Some(res) => res.iter().any(|r| r.is_match(v)),
                    None => exact.contains(v),
                };
                let res_hit =
                    |m: &[KeyValue]| attrs::get(m, key).is_some_and(|v| matcher(str_of(v)));
                let span_hit = |s: &Span| {
                    attrs::get(&s.attributes, key)
                        .is_some_and(|v| !str_of(v).is_empty() && matcher(str_of(v)))
                };
                if *invert {
                    t.all_resources_and_spans(|r| !res_hit(r), |s| !span_hit(s))
                } else {
                    t.any_resource_or_span(res_hit, span_hit)
                }
            }
            Evaluator::RateLimiting(bucket) => {
                if bucket.allow(now, t.span_count as f64) {
                    Sampled
                } else {
                    NotSampled
                }
            }
            Evaluator::BytesLimiting(bucket) => {
                let size: usize = t.batches.iter().map(prost::Message::encoded_len).sum();
                if bucket.allow(now, size as f64) {
                    Sampled
                } else {
                    NotSampled
                }
            }
            Evaluator::SpanCount { min, max } => {
                let n = t.span_count as i64;
                if n >= *min && (*max == 0 || n <= *max) {
                    Sampled
                } else {
                    NotSampled
                }
            }
            Evaluator::TraceState { key, values } => t.any_span(|s| {
                s.trace_state
                    .split(',')
                    .filter_map(|m| m.trim().split_once('='))
                    .find(|(k, _)| k == key)
                    .is_some_and(|(_, v)| values.contains(v))
            }),
            Evaluator::TraceFlags => t.any_span(|s| s.flags & 0x01 != 0),
            Evaluator::Boolean { key, value, invert } => {
                let hit = |m: &[KeyValue]| attrs::get(m, key).is_some_and(|v| bool_of(v) == *value);
                if *invert {
                    t.all_resources_and_spans(|r| !hit(r), |s| !hit(&s.attributes))
                } else {
                    t.any_resource_or_span(hit, |s| hit(&s.attributes))
                }
            }
            Evaluator::Ottl { span, event, mode } => {
                for rs in t.batches {
                    let resource = TraceView::resource(rs);
                    for ss in &rs.scope_spans {
                        for s in &ss.spans {
                            let ctx = SpanCtx {
                                resource,
                                scope: ss.scope.as_ref(),
                                span: s,
                            };
                            if !span.is_empty() && span.any(&ctx, *mode)? {
                                return Ok(Sampled);
                            }
                            for e in &s.events {
                                let ectx = EventCtx {
                                    span: SpanCtx {
                                        resource,
                                        scope: ss.scope.as_ref(),
                                        span: s,
                                    },
                                    event: e,
                                };
                                if !event.is_empty() && event.any(&ectx, *mode)? {
                                    return Ok(Sampled);
                                }
                            }
                        }
                    }
                }
                NotSampled
            }
            Evaluator::And(subs) => {
                for s in subs.iter_mut() {
                    let d = s.evaluate(t, now, epoch)?;
                    if matches!(d, NotSampled | InvertNotSampled) {
                        return Ok(NotSampled);
                    }
                }
                Sampled
            }
            Evaluator::Drop(subs) => {
                for s in subs.iter_mut() {
                    let d = s.evaluate(t, now, epoch)?;
                    if matches!(d, NotSampled | InvertNotSampled) {
                        return Ok(NotSampled);
                    }
                }
                Dropped
            }
            Evaluator::Not(inner) => match inner.evaluate(t, now, epoch)? {
                Sampled => NotSampled,
                NotSampled => Sampled,
                other => other,
            },
            Evaluator::Composite {
                max_total,
                subs,
                second,
            } => {
                let current = now.saturating_duration_since(epoch).as_secs();
                if *second != Some(current) {
                    *second = Some(current);
                    subs.iter_mut().for_each(|s| s.sampled_this_second = 0);
                }
                for sub in subs.iter_mut() {
                    let d = sub.eval.evaluate(t, now, epoch)?;
                    if matches!(d, Sampled | InvertSampled) {
                        let if_sampled = sub.sampled_this_second + t.span_count as i64;
                        if if_sampled <= sub.allocated && if_sampled <= *max_total {
                            sub.sampled_this_second = if_sampled;
                            return Ok(Sampled);
                        }
                        return Ok(NotSampled);
                    }
                }
                NotSampled
            }
        })
    }
}
