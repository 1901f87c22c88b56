//! How a gRPC export's outcome maps onto the pipeline's [`ConsumeError`], as the Collector's
//! OTLP exporter classifies it, and the partial-success report of a successful export.

use osprey_pipeline::ConsumeError;
use tonic::Code;
use tonic_types::StatusExt;

/// Whether the Collector retries an export that failed with `code`. `RESOURCE_EXHAUSTED` is
/// retried only when the server said when (a `RetryInfo` detail).
pub fn is_retryable(code: Code, has_retry_info: bool) -> bool {
    match code {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => true,
        Code::ResourceExhausted => has_retry_info,
        _ => false,
    }
}

/// Maps a failed export to a [`ConsumeError`]: not retryable -> `Permanent`; retryable with a
/// server-supplied delay (`RetryInfo.retry_delay` > 0) -> `Overloaded` with that delay;
/// otherwise `Unavailable`. `Code::Ok` never reaches here (tonic returns it as `Ok`).
pub fn classify(target: &str, status: &tonic::Status) -> ConsumeError {
    let retry_info = status.get_details_retry_info();
    let reason = format!(
        "export to {target} failed: {:?}: {}",
        status.code(),
        status.message()
    );
    if !is_retryable(status.code(), retry_info.is_some()) {
        return ConsumeError::Permanent(reason);
    }
    match retry_info.and_then(|r| r.retry_delay) {
        Some(delay) if !delay.is_zero() => ConsumeError::Overloaded {
            retry_after: delay,
            reason,
        },
        _ => ConsumeError::Unavailable(reason),
    }
}

/// Logs a partial success (`rejected` items or a message) the way the Collector does: a
/// warning; the export still counts as done. Returns the rejected count.
pub fn report_partial_success(target: &str, item_name: &str, rejected: i64, message: &str) -> u64 {
    if rejected != 0 || !message.is_empty() {
        tracing::warn!(
            target: "osprey::exporter",
            endpoint = target,
            message,
            dropped = rejected,
            "Partial success response: {rejected} {item_name} rejected"
        );
    }
    rejected.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tonic_types::{ErrorDetails, StatusExt};

    #[test]
    fn codes_follow_the_collector() {
        for code in [
            Code::Unavailable,
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::OutOfRange,
            Code::DataLoss,
        ] {
            let e = classify("t", &tonic::Status::new(code, "x"));
            assert!(matches!(e, ConsumeError::Unavailable(_)), "{code:?}: {e}");
        }
        for code in [
            Code::InvalidArgument,
            Code::Unknown,
            Code::Internal,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::ResourceExhausted,
            Code::Unimplemented,
        ] {
            let e = classify("t", &tonic::Status::new(code, "x"));
            assert!(matches!(e, ConsumeError::Permanent(_)), "{code:?}: {e}");
        }
    }

    #[test]
    fn retry_info_sets_the_delay() {
        let details = ErrorDetails::with_retry_info(Some(Duration::from_secs(3)));
        let s = tonic::Status::with_error_details(Code::ResourceExhausted, "slow down", details);
        match classify("t", &s) {
            ConsumeError::Overloaded { retry_after, .. } => {
                assert_eq!(retry_after, Duration::from_secs(3))
            }
            e => panic!("{e}"),
        }
        let details = ErrorDetails::with_retry_info(Some(Duration::from_secs(1)));
        let s = tonic::Status::with_error_details(Code::InvalidArgument, "bad", details);
        assert!(matches!(classify("t", &s), ConsumeError::Permanent(_)));
    }
}
