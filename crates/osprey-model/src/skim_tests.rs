//! Property-style tests: for generated requests and random corruptions of their encodings, the
//! skim's verdict agrees with prost's, its span count with the decoded request, and `clean`
//! with "sanitize_request changes nothing".

use super::*;
use crate::otlp::common::v1::{any_value, AnyValue, ArrayValue, KeyValue, KeyValueList};
use crate::otlp::resource::v1::Resource;
use crate::otlp::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use crate::sanitize_request;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, per_thousand: u64) -> bool {
        self.below(1000) < per_thousand
    }
}

const LIMITS: Limits = Limits {
    max_attributes: 6,
    max_events: 3,
    max_links: 3,
};

fn id(rng: &mut Rng, len: usize) -> Vec<u8> {
    let n = if rng.chance(30) {
        rng.below(20) as usize
    } else {
        len
    };
    if rng.chance(30) {
        return vec![0; n];
    }
    (0..n).map(|_| rng.next() as u8 | 1).collect()
}

fn value(rng: &mut Rng, depth: u32) -> AnyValue {
    use any_value::Value;
    let v = match rng.below(if depth > 3 { 5 } else { 8 }) {
        0 => Some(Value::StringValue(format!("v{}", rng.below(100)))),
        1 => Some(Value::BoolValue(rng.chance(500))),
        2 => Some(Value::IntValue(rng.next() as i64)),
        3 => Some(Value::DoubleValue(rng.below(1000) as f64 / 7.0)),
        4 => None,
        5 => Some(Value::BytesValue(vec![0xff, 0x00, 0x80])),
        6 => Some(Value::ArrayValue(ArrayValue {
            values: (0..rng.below(3)).map(|_| value(rng, depth + 1)).collect(),
        })),
        _ => Some(Value::KvlistValue(KeyValueList {
            values: attrs(rng, 3, depth + 1),
        })),
    };
    AnyValue { value: v }
}

fn attrs(rng: &mut Rng, max: u64, depth: u32) -> Vec<KeyValue> {
    (0..rng.below(max + 1))
        .map(|i| KeyValue {
            key: format!("k{i}"),
            value: rng.chance(900).then(|| value(rng, depth)),
            key_strindex: if rng.chance(20) { 3 } else { 0 },
        })
        .collect()
}

fn random_span(rng: &mut Rng) -> Span {
    let start = match rng.below(20) {
        0 => 0,
        1 => u64::MAX - rng.below(3),
        _ => 1_700_000_000_000_000_000 + rng.below(1_000_000),
    };
    let end = match rng.below(12) {
        0 => 0,
        1 => start.saturating_sub(5),
        2 => i64::MAX as u64 + 1,
        _ => start.saturating_add(rng.below(1000)),
    };
    Span {
        trace_id: id(rng, 16),
        span_id: id(rng, 8),
        parent_span_id: if rng.chance(400) { vec![] } else { id(rng, 8) },
        trace_state: if rng.chance(100) {
            "a=b".into()
        } else {
            String::new()
        },
        name: format!("op{}", rng.below(9)),
        kind: rng.below(6) as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: attrs(rng, 7, 0),
        dropped_attributes_count: rng.below(2) as u32,
        events: (0..rng.below(5))
            .map(|i| span::Event {
                time_unix_nano: start + i,
                name: "ev".into(),
                attributes: attrs(rng, 7, 0),
                dropped_attributes_count: 0,
            })
            .collect(),
        links: (0..rng.below(5))
            .map(|_| span::Link {
                trace_id: id(rng, 16),
                span_id: id(rng, 8),
                trace_state: String::new(),
                attributes: attrs(rng, 7, 0),
                dropped_attributes_count: 0,
                flags: rng.below(3) as u32,
            })
            .collect(),
        dropped_events_count: 0,
        dropped_links_count: 0,
        status: rng.chance(500).then(|| Status {
            message: "m".into(),
            code: rng.below(3) as i32,
        }),
        flags: rng.below(512) as u32,
    }
}

fn random_request(rng: &mut Rng) -> TraceRequest {
    // Mostly well-formed spans, so that clean requests are common too.
    let good = rng.chance(500);
    TraceRequest {
        resource_spans: (0..rng.below(3) + u64::from(good))
            .map(|_| ResourceSpans {
                resource: rng.chance(800).then(|| Resource {
                    attributes: attrs(rng, 7, 0),
                    dropped_attributes_count: 0,
                    entity_refs: vec![],
                }),
                scope_spans: (0..rng.below(3) + u64::from(good))
                    .map(|_| ScopeSpans {
                        scope: None,
                        spans: (0..rng.below(4) + u64::from(good))
                            .map(|_| {
                                let mut s = random_span(rng);
                                if good {
                                    sanitize_one(&mut s);
                                }
                                s
                            })
                            .collect(),
                        schema_url: String::new(),
                    })
                    .collect(),
                schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
            })
            .collect(),
    }
}

/// Makes a span pass sanitize unchanged.
fn sanitize_one(s: &mut Span) {
    s.trace_id = vec![7; 16];
    s.span_id = vec![9; 8];
    s.parent_span_id.clear();
    s.start_time_unix_nano = 1_700_000_000_000_000_000;
    s.end_time_unix_nano = s.start_time_unix_nano + 10;
    s.attributes.truncate(LIMITS.max_attributes);
    s.events.truncate(LIMITS.max_events);
    for e in &mut s.events {
        e.attributes.truncate(LIMITS.max_attributes);
    }
    s.links.clear();
}

/// The skim's verdict against prost and sanitize, for any bytes.
fn check(bytes: &[u8]) -> Option<Skim> {
    check_against_prost(bytes, &LIMITS).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn generated_requests_agree_with_prost_and_sanitize() {
    let mut rng = Rng(0x5eed);
    let (mut clean, mut dirty) = (0, 0);
    for _ in 0..3000 {
        let req = random_request(&mut rng);
        let bytes = encode(&req);
        let s = check(&bytes).expect("a prost encoding decodes");
        // prost writes no duplicates and no unknown fields: clean is exact here.
        let mut copy = req.clone();
        let report = sanitize_request(&mut copy, &LIMITS);
        assert_eq!(s.clean, copy == req && report.rejected == 0, "{req:?}");
        if s.clean {
            clean += 1;
        } else {
            dirty += 1;
        }
    }
    assert!(clean > 300 && dirty > 300, "clean {clean}, dirty {dirty}");
}

#[test]
fn corrupted_encodings_agree_with_prost() {
    let mut rng = Rng(42);
    let (mut ok, mut bad) = (0, 0);
    for _ in 0..20000 {
        let req = random_request(&mut rng);
        let mut bytes = encode(&req);
        if bytes.is_empty() {
            continue;
        }
        match rng.below(5) {
            0 => bytes.truncate(rng.below(bytes.len() as u64) as usize),
            1 => {
                for _ in 0..=rng.below(3) {
                    let i = rng.below(bytes.len() as u64) as usize;
                    bytes[i] ^= 1 << rng.below(8);
                }
            }
            2 => {
                let i = rng.below(bytes.len() as u64) as usize;
                bytes[i] = rng.next() as u8;
            }
            3 => {
                let i = rng.below(bytes.len() as u64 + 1) as usize;
                let junk: Vec<u8> = (0..rng.below(4) + 1).map(|_| rng.next() as u8).collect();
                bytes.splice(i..i, junk);
            }
            _ => {
                // Invalid UTF-8 inside some string: replace a letter of a key or name.
                if let Some(i) = bytes.iter().position(|&b| b == b'k' || b == b'o') {
                    bytes[i] = 0xc3;
                }
            }
        }
        match check(&bytes) {
            Some(_) => ok += 1,
            None => bad += 1,
        }
    }
    assert!(ok > 1000 && bad > 1000, "ok {ok}, bad {bad}");
}

fn good_span() -> Span {
    let mut s = Span::default();
    sanitize_one(&mut s);
    s
}

fn one_span_request(s: Span) -> Vec<u8> {
    encode(&TraceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![s],
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

/// The encoding of a request whose one span carries `extra` appended to its own bytes.
fn with_span_bytes(extra: &[u8]) -> Vec<u8> {
    let mut span = encode_msg(&good_span());
    span.extend_from_slice(extra);
    let mut scope = vec![0x12];
    prost::encoding::encode_varint(span.len() as u64, &mut scope);
    scope.extend_from_slice(&span);
    let mut rs = vec![0x12];
    prost::encoding::encode_varint(scope.len() as u64, &mut rs);
    rs.extend_from_slice(&scope);
    let mut out = vec![0x0a];
    prost::encoding::encode_varint(rs.len() as u64, &mut out);
    out.extend_from_slice(&rs);
    out
}

fn encode_msg<M: prost::Message>(m: &M) -> Vec<u8> {
    m.encode_to_vec()
}

#[test]
fn hand_made_edge_cases() {
    let clean = check(&one_span_request(good_span())).unwrap();
    assert_eq!((clean.spans, clean.clean), (1, true));
    assert_eq!(check(&[]).map(|s| (s.spans, s.clean)), Some((0, true)));
    // A second span id: prost keeps the last; not clean.
    let dup = check(&with_span_bytes(&[0x12, 8, 1, 2, 3, 4, 5, 6, 7, 8])).unwrap();
    assert!(!dup.clean);
    // An unknown varint field and an unknown group: decodable, not clean.
    assert!(!check(&with_span_bytes(&[0xf8, 0x01, 5])).unwrap().clean);
    assert!(
        !check(&with_span_bytes(&[0xfb, 0x01, 0x08, 1, 0xfc, 0x01]))
            .unwrap()
            .clean
    );
    // A group closed by the wrong tag, an end group alone, a wrong wire type for a known field.
    assert!(check(&with_span_bytes(&[0xfb, 0x01, 0x08, 1, 0x84, 0x02])).is_none());
    assert!(check(&with_span_bytes(&[0xfc, 0x01])).is_none());
    assert!(check(&with_span_bytes(&[0x28, 1])).is_none());
    // Invalid UTF-8 in the name; wire types 6 and 7; tag 0; a key over u32.
    assert!(check(&with_span_bytes(&[0x2a, 2, 0xc3, 0x28])).is_none());
    assert!(check(&with_span_bytes(&[0xfe, 0x01])).is_none());
    assert!(check(&with_span_bytes(&[0xff, 0x01])).is_none());
    assert!(check(&with_span_bytes(&[0x00, 0x00])).is_none());
    assert!(check(&with_span_bytes(&[0x80, 0x80, 0x80, 0x80, 0x10, 0x00])).is_none());
    // A ten-byte varint whose last byte overflows u64, and one that does not.
    let mut over = vec![0xf8, 0x01];
    over.extend_from_slice(&[0xff; 9]);
    let mut fits = over.clone();
    over.push(0x02);
    fits.push(0x01);
    assert!(check(&with_span_bytes(&over)).is_none());
    assert!(check(&with_span_bytes(&fits)).is_some());
    // Fixed fields cut short.
    assert!(check(&with_span_bytes(&[0x39, 1, 2, 3])).is_none());
}

/// An attribute value nested `depth` arrays deep.
fn nested(depth: usize) -> Vec<u8> {
    let mut v = AnyValue {
        value: Some(any_value::Value::IntValue(1)),
    };
    for _ in 0..depth {
        v = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![v] })),
        };
    }
    let mut s = good_span();
    s.attributes = vec![KeyValue {
        key: "deep".into(),
        value: Some(v),
        key_strindex: 0,
    }];
    one_span_request(s)
}

#[test]
fn recursion_limit_matches_prost() {
    let mut verdicts = vec![];
    for depth in 40..52 {
        let ok = check(&nested(depth)).is_some();
        verdicts.push(ok);
    }
    // The limit falls inside the range: both verdicts occur, and only once each way.
    assert!(verdicts.first() == Some(&true) && verdicts.last() == Some(&false));
    assert_eq!(verdicts.windows(2).filter(|w| w[0] != w[1]).count(), 1);
    // Unknown groups count against the limit too.
    for depth in 90..100 {
        let mut g = vec![];
        for _ in 0..depth {
            g.extend_from_slice(&[0xfb, 0x01]);
        }
        for _ in 0..depth {
            g.extend_from_slice(&[0xfc, 0x01]);
        }
        check(&with_span_bytes(&g));
    }
}

#[test]
fn limits_and_repairs_make_it_unclean() {
    let mut s = good_span();
    s.parent_span_id = vec![0; 8];
    assert!(!check(&one_span_request(s)).unwrap().clean);
    let mut s = good_span();
    s.end_time_unix_nano = 0;
    assert!(!check(&one_span_request(s)).unwrap().clean);
    let mut s = good_span();
    s.attributes = Vec::new();
    s.attributes.extend((0..7).map(|i| KeyValue {
        key: format!("a{i}"),
        ..Default::default()
    }));
    assert!(!check(&one_span_request(s)).unwrap().clean);
    let empty_scope = encode(&TraceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans::default()],
            ..Default::default()
        }],
    });
    assert!(!check(&empty_scope).unwrap().clean);
}

#[test]
fn ascii_agrees_with_std_at_every_length_and_position() {
    for len in 0..40 {
        let plain = vec![b'a'; len];
        assert!(super::ascii(&plain), "len {len}");
        for at in 0..len {
            let mut s = plain.clone();
            s[at] = 0x80;
            assert!(!super::ascii(&s), "len {len}, high byte at {at}");
            assert_eq!(super::ascii(&s), s.is_ascii());
        }
    }
}
