//! `zipkin`: the Zipkin receiver's decoders (`zipkin::v1::decode_v1`, v1 JSON;
//! `zipkin::json::decode_v2`, v2 JSON; `zipkin::proto::decode_proto`, v2 protobuf
//! `ListOfSpans`), each run on every input, then `zipkin::translate::to_otlp` (with
//! `parse_string_tags` taken from the input's length parity) and `sanitize_request` on what
//! decodes.
//!
//! Checks: no panic on any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use osprey_model::{sanitize_request, Limits};
use osprey_receivers::zipkin::json::decode_v2;
use osprey_receivers::zipkin::proto::decode_proto;
use osprey_receivers::zipkin::translate::to_otlp;
use osprey_receivers::zipkin::v1::decode_v1;

fuzz_target!(|data: &[u8]| {
    let parse_string_tags = data.len() % 2 == 1;
    for decoded in [decode_v1(data), decode_v2(data), decode_proto(data)] {
        if let Ok(spans) = decoded {
            let mut req = to_otlp(spans, parse_string_tags);
            sanitize_request(&mut req, &Limits::default());
        }
    }
});
