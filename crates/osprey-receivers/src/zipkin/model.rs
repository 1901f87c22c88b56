//! The Zipkin v2 span model every wire format decodes into (v1 JSON by way of
//! [`super::v1`]), and the id helpers the decoders share.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Why a Zipkin payload was refused (HTTP 400); the message names the span and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

impl DecodeError {
    pub fn new(msg: impl Into<String>) -> Self {
        DecodeError(msg.into())
    }
}

/// Zipkin's span kind; absent means local or incomplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Client,
    Server,
    Producer,
    Consumer,
}

impl Kind {
    /// From the JSON spelling (`CLIENT`, ...), case-insensitively; unknown values are absent.
    pub fn parse(text: &str) -> Option<Kind> {
        match text.to_ascii_uppercase().as_str() {
            "CLIENT" => Some(Kind::Client),
            "SERVER" => Some(Kind::Server),
            "PRODUCER" => Some(Kind::Producer),
            "CONSUMER" => Some(Kind::Consumer),
            _ => None,
        }
    }
}

/// The network context of a node in the service graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// Empty when unknown.
    pub service_name: String,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// 0 when unknown.
    pub port: u16,
}

impl Endpoint {
    pub fn is_empty(&self) -> bool {
        self.service_name.is_empty() && self.ipv4.is_none() && self.ipv6.is_none() && self.port == 0
    }

    /// `None` for an endpoint with nothing in it, as zipkin-go does.
    pub fn non_empty(self) -> Option<Endpoint> {
        (!self.is_empty()).then_some(self)
    }

    /// An address as the JSON formats write it; `field` names it in errors.
    pub fn parse_ipv4(text: &str, field: &str) -> Result<Option<Ipv4Addr>, DecodeError> {
        if text.is_empty() {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|_| DecodeError::new(format!("{field}: {text:?} is not an IPv4 address")))
    }

    pub fn parse_ipv6(text: &str, field: &str) -> Result<Option<Ipv6Addr>, DecodeError> {
        if text.is_empty() {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|_| DecodeError::new(format!("{field}: {text:?} is not an IPv6 address")))
    }
}

/// An event on a span (epoch microseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    pub timestamp_us: u64,
    pub value: String,
}

/// One Zipkin v2 span.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZipkinSpan {
    pub trace_id: [u8; 16],
    pub id: [u8; 8],
    pub parent_id: Option<[u8; 8]>,
    pub kind: Option<Kind>,
    pub name: String,
    /// Epoch microseconds; 0 when absent.
    pub timestamp_us: u64,
    /// Microseconds; 0 when absent.
    pub duration_us: u64,
    pub local_endpoint: Option<Endpoint>,
    pub remote_endpoint: Option<Endpoint>,
    pub annotations: Vec<Annotation>,
    /// In arrival order; keys are unique.
    pub tags: Vec<(String, String)>,
}

impl ZipkinSpan {
    /// Sets a tag, replacing an earlier value under the same key.
    pub fn put_tag(&mut self, key: String, value: String) {
        match self.tags.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.tags.push((key, value)),
        }
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A trace id from 1 to 32 hex digits, left-padded to 128 bits (64-bit ids fill the low half).
pub fn parse_trace_id(text: &str, field: &str) -> Result<[u8; 16], DecodeError> {
    let mut out = [0u8; 16];
    fill_hex(text, &mut out, field)?;
    if out == [0; 16] {
        return Err(DecodeError::new(format!("{field} must not be zero")));
    }
    Ok(out)
}

/// A span id from 1 to 16 hex digits, left-padded to 64 bits.
pub fn parse_span_id(text: &str, field: &str) -> Result<[u8; 8], DecodeError> {
    let mut out = [0u8; 8];
    fill_hex(text, &mut out, field)?;
    if out == [0; 8] {
        return Err(DecodeError::new(format!("{field} must not be zero")));
    }
    Ok(out)
}

/// A parent id: empty or all-zero means the span is a root.
pub fn parse_parent_id(text: &str, field: &str) -> Result<Option<[u8; 8]>, DecodeError> {
    if text.is_empty() {
        return Ok(None);
    }
    let mut out = [0u8; 8];
    fill_hex(text, &mut out, field)?;
    Ok((out != [0; 8]).then_some(out))
}

fn fill_hex(text: &str, out: &mut [u8], field: &str) -> Result<(), DecodeError> {
    let max = out.len() * 2;
    if text.is_empty() || text.len() > max {
        return Err(DecodeError::new(format!(
            "{field} {text:?} must be 1 to {max} hex characters"
        )));
    }
    let padded = format!("{text:0>max$}");
    hex_decode(&padded, out)
        .map_err(|_| DecodeError::new(format!("{field} {text:?} is not hexadecimal")))
}

fn hex_decode(text: &str, out: &mut [u8]) -> Result<(), ()> {
    fn nibble(c: u8) -> Result<u8, ()> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(()),
        }
    }
    for (slot, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        let [hi, lo] = pair else { return Err(()) };
        *slot = (nibble(*hi)? << 4) | nibble(*lo)?;
    }
    Ok(())
}

/// Lower-case hex of an id (for messages).
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_left_padded() {
        let t = parse_trace_id("5af7183fb1d4cf5f", "traceId").unwrap();
        assert_eq!(to_hex(&t), "00000000000000005af7183fb1d4cf5f");
        let t = parse_trace_id("463ac35c9f6413ad48485a3953bb6124", "traceId").unwrap();
        assert_eq!(to_hex(&t), "463ac35c9f6413ad48485a3953bb6124");
        let s = parse_span_id("abc", "id").unwrap();
        assert_eq!(to_hex(&s), "0000000000000abc");
        assert_eq!(parse_parent_id("", "parentId").unwrap(), None);
        assert_eq!(
            parse_parent_id("0000000000000000", "parentId").unwrap(),
            None
        );
        let e = parse_trace_id("xyz", "span 0 traceId").unwrap_err();
        assert_eq!(e.to_string(), "span 0 traceId \"xyz\" is not hexadecimal");
        assert!(parse_span_id("00000000000000000", "id").is_err());
        assert!(parse_span_id("0", "id").is_err());
    }
}
