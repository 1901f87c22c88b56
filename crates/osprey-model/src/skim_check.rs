//! The skim's contract as a checkable function, shared by its property tests and by the
//! `otlp_skim` fuzz target: on any bytes, the skim accepts exactly when prost decodes; when
//! both accept, the span count and the oldest start time agree with the decoded request, and a
//! request called `clean` is one that `sanitize_request` leaves unchanged and rejects nothing
//! from. (`clean` is one-way: an unusual but harmless encoding may be reported as not clean.)

use super::{decode, encode, skim, Skim};
use crate::{sanitize_request, span_count, Limits};

/// `Ok(Some(skim))` when both accept and agree, `Ok(None)` when both refuse, `Err` describing
/// the disagreement otherwise.
pub fn check_against_prost(bytes: &[u8], limits: &Limits) -> Result<Option<Skim>, String> {
    let skimmed = skim(bytes, limits);
    let decoded = decode(bytes);
    let (s, req) = match (&skimmed, &decoded) {
        (Ok(s), Ok(req)) => (s, req),
        (Err(_), Err(_)) => return Ok(None),
        _ => {
            return Err(format!(
                "skim and prost disagree on {:02x?}: skim {skimmed:?}, prost {:?}",
                &bytes[..bytes.len().min(64)],
                decoded.as_ref().map(|_| ())
            ))
        }
    };
    if s.spans != span_count(req) {
        return Err(format!(
            "span count: skim {}, prost {}",
            s.spans,
            span_count(req)
        ));
    }
    let oldest = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.start_time_unix_nano)
        .min()
        .unwrap_or(u64::MAX);
    if s.oldest_start != oldest {
        return Err(format!(
            "oldest start: skim {}, prost {oldest}",
            s.oldest_start
        ));
    }
    if s.clean {
        let mut copy = req.clone();
        let report = sanitize_request(&mut copy, limits);
        // Compared as encodings: a NaN double attribute is not equal to itself.
        if report.rejected != 0 || encode(&copy) != encode(req) {
            return Err(format!(
                "clean, but sanitize_request changed it: {report:?}"
            ));
        }
    }
    Ok(Some(*s))
}
