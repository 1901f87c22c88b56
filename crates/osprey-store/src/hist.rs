//! Mergeable latency histograms with logarithmic buckets (the `hist` column of `span_stats`).
//!
//! Bucket 0 holds durations of at most [`MIN_MS`] (1 µs); bucket `i >= 1` holds durations in
//! `(MIN_MS * GAMMA^(i-1), MIN_MS * GAMMA^i]`. A bucket stands for the value whose relative
//! distance to both of its bounds is the same, `(GAMMA - 1) / (GAMMA + 1)` ≈ 1.96 %, so any
//! quantile read from a histogram is within 2 % of a value of the data at the same rank.
//! Merging adds counts, so histograms of minutes, files and buffers combine exactly.
//!
//! Encoding (the `Binary` column): a format byte ([`FORMAT`]), then for each non-empty bucket
//! in ascending order the LEB128 varints `(index - previous index, count)`.

use std::fmt;

/// Growth factor between bucket bounds.
pub const GAMMA: f64 = 1.04;
/// Upper bound of bucket 0, in milliseconds.
pub const MIN_MS: f64 = 0.001;
/// The last bucket (durations beyond ~10^21 ms are clamped into it).
pub const MAX_BUCKET: u16 = 2047;
/// The first byte of an encoded histogram.
pub const FORMAT: u8 = 1;

/// A malformed encoded histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistDecodeError(pub &'static str);

impl fmt::Display for HistDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed latency histogram: {}", self.0)
    }
}

impl std::error::Error for HistDecodeError {}

/// The bucket of a duration in milliseconds (NaN and negative durations go to bucket 0).
pub fn bucket_of(ms: f64) -> u16 {
    if ms.is_nan() || ms <= MIN_MS {
        return 0;
    }
    let i = ((ms / MIN_MS).ln() / GAMMA.ln()).ceil();
    if i >= MAX_BUCKET as f64 {
        MAX_BUCKET
    } else {
        i.max(1.0) as u16
    }
}

/// The value a bucket stands for, in milliseconds.
pub fn bucket_value(idx: u16) -> f64 {
    if idx == 0 {
        return MIN_MS;
    }
    MIN_MS * GAMMA.powi(idx as i32) * 2.0 / (1.0 + GAMMA)
}

/// A sparse histogram: sorted `(bucket, count)` pairs. Cheap per key while aggregating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogHist {
    buckets: Vec<(u16, u64)>,
}

impl LogHist {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one duration.
    pub fn record(&mut self, ms: f64) {
        self.add(bucket_of(ms), 1);
    }

    fn add(&mut self, idx: u16, n: u64) {
        match self.buckets.binary_search_by_key(&idx, |b| b.0) {
            Ok(i) => self.buckets[i].1 = self.buckets[i].1.saturating_add(n),
            Err(i) => self.buckets.insert(i, (idx, n)),
        }
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &LogHist) {
        for &(i, n) in &other.buckets {
            self.add(i, n);
        }
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().fold(0u64, |a, b| a.saturating_add(b.1))
    }

    /// The `q` quantile (0..=1), interpolated between ranks like `percentile_cont`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile_of(self.buckets.iter().copied(), q)
    }

    pub fn encode(&self) -> Vec<u8> {
        encode_pairs(self.buckets.iter().copied())
    }

    pub fn decode(bytes: &[u8]) -> Result<LogHist, HistDecodeError> {
        let mut h = LogHist::new();
        for pair in decode_pairs(bytes)? {
            let (i, n) = pair?;
            h.add(i, n);
        }
        Ok(h)
    }
}

/// A dense histogram for merging many encoded ones (the SQL aggregate's state).
#[derive(Debug, Clone, Default)]
pub struct HistSum {
    counts: Vec<u64>,
}

impl HistSum {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an encoded histogram.
    pub fn add_encoded(&mut self, bytes: &[u8]) -> Result<(), HistDecodeError> {
        for pair in decode_pairs(bytes)? {
            let (i, n) = pair?;
            let i = i as usize;
            if i >= self.counts.len() {
                self.counts.resize(i + 1, 0);
            }
            self.counts[i] = self.counts[i].saturating_add(n);
        }
        Ok(())
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, c| a.saturating_add(*c))
    }

    fn pairs(&self) -> impl Iterator<Item = (u16, u64)> + Clone + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (i as u16, *n))
    }

    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile_of(self.pairs(), q)
    }

    pub fn encode(&self) -> Vec<u8> {
        encode_pairs(self.pairs())
    }

    /// Memory held, for DataFusion's accounting.
    pub fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.counts.capacity() * 8
    }
}

/// The value at 0-based rank `pos` (fractional: interpolated) of sorted `(bucket, count)`s.
fn quantile_of(pairs: impl Iterator<Item = (u16, u64)> + Clone, q: f64) -> Option<f64> {
    // Saturating: an encoded histogram may come from SQL input, not only from the store.
    let n: u64 = pairs.clone().fold(0u64, |a, p| a.saturating_add(p.1));
    if n == 0 || q.is_nan() {
        return None;
    }
    let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let lo = pos.floor() as u64;
    let frac = pos - lo as f64;
    let at = |rank: u64| {
        let mut seen = 0u64;
        for (i, c) in pairs.clone() {
            seen = seen.saturating_add(c);
            if rank < seen {
                return bucket_value(i);
            }
        }
        pairs
            .clone()
            .last()
            .map(|p| bucket_value(p.0))
            .unwrap_or(MIN_MS)
    };
    let v = at(lo);
    if frac > 0.0 && lo + 1 < n {
        Some(v + frac * (at(lo + 1) - v))
    } else {
        Some(v)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], at: &mut usize) -> Result<u64, HistDecodeError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or(HistDecodeError("truncated"))?;
        *at += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(HistDecodeError("varint too long"))
}

fn encode_pairs(pairs: impl Iterator<Item = (u16, u64)>) -> Vec<u8> {
    let mut out = vec![FORMAT];
    let mut prev = 0u16;
    for (i, n) in pairs {
        put_varint(&mut out, (i - prev) as u64);
        put_varint(&mut out, n);
        prev = i;
    }
    out
}

/// The `(bucket, count)` pairs of an encoded histogram (an empty input is an empty histogram).
fn decode_pairs(
    bytes: &[u8],
) -> Result<impl Iterator<Item = Result<(u16, u64), HistDecodeError>> + '_, HistDecodeError> {
    match bytes.first() {
        None | Some(&FORMAT) => {}
        Some(_) => return Err(HistDecodeError("unknown format")),
    }
    let mut at = 1usize.min(bytes.len());
    let mut prev = 0u64;
    Ok(std::iter::from_fn(move || {
        if at >= bytes.len() {
            return None;
        }
        let pair = get_varint(bytes, &mut at).and_then(|d| {
            let n = get_varint(bytes, &mut at)?;
            prev = prev.saturating_add(d);
            if prev > MAX_BUCKET as u64 {
                return Err(HistDecodeError("bucket out of range"));
            }
            Ok((prev as u16, n))
        });
        if pair.is_err() {
            at = bytes.len();
        }
        Some(pair)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so the test needs no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        /// Log-normal-ish latencies from 10 µs to 100 s.
        fn latency(&mut self) -> f64 {
            let u: f64 = (0..4).map(|_| self.next()).sum::<f64>() / 4.0;
            10f64.powf(-2.0 + 7.0 * u)
        }
    }

    fn exact(sorted: &[f64], q: f64) -> f64 {
        let pos = q * (sorted.len() - 1) as f64;
        let lo = pos.floor() as usize;
        let frac = pos - lo as f64;
        if lo + 1 < sorted.len() {
            sorted[lo] + frac * (sorted[lo + 1] - sorted[lo])
        } else {
            sorted[lo]
        }
    }

    #[test]
    fn buckets_bound_the_relative_error() {
        for ms in [0.0011, 0.01, 0.5, 1.0, 3.7, 99.9, 1234.5, 9.9e6] {
            let v = bucket_value(bucket_of(ms));
            assert!((v - ms).abs() / ms <= 0.02, "{ms} -> {v}");
        }
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(-5.0), 0);
        assert_eq!(bucket_of(f64::NAN), 0);
        assert_eq!(bucket_of(f64::INFINITY), MAX_BUCKET);
    }

    #[test]
    fn quantiles_within_two_percent_of_exact_on_random_data() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for n in [1usize, 2, 7, 100, 1000, 50_000] {
            let data: Vec<f64> = (0..n).map(|_| rng.latency()).collect();
            // Built in three parts and merged, half through the encoding.
            let mut a = LogHist::new();
            let mut b = LogHist::new();
            let mut sum = HistSum::new();
            for (i, v) in data.iter().enumerate() {
                if i % 3 == 0 {
                    a.record(*v)
                } else {
                    b.record(*v)
                }
            }
            sum.add_encoded(&a.encode()).expect("a");
            sum.add_encoded(&b.encode()).expect("b");
            a.merge(&LogHist::decode(&b.encode()).expect("decode"));
            assert_eq!(a.count(), n as u64);
            assert_eq!(sum.count(), n as u64);
            assert_eq!(LogHist::decode(&sum.encode()).expect("round trip"), a);
            let mut sorted = data.clone();
            sorted.sort_by(f64::total_cmp);
            for q in [0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
                let want = exact(&sorted, q);
                for got in [a.quantile(q), sum.quantile(q)] {
                    let got = got.expect("non-empty");
                    assert!(
                        (got - want).abs() <= 0.02 * want,
                        "n={n} q={q}: {got} vs exact {want}"
                    );
                }
            }
        }
        assert_eq!(HistSum::new().quantile(0.5), None);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(LogHist::decode(&[7]).is_err());
        assert!(LogHist::decode(&[FORMAT, 0x80]).is_err());
        assert!(LogHist::decode(&[FORMAT, 0xff, 0x7f, 1]).is_err());
        assert_eq!(LogHist::decode(&[]).expect("empty"), LogHist::new());
        // Crafted input (hist_quantile takes any bytes from SQL): errors or saturates, no panic.
        let mut huge = vec![FORMAT];
        put_varint(&mut huge, u64::MAX);
        put_varint(&mut huge, 1);
        assert!(LogHist::decode(&huge).is_err());
        let mut big = vec![FORMAT];
        for d in [1u64, 0, 0] {
            put_varint(&mut big, d);
            put_varint(&mut big, u64::MAX);
        }
        let mut sum = HistSum::new();
        sum.add_encoded(&big).expect("in range");
        sum.add_encoded(&big).expect("in range");
        assert_eq!(sum.count(), u64::MAX);
        assert!(sum.quantile(0.99).is_some());
    }
}
