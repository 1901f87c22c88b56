//! `otlp_skim`: the allocation-free protobuf walk [`osprey_model::skim::skim`] (the OTLP gRPC
//! and HTTP fast path) against prost, on arbitrary bytes.
//!
//! Checks, for `Limits::default()` and for small limits (so that short inputs reach the
//! limit checks too): no panic, and the skim's contract against prost
//! ([`osprey_model::skim::check_against_prost`], also used by the skim's property tests).
#![no_main]

use libfuzzer_sys::fuzz_target;
use osprey_model::skim::check_against_prost;
use osprey_model::Limits;

const SMALL: Limits = Limits {
    max_attributes: 2,
    max_events: 1,
    max_links: 1,
};

fuzz_target!(|data: &[u8]| {
    for limits in [Limits::default(), SMALL] {
        if let Err(e) = check_against_prost(data, &limits) {
            panic!("{e}");
        }
    }
});
