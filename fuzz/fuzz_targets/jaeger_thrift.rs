//! `jaeger_thrift`: the Jaeger receiver's Thrift decoders (`thrift::decode_batch`, the
//! `thrift_http` body, and `thrift::decode_agent_message`, the UDP agent datagrams), each with
//! both `Wire`s (compact and binary), then `translate::to_otlp` and `sanitize_request` on what
//! decodes.
//!
//! Checks: no panic. The decoders deliberately catch panics raised inside the `thrift` crate
//! (documented in `thrift.rs`: the crate has `expect`s and, with overflow checks, field-id
//! arithmetic that can panic) and report them as decode errors; libFuzzer's panic hook would
//! abort on those even though they are caught, so this target's hook lets a panic located in
//! the `thrift` crate's own sources through to that `catch_unwind`. Any panic elsewhere (in
//! Osprey's reader, decoder or translator) still aborts and is reported as a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use osprey_model::{sanitize_request, Limits};
use osprey_receivers::jaeger::thrift::{decode_agent_message, decode_batch, AgentMessage};
use osprey_receivers::jaeger::thrift_reader::Wire;
use osprey_receivers::jaeger::translate::{to_otlp, Flavor};
use std::sync::Once;

static HOOK: Once = Once::new();

/// Wraps the installed (aborting) panic hook so that panics raised in the `thrift` crate
/// return to the decoder's `catch_unwind` instead.
fn let_thrift_crate_panics_through() {
    HOOK.call_once(|| {
        let inner = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_thrift_crate = info.location().is_some_and(|l| {
                let file = l.file().replace('\\', "/");
                file.contains("/thrift-0.") && !file.contains("osprey")
            });
            if !in_thrift_crate {
                inner(info);
            }
        }));
    });
}

fn translate(batch: osprey_receivers::jaeger::model::Batch) {
    let mut req = to_otlp(batch, Flavor::Thrift);
    sanitize_request(&mut req, &Limits::default());
}

fuzz_target!(|data: &[u8]| {
    let_thrift_crate_panics_through();
    for wire in [Wire::Compact, Wire::Binary] {
        if let Ok(batch) = decode_batch(data, wire) {
            translate(batch);
        }
        if let Ok(AgentMessage::EmitBatch(Some(batch))) = decode_agent_message(data, wire) {
            translate(batch);
        }
    }
});
