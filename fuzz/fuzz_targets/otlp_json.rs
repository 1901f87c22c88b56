//! `otlp_json`: the OTLP/HTTP JSON decoders of the OTLP receiver
//! (`osprey_receivers::otlp::body::decode{,_metrics,_logs}` with `Encoding::Json`), then what
//! the trace path does with a decoded request (`sanitize_request`, then `request_to_batch`,
//! the Arrow conversion the store buffers).
//!
//! Checks: no panic on any bytes; a decoded and sanitized request converts to Arrow without
//! error, with one row per accepted span.
#![no_main]

use libfuzzer_sys::fuzz_target;
use osprey_model::{request_to_batch, sanitize_request, Limits};
use osprey_receivers::otlp::body::{decode, decode_logs, decode_metrics, Encoding};

fuzz_target!(|data: &[u8]| {
    if let Ok(mut req) = decode(Encoding::Json, data) {
        let report = sanitize_request(&mut req, &Limits::default());
        match request_to_batch(&req) {
            Ok(batch) => assert_eq!(batch.num_rows() as u64, report.accepted, "rows"),
            Err(e) => panic!("a sanitized request does not convert to Arrow: {e}"),
        }
    }
    let _ = decode_metrics(Encoding::Json, data);
    let _ = decode_logs(Encoding::Json, data);
});
