//! The span level of [`super::skim`]: `Span`, its events, links and status, and the attribute
//! messages (`KeyValue`, `AnyValue`, `ArrayValue`, `KeyValueList`) used everywhere.
//!
//! The clean checks mirror `sanitize_request`: ids of the right length and not all zero, a
//! start time, an end time neither zero nor before the start, times within `i64`, an empty or
//! non-zero 8-byte parent id, attribute/event/link counts within the limits, well-formed link
//! ids.

use super::{once, Fail, Reader, Walk, I32, I64, VARINT};

fn nonzero(b: &[u8]) -> bool {
    b.iter().any(|&x| x != 0)
}

impl Walk<'_> {
    pub(super) fn span(&mut self, b: &[u8], ctx: u32) -> Result<(), Fail> {
        let mut r = Reader { b };
        let mut seen = 0u32;
        let (mut trace_ok, mut span_ok, mut parent_ok) = (false, false, true);
        let (mut start, mut end) = (0u64, 0u64);
        let (mut attrs, mut events, mut links) = (0usize, 0usize, 0usize);
        while !r.b.is_empty() {
            let (tag, wt) = self.key(&mut r)?;
            // Attributes are most of a span: keep them off the jump table.
            if tag == 9 {
                let sub = self.message(&mut r, wt, ctx)?;
                self.key_value(sub, ctx - 1)?;
                attrs += 1;
                continue;
            }
            match tag {
                1 => {
                    once(&mut seen, tag, &mut self.clean);
                    let id = self.bytes(&mut r, wt)?;
                    trace_ok = id.len() == 16 && nonzero(id);
                }
                2 => {
                    once(&mut seen, tag, &mut self.clean);
                    let id = self.bytes(&mut r, wt)?;
                    span_ok = id.len() == 8 && nonzero(id);
                }
                3 | 5 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.string(&mut r, wt)?;
                }
                4 => {
                    once(&mut seen, tag, &mut self.clean);
                    let id = self.bytes(&mut r, wt)?;
                    parent_ok = id.is_empty() || (id.len() == 8 && nonzero(id));
                }
                6 | 10 | 12 | 14 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.scalar(&mut r, wt, VARINT)?;
                }
                7 => {
                    once(&mut seen, tag, &mut self.clean);
                    start = self.scalar(&mut r, wt, I64)?;
                }
                8 => {
                    once(&mut seen, tag, &mut self.clean);
                    end = self.scalar(&mut r, wt, I64)?;
                }
                11 => {
                    let sub = self.message(&mut r, wt, ctx)?;
                    self.event(sub, ctx - 1)?;
                    events += 1;
                }
                13 => {
                    let sub = self.message(&mut r, wt, ctx)?;
                    self.link(sub, ctx - 1)?;
                    links += 1;
                }
                15 => {
                    once(&mut seen, tag, &mut self.clean);
                    let sub = self.message(&mut r, wt, ctx)?;
                    self.status(sub, ctx - 1)?;
                }
                16 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.scalar(&mut r, wt, I32)?;
                }
                _ => self.unknown(&mut r, wt, tag, ctx)?,
            }
        }
        let max_time = i64::MAX as u64;
        let limits = self.limits;
        if !(trace_ok
            && span_ok
            && parent_ok
            && start != 0
            && start <= max_time
            && end <= max_time
            && end >= start
            && attrs <= limits.max_attributes
            && events <= limits.max_events
            && links <= limits.max_links)
        {
            self.clean = false;
        }
        self.oldest = self.oldest.min(start);
        Ok(())
    }

    fn event(&mut self, b: &[u8], ctx: u32) -> Result<(), Fail> {
        let mut r = Reader { b };
        let (mut seen, mut attrs) = (0u32, 0usize);
        while !r.b.is_empty() {
            let (tag, wt) = self.key(&mut r)?;
            match tag {
                1 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.scalar(&mut r, wt, I64)?;
                }
                2 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.string(&mut r, wt)?;
                }
                3 => {
                    let sub = self.message(&mut r, wt, ctx)?;
                    self.key_value(sub, ctx - 1)?;
                    attrs += 1;
                }
                4 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.scalar(&mut r, wt, VARINT)?;
                }
                _ => self.unknown(&mut r, wt, tag, ctx)?,
            }
        }
        if attrs > self.limits.max_attributes {
            self.clean = false;
        }
        Ok(())
    }

    fn link(&mut self, b: &[u8], ctx: u32) -> Result<(), Fail> {
        let mut r = Reader { b };
        let (mut seen, mut attrs) = (0u32, 0usize);
        let (mut trace_ok, mut span_ok) = (false, false);
        while !r.b.is_empty() {
            let (tag, wt) = self.key(&mut r)?;
            match tag {
                1 => {
                    once(&mut seen, tag, &mut self.clean);
                    trace_ok = self.bytes(&mut r, wt)?.len() == 16;
                }
                2 => {
                    once(&mut seen, tag, &mut self.clean);
                    span_ok = self.bytes(&mut r, wt)?.len() == 8;
                }
                3 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.string(&mut r, wt)?;
                }
                4 => {
                    let sub = self.message(&mut r, wt, ctx)?;
                    self.key_value(sub, ctx - 1)?;
                    attrs += 1;
                }
                5 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.scalar(&mut r, wt, VARINT)?;
                }
                6 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.scalar(&mut r, wt, I32)?;
                }
                _ => self.unknown(&mut r, wt, tag, ctx)?,
            }
        }
        if !(trace_ok && span_ok) || attrs > self.limits.max_attributes {
            self.clean = false;
        }
        Ok(())
    }

    fn status(&mut self, b: &[u8], ctx: u32) -> Result<(), Fail> {
        let mut r = Reader { b };
        let mut seen = 0u32;
        while !r.b.is_empty() {
            let (tag, wt) = self.key(&mut r)?;
            match tag {
                2 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.string(&mut r, wt)?;
                }
                3 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.scalar(&mut r, wt, VARINT)?;
                }
                _ => self.unknown(&mut r, wt, tag, ctx)?,
            }
        }
        Ok(())
    }

    /// A `KeyValue`; the common form (a short key, then a short value) is checked inline.
    pub(super) fn key_value(&mut self, b: &[u8], ctx: u32) -> Result<(), Fail> {
        if let [0x0a, n, rest @ ..] = b {
            let n = usize::from(*n);
            if n < 0x80 && rest.len() > n + 1 {
                let (key, value) = rest.split_at(n);
                if let [0x12, m, any @ ..] = value {
                    if *m < 0x80 && any.len() == usize::from(*m) && ctx > 0 && super::ascii(key) {
                        return self.any_value(any, ctx - 1);
                    }
                }
            }
        }
        self.key_value_slow(b, ctx)
    }

    #[inline(never)]
    fn key_value_slow(&mut self, b: &[u8], ctx: u32) -> Result<(), Fail> {
        let mut r = Reader { b };
        let mut seen = 0u32;
        while !r.b.is_empty() {
            let (tag, wt) = self.key(&mut r)?;
            match tag {
                1 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.string(&mut r, wt)?;
                }
                2 => {
                    once(&mut seen, tag, &mut self.clean);
                    let sub = self.message(&mut r, wt, ctx)?;
                    self.any_value(sub, ctx - 1)?;
                }
                3 => {
                    once(&mut seen, tag, &mut self.clean);
                    self.scalar(&mut r, wt, VARINT)?;
                }
                _ => self.unknown(&mut r, wt, tag, ctx)?,
            }
        }
        Ok(())
    }

    /// An `AnyValue`; the common one-scalar forms are checked inline.
    #[inline(always)]
    fn any_value(&mut self, b: &[u8], ctx: u32) -> Result<(), Fail> {
        match b {
            // string_value, short: key, length, text.
            [0x0a, n, text @ ..]
                if *n < 0x80
                    && text.len() == usize::from(*n)
                    && (super::ascii(text) || std::str::from_utf8(text).is_ok()) =>
            {
                return Ok(());
            }
            // bool_value, int_value, string_value_strindex: one varint up to the end.
            [0x10 | 0x18 | 0x40, rest @ ..] => {
                let mut r = Reader { b: rest };
                if self.varint(&mut r).is_ok() && r.b.is_empty() {
                    return Ok(());
                }
            }
            // double_value.
            [0x21, rest @ ..] if rest.len() == 8 => return Ok(()),
            _ => {}
        }
        self.any_value_slow(b, ctx)
    }

    #[inline(never)]
    fn any_value_slow(&mut self, b: &[u8], ctx: u32) -> Result<(), Fail> {
        let mut r = Reader { b };
        let mut values = 0u32;
        while !r.b.is_empty() {
            let (tag, wt) = self.key(&mut r)?;
            match tag {
                1 => self.string(&mut r, wt)?,
                2 | 3 | 8 => {
                    self.scalar(&mut r, wt, VARINT)?;
                }
                4 => {
                    self.scalar(&mut r, wt, I64)?;
                }
                5 | 6 => {
                    let sub = self.message(&mut r, wt, ctx)?;
                    // ArrayValue and KeyValueList both hold one repeated field 1.
                    self.list(sub, ctx - 1, tag == 6)?;
                }
                7 => {
                    self.bytes(&mut r, wt)?;
                }
                _ => {
                    self.unknown(&mut r, wt, tag, ctx)?;
                    continue;
                }
            }
            values += 1;
        }
        // A oneof sent twice keeps only its last value when decoded.
        if values > 1 {
            self.clean = false;
        }
        Ok(())
    }

    /// `ArrayValue` (`kv == false`: repeated `AnyValue`) or `KeyValueList` (repeated `KeyValue`).
    fn list(&mut self, b: &[u8], ctx: u32, kv: bool) -> Result<(), Fail> {
        let mut r = Reader { b };
        while !r.b.is_empty() {
            let (tag, wt) = self.key(&mut r)?;
            if tag == 1 {
                let sub = self.message(&mut r, wt, ctx)?;
                if kv {
                    self.key_value(sub, ctx - 1)?;
                } else {
                    self.any_value(sub, ctx - 1)?;
                }
            } else {
                self.unknown(&mut r, wt, tag, ctx)?;
            }
        }
        Ok(())
    }
}
