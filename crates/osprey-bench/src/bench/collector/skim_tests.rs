//! The collector fast path's skim ([`osprey_model::skim`]) on the benchmark's own requests:
//! realistic generated bodies are clean and counted right, corruptions of them get prost's
//! verdict, and (ignored by default) how fast a skim is next to a prost decode.

use super::bodies;
use osprey_model::skim::{decode, skim};
use osprey_model::Limits;
use std::time::Instant;

#[test]
fn generated_bodies_are_clean_and_counted() {
    for body in bodies(200, 8).unwrap() {
        let s = skim(&body, &Limits::default()).unwrap();
        let req = decode(&body).unwrap();
        assert_eq!(s.spans, osprey_model::span_count(&req));
        assert!(s.clean, "a generated request should need no repair");
    }
}

#[test]
fn corrupted_bodies_get_prosts_verdict() {
    let body = bodies(50, 1).unwrap().remove(0).to_vec();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..4000 {
        let mut b = body.clone();
        if round % 3 == 0 {
            b.truncate((next() % b.len() as u64) as usize);
        } else {
            let i = (next() % b.len() as u64) as usize;
            b[i] ^= 1 << (next() % 8);
        }
        let skimmed = skim(&b, &Limits::default());
        let decoded = decode(&b);
        assert_eq!(
            skimmed.is_ok(),
            decoded.is_ok(),
            "round {round}: {skimmed:?}"
        );
        if let (Ok(s), Ok(r)) = (skimmed, decoded) {
            assert_eq!(s.spans, osprey_model::span_count(&r));
        }
    }
}

/// `cargo test --release -p osprey-bench skim_speed -- --ignored --nocapture`
#[test]
#[ignore]
fn skim_speed() {
    let bodies = bodies(500, 16).unwrap();
    let bytes: usize = bodies.iter().map(|b| b.len()).sum();
    let spans: usize = bodies
        .iter()
        .map(|b| skim(b, &Limits::default()).unwrap().spans)
        .sum();
    // Best of many rounds: the machine is shared, the minimum is the least disturbed.
    let rounds = 40;
    let best = |f: &dyn Fn(&[u8])| {
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                for b in &bodies {
                    f(b);
                }
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min)
    };
    let skim_s = best(&|b| {
        std::hint::black_box(skim(b, &Limits::default()).unwrap());
    });
    let decode_s = best(&|b| {
        std::hint::black_box(decode(b).unwrap());
    });
    let mb = bytes as f64 / 1e6;
    let n = spans as f64;
    eprintln!(
        "{} bytes/span; skim {:.0} MB/s = {:.2}M spans/s; prost decode {:.0} MB/s = {:.2}M spans/s",
        bytes / spans,
        mb / skim_s,
        n / skim_s / 1e6,
        mb / decode_s,
        n / decode_s / 1e6
    );
}
