//! What a load generator run achieved.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// The nearest-rank percentile `q` (0..=1) of an ascending slice; 0 when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Totals of one `osprey loadgen` run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadgenReport {
    /// Spans in requests that were sent (whatever the outcome).
    pub spans_sent: u64,
    /// Spans the server accepted (successful requests minus partial-success rejections).
    pub spans_acked: u64,
    /// Spans the server rejected in partial successes.
    pub spans_rejected: u64,
    /// Spans in requests that finally failed.
    pub spans_failed: u64,
    pub traces_sent: u64,
    pub requests: u64,
    /// Requests that failed after retries, by reason.
    pub requests_failed: BTreeMap<String, u64>,
    /// Retried attempts, by reason.
    pub retries: BTreeMap<String, u64>,
    pub bytes_sent: u64,
    pub elapsed_secs: f64,
    /// Accepted spans per second over the run.
    pub spans_per_sec: f64,
    /// Client-side export latency per request (first attempt to final answer), milliseconds.
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    /// The first failure's detail, to say what went wrong.
    pub first_error: Option<String>,
}

impl LoadgenReport {
    pub fn failed_requests(&self) -> u64 {
        self.requests_failed.values().sum()
    }
    pub fn retry_count(&self) -> u64 {
        self.retries.values().sum()
    }
}

fn by_reason(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "0".into();
    }
    let total: u64 = m.values().sum();
    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{total} ({})", parts.join(", "))
}

impl fmt::Display for LoadgenReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "loadgen summary")?;
        writeln!(f, "  elapsed            {:.2} s", self.elapsed_secs)?;
        writeln!(
            f,
            "  spans sent         {} ({} traces, {} requests, {:.1} MiB)",
            self.spans_sent,
            self.traces_sent,
            self.requests,
            self.bytes_sent as f64 / 1048576.0
        )?;
        writeln!(
            f,
            "  spans acknowledged {} (rejected {}, in failed requests {})",
            self.spans_acked, self.spans_rejected, self.spans_failed
        )?;
        writeln!(f, "  throughput         {:.0} spans/s", self.spans_per_sec)?;
        writeln!(
            f,
            "  export latency     p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.latency_p50_ms, self.latency_p99_ms, self.latency_max_ms
        )?;
        writeln!(
            f,
            "  requests failed    {}",
            by_reason(&self.requests_failed)
        )?;
        write!(f, "  retries            {}", by_reason(&self.retries))?;
        if let Some(e) = &self.first_error {
            write!(f, "\n  first error        {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
    }
}
