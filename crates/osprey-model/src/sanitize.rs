//! Per-span validation of incoming trace requests.
//!
//! OTLP asks receivers to reject bad items one by one (a partial success naming how many and
//! why) rather than failing a whole batch. [`sanitize_request`] removes spans that cannot be
//! stored (bad ids, no start time), repairs what has an obvious repair (end before start,
//! all-zero parent id, too many attributes), and reports both.

use crate::otlp::common::v1::KeyValue;
use crate::otlp::trace::v1::Span;
use crate::TraceRequest;

/// Bounds applied to each span. Values over a bound are truncated and counted in the span's
/// `dropped_*_count` fields, as OpenTelemetry SDKs do with their own limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_attributes: usize,
    pub max_events: usize,
    pub max_links: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_attributes: 1024,
            max_events: 1024,
            max_links: 1024,
        }
    }
}

/// What sanitizing a request did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SanitizeReport {
    pub accepted: u64,
    pub rejected: u64,
    /// Human-readable reasons, at most a few, each naming the span.
    pub errors: Vec<String>,
    /// Repairs that kept the span (truncations), at most a few.
    pub warnings: Vec<String>,
}

const MAX_MESSAGES: usize = 5;

impl SanitizeReport {
    fn reject(&mut self, msg: String) {
        self.rejected += 1;
        if self.errors.len() < MAX_MESSAGES {
            self.errors.push(msg);
        }
    }
    fn warn(&mut self, msg: String) {
        if self.warnings.len() < MAX_MESSAGES {
            self.warnings.push(msg);
        }
    }
    /// The OTLP `error_message` for a partial success, or `None` when everything was clean.
    pub fn message(&self) -> Option<String> {
        if self.errors.is_empty() && self.warnings.is_empty() {
            return None;
        }
        let mut parts = Vec::new();
        if self.rejected > 0 {
            parts.push(format!(
                "{} span(s) rejected: {}",
                self.rejected,
                self.errors.join("; ")
            ));
        }
        if !self.warnings.is_empty() {
            parts.push(self.warnings.join("; "));
        }
        Some(parts.join("; "))
    }
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|x| *x == 0)
}

/// Why a span cannot be stored, or `None` if it can.
fn span_error(span: &Span) -> Option<String> {
    let what = |field: &str, problem: String| {
        Some(format!(
            "span {:?} (span_id {}): {field} {problem}",
            span.name,
            hex::encode(&span.span_id)
        ))
    };
    if span.trace_id.len() != 16 {
        return what(
            "trace_id",
            format!("must be 16 bytes, got {}", span.trace_id.len()),
        );
    }
    if all_zero(&span.trace_id) {
        return what("trace_id", "is all zeroes".into());
    }
    if span.span_id.len() != 8 {
        return what(
            "span_id",
            format!("must be 8 bytes, got {}", span.span_id.len()),
        );
    }
    if all_zero(&span.span_id) {
        return what("span_id", "is all zeroes".into());
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return what(
            "parent_span_id",
            format!(
                "must be empty or 8 bytes, got {}",
                span.parent_span_id.len()
            ),
        );
    }
    if span.start_time_unix_nano == 0 {
        return what("start_time_unix_nano", "is missing".into());
    }
    if span.start_time_unix_nano > i64::MAX as u64 || span.end_time_unix_nano > i64::MAX as u64 {
        return what("start/end time", "is beyond the year 2262".into());
    }
    None
}

fn truncate_attrs(attrs: &mut Vec<KeyValue>, max: usize, dropped: &mut u32) -> bool {
    if attrs.len() > max {
        let extra = attrs.len() - max;
        attrs.truncate(max);
        *dropped = dropped.saturating_add(u32::try_from(extra).unwrap_or(u32::MAX));
        true
    } else {
        false
    }
}

fn repair(span: &mut Span, limits: &Limits, report: &mut SanitizeReport) {
    if !span.parent_span_id.is_empty() && all_zero(&span.parent_span_id) {
        span.parent_span_id.clear();
    }
    if span.end_time_unix_nano == 0 {
        span.end_time_unix_nano = span.start_time_unix_nano;
    } else if span.end_time_unix_nano < span.start_time_unix_nano {
        std::mem::swap(&mut span.start_time_unix_nano, &mut span.end_time_unix_nano);
    }
    let name = span.name.clone();
    if truncate_attrs(
        &mut span.attributes,
        limits.max_attributes,
        &mut span.dropped_attributes_count,
    ) {
        report.warn(format!(
            "span {name:?}: attributes truncated to {} ({} dropped)",
            limits.max_attributes, span.dropped_attributes_count
        ));
    }
    if span.events.len() > limits.max_events {
        let extra = span.events.len() - limits.max_events;
        span.events.truncate(limits.max_events);
        span.dropped_events_count = span.dropped_events_count.saturating_add(extra as u32);
        report.warn(format!(
            "span {name:?}: events truncated to {}",
            limits.max_events
        ));
    }
    for ev in &mut span.events {
        truncate_attrs(
            &mut ev.attributes,
            limits.max_attributes,
            &mut ev.dropped_attributes_count,
        );
    }
    let before = span.links.len();
    span.links
        .retain(|l| l.trace_id.len() == 16 && l.span_id.len() == 8);
    let bad_links = before - span.links.len();
    if bad_links > 0 {
        span.dropped_links_count = span.dropped_links_count.saturating_add(bad_links as u32);
        report.warn(format!(
            "span {name:?}: {bad_links} link(s) with malformed ids dropped"
        ));
    }
    if span.links.len() > limits.max_links {
        let extra = span.links.len() - limits.max_links;
        span.links.truncate(limits.max_links);
        span.dropped_links_count = span.dropped_links_count.saturating_add(extra as u32);
        report.warn(format!(
            "span {name:?}: links truncated to {}",
            limits.max_links
        ));
    }
    for l in &mut span.links {
        truncate_attrs(
            &mut l.attributes,
            limits.max_attributes,
            &mut l.dropped_attributes_count,
        );
    }
}

/// Validates and repairs `req` in place; spans that cannot be stored are removed.
/// Empty scope/resource groups left behind are removed too.
pub fn sanitize_request(req: &mut TraceRequest, limits: &Limits) -> SanitizeReport {
    let mut report = SanitizeReport::default();
    for rs in &mut req.resource_spans {
        if let Some(res) = rs.resource.as_mut() {
            if truncate_attrs(
                &mut res.attributes,
                limits.max_attributes,
                &mut res.dropped_attributes_count,
            ) {
                report.warn(format!(
                    "resource attributes truncated to {}",
                    limits.max_attributes
                ));
            }
        }
        for ss in &mut rs.scope_spans {
            ss.spans.retain_mut(|span| match span_error(span) {
                Some(msg) => {
                    report.reject(msg);
                    false
                }
                None => {
                    repair(span, limits, &mut report);
                    report.accepted += 1;
                    true
                }
            });
        }
        rs.scope_spans.retain(|ss| !ss.spans.is_empty());
    }
    req.resource_spans.retain(|rs| !rs.scope_spans.is_empty());
    report
}

/// Removes the spans that start before `cutoff_ns` (ns since the epoch) and counts them as
/// rejected: the store would delete them at its next retention pass, so acknowledging them
/// would be a promise it cannot keep. Returns how many were removed.
pub fn reject_older_than(
    req: &mut TraceRequest,
    cutoff_ns: u64,
    report: &mut SanitizeReport,
) -> u64 {
    let mut removed = 0;
    for rs in &mut req.resource_spans {
        for ss in &mut rs.scope_spans {
            ss.spans.retain(|span| {
                if span.start_time_unix_nano >= cutoff_ns {
                    return true;
                }
                removed += 1;
                report.reject(format!(
                    "span {} starts at {} ns, before the retention cutoff {} ns (older than the store keeps)",
                    hex_id(&span.span_id),
                    span.start_time_unix_nano,
                    cutoff_ns
                ));
                false
            });
        }
        rs.scope_spans.retain(|ss| !ss.spans.is_empty());
    }
    req.resource_spans.retain(|rs| !rs.scope_spans.is_empty());
    report.accepted = report.accepted.saturating_sub(removed);
    removed
}

fn hex_id(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::trace::v1::{ResourceSpans, ScopeSpans};

    fn span(trace: Vec<u8>, id: Vec<u8>) -> Span {
        Span {
            trace_id: trace,
            span_id: id,
            name: "op".into(),
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 2_000,
            ..Default::default()
        }
    }

    fn req(spans: Vec<Span>) -> TraceRequest {
        TraceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn rejects_bad_ids_per_span() {
        let mut r = req(vec![
            span(vec![1; 16], vec![2; 8]),
            span(vec![1; 15], vec![2; 8]),
            span(vec![1; 16], vec![0; 8]),
            span(vec![], vec![2; 8]),
        ]);
        let rep = sanitize_request(&mut r, &Limits::default());
        assert_eq!(rep.accepted, 1);
        assert_eq!(rep.rejected, 3);
        assert_eq!(crate::span_count(&r), 1);
        let msg = rep.message().unwrap_or_default();
        assert!(msg.contains("trace_id must be 16 bytes, got 15"), "{msg}");
        assert!(msg.contains("span_id is all zeroes"), "{msg}");
    }

    #[test]
    fn repairs_times_parent_and_limits() {
        let mut s = span(vec![1; 16], vec![2; 8]);
        s.parent_span_id = vec![0; 8];
        s.start_time_unix_nano = 5_000;
        s.end_time_unix_nano = 4_000;
        s.attributes = (0..10)
            .map(|i| KeyValue {
                key: format!("k{i}"),
                ..Default::default()
            })
            .collect();
        let mut r = req(vec![s]);
        let rep = sanitize_request(
            &mut r,
            &Limits {
                max_attributes: 4,
                ..Limits::default()
            },
        );
        assert_eq!(rep.rejected, 0);
        let s = &r.resource_spans[0].scope_spans[0].spans[0];
        assert!(s.parent_span_id.is_empty());
        assert_eq!(
            (s.start_time_unix_nano, s.end_time_unix_nano),
            (4_000, 5_000)
        );
        assert_eq!(s.attributes.len(), 4);
        assert_eq!(s.dropped_attributes_count, 6);
        assert!(rep
            .message()
            .unwrap_or_default()
            .contains("attributes truncated"));
    }

    #[test]
    fn missing_start_time_is_rejected() {
        let mut s = span(vec![1; 16], vec![2; 8]);
        s.start_time_unix_nano = 0;
        let mut r = req(vec![s]);
        let rep = sanitize_request(&mut r, &Limits::default());
        assert_eq!(rep.rejected, 1);
        assert!(r.resource_spans.is_empty());
        assert!(rep.errors[0].contains("start_time_unix_nano is missing"));
    }

    #[test]
    fn spans_older_than_the_cutoff_are_rejected() {
        let mut old = span(vec![1; 16], vec![2; 8]);
        old.start_time_unix_nano = 10;
        let mut r = req(vec![span(vec![1; 16], vec![3; 8]), old]);
        let mut rep = sanitize_request(&mut r, &Limits::default());
        assert_eq!(rep.accepted, 2);
        assert_eq!(reject_older_than(&mut r, 500, &mut rep), 1);
        assert_eq!((rep.accepted, rep.rejected), (1, 1));
        assert!(
            rep.message()
                .unwrap_or_default()
                .contains("0202020202020202"),
            "{:?}",
            rep.message()
        );
        assert_eq!(r.resource_spans[0].scope_spans[0].spans.len(), 1);
        assert_eq!(reject_older_than(&mut r, 5_000, &mut rep), 1);
        assert!(r.resource_spans.is_empty());
    }
}
