//! A wire-level walk over an encoded `ExportTraceServiceRequest` that allocates nothing.
//!
//! [`skim`] answers, without decoding into Rust structs, the three questions the collector's
//! fast path needs: would prost decode these bytes (the same accept/reject verdict, including
//! UTF-8 checks and prost's recursion limit of 100), how many spans they hold, and are they
//! *clean*: would [`crate::sanitize_request`] leave the request exactly as it is (nothing
//! rejected, nothing repaired or truncated). A clean request can travel as its original bytes;
//! anything unusual (a singular field sent twice, an unknown field, an empty resource or scope
//! group) is reported as not clean so that it takes the decoding path.
//!
//! The schema is the OTLP trace schema of `opentelemetry-proto` 0.33 (including the
//! development fields `Resource.entity_refs`, `KeyValue.key_strindex`,
//! `AnyValue.string_value_strindex` and `Link.flags`).

use crate::{Limits, TraceRequest};
use std::cell::Cell;

/// What a skim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skim {
    /// Spans in the request (all of them, clean or not).
    pub spans: usize,
    /// `sanitize_request` would change nothing and reject nothing.
    pub clean: bool,
    /// The smallest `start_time_unix_nano` of any span (`u64::MAX` without spans).
    pub oldest_start: u64,
}

/// Why prost would refuse the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid ExportTraceServiceRequest encoding at byte {offset}: {reason}")]
pub struct SkimError {
    pub offset: usize,
    pub reason: &'static str,
}

/// Decodes `bytes` with prost (what the slow path and materializing use).
pub fn decode(bytes: &[u8]) -> Result<TraceRequest, prost::DecodeError> {
    <TraceRequest as prost::Message>::decode(bytes)
}

/// Encodes a request with prost.
pub fn encode(request: &TraceRequest) -> Vec<u8> {
    prost::Message::encode_to_vec(request)
}

/// Walks `bytes` as an `ExportTraceServiceRequest`; see the module documentation.
pub fn skim(bytes: &[u8], limits: &Limits) -> Result<Skim, SkimError> {
    let mut w = Walk {
        base: bytes.as_ptr() as usize,
        failure: Cell::new((0, "")),
        limits,
        spans: 0,
        clean: true,
        oldest: u64::MAX,
    };
    if w.request(bytes).is_err() {
        let (offset, reason) = w.failure.get();
        return Err(SkimError { offset, reason });
    }
    Ok(Skim {
        spans: w.spans,
        clean: w.clean,
        oldest_start: w.oldest,
    })
}

/// prost's `RECURSION_LIMIT`.
const RECURSION_LIMIT: u32 = 100;

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const SGROUP: u8 = 3;
const EGROUP: u8 = 4;
const I32: u8 = 5;

struct Reader<'a> {
    b: &'a [u8],
}

/// A failed walk; [`Walk::failure`] says where and why.
struct Fail;

struct Walk<'l> {
    base: usize,
    failure: Cell<(usize, &'static str)>,
    limits: &'l Limits,
    spans: usize,
    clean: bool,
    oldest: u64,
}

/// Marks a singular field as seen; a second occurrence makes the request not clean.
/// Whether `s` is ASCII. Most strings here are short (keys, names, values): checked eight bytes
/// at a time inline rather than through a call to `<[u8]>::is_ascii`.
#[inline(always)]
pub(crate) fn ascii(s: &[u8]) -> bool {
    if s.len() > 32 {
        return s.is_ascii();
    }
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = s.chunks_exact(8);
    let mut acc = 0u64;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        acc |= u64::from_le_bytes(w);
    }
    let mut tail = 0u8;
    for &b in chunks.remainder() {
        tail |= b;
    }
    acc & HIGH == 0 && tail < 0x80
}

#[inline(always)]
fn once(seen: &mut u32, tag: u32, clean: &mut bool) {
    let bit = 1u32 << (tag & 31);
    if *seen & bit != 0 {
        *clean = false;
    }
    *seen |= bit;
}

impl Walk<'_> {
    /// Records where and why the walk failed (kept out of the hot `Result`s).
    #[cold]
    #[inline(never)]
    fn err(&self, r: &Reader<'_>, reason: &'static str) -> Fail {
        let offset = (r.b.as_ptr() as usize).saturating_sub(self.base);
        self.failure.set((offset, reason));
        Fail
    }

    #[inline(always)]
    fn varint(&self, r: &mut Reader<'_>) -> Result<u64, Fail> {
        let b = r.b;
        if let Some(&first) = b.first() {
            if first < 0x80 {
                r.b = &b[1..];
                return Ok(u64::from(first));
            }
        }
        let mut value = 0u64;
        for (i, &byte) in b.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                if i == 9 && byte > 1 {
                    break;
                }
                r.b = &b[i + 1..];
                return Ok(value);
            }
        }
        Err(self.err(r, "invalid varint"))
    }

    #[inline(always)]
    fn key(&self, r: &mut Reader<'_>) -> Result<(u32, u8), Fail> {
        let key = self.varint(r)?;
        if key > u64::from(u32::MAX) {
            return Err(self.err(r, "invalid key value"));
        }
        let wt = (key & 7) as u8;
        if wt > 5 {
            return Err(self.err(r, "invalid wire type value"));
        }
        let tag = (key >> 3) as u32;
        if tag == 0 {
            return Err(self.err(r, "invalid tag value: 0"));
        }
        Ok((tag, wt))
    }

    #[inline(always)]
    fn take<'a>(&self, r: &mut Reader<'a>, n: u64) -> Result<&'a [u8], Fail> {
        if n > r.b.len() as u64 {
            return Err(self.err(r, "buffer underflow"));
        }
        let (head, tail) = r.b.split_at(n as usize);
        r.b = tail;
        Ok(head)
    }

    #[inline(always)]
    fn wire(&self, r: &Reader<'_>, wt: u8, want: u8) -> Result<(), Fail> {
        if wt == want {
            Ok(())
        } else {
            Err(self.err(r, "unexpected wire type"))
        }
    }

    /// A length-delimited field's bytes.
    #[inline(always)]
    fn bytes<'a>(&self, r: &mut Reader<'a>, wt: u8) -> Result<&'a [u8], Fail> {
        self.wire(r, wt, LEN)?;
        let n = self.varint(r)?;
        self.take(r, n)
    }

    #[inline(always)]
    fn string(&self, r: &mut Reader<'_>, wt: u8) -> Result<(), Fail> {
        let s = self.bytes(r, wt)?;
        if ascii(s) || std::str::from_utf8(s).is_ok() {
            Ok(())
        } else {
            Err(self.err(r, "invalid string value: data is not UTF-8 encoded"))
        }
    }

    /// A nested message at recursion budget `ctx` (its fields are walked with `ctx - 1`).
    #[inline(always)]
    fn message<'a>(&self, r: &mut Reader<'a>, wt: u8, ctx: u32) -> Result<&'a [u8], Fail> {
        self.wire(r, wt, LEN)?;
        if ctx == 0 {
            return Err(self.err(r, "recursion limit reached"));
        }
        let n = self.varint(r)?;
        self.take(r, n)
    }

    #[inline(always)]
    fn scalar(&self, r: &mut Reader<'_>, wt: u8, want: u8) -> Result<u64, Fail> {
        self.wire(r, wt, want)?;
        match want {
            VARINT => self.varint(r),
            I64 => {
                let b = self.take(r, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Ok(u64::from_le_bytes(a))
            }
            _ => {
                let b = self.take(r, 4)?;
                let mut a = [0u8; 4];
                a.copy_from_slice(b);
                Ok(u64::from(u32::from_le_bytes(a)))
            }
        }
    }

    /// Skips an unknown field as prost does (groups included); marks the request not clean.
    fn unknown(&mut self, r: &mut Reader<'_>, wt: u8, tag: u32, ctx: u32) -> Result<(), Fail> {
        self.clean = false;
        self.skip(r, wt, tag, ctx)
    }

    fn skip(&self, r: &mut Reader<'_>, wt: u8, tag: u32, ctx: u32) -> Result<(), Fail> {
        if ctx == 0 {
            return Err(self.err(r, "recursion limit reached"));
        }
        match wt {
            VARINT => self.varint(r).map(|_| ()),
            I64 => self.take(r, 8).map(|_| ()),
            I32 => self.take(r, 4).map(|_| ()),
            LEN => {
                let n = self.varint(r)?;
                self.take(r, n).map(|_| ())
            }
            SGROUP => loop {
                let (inner_tag, inner_wt) = self.key(r)?;
                if inner_wt == EGROUP {
                    if inner_tag != tag {
                        return Err(self.err(r, "unexpected end group tag"));
                    }
                    return Ok(());
                }
                self.skip(r, inner_wt, inner_tag, ctx - 1)?;
            },
            _ => Err(self.err(r, "unexpected end group tag")),
        }
    }

    fn request(&mut self, b: &[u8]) -> Result<(), Fail> {
        let mut r = Reader { b };
        while !r.b.is_empty() {
            let (tag, wt) = self.key(&mut r)?;
            if tag == 1 {
                let sub = self.message(&mut r, wt, RECURSION_LIMIT)?;
                self.resource_spans(sub, RECURSION_LIMIT - 1)?;
            } else {
                self.unknown(&mut r, wt, tag, RECURSION_LIMIT)?;
            }
        }
        Ok(())
    }

    fn resource_spans(&mut self, b: &[u8], ctx: u32) -> Result<(), Fail> {
        let mut r = Reader { b };
        let (mut seen, mut groups) = (0u32, 0usize);
        while !r.b.is_empty() {
            let (tag, wt) = self.key(&mut r)?;
            match tag {
                1 => {
                    once(&mut seen, tag, &mut self.clean);
                    let sub = self.message(&mut r, wt, ctx)?;
                    self.resource(sub, ctx - 1)?;
                }
                2 => {
                    let sub = self.message(&mut r, wt, ctx)?;
                    self.scope_spans(sub, ctx - 1)?;
                    groups += 1;
                }
                3 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.string(&mut r, wt)?;
                }
                _ => self.unknown(&mut r, wt, tag, ctx)?,
            }
        }
        // sanitize_request drops a resource without scope groups.
        if groups == 0 {
            self.clean = false;
        }
        Ok(())
    }

    fn resource(&mut self, b: &[u8], ctx: u32) -> Result<(), Fail> {
        let mut r = Reader { b };
        let (mut seen, mut attrs) = (0u32, 0usize);
        while !r.b.is_empty() {
            let (tag, wt) = self.key(&mut r)?;
            match tag {
                1 => {
                    let sub = self.message(&mut r, wt, ctx)?;
                    self.key_value(sub, ctx - 1)?;
                    attrs += 1;
                }
                2 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.scalar(&mut r, wt, VARINT)?;
                }
                3 => {
                    let sub = self.message(&mut r, wt, ctx)?;
                    self.entity_ref(sub, ctx - 1)?;
                }
                _ => self.unknown(&mut r, wt, tag, ctx)?,
            }
        }
        if attrs > self.limits.max_attributes {
            self.clean = false;
        }
        Ok(())
    }

    fn entity_ref(&mut self, b: &[u8], ctx: u32) -> Result<(), Fail> {
        let mut r = Reader { b };
        let mut seen = 0u32;
        while !r.b.is_empty() {
            let (tag, wt) = self.key(&mut r)?;
            match tag {
                1 | 2 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.string(&mut r, wt)?;
                }
                3 | 4 => self.string(&mut r, wt)?,
                _ => self.unknown(&mut r, wt, tag, ctx)?,
            }
        }
        Ok(())
    }

    fn scope_spans(&mut self, b: &[u8], ctx: u32) -> Result<(), Fail> {
        let mut r = Reader { b };
        let (mut seen, mut spans) = (0u32, 0usize);
        while !r.b.is_empty() {
            let (tag, wt) = self.key(&mut r)?;
            match tag {
                1 => {
                    once(&mut seen, tag, &mut self.clean);
                    let sub = self.message(&mut r, wt, ctx)?;
                    self.scope(sub, ctx - 1)?;
                }
                2 => {
                    let sub = self.message(&mut r, wt, ctx)?;
                    self.span(sub, ctx - 1)?;
                    spans += 1;
                }
                3 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.string(&mut r, wt)?;
                }
                _ => self.unknown(&mut r, wt, tag, ctx)?,
            }
        }
        // sanitize_request drops a scope group without spans.
        if spans == 0 {
            self.clean = false;
        }
        self.spans += spans;
        Ok(())
    }

    fn scope(&mut self, b: &[u8], ctx: u32) -> Result<(), Fail> {
        let mut r = Reader { b };
        let mut seen = 0u32;
        while !r.b.is_empty() {
            let (tag, wt) = self.key(&mut r)?;
            match tag {
                1 | 2 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.string(&mut r, wt)?;
                }
                3 => {
                    let sub = self.message(&mut r, wt, ctx)?;
                    self.key_value(sub, ctx - 1)?;
                }
                4 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.scalar(&mut r, wt, VARINT)?;
                }
                _ => self.unknown(&mut r, wt, tag, ctx)?,
            }
        }
        Ok(())
    }
}

#[path = "skim_span.rs"]
mod span;

#[path = "skim_check.rs"]
mod check;
pub use check::check_against_prost;

#[cfg(test)]
#[path = "skim_tests.rs"]
mod tests;
