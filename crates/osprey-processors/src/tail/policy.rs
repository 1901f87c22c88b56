//! Tail sampling policy evaluators, each turning a held trace into a [`Decision`], with
//! upstream's semantics (string/numeric/boolean attribute policies look at resource and
//! span attributes; `invert_match` yields the deprecated "inverted" decisions at the top
//! level; `and`/`drop`/`not`/`composite` combine sub-policies).

use super::config::PolicyConfig;
use crate::attrs;
use crate::ottl::{Conditions, ContextKind, ErrorMode, EventCtx, SpanCtx};
use osprey_model::otlp::common::v1::{any_value::Value, KeyValue};
use osprey_model::otlp::trace::v1::{ResourceSpans, Span};
use osprey_pipeline::ConfigError;
use regex::Regex;
use std::collections::{HashMap, HashSet};
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

/// What a policy sees of a held trace.
pub struct TraceView<'a> {
    pub trace_id: &'a [u8],
    pub batches: &'a [ResourceSpans],
    pub span_count: usize,
}

impl TraceView<'_> {
    fn spans(&self) -> impl Iterator<Item = &Span> {
        self.batches.iter().flat_map(|rs| &rs.scope_spans).flat_map(|ss| &ss.spans)
    }

    fn any_span(&self, f: impl Fn(&Span) -> bool) -> Decision {
        if self.spans().any(f) {
            Decision::Sampled
        } else {
            Decision::NotSampled
        }
    }

    fn resource(rs: &ResourceSpans) -> &[KeyValue] {
        rs.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or_default()
    }

    /// Sampled when any resource or span satisfies its check.
    fn any_resource_or_span(&self, res: impl Fn(&[KeyValue]) -> bool, span: impl Fn(&Span) -> bool) -> Decision {
        for rs in self.batches {
            if res(Self::resource(rs)) || rs.scope_spans.iter().flat_map(|ss| &ss.spans).any(&span) {
                return Decision::Sampled;
            }
        }
        Decision::NotSampled
    }

    /// Inverted: `InvertNotSampled` when any resource or span fails its check.
    fn all_resources_and_spans(&self, res: impl Fn(&[KeyValue]) -> bool, span: impl Fn(&Span) -> bool) -> Decision {
        for rs in self.batches {
            if !res(Self::resource(rs)) || !rs.scope_spans.iter().flat_map(|ss| &ss.spans).all(&span) {
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
        TokenBucket { rate, burst, tokens: burst, last: None }
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

#[derive(Debug, Clone)]
pub struct SubPolicy {
    eval: Evaluator,
    allocated: i64,
    sampled_this_second: i64,
}

/// A policy evaluator.
#[derive(Debug, Clone)]
pub enum Evaluator {
    AlwaysSample,
    Latency { lower_ms: i64, upper_ms: i64 },
    Numeric { key: String, min: i64, max: i64, invert: bool },
    Probabilistic { salt: String, threshold: u64 },
    StatusCode(Vec<i32>),
    StringAttr { key: String, exact: HashSet<String>, regexes: Option<Vec<Regex>>, invert: bool },
    RateLimiting(TokenBucket),
    BytesLimiting(TokenBucket),
    SpanCount { min: i64, max: i64 },
    TraceState { key: String, values: HashSet<String> },
    TraceFlags,
    Boolean { key: String, value: bool, invert: bool },
    Ottl { span: Conditions, event: Conditions, mode: ErrorMode },
    And(Vec<Evaluator>),
    Not(Box<Evaluator>),
    Drop(Vec<Evaluator>),
    Composite { max_total: i64, subs: Vec<SubPolicy>, second: Option<u64> },
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
    let (mant, exp) = if exp == 0 { (bits & ((1 << 52) - 1), -1074) } else { ((bits & ((1 << 52) - 1)) | (1 << 52), exp - 1075) };
    // ratio = mant * 2^exp with exp < 0 here.
    let product = u128::from(u64::MAX) * u128::from(mant);
    let shift = (-exp) as u32;
    if shift >= 128 {
        0
    } else {
        (product >> shift) as u64
    }
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
    pub fn evaluate(&mut self, t: &TraceView, now: Instant, epoch: Instant) -> Result<Decision, String> {
        use Decision::*;
        Ok(match self {
            Evaluator::AlwaysSample => Sampled,
            Evaluator::Latency { lower_ms, upper_ms } => {
                let (mut min, mut max) = (u64::MAX, 0u64);
                for s in t.spans() {
                    min = min.min(s.start_time_unix_nano);
                    max = max.max(s.end_time_unix_nano);
                }
                let ms = if max >= min { ((max - min) / 1_000_000) as i64 } else { -(((min - max) / 1_000_000) as i64) };
                let hit = if *upper_ms == 0 { ms >= *lower_ms } else { *lower_ms < ms && ms <= *upper_ms };
                if hit && t.span_count > 0 {
                    Sampled
                } else {
                    NotSampled
                }
            }
            Evaluator::Numeric { key, min, max, invert } => {
                let in_range = |m: &[KeyValue]| attrs::get(m, key).is_some_and(|v| (*min..=*max).contains(&int_of(v)));
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
            Evaluator::StatusCode(codes) => t.any_span(|s| codes.contains(&s.status.as_ref().map_or(0, |st| st.code))),
            Evaluator::StringAttr { key, exact, regexes, invert } => {
                let (key, exact, regexes): (&str, &HashSet<String>, &Option<Vec<Regex>>) = (key, exact, regexes);
                let matcher = |v: &str| match regexes {
                    Some(res) => res.iter().any(|r| r.is_match(v)),
                    None => exact.contains(v),
                };
                let res_hit = |m: &[KeyValue]| attrs::get(m, key).is_some_and(|v| matcher(str_of(v)));
                let span_hit = |s: &Span| attrs::get(&s.attributes, key).is_some_and(|v| !str_of(v).is_empty() && matcher(str_of(v)));
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
                if (*max == 0 && n >= *min) || (n >= *min && n <= *max) {
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
                            let ctx = SpanCtx { resource, scope: ss.scope.as_ref(), span: s };
                            if !span.is_empty() && span.any(&ctx, *mode)? {
                                return Ok(Sampled);
                            }
                            for e in &s.events {
                                let ectx = EventCtx { span: SpanCtx { resource, scope: ss.scope.as_ref(), span: s }, event: e };
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
            Evaluator::Composite { max_total, subs, second } => {
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

/// Where a sub-policy may appear.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    Composite,
    Leaf,
}

fn build(p: &PolicyConfig, level: Level, path: &str) -> Result<Evaluator, ConfigError> {
    let err = |field: &str, msg: String| ConfigError::new(format!("{path}.{field}"), msg);
    Ok(match p.kind.as_str() {
        "always_sample" => Evaluator::AlwaysSample,
        "latency" => Evaluator::Latency { lower_ms: p.latency.threshold_ms, upper_ms: p.latency.upper_threshold_ms },
        "numeric_attribute" => {
            let c = &p.numeric_attribute;
            if c.min_value == 0 && c.max_value == 0 {
                return Err(err("numeric_attribute", "at least one of min_value or max_value must be set".into()));
            }
            Evaluator::Numeric {
                key: c.key.clone(),
                min: if c.min_value == 0 { i64::MIN } else { c.min_value },
                max: if c.max_value == 0 { i64::MAX } else { c.max_value },
                invert: c.invert_match,
            }
        }
        "probabilistic" => {
            let c = &p.probabilistic;
            let salt = if c.hash_salt.is_empty() { "default-hash-seed".to_string() } else { c.hash_salt.clone() };
            Evaluator::Probabilistic { salt, threshold: probability_threshold(c.sampling_percentage / 100.0) }
        }
        "status_code" => {
            if p.status_code.status_codes.is_empty() {
                return Err(err("status_code.status_codes", "expected at least one status code to filter on".into()));
            }
            let codes = p
                .status_code
                .status_codes
                .iter()
                .enumerate()
                .map(|(i, c)| match c.as_str() {
                    "UNSET" => Ok(0),
                    "OK" => Ok(1),
                    "ERROR" => Ok(2),
                    other => Err(err(&format!("status_code.status_codes[{i}]"), format!("unknown status code {other:?}, supported: OK, ERROR, UNSET"))),
                })
                .collect::<Result<_, _>>()?;
            Evaluator::StatusCode(codes)
        }
        "string_attribute" => {
            let c = &p.string_attribute;
            let regexes = if c.enabled_regex_matching {
                Some(
                    c.values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| Regex::new(v).map_err(|e| err(&format!("string_attribute.values[{i}]"), format!("invalid regex: {e}"))))
                        .collect::<Result<_, _>>()?,
                )
            } else {
                None
            };
            let exact = c.values.iter().filter(|v| !v.is_empty()).cloned().collect();
            Evaluator::StringAttr { key: c.key.clone(), exact, regexes, invert: c.invert_match }
        }
        "rate_limiting" => {
            let sps = p.rate_limiting.spans_per_second as f64;
            Evaluator::RateLimiting(TokenBucket::new(sps, sps * 2.0))
        }
        "bytes_limiting" => {
            let c = &p.bytes_limiting;
            if c.bytes_per_second <= 0 {
                return Err(err("bytes_limiting.bytes_per_second", "must be greater than zero".into()));
            }
            let burst = if c.burst_capacity > 0 { c.burst_capacity } else { c.bytes_per_second * 2 };
            Evaluator::BytesLimiting(TokenBucket::new(c.bytes_per_second as f64, burst as f64))
        }
        "span_count" => Evaluator::SpanCount { min: i64::from(p.span_count.min_spans), max: i64::from(p.span_count.max_spans) },
        "trace_state" => {
            let c = &p.trace_state;
            let values = c.values.iter().filter(|v| !v.is_empty() && c.key.len() + v.len() < 256).cloned().collect();
            Evaluator::TraceState { key: c.key.clone(), values }
        }
        "trace_flags" => Evaluator::TraceFlags,
        "boolean_attribute" => {
            let c = &p.boolean_attribute;
            Evaluator::Boolean { key: c.key.clone(), value: c.value, invert: c.invert_match }
        }
        "ottl_condition" => {
            let c = &p.ottl_condition;
            if c.span.is_empty() && c.spanevent.is_empty() {
                return Err(err("ottl_condition", "at least one span or spanevent condition is required".into()));
            }
            Evaluator::Ottl {
                span: Conditions::compile(&c.span, ContextKind::Span, &format!("{path}.ottl_condition.span"))?,
                event: Conditions::compile(&c.spanevent, ContextKind::SpanEvent, &format!("{path}.ottl_condition.spanevent"))?,
                mode: c.error_mode.unwrap_or(ErrorMode::Propagate),
            }
        }
        "and" if level != Level::Leaf => {
            let subs = p.and.as_ref().map(|a| a.and_sub_policy.as_slice()).unwrap_or_default();
            Evaluator::And(build_list(subs, &format!("{path}.and.and_sub_policy"))?)
        }
        "not" if level == Level::Top => {
            let sub = p.not.as_ref().ok_or_else(|| err("not", "missing not_sub_policy".into()))?;
            Evaluator::Not(Box::new(build(&sub.not_sub_policy, Level::Leaf, &format!("{path}.not.not_sub_policy"))?))
        }
        "drop" if level == Level::Top => {
            let subs = p.drop.as_ref().map(|d| d.drop_sub_policy.as_slice()).unwrap_or_default();
            Evaluator::Drop(build_list(subs, &format!("{path}.drop.drop_sub_policy"))?)
        }
        "composite" if level == Level::Top => {
            let c = p.composite.clone().unwrap_or_default();
            let n = c.composite_sub_policy.len().max(1) as f64;
            let max_total = c.max_total_spans_per_second as f64;
            let alloc: HashMap<&str, f64> = c
                .rate_allocation
                .iter()
                .map(|r| (r.policy.as_str(), if r.percent > 0 { r.percent as f64 / 100.0 * max_total } else { max_total / n }))
                .collect();
            let mut subs = Vec::new();
            for (i, sp) in c.composite_sub_policy.iter().enumerate() {
                let at = format!("{path}.composite.composite_sub_policy[{i}]");
                subs.push(SubPolicy {
                    eval: build(sp, Level::Composite, &at)?,
                    allocated: alloc.get(sp.name.as_str()).copied().unwrap_or(0.0) as i64,
                    sampled_this_second: 0,
                });
            }
            Evaluator::Composite { max_total: c.max_total_spans_per_second, subs, second: None }
        }
        "" => return Err(err("type", "missing policy type".into())),
        other => return Err(err("type", format!("unknown sampling policy type {other:?}"))),
    })
}

fn build_list(list: &[PolicyConfig], path: &str) -> Result<Vec<Evaluator>, ConfigError> {
    list.iter().enumerate().map(|(i, p)| build(p, Level::Leaf, &format!("{path}[{i}]"))).collect()
}

/// A top-level policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub eval: Evaluator,
    pub is_drop: bool,
}

/// Builds the top-level policies; drop policies are placed first, as upstream evaluates
/// them first.
pub fn build_policies(list: &[PolicyConfig]) -> Result<Vec<Policy>, ConfigError> {
    let mut drops = Vec::new();
    let mut others = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let eval = build(p, Level::Top, &format!("policies[{i}]"))?;
        let policy = Policy { name: p.name.clone(), eval, is_drop: p.kind == "drop" };
        if policy.is_drop {
            drops.push(policy);
        } else {
            others.push(policy);
        }
    }
    drops.extend(others);
    Ok(drops)
}
