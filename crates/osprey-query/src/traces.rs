//! What the Jaeger and Tempo APIs share: trace id parsing, SQL literals, Go-style
//! durations, and fetching whole traces as typed span records.

use crate::engine::{QueryEngine, QueryError};
use osprey_model::from_arrow::{records_from_batch, SpanRecord};
use std::collections::BTreeMap;

/// A trace id from a URL: 1–32 hex digits (either case), left-padded with zeros to the
/// 32 lowercase hex digits the store uses. A 16-digit id is the low half of a 128-bit id,
/// as Jaeger and Zipkin write 64-bit ids.
pub fn normalize_trace_id(id: &str) -> Result<String, String> {
    let id = id.trim();
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "malformed trace ID {id:?}: expected 1 to 32 hexadecimal digits"
        ));
    }
    Ok(format!("{:0>32}", id.to_ascii_lowercase()))
}

/// `s` as a SQL string literal.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A SQL timestamp literal for `ns` nanoseconds since the epoch (UTC).
pub fn ts_literal(ns: i64) -> String {
    let dt = chrono::DateTime::from_timestamp_nanos(ns);
    format!("'{}'", dt.format("%Y-%m-%dT%H:%M:%S%.9fZ"))
}

/// A Go-style duration (`100ms`, `1.5s`, `2h45m`, `10us`) in nanoseconds. A bare number is
/// refused: Jaeger and Tempo need a unit.
pub fn parse_duration_ns(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let bad = || {
        format!("invalid duration {text:?}: expected a number with a unit, like 100ms, 1.5s or 2h (units ns, us, µs, ms, s, m, h)")
    };
    if t.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_end == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    if total > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(total as i64)
}

/// The current time in ns since the epoch.
pub fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Every span of the traces `ids` (normalized ids), grouped by trace and ordered by start
/// time. Traces with no stored span are absent from the map.
pub async fn fetch_traces(
    engine: &QueryEngine,
    ids: &[String],
) -> Result<BTreeMap<String, Vec<SpanRecord>>, QueryError> {
    let mut out: BTreeMap<String, Vec<SpanRecord>> = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let list: Vec<String> = ids.iter().map(|i| quote(i)).collect();
    let sql = format!(
        "SELECT * FROM spans WHERE trace_id IN ({})",
        list.join(", ")
    );
    let res = engine.query_typed(&sql).await?;
    for batch in &res.batches {
        let records = records_from_batch(batch)
            .map_err(|e| QueryError::Execution(format!("reading stored spans: {e}")))?;
        for r in records {
            out.entry(r.trace_id.clone()).or_default().push(r);
        }
    }
    for spans in out.values_mut() {
        spans.sort_by(|a, b| (a.start_ns, &a.span_id).cmp(&(b.start_ns, &b.span_id)));
        spans.dedup_by(|a, b| a.span_id == b.span_id && a.start_ns == b.start_ns);
    }
    Ok(out)
}

/// The first column of every row of a one-column string result.
pub fn string_column(res: &crate::QueryResult, index: usize) -> Vec<String> {
    use arrow::array::{Array, AsArray};
    let mut out = Vec::new();
    for b in &res.batches {
        let col = b.column(index);
        let col = match arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8) {
            Ok(c) => c,
            Err(_) => continue,
        };
        let s = col.as_string::<i32>();
        for i in 0..s.len() {
            if !s.is_null(i) {
                out.push(s.value(i).to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids() {
        assert_eq!(
            normalize_trace_id("ABCDEF0123456789").as_deref(),
            Ok("0000000000000000abcdef0123456789")
        );
        assert!(normalize_trace_id("xyz").is_err());
        assert!(normalize_trace_id(&"a".repeat(33)).is_err());
        assert!(normalize_trace_id("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("100ms"), Ok(100_000_000));
        assert_eq!(parse_duration_ns("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration_ns("2h45m"), Ok(9_900_000_000_000));
        assert_eq!(parse_duration_ns("10us"), Ok(10_000));
        assert_eq!(parse_duration_ns("7µs"), Ok(7_000));
        assert!(parse_duration_ns("100").is_err());
        assert!(parse_duration_ns("abc").is_err());
        assert!(parse_duration_ns("5 parsecs").is_err());
        assert!(parse_duration_ns("").is_err());
    }

    #[test]
    fn literals() {
        assert_eq!(quote("it's"), "'it''s'");
        assert_eq!(ts_literal(1_500), "'1970-01-01T00:00:00.000001500Z'");
    }
}
