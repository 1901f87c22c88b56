//! How an OTLP/HTTP response maps onto the pipeline's [`ConsumeError`], as the Collector's
//! `otlphttp` exporter reads it: 429/502/503/504 are retryable (429 and 503 honour
//! `Retry-After`), every other failure is permanent; a 2xx body may carry a partial success.

use osprey_pipeline::{ConsumeError, Signal};
use serde::Deserialize;
use std::time::{Duration, SystemTime};

/// Most of a response body the exporter reads (as the Collector: 64 KiB).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// `google.rpc.Status`, the body of an OTLP/HTTP error response (details are skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

pub fn is_retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// A `Retry-After` value: delay-seconds or an HTTP-date (a past date means no delay).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<i64>() {
        return Some(Duration::from_secs(seconds.max(0) as u64));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let then = SystemTime::UNIX_EPOCH
        + Duration::from_secs(date.timestamp().max(0) as u64)
        + Duration::from_nanos(u64::from(date.timestamp_subsec_nanos()));
    Some(then.duration_since(now).unwrap_or_default())
}

/// Classifies a non-2xx response. `retry_after` is the first `Retry-After` header, if any.
pub fn classify(url: &str, status: u16, retry_after: Option<&str>, body: &[u8]) -> ConsumeError {
    let rpc = if body.is_empty() {
        None
    } else {
        <RpcStatus as prost::Message>::decode(body).ok()
    };
    let reason = match rpc {
        Some(s) if !s.message.is_empty() => format!(
            "error exporting items, request to {url} responded with HTTP Status Code {status}, Message={}",
            s.message
        ),
        _ => format!("error exporting items, request to {url} responded with HTTP Status Code {status}"),
    };
    if !is_retryable(status) {
        return ConsumeError::Permanent(reason);
    }
    if matches!(status, 429 | 503) {
        if let Some(delay) = retry_after.and_then(|v| parse_retry_after(v, SystemTime::now())) {
            return ConsumeError::Overloaded {
                retry_after: delay,
                reason,
            };
        }
    }
    ConsumeError::Unavailable(reason)
}

/// An int64 in OTLP/JSON: a number or a decimal string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum JsonInt {
    Num(i64),
    Text(String),
}

impl JsonInt {
    fn value(&self) -> Result<i64, String> {
        match self {
            JsonInt::Num(n) => Ok(*n),
            JsonInt::Text(t) => t.parse().map_err(|_| format!("invalid integer {t:?}")),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct JsonPartial {
    #[serde(
        alias = "rejected_spans",
        alias = "rejectedDataPoints",
        alias = "rejected_data_points"
    )]
    #[serde(alias = "rejectedLogRecords", alias = "rejected_log_records")]
    #[serde(rename = "rejectedSpans")]
    rejected: Option<JsonInt>,
    #[serde(rename = "errorMessage", alias = "error_message")]
    error_message: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct JsonResponse {
    #[serde(rename = "partialSuccess", alias = "partial_success")]
    partial_success: Option<JsonPartial>,
}

/// The partial success in a 2xx body: `(rejected items, message)`, read by the response's
/// content type (other types are not read). Errors when the body does not parse.
pub fn partial_success(
    signal: Signal,
    content_type: &str,
    body: &[u8],
) -> Result<Option<(i64, String)>, String> {
    use osprey_model::otlp::collector::logs::v1::ExportLogsServiceResponse;
    use osprey_model::otlp::collector::metrics::v1::ExportMetricsServiceResponse;
    use osprey_model::otlp::collector::trace::v1::ExportTraceServiceResponse;
    use prost::Message;
    if body.is_empty() {
        return Ok(None);
    }
    let media = content_type.split(';').next().unwrap_or("").trim();
    match media {
        "application/x-protobuf" => {
            let err = |e: prost::DecodeError| format!("error parsing protobuf response: {e}");
            Ok(match signal {
                Signal::Traces => ExportTraceServiceResponse::decode(body)
                    .map_err(err)?
                    .partial_success
                    .map(|p| (p.rejected_spans, p.error_message)),
                Signal::Metrics => ExportMetricsServiceResponse::decode(body)
                    .map_err(err)?
                    .partial_success
                    .map(|p| (p.rejected_data_points, p.error_message)),
                Signal::Logs => ExportLogsServiceResponse::decode(body)
                    .map_err(err)?
                    .partial_success
                    .map(|p| (p.rejected_log_records, p.error_message)),
            })
        }
        "application/json" => {
            let r: JsonResponse = serde_json::from_slice(body)
                .map_err(|e| format!("error parsing json response: {e}"))?;
            match r.partial_success {
                None => Ok(None),
                Some(p) => {
                    let rejected = p.rejected.as_ref().map(JsonInt::value).transpose()?;
                    Ok(Some((rejected.unwrap_or(0), p.error_message)))
                }
            }
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00 UTC
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn status_codes_follow_the_collector() {
        let e = classify("u", 503, Some("5"), b"");
        assert!(
            matches!(e, ConsumeError::Overloaded { retry_after, .. } if retry_after == Duration::from_secs(5))
        );
        assert!(matches!(
            classify("u", 429, None, b""),
            ConsumeError::Unavailable(_)
        ));
        // 502/504 never throttle, even with Retry-After.
        assert!(matches!(
            classify("u", 502, Some("5"), b""),
            ConsumeError::Unavailable(_)
        ));
        assert!(matches!(
            classify("u", 504, None, b""),
            ConsumeError::Unavailable(_)
        ));
        for code in [400, 401, 403, 404, 413, 500, 501] {
            assert!(
                matches!(classify("u", code, None, b""), ConsumeError::Permanent(_)),
                "{code}"
            );
        }
        let body = RpcStatus {
            code: 3,
            message: "bad span".into(),
        }
        .encode_to_vec();
        match classify("u", 400, None, &body) {
            ConsumeError::Permanent(m) => assert!(m.contains("Message=bad span"), "{m}"),
            e => panic!("{e}"),
        }
    }

    #[test]
    fn partial_success_bodies() {
        use osprey_model::otlp::collector::trace::v1::{
            ExportTracePartialSuccess, ExportTraceServiceResponse,
        };
        let proto = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 4,
                error_message: "m".into(),
            }),
        }
        .encode_to_vec();
        assert_eq!(
            partial_success(Signal::Traces, "application/x-protobuf", &proto).unwrap(),
            Some((4, "m".into()))
        );
        let json = br#"{"partialSuccess":{"rejectedLogRecords":"3","errorMessage":"x"}}"#;
        assert_eq!(
            partial_success(Signal::Logs, "application/json; charset=utf-8", json).unwrap(),
            Some((3, "x".into()))
        );
        assert_eq!(
            partial_success(Signal::Metrics, "application/json", b"{}").unwrap(),
            None
        );
        assert_eq!(
            partial_success(Signal::Traces, "text/plain", b"ok").unwrap(),
            None
        );
        assert!(partial_success(Signal::Traces, "application/json", b"nope").is_err());
    }
}
