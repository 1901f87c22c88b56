//! Consistent probability sampling values (OTEP 235, the W3C tracestate `ot` member):
//! 56-bit thresholds (`th`, rejected share of 2^56) and randomness (`rv`, or the last 7
//! bytes of the trace id), and the `tracestate` parsing and rewriting around them.

/// 2^56: the number of randomness values.
pub const MAX_ADJUSTED_COUNT: u64 = 1 << 56;
const NUM_HEX_DIGITS: usize = 14;

/// A sampling threshold: items with randomness >= threshold are sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Threshold(pub u64);

pub const ALWAYS_SAMPLE: Threshold = Threshold(0);
pub const NEVER_SAMPLE: Threshold = Threshold(MAX_ADJUSTED_COUNT);
/// The smallest representable probability.
pub const MIN_PROBABILITY: f64 = 1.0 / MAX_ADJUSTED_COUNT as f64;

/// 56 bits of randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Randomness(pub u64);

/// Randomness standing in when none is known (always passes any threshold but "never").
pub const ALL_PROBABILITIES: Randomness = Randomness(MAX_ADJUSTED_COUNT - 1);

impl Threshold {
    pub fn should_sample(self, r: Randomness) -> bool {
        self.0 <= r.0
    }

    /// The `th` encoding: 1-14 hex digits without trailing zeros; "0" for always, "" for never.
    pub fn tvalue(self) -> String {
        if self == ALWAYS_SAMPLE {
            return "0".into();
        }
        if self == NEVER_SAMPLE {
            return String::new();
        }
        let digits = format!("{:014x}", self.0);
        digits.trim_end_matches('0').to_string()
    }

    pub fn from_tvalue(s: &str) -> Result<Threshold, String> {
        if s.is_empty() || s.len() > NUM_HEX_DIGITS {
            return Err(format!("invalid t-value {s:?}"));
        }
        let n = u64::from_str_radix(s, 16).map_err(|_| format!("invalid t-value {s:?}"))?;
        Ok(Threshold(n << (4 * (NUM_HEX_DIGITS - s.len()))))
    }

    pub fn probability(self) -> f64 {
        (MAX_ADJUSTED_COUNT - self.0) as f64 / MAX_ADJUSTED_COUNT as f64
    }

    /// The threshold for probability `p`, rounded to `precision` hex digits (more near the
    /// extremes), as `ProbabilityToThresholdWithPrecision`; `None` when out of range.
    pub fn from_probability(p: f64, precision: usize) -> Option<Threshold> {
        let mut precision = if precision == 0 {
            NUM_HEX_DIGITS
        } else {
            precision
        };
        if !(MIN_PROBABILITY..=1.0).contains(&p) {
            return None;
        }
        if p == 1.0 {
            return Some(ALWAYS_SAMPLE);
        }
        let exp_f = frexp_exp(p);
        let exp_r = frexp_exp(1.0 - p);
        precision = NUM_HEX_DIGITS.min(
            (precision as i64 + i64::from(exp_f / -4)).max(precision as i64 + i64::from(exp_r / -4))
                as usize,
        );
        let scaled = (p * MAX_ADJUSTED_COUNT as f64).round() as u64;
        let mut t = MAX_ADJUSTED_COUNT - scaled;
        let shift = 4 * (NUM_HEX_DIGITS - precision) as u32;
        if shift != 0 {
            let half = 1u64 << (shift - 1);
            t += half;
            t >>= shift;
            t <<= shift;
        }
        Some(Threshold(t))
    }
}

/// The exponent Go's `math.Frexp` returns (x = frac * 2^exp with frac in [0.5, 1)).
fn frexp_exp(x: f64) -> i32 {
    if x == 0.0 || !x.is_finite() {
        return 0;
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: normalise first.
        return frexp_exp(x * (1u64 << 54) as f64) - 54;
    }
    exp - 1022
}

impl Randomness {
    /// The `rv` encoding: 14 hex digits.
    pub fn rvalue(self) -> String {
        format!("{:014x}", self.0)
    }

    pub fn from_rvalue(s: &str) -> Result<Randomness, String> {
        if s.len() != NUM_HEX_DIGITS {
            return Err(format!("invalid r-value {s:?}"));
        }
        u64::from_str_radix(s, 16)
            .map(Randomness)
            .map_err(|_| format!("invalid r-value {s:?}"))
    }

    /// The least-significant 56 bits of a trace id.
    pub fn from_trace_id(id: &[u8]) -> Randomness {
        let mut v = 0u64;
        for b in id.iter().rev().take(7).rev() {
            v = (v << 8) | u64::from(*b);
        }
        Randomness(v)
    }
}

/// A parsed W3C `tracestate`: the OpenTelemetry (`ot`) member and the others, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceState {
    pub rv: Option<Randomness>,
    pub th: Option<Threshold>,
    /// Other `ot` sub-keys, in order.
    pub ot_extra: Vec<(String, String)>,
    /// Other vendors' members, in order.
    pub others: Vec<(String, String)>,
}

fn valid_w3c_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 256
        && k.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && k.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-*/@".contains(c))
}

impl TraceState {
    /// Parses a `tracestate` header value (empty is fine).
    pub fn parse(s: &str) -> Result<TraceState, String> {
        let mut ts = TraceState::default();
        if s.len() > 1024 {
            return Err("tracestate exceeds 1024 characters".into());
        }
        let members: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        if members.len() > 32 {
            return Err("tracestate has more than 32 members".into());
        }
        for m in members {
            let (k, v) = m
                .split_once('=')
                .ok_or_else(|| format!("invalid tracestate member {m:?}"))?;
            if !valid_w3c_key(k)
                || v.is_empty()
                || v.len() > 256
                || v.contains('=')
                || !v.chars().all(|c| (' '..='~').contains(&c))
            {
                return Err(format!("invalid tracestate member {m:?}"));
            }
            if k == "ot" {
                ts.parse_ot(v)?;
            } else {
                ts.others.push((k.to_string(), v.to_string()));
            }
        }
        Ok(ts)
    }

    fn parse_ot(&mut self, v: &str) -> Result<(), String> {
        for item in v.split(';') {
            let (k, val) = item
                .split_once(':')
                .ok_or_else(|| format!("invalid ot tracestate {v:?}"))?;
            let key_ok = k.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            let val_ok = val
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !key_ok || !val_ok {
                return Err(format!("invalid ot tracestate {v:?}"));
            }
            match k {
                "rv" => self.rv = Some(Randomness::from_rvalue(val)?),
                "th" => self.th = Some(Threshold::from_tvalue(val)?),
                _ => self.ot_extra.push((k.to_string(), val.to_string())),
            }
        }
        Ok(())
    }

    /// Raises the threshold to `th` (lowering it would raise the adjusted count, which is
    /// refused with an error and no change); "never" clears it.
    pub fn update_threshold(&mut self, th: Threshold) -> Result<(), String> {
        if self.th.is_some_and(|old| old > th) {
            return Err("cannot raise existing sampling probability".into());
        }
        self.th = (th != NEVER_SAMPLE).then_some(th);
        Ok(())
    }

    /// The header value: `ot` first, then the other members.
    pub fn serialize(&self) -> String {
        let mut ot: Vec<String> = Vec::new();
        if let Some(rv) = self.rv {
            ot.push(format!("rv:{}", rv.rvalue()));
        }
        if let Some(th) = self.th {
            ot.push(format!("th:{}", th.tvalue()));
        }
        ot.extend(self.ot_extra.iter().map(|(k, v)| format!("{k}:{v}")));
        let mut members = Vec::new();
        if !ot.is_empty() {
            members.push(format!("ot={}", ot.join(";")));
        }
        members.extend(self.others.iter().map(|(k, v)| format!("{k}={v}")));
        members.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        assert_eq!(Threshold::from_probability(0.5, 4).unwrap().tvalue(), "8");
        assert_eq!(Threshold::from_probability(0.25, 4).unwrap().tvalue(), "c");
        assert_eq!(
            Threshold::from_probability(1.0 / 3.0, 4).unwrap().tvalue(),
            "aaab"
        );
        assert_eq!(
            Threshold::from_probability(0.01, 4).unwrap().tvalue(),
            "fd70a"
        );
        assert_eq!(ALWAYS_SAMPLE.tvalue(), "0");
        assert_eq!(Threshold::from_tvalue("8").unwrap(), Threshold(1 << 55));
        assert!(Threshold::from_tvalue("123456789abcdef").is_err());
    }

    #[test]
    fn tracestate_round_trip() {
        let mut ts = TraceState::parse("vendor=x, ot=th:8;rv:00112233445566;p:1,other=y").unwrap();
        assert_eq!(ts.th, Some(Threshold(1 << 55)));
        assert_eq!(ts.rv, Some(Randomness(0x0000_1122_3344_5566)));
        assert!(
            ts.update_threshold(Threshold(1 << 54)).is_err(),
            "cannot lower th"
        );
        ts.update_threshold(Threshold(3 << 54)).unwrap();
        assert_eq!(
            ts.serialize(),
            "ot=rv:00112233445566;th:c;p:1,vendor=x,other=y"
        );
        assert!(TraceState::parse("ot=rv:1").is_err());
        assert!(TraceState::parse("bad key=1").is_err());
        assert_eq!(TraceState::parse("").unwrap(), TraceState::default());
    }
}
