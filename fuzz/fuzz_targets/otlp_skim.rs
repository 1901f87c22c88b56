//! `otlp_skim`: the allocation-free protobuf walk [`osprey_model::skim::skim`] (the OTLP gRPC
//! and HTTP fast path) against prost, on arbitrary bytes.
//!
//! Checks, for `Limits::default()` and for small limits (so that short inputs reach the
//! limit checks too): no panic; skim accepts exactly when prost's
//! `ExportTraceServiceRequest::decode` does; when both accept, the span count and the oldest
//! start time agree with the decoded request, and a request skim calls `clean` is one that
//! `sanitize_request` leaves unchanged (same encoding) and rejects nothing from. `clean` is
//! one-way by contract (unusual but harmless encodings may be reported as not clean), so a
//! not-clean verdict is not checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use osprey_model::skim::{decode, encode, skim};
use osprey_model::{sanitize_request, span_count, Limits};

const SMALL: Limits = Limits {
    max_attributes: 2,
    max_events: 1,
    max_links: 1,
};

fn check(data: &[u8], limits: &Limits) {
    let skimmed = skim(data, limits);
    let decoded = decode(data);
    match (&skimmed, &decoded) {
        (Ok(s), Ok(req)) => {
            assert_eq!(s.spans, span_count(req), "span count");
            let oldest = req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .map(|s| s.start_time_unix_nano)
                .min()
                .unwrap_or(u64::MAX);
            assert_eq!(s.oldest_start, oldest, "oldest start");
            if s.clean {
                let mut copy = req.clone();
                let report = sanitize_request(&mut copy, limits);
                // Compared as encodings: a NaN double attribute is not equal to itself.
                assert!(
                    report.rejected == 0 && encode(&copy) == encode(req),
                    "clean, but sanitize_request changed it: {report:?}"
                );
            }
        }
        (Err(_), Err(_)) => {}
        _ => panic!(
            "skim and prost disagree: skim {skimmed:?}, prost {:?}",
            decoded.as_ref().map(|_| ())
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    check(data, &Limits::default());
    check(data, &SMALL);
});
