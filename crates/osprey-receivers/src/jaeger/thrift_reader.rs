//! A bounds-checked reader over the `thrift` crate's binary and compact input protocols.
//!
//! The crate allocates a string or binary field's buffer from the length prefix before reading
//! it, so a hostile prefix (a negative or multi-gigabyte length in a 60-byte datagram) would
//! panic or abort. [`Reader`] shares the read position with its transport and checks every
//! length prefix, collection size and message header against the bytes that remain before
//! letting the protocol read it. It also skips unknown fields itself, with the same checks.

use std::cell::Cell;
use std::io::Read;
use std::rc::Rc;
use thrift::protocol::{
    TBinaryInputProtocol, TCompactInputProtocol, TInputProtocol, TMessageType, TType,
};

/// Which Thrift protocol encodes the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Binary,
    Compact,
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid thrift: {0}")]
pub struct DecodeError(pub String);

impl From<thrift::Error> for DecodeError {
    fn from(e: thrift::Error) -> Self {
        DecodeError(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, DecodeError>;

fn bad<T>(msg: impl Into<String>) -> Result<T> {
    Err(DecodeError(msg.into()))
}

const MAX_SKIP_DEPTH: u32 = 32;

/// The transport: a slice whose position is shared with the [`Reader`].
struct Source<'a> {
    data: &'a [u8],
    pos: Rc<Cell<usize>>,
}

impl Read for Source<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let at = self.pos.get().min(self.data.len());
        let n = out.len().min(self.data.len() - at);
        out[..n].copy_from_slice(&self.data[at..at + n]);
        self.pos.set(at + n);
        Ok(n)
    }
}

pub struct Reader<'a> {
    prot: Box<dyn TInputProtocol + 'a>,
    data: &'a [u8],
    pos: Rc<Cell<usize>>,
    wire: Wire,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], wire: Wire) -> Self {
        let pos = Rc::new(Cell::new(0));
        let src = Source {
            data,
            pos: Rc::clone(&pos),
        };
        let prot: Box<dyn TInputProtocol + 'a> = match wire {
            // Not strict: accept message headers with or without the version word.
            Wire::Binary => Box::new(TBinaryInputProtocol::new(src, false)),
            Wire::Compact => Box::new(TCompactInputProtocol::new(src)),
        };
        Reader {
            prot,
            data,
            pos,
            wire,
        }
    }

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos.get())
    }

    fn peek(&self, offset: usize, n: usize) -> Result<&'a [u8]> {
        let at = self.pos.get().saturating_add(offset);
        self.data
            .get(at..at.saturating_add(n))
            .ok_or_else(|| DecodeError("unexpected end of data".into()))
    }

    /// A LEB128 varint at `offset` from the position: (value, encoded length).
    fn peek_varint(&self, offset: usize) -> Result<(u64, usize)> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.peek(offset + i, 1)?[0];
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok((value, i + 1));
            }
        }
        bad("varint too long")
    }

    /// Checks the length prefix of a string/binary at `offset` against the remaining bytes.
    fn check_len_prefix(&self, offset: usize) -> Result<()> {
        let (len, prefix) = match self.wire {
            Wire::Binary => {
                let b = self.peek(offset, 4)?;
                let n = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                if n < 0 {
                    return bad(format!("negative length {n}"));
                }
                (n as u64, 4)
            }
            Wire::Compact => self.peek_varint(offset)?,
        };
        let room = self.remaining().saturating_sub(offset + prefix) as u64;
        if len > room {
            return bad(format!("length {len} exceeds the {room} bytes left"));
        }
        Ok(())
    }

    /// The message header: the method name and the message type.
    pub fn message_begin(&mut self) -> Result<(String, TMessageType)> {
        match self.wire {
            Wire::Binary => {
                let first = self.peek(0, 1)?[0];
                // Strict header (version word, then the name) or the old one (name first).
                self.check_len_prefix(if first & 0x80 != 0 { 4 } else { 0 })?;
            }
            Wire::Compact => {
                let (_, seq_len) = self.peek_varint(2)?;
                self.check_len_prefix(2 + seq_len)?;
            }
        }
        let m = self.prot.read_message_begin()?;
        Ok((m.name, m.message_type))
    }

    pub fn struct_begin(&mut self) -> Result<()> {
        self.prot.read_struct_begin()?;
        Ok(())
    }

    pub fn struct_end(&mut self) -> Result<()> {
        self.prot.read_struct_end()?;
        Ok(())
    }

    /// The next field's (type, id), or `None` at the struct's end.
    pub fn field(&mut self) -> Result<Option<(TType, i16)>> {
        let f = self.prot.read_field_begin()?;
        if f.field_type == TType::Stop {
            return Ok(None);
        }
        Ok(Some((f.field_type, f.id.unwrap_or(0))))
    }

    pub fn bool(&mut self) -> Result<bool> {
        Ok(self.prot.read_bool()?)
    }
    pub fn i32(&mut self) -> Result<i32> {
        Ok(self.prot.read_i32()?)
    }
    pub fn i64(&mut self) -> Result<i64> {
        Ok(self.prot.read_i64()?)
    }
    pub fn double(&mut self) -> Result<f64> {
        Ok(self.prot.read_double()?)
    }
    pub fn bytes(&mut self) -> Result<Vec<u8>> {
        self.check_len_prefix(0)?;
        Ok(self.prot.read_bytes()?)
    }
    pub fn string(&mut self) -> Result<String> {
        String::from_utf8(self.bytes()?).map_err(|_| DecodeError("string is not UTF-8".into()))
    }

    fn check_size(&self, size: i32) -> Result<usize> {
        // Every element takes at least one byte.
        match usize::try_from(size) {
            Ok(n) if n <= self.remaining() => Ok(n),
            _ => bad(format!("collection size {size} is invalid here")),
        }
    }

    /// A list of `elem` items, each read by `item`.
    pub fn list<T>(
        &mut self,
        elem: TType,
        mut item: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let l = self.prot.read_list_begin()?;
        let n = self.check_size(l.size)?;
        if n > 0 && l.element_type != elem {
            return bad(format!(
                "expected a list of {elem:?}, got a list of {:?}",
                l.element_type
            ));
        }
        let mut out = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            out.push(item(self)?);
        }
        self.prot.read_list_end()?;
        Ok(out)
    }

    /// Skips a value of type `ty` (an unknown or mistyped field).
    pub fn skip(&mut self, ty: TType) -> Result<()> {
        self.skip_depth(ty, MAX_SKIP_DEPTH)
    }

    fn skip_depth(&mut self, ty: TType, depth: u32) -> Result<()> {
        if depth == 0 {
            return bad("nesting too deep");
        }
        match ty {
            TType::Bool => self.bool().map(drop),
            TType::I08 => self.prot.read_i8().map(drop).map_err(Into::into),
            TType::I16 => self.prot.read_i16().map(drop).map_err(Into::into),
            TType::I32 => self.i32().map(drop),
            TType::I64 => self.i64().map(drop),
            TType::Double => self.double().map(drop),
            TType::String | TType::Utf7 | TType::Utf8 | TType::Utf16 => self.bytes().map(drop),
            TType::Struct => {
                self.struct_begin()?;
                while let Some((t, _)) = self.field()? {
                    self.skip_depth(t, depth - 1)?;
                }
                self.struct_end()
            }
            TType::List | TType::Set => {
                let (elem, size) = if ty == TType::List {
                    let l = self.prot.read_list_begin()?;
                    (l.element_type, l.size)
                } else {
                    let s = self.prot.read_set_begin()?;
                    (s.element_type, s.size)
                };
                for _ in 0..self.check_size(size)? {
                    self.skip_depth(elem, depth - 1)?;
                }
                Ok(())
            }
            TType::Map => {
                let m = self.prot.read_map_begin()?;
                let n = self.check_size(m.size)?;
                if n > 0 {
                    let (Some(k), Some(v)) = (m.key_type, m.value_type) else {
                        return bad("map without element types");
                    };
                    for _ in 0..n {
                        self.skip_depth(k, depth - 1)?;
                        self.skip_depth(v, depth - 1)?;
                    }
                }
                Ok(())
            }
            other => bad(format!("cannot skip a value of type {other:?}")),
        }
    }
}
