//! Decoding `jaeger.thrift` by hand: a `Batch` (the `thrift_http` body, binary protocol) and
//! the agent's `emitBatch` call (the UDP datagrams, compact or binary protocol).
//!
//! Fields are read by id; unknown fields and fields of an unexpected type are skipped, as
//! generated Thrift code does, and missing required fields are errors, as in Go's generated
//! code that upstream uses. Field ids follow jaeger-idl `thrift/jaeger.thrift` and
//! `thrift/agent.thrift`.

use super::model::{Batch, Log, Process, RefType, Span, SpanRef, Tag, Value};
use super::thrift_reader::{DecodeError, Reader, Result, Wire};
use thrift::protocol::{TMessageType, TType};

fn missing<T>(what: &str) -> Result<T> {
    Err(DecodeError(format!("required field {what} is not set")))
}

/// Reads a struct: calls `field` for each (type, id) and skips the ones it declines.
fn read_struct(
    r: &mut Reader<'_>,
    mut field: impl FnMut(&mut Reader<'_>, TType, i16) -> Result<bool>,
) -> Result<()> {
    r.struct_begin()?;
    while let Some((ty, id)) = r.field()? {
        if !field(r, ty, id)? {
            r.skip(ty)?;
        }
    }
    r.struct_end()
}

fn us_to_ns(us: i64) -> u64 {
    // Upstream: uint64(us) * 1000, wrapping.
    (us as u64).wrapping_mul(1000)
}

/// `Tag{1: key, 2: vType, 3: vStr, 4: vDouble, 5: vBool, 6: vLong, 7: vBinary}`;
/// TagType is STRING=0, DOUBLE=1, BOOL=2, LONG=3, BINARY=4.
fn read_tag(r: &mut Reader<'_>) -> Result<Tag> {
    let (mut key, mut vtype) = (None, None);
    let (mut s, mut d, mut b, mut l, mut bin) = (None, None, None, None, None);
    read_struct(r, |r, ty, id| {
        match (id, ty) {
            (1, TType::String) => key = Some(r.string()?),
            (2, TType::I32) => vtype = Some(r.i32()?),
            (3, TType::String) => s = Some(r.string()?),
            (4, TType::Double) => d = Some(r.double()?),
            (5, TType::Bool) => b = Some(r.bool()?),
            (6, TType::I64) => l = Some(r.i64()?),
            (7, TType::String) => bin = Some(r.bytes()?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let Some(key) = key else {
        return missing("Tag.key");
    };
    let value = match vtype {
        None => return missing("Tag.vType"),
        Some(0) => Value::Str(s.unwrap_or_default()),
        Some(1) => Value::Double(d.unwrap_or_default()),
        Some(2) => Value::Bool(b.unwrap_or_default()),
        Some(3) => Value::Long(l.unwrap_or_default()),
        Some(4) => Value::Binary(bin.unwrap_or_default()),
        // Go's %q of an unknown generated enum value prints its String(): "<UNSET>".
        Some(_) => Value::Unknown("<Unknown Jaeger TagType \"<UNSET>\">".into()),
    };
    Ok(Tag { key, value })
}

fn read_tags(r: &mut Reader<'_>) -> Result<Vec<Tag>> {
    r.list(TType::Struct, read_tag)
}

/// `Log{1: timestamp, 2: fields}`.
fn read_log(r: &mut Reader<'_>) -> Result<Log> {
    let (mut ts, mut fields) = (None, None);
    read_struct(r, |r, ty, id| {
        match (id, ty) {
            (1, TType::I64) => ts = Some(r.i64()?),
            (2, TType::List) => fields = Some(read_tags(r)?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    match (ts, fields) {
        (Some(ts), Some(fields)) => Ok(Log {
            timestamp_ns: us_to_ns(ts),
            fields,
        }),
        (None, _) => missing("Log.timestamp"),
        (_, None) => missing("Log.fields"),
    }
}

/// `SpanRef{1: refType, 2: traceIdLow, 3: traceIdHigh, 4: spanId}`.
fn read_ref(r: &mut Reader<'_>) -> Result<SpanRef> {
    let mut f: [Option<i64>; 4] = [None; 4];
    read_struct(r, |r, ty, id| {
        match (id, ty) {
            (1, TType::I32) => f[0] = Some(i64::from(r.i32()?)),
            (2..=4, TType::I64) => f[id as usize - 1] = Some(r.i64()?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let [Some(t), Some(low), Some(high), Some(span)] = f else {
        return missing("SpanRef.refType/traceIdLow/traceIdHigh/spanId");
    };
    Ok(SpanRef {
        ref_type: if t == 0 {
            RefType::ChildOf
        } else {
            RefType::FollowsFrom
        },
        trace_id_low: low as u64,
        trace_id_high: high as u64,
        span_id: span as u64,
    })
}

/// `Span{1: traceIdLow, 2: traceIdHigh, 3: spanId, 4: parentSpanId, 5: operationName,
/// 6: references, 7: flags, 8: startTime, 9: duration, 10: tags, 11: logs, 12: incomplete}`.
fn read_span(r: &mut Reader<'_>) -> Result<Span> {
    let mut ids: [Option<i64>; 4] = [None; 4];
    let (mut name, mut flags, mut start, mut duration) = (None, None, None, None);
    let mut span = Span::default();
    read_struct(r, |r, ty, id| {
        match (id, ty) {
            (1..=4, TType::I64) => ids[id as usize - 1] = Some(r.i64()?),
            (5, TType::String) => name = Some(r.string()?),
            (6, TType::List) => span.references = r.list(TType::Struct, read_ref)?,
            (7, TType::I32) => flags = Some(r.i32()?),
            (8, TType::I64) => start = Some(r.i64()?),
            (9, TType::I64) => duration = Some(r.i64()?),
            (10, TType::List) => span.tags = read_tags(r)?,
            (11, TType::List) => span.logs = r.list(TType::Struct, read_log)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let [Some(low), Some(high), Some(span_id), Some(parent)] = ids else {
        return missing("Span.traceIdLow/traceIdHigh/spanId/parentSpanId");
    };
    let (Some(name), Some(flags), Some(start), Some(duration)) = (name, flags, start, duration)
    else {
        return missing("Span.operationName/flags/startTime/duration");
    };
    span.trace_id_low = low as u64;
    span.trace_id_high = high as u64;
    span.span_id = span_id as u64;
    span.parent_span_id = parent as u64;
    span.operation_name = name;
    span.flags = flags as u32;
    span.start_time_ns = us_to_ns(start);
    span.end_time_ns = us_to_ns(start.wrapping_add(duration));
    Ok(span)
}

/// `Process{1: serviceName, 2: tags}`.
fn read_process(r: &mut Reader<'_>) -> Result<Process> {
    let (mut name, mut tags) = (None, None);
    read_struct(r, |r, ty, id| {
        match (id, ty) {
            (1, TType::String) => name = Some(r.string()?),
            (2, TType::List) => tags = Some(read_tags(r)?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let Some(service_name) = name else {
        return missing("Process.serviceName");
    };
    Ok(Process { service_name, tags })
}

/// `Batch{1: process, 2: spans, 3: seqNo, 4: stats}` (the last two are skipped).
fn read_batch(r: &mut Reader<'_>) -> Result<Batch> {
    let (mut process, mut spans) = (None, None);
    read_struct(r, |r, ty, id| {
        match (id, ty) {
            (1, TType::Struct) => process = Some(read_process(r)?),
            (2, TType::List) => spans = Some(r.list(TType::Struct, read_span)?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    match (process, spans) {
        (Some(process), Some(spans)) => Ok(Batch {
            process: Some(process),
            spans,
        }),
        (None, _) => missing("Batch.process"),
        (_, None) => missing("Batch.spans"),
    }
}

/// Runs a decoder, turning a panic inside the `thrift` crate (it has a few `expect`s and, in
/// debug builds, overflow checks on field ids) into an error instead of a dead task.
fn guarded<T>(decode: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode))
        .unwrap_or_else(|_| Err(DecodeError("malformed thrift data".into())))
}

/// A bare `Batch` struct (the `thrift_http` body).
pub fn decode_batch(data: &[u8], wire: Wire) -> Result<Batch> {
    guarded(|| read_batch(&mut Reader::new(data, wire)))
}

/// A decoded agent datagram.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentMessage {
    /// `emitBatch(1: Batch)`; `None` when the call carried no batch.
    EmitBatch(Option<Batch>),
    /// Another method (`emitZipkinBatch`, ...), which this receiver does not take.
    Other(String),
}

/// An `Agent` service call as jaeger clients send it over UDP: a message header, then the
/// arguments struct, whose field 1 is the `Batch`.
pub fn decode_agent_message(data: &[u8], wire: Wire) -> Result<AgentMessage> {
    guarded(|| read_agent_message(&mut Reader::new(data, wire)))
}

fn read_agent_message(r: &mut Reader<'_>) -> Result<AgentMessage> {
    let (name, kind) = r.message_begin()?;
    if !matches!(kind, TMessageType::Call | TMessageType::OneWay) {
        return Err(DecodeError(format!(
            "unexpected message type {kind:?} for {name:?}"
        )));
    }
    if name != "emitBatch" {
        return Ok(AgentMessage::Other(name));
    }
    let mut batch = None;
    read_struct(r, |r, ty, id| {
        if (id, ty) != (1, TType::Struct) {
            return Ok(false);
        }
        batch = Some(read_batch(r)?);
        Ok(true)
    })?;
    Ok(AgentMessage::EmitBatch(batch))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{encode_agent_message, encode_batch, sample_batch};
    use super::*;

    #[test]
    fn batches_round_trip_in_both_protocols() {
        let batch = sample_batch();
        for wire in [Wire::Binary, Wire::Compact] {
            let bytes = encode_batch(&batch, wire);
            assert_eq!(decode_batch(&bytes, wire).unwrap(), batch, "{wire:?}");
            let msg = encode_agent_message("emitBatch", &batch, wire);
            assert_eq!(
                decode_agent_message(&msg, wire).unwrap(),
                AgentMessage::EmitBatch(Some(batch.clone())),
                "{wire:?}"
            );
        }
    }

    #[test]
    fn other_methods_are_reported_by_name() {
        let msg = encode_agent_message("emitZipkinBatch", &sample_batch(), Wire::Compact);
        assert_eq!(
            decode_agent_message(&msg, Wire::Compact).unwrap(),
            AgentMessage::Other("emitZipkinBatch".into())
        );
    }

    #[test]
    fn truncated_and_garbage_input_fails_cleanly() {
        let batch = sample_batch();
        for wire in [Wire::Binary, Wire::Compact] {
            let bytes = encode_batch(&batch, wire);
            for cut in [0, 1, 5, bytes.len() / 2, bytes.len() - 1] {
                assert!(
                    decode_batch(&bytes[..cut], wire).is_err(),
                    "{wire:?} cut {cut}"
                );
            }
            let msg = encode_agent_message("emitBatch", &batch, wire);
            for cut in [0, 1, 3, msg.len() / 3, msg.len() - 1] {
                assert!(decode_agent_message(&msg[..cut], wire).is_err(), "{cut}");
            }
        }
        // A binary string whose length prefix is negative, then a huge one.
        let mut evil = vec![0x0b, 0x00, 0x05, 0xff, 0xff, 0xff, 0xf0, b'x'];
        assert!(decode_batch(&evil, Wire::Binary).is_err());
        evil[3..7].copy_from_slice(&0x7fff_fff0i32.to_be_bytes());
        assert!(decode_batch(&evil, Wire::Binary).is_err());
        // A compact message header announcing a 4 GiB method name.
        let evil = [0x82, 0x81, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f, b'e'];
        assert!(decode_agent_message(&evil, Wire::Compact).is_err());
        // A non-strict binary header whose name length is 2 GiB.
        let evil = [0x7f, 0xff, 0xff, 0xff, b'e', b'm'];
        assert!(decode_agent_message(&evil, Wire::Binary).is_err());
        // A list that announces more elements than there are bytes.
        let evil = [0x0f, 0x00, 0x02, 0x0c, 0x7f, 0xff, 0xff, 0xff, 0x00];
        assert!(decode_batch(&evil, Wire::Binary).is_err());
    }

    #[test]
    fn missing_required_fields_are_errors() {
        // A batch struct with only a stop byte.
        let err = decode_batch(&[0x00], Wire::Binary).unwrap_err();
        assert!(err.0.contains("Batch.process"), "{err}");
    }
}
