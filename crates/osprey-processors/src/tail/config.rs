//! `processors.tail_sampling` config, with upstream's keys and defaults.

use crate::ottl::ErrorMode;
use osprey_pipeline::{go_duration, ConfigError};
use std::collections::HashSet;
use std::time::Duration;

/// The whole config.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailSamplingConfig {
    /// Wait after a trace's first span before deciding (default 30s).
    #[serde(with = "go_duration")]
    pub decision_wait: Duration,
    /// Traces kept in memory (default 50000); the oldest is evicted beyond that.
    pub num_traces: u64,
    /// A sizing hint (accepted).
    pub expected_new_traces_per_sec: u64,
    pub decision_cache: DecisionCacheConfig,
    /// Stop evaluating policies at the first that samples.
    pub sample_on_first_match: bool,
    /// On shutdown, drop undecided traces instead of deciding on partial data.
    pub drop_pending_traces_on_shutdown: bool,
    /// When `num_traces` undecided traces are held, refuse new ones (the client retries)
    /// instead of evicting the oldest.
    pub block_on_overflow: bool,
    pub policies: Vec<PolicyConfig>,
}

impl Default for TailSamplingConfig {
    fn default() -> Self {
        TailSamplingConfig {
            decision_wait: Duration::from_secs(30),
            num_traces: 50_000,
            expected_new_traces_per_sec: 0,
            decision_cache: DecisionCacheConfig::default(),
            sample_on_first_match: false,
            drop_pending_traces_on_shutdown: false,
            block_on_overflow: false,
            policies: Vec::new(),
        }
    }
}

/// LRU caches remembering decisions after a trace left memory (0 = off).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionCacheConfig {
    pub sampled_cache_size: usize,
    pub non_sampled_cache_size: usize,
}

/// One policy (also used for sub-policies, whose allowed types are narrower).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub latency: LatencyConfig,
    pub numeric_attribute: NumericAttributeConfig,
    pub probabilistic: ProbabilisticConfig,
    pub status_code: StatusCodeConfig,
    pub string_attribute: StringAttributeConfig,
    pub rate_limiting: RateLimitingConfig,
    pub bytes_limiting: BytesLimitingConfig,
    pub span_count: SpanCountConfig,
    pub trace_state: TraceStateConfig,
    pub boolean_attribute: BooleanAttributeConfig,
    pub ottl_condition: OttlConditionConfig,
    pub and: Option<AndConfig>,
    pub not: Option<NotConfig>,
    pub drop: Option<DropConfig>,
    pub composite: Option<CompositeConfig>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyConfig {
    pub threshold_ms: i64,
    pub upper_threshold_ms: i64,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NumericAttributeConfig {
    pub key: String,
    /// 0 means unset (no lower bound), as upstream.
    pub min_value: i64,
    /// 0 means unset (no upper bound), as upstream.
    pub max_value: i64,
    pub invert_match: bool,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbabilisticConfig {
    pub hash_salt: String,
    pub sampling_percentage: f64,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusCodeConfig {
    pub status_codes: Vec<String>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StringAttributeConfig {
    pub key: String,
    pub values: Vec<String>,
    pub enabled_regex_matching: bool,
    /// Accepted; regex results are not cached here.
    pub cache_max_size: usize,
    pub invert_match: bool,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitingConfig {
    pub spans_per_second: i64,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BytesLimitingConfig {
    pub bytes_per_second: i64,
    /// Default: twice `bytes_per_second`.
    pub burst_capacity: i64,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpanCountConfig {
    pub min_spans: i32,
    /// 0 means no upper bound.
    pub max_spans: i32,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceStateConfig {
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BooleanAttributeConfig {
    pub key: String,
    pub value: bool,
    pub invert_match: bool,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OttlConditionConfig {
    /// Default `propagate`, as upstream.
    pub error_mode: Option<ErrorMode>,
    pub span: Vec<String>,
    pub spanevent: Vec<String>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AndConfig {
    pub and_sub_policy: Vec<PolicyConfig>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotConfig {
    pub not_sub_policy: Box<PolicyConfig>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DropConfig {
    pub drop_sub_policy: Vec<PolicyConfig>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompositeConfig {
    pub max_total_spans_per_second: i64,
    /// Accepted; sub-policies are evaluated in `composite_sub_policy` order, as upstream.
    pub policy_order: Vec<String>,
    pub composite_sub_policy: Vec<PolicyConfig>,
    pub rate_allocation: Vec<RateAllocationConfig>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateAllocationConfig {
    pub policy: String,
    pub percent: i64,
}

impl TailSamplingConfig {
    /// Checks the config (building every policy evaluator).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.decision_wait.is_zero() {
            return Err(ConfigError::new(
                "decision_wait",
                "must be greater than zero",
            ));
        }
        if self.num_traces == 0 {
            return Err(ConfigError::new("num_traces", "must be greater than zero"));
        }
        if self.policies.is_empty() {
            return Err(ConfigError::new(
                "policies",
                "at least one sampling policy is required",
            ));
        }
        let mut names = HashSet::new();
        for (i, p) in self.policies.iter().enumerate() {
            if p.name.is_empty() {
                return Err(ConfigError::new(
                    format!("policies[{i}].name"),
                    "policy name cannot be empty",
                ));
            }
            if !names.insert(p.name.as_str()) {
                return Err(ConfigError::new(
                    format!("policies[{i}].name"),
                    format!("duplicate policy name {:?}", p.name),
                ));
            }
        }
        super::build::build_policies(&self.policies).map(|_| ())
    }
}
