//! Builds policy evaluators from their config, checking which types may nest where.

use super::config::PolicyConfig;
use super::policy::{Evaluator, SubPolicy};
use super::view::{probability_threshold, TokenBucket};
use crate::ottl::{Conditions, ContextKind, ErrorMode};
use osprey_pipeline::ConfigError;
use regex::Regex;
use std::collections::HashMap;

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
        "latency" => Evaluator::Latency {
            lower_ms: p.latency.threshold_ms,
            upper_ms: p.latency.upper_threshold_ms,
        },
        "numeric_attribute" => {
            let c = &p.numeric_attribute;
            if c.min_value == 0 && c.max_value == 0 {
                return Err(err(
                    "numeric_attribute",
                    "at least one of min_value or max_value must be set".into(),
                ));
            }
            Evaluator::Numeric {
                key: c.key.clone(),
                min: if c.min_value == 0 {
                    i64::MIN
                } else {
                    c.min_value
                },
                max: if c.max_value == 0 {
                    i64::MAX
                } else {
                    c.max_value
                },
                invert: c.invert_match,
            }
        }
        "probabilistic" => {
            let c = &p.probabilistic;
            let salt = if c.hash_salt.is_empty() {
                "default-hash-seed".to_string()
            } else {
                c.hash_salt.clone()
            };
            Evaluator::Probabilistic {
                salt,
                threshold: probability_threshold(c.sampling_percentage / 100.0),
            }
        }
        "status_code" => {
            if p.status_code.status_codes.is_empty() {
                return Err(err(
                    "status_code.status_codes",
                    "expected at least one status code to filter on".into(),
                ));
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
                    other => Err(err(
                        &format!("status_code.status_codes[{i}]"),
                        format!("unknown status code {other:?}, supported: OK, ERROR, UNSET"),
                    )),
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
                        .map(|(i, v)| {
                            Regex::new(v).map_err(|e| {
                                err(
                                    &format!("string_attribute.values[{i}]"),
                                    format!("invalid regex: {e}"),
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?,
                )
            } else {
                None
            };
            let exact = c.values.iter().filter(|v| !v.is_empty()).cloned().collect();
            Evaluator::StringAttr {
                key: c.key.clone(),
                exact,
                regexes,
                invert: c.invert_match,
            }
        }
        "rate_limiting" => {
            let sps = p.rate_limiting.spans_per_second as f64;
            Evaluator::RateLimiting(TokenBucket::new(sps, sps * 2.0))
        }
        "bytes_limiting" => {
            let c = &p.bytes_limiting;
            if c.bytes_per_second <= 0 {
                return Err(err(
                    "bytes_limiting.bytes_per_second",
                    "must be greater than zero".into(),
                ));
            }
            let burst = if c.burst_capacity > 0 {
                c.burst_capacity
            } else {
                c.bytes_per_second * 2
            };
            Evaluator::BytesLimiting(TokenBucket::new(c.bytes_per_second as f64, burst as f64))
        }
        "span_count" => Evaluator::SpanCount {
            min: i64::from(p.span_count.min_spans),
            max: i64::from(p.span_count.max_spans),
        },
        "trace_state" => {
            let c = &p.trace_state;
            let values = c
                .values
                .iter()
                .filter(|v| !v.is_empty() && c.key.len() + v.len() < 256)
                .cloned()
                .collect();
            Evaluator::TraceState {
                key: c.key.clone(),
                values,
            }
        }
        "trace_flags" => Evaluator::TraceFlags,
        "boolean_attribute" => {
            let c = &p.boolean_attribute;
            Evaluator::Boolean {
                key: c.key.clone(),
                value: c.value,
                invert: c.invert_match,
            }
        }
        "ottl_condition" => {
            let c = &p.ottl_condition;
            if c.span.is_empty() && c.spanevent.is_empty() {
                return Err(err(
                    "ottl_condition",
                    "at least one span or spanevent condition is required".into(),
                ));
            }
            Evaluator::Ottl {
                span: Conditions::compile(
                    &c.span,
                    ContextKind::Span,
                    &format!("{path}.ottl_condition.span"),
                )?,
                event: Conditions::compile(
                    &c.spanevent,
                    ContextKind::SpanEvent,
                    &format!("{path}.ottl_condition.spanevent"),
                )?,
                mode: c.error_mode.unwrap_or(ErrorMode::Propagate),
            }
        }
        "and" if level != Level::Leaf => {
            let subs = p
                .and
                .as_ref()
                .map(|a| a.and_sub_policy.as_slice())
                .unwrap_or_default();
            Evaluator::And(build_list(subs, &format!("{path}.and.and_sub_policy"))?)
        }
        "not" if level == Level::Top => {
            let sub = p
                .not
                .as_ref()
                .ok_or_else(|| err("not", "missing not_sub_policy".into()))?;
            Evaluator::Not(Box::new(build(
                &sub.not_sub_policy,
                Level::Leaf,
                &format!("{path}.not.not_sub_policy"),
            )?))
        }
        "drop" if level == Level::Top => {
            let subs = p
                .drop
                .as_ref()
                .map(|d| d.drop_sub_policy.as_slice())
                .unwrap_or_default();
            Evaluator::Drop(build_list(subs, &format!("{path}.drop.drop_sub_policy"))?)
        }
        "composite" if level == Level::Top => {
            let c = p.composite.clone().unwrap_or_default();
            let n = c.composite_sub_policy.len().max(1) as f64;
            let max_total = c.max_total_spans_per_second as f64;
            let alloc: HashMap<&str, f64> = c
                .rate_allocation
                .iter()
                .map(|r| {
                    (
                        r.policy.as_str(),
                        if r.percent > 0 {
                            r.percent as f64 / 100.0 * max_total
                        } else {
                            max_total / n
                        },
                    )
                })
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
            Evaluator::Composite {
                max_total: c.max_total_spans_per_second,
                subs,
                second: None,
            }
        }
        "" => return Err(err("type", "missing policy type".into())),
        other => {
            return Err(err(
                "type",
                format!("unknown sampling policy type {other:?}"),
            ))
        }
    })
}

fn build_list(list: &[PolicyConfig], path: &str) -> Result<Vec<Evaluator>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, p)| build(p, Level::Leaf, &format!("{path}[{i}]")))
        .collect()
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
        let policy = Policy {
            name: p.name.clone(),
            eval,
            is_drop: p.kind == "drop",
        };
        if policy.is_drop {
            drops.push(policy);
        } else {
            others.push(policy);
        }
    }
    drops.extend(others);
    Ok(drops)
}
