//! Test fixtures: a Jaeger batch exercising every translation rule, and a `jaeger.thrift`
//! encoder built on the `thrift` crate's output protocols (what a Jaeger client sends).

use super::model::{Batch, Log, Process, RefType, Span, SpanRef, Tag, Value};
use super::thrift_reader::Wire;
use thrift::protocol::{
    TBinaryOutputProtocol, TCompactOutputProtocol, TFieldIdentifier, TListIdentifier,
    TMessageIdentifier, TMessageType, TOutputProtocol, TStructIdentifier, TType,
};

pub fn tag(key: &str, value: Value) -> Tag {
    Tag {
        key: key.into(),
        value,
    }
}

pub fn s(v: &str) -> Value {
    Value::Str(v.into())
}

pub const TRACE_HIGH: u64 = 0x0102_0304_0506_0708;
pub const TRACE_LOW: u64 = 0x1112_1314_1516_1718;
pub const START_NS: u64 = 1_700_000_000_123_456_000;

/// A batch with a server span (parent, links, events, error status) and a root client span.
pub fn sample_batch() -> Batch {
    let server = Span {
        trace_id_high: TRACE_HIGH,
        trace_id_low: TRACE_LOW,
        span_id: 0xAA,
        parent_span_id: 0,
        operation_name: "GET /users".into(),
        references: vec![
            SpanRef {
                ref_type: RefType::ChildOf,
                trace_id_high: TRACE_HIGH,
                trace_id_low: TRACE_LOW,
                span_id: 0xBB,
            },
            SpanRef {
                ref_type: RefType::FollowsFrom,
                trace_id_high: 7,
                trace_id_low: 8,
                span_id: 0xCC,
            },
        ],
        flags: 1,
        start_time_ns: START_NS,
        end_time_ns: START_NS + 2_500_000,
        tags: vec![
            tag("span.kind", s("server")),
            tag("error", Value::Bool(true)),
            tag("otel.status_description", s("boom")),
            tag("http.status_code", Value::Long(500)),
            tag("ratio", Value::Double(0.5)),
            tag("blob", Value::Binary(vec![1, 2, 3])),
        ],
        logs: vec![
            Log {
                timestamp_ns: START_NS + 1_000,
                fields: vec![tag("event", s("retry")), tag("attempt", Value::Long(2))],
            },
            Log {
                timestamp_ns: START_NS + 2_000,
                fields: vec![tag("message", s("no name"))],
            },
        ],
        process: None,
    };
    let client = Span {
        trace_id_high: TRACE_HIGH,
        trace_id_low: TRACE_LOW,
        span_id: 0xBB,
        parent_span_id: 0,
        operation_name: "call".into(),
        references: vec![],
        flags: 0,
        start_time_ns: START_NS - 1_000_000,
        end_time_ns: START_NS + 5_000_000,
        tags: vec![
            tag("span.kind", s("client")),
            tag("otel.status_code", s("OK")),
        ],
        logs: vec![],
        process: None,
    };
    Batch {
        process: Some(Process {
            service_name: "frontend".into(),
            tags: Some(vec![
                tag("hostname", s("web-1")),
                tag("jaeger.version", s("Go-2.30.0")),
                tag("ip", s("10.0.0.1")),
            ]),
        }),
        spans: vec![server, client],
    }
}

struct W<'a>(Box<dyn TOutputProtocol + 'a>);

impl W<'_> {
    fn begin(&mut self, name: &str) {
        self.0
            .write_struct_begin(&TStructIdentifier::new(name))
            .unwrap();
    }
    fn end(&mut self) {
        self.0.write_field_stop().unwrap();
        self.0.write_struct_end().unwrap();
    }
    fn field(&mut self, ty: TType, id: i16) {
        self.0
            .write_field_begin(&TFieldIdentifier::new("f", ty, id))
            .unwrap();
    }
    fn fend(&mut self) {
        self.0.write_field_end().unwrap();
    }
    fn i64(&mut self, id: i16, v: i64) {
        self.field(TType::I64, id);
        self.0.write_i64(v).unwrap();
        self.fend();
    }
    fn i32(&mut self, id: i16, v: i32) {
        self.field(TType::I32, id);
        self.0.write_i32(v).unwrap();
        self.fend();
    }
    fn str(&mut self, id: i16, v: &str) {
        self.field(TType::String, id);
        self.0.write_string(v).unwrap();
        self.fend();
    }
    fn list<T>(&mut self, id: i16, items: &[T], mut each: impl FnMut(&mut Self, &T)) {
        self.field(TType::List, id);
        self.0
            .write_list_begin(&TListIdentifier::new(TType::Struct, items.len() as i32))
            .unwrap();
        for it in items {
            each(self, it);
        }
        self.0.write_list_end().unwrap();
        self.fend();
    }

    fn tag(&mut self, t: &Tag) {
        self.begin("Tag");
        self.str(1, &t.key);
        match &t.value {
            Value::Str(v) => {
                self.i32(2, 0);
                self.str(3, v);
            }
            Value::Double(v) => {
                self.i32(2, 1);
                self.field(TType::Double, 4);
                self.0.write_double(*v).unwrap();
                self.fend();
            }
            Value::Bool(v) => {
                self.i32(2, 2);
                self.field(TType::Bool, 5);
                self.0.write_bool(*v).unwrap();
                self.fend();
            }
            Value::Long(v) => {
                self.i32(2, 3);
                self.i64(6, *v);
            }
            Value::Binary(v) => {
                self.i32(2, 4);
                self.field(TType::String, 7);
                self.0.write_bytes(v).unwrap();
                self.fend();
            }
            Value::Unknown(_) => self.i32(2, 99),
        }
        self.end();
    }

    fn span(&mut self, sp: &Span) {
        self.begin("Span");
        self.i64(1, sp.trace_id_low as i64);
        self.i64(2, sp.trace_id_high as i64);
        self.i64(3, sp.span_id as i64);
        self.i64(4, sp.parent_span_id as i64);
        self.str(5, &sp.operation_name);
        self.list(6, &sp.references, |w, r| {
            w.begin("SpanRef");
            w.i32(1, if r.ref_type == RefType::ChildOf { 0 } else { 1 });
            w.i64(2, r.trace_id_low as i64);
            w.i64(3, r.trace_id_high as i64);
            w.i64(4, r.span_id as i64);
            w.end();
        });
        self.i32(7, sp.flags as i32);
        self.i64(8, (sp.start_time_ns / 1000) as i64);
        self.i64(9, ((sp.end_time_ns - sp.start_time_ns) / 1000) as i64);
        self.list(10, &sp.tags, |w, t| w.tag(t));
        self.list(11, &sp.logs, |w, l| {
            w.begin("Log");
            w.i64(1, (l.timestamp_ns / 1000) as i64);
            w.list(2, &l.fields, |w, t| w.tag(t));
            w.end();
        });
        // An optional field this receiver does not use (12: incomplete) and an unknown one.
        self.field(TType::Bool, 12);
        self.0.write_bool(false).unwrap();
        self.fend();
        self.str(40, "future field");
        self.end();
    }

    fn batch(&mut self, b: &Batch) {
        self.begin("Batch");
        if let Some(p) = &b.process {
            self.field(TType::Struct, 1);
            self.begin("Process");
            self.str(1, &p.service_name);
            if let Some(tags) = &p.tags {
                self.list(2, tags, |w, t| w.tag(t));
            }
            self.end();
            self.fend();
        }
        self.list(2, &b.spans, |w, sp| w.span(sp));
        self.i64(3, 42); // seqNo
        self.end();
    }
}

fn with_protocol(wire: Wire, f: impl FnOnce(&mut W<'_>)) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let prot: Box<dyn TOutputProtocol + '_> = match wire {
            Wire::Binary => Box::new(TBinaryOutputProtocol::new(&mut out, true)),
            Wire::Compact => Box::new(TCompactOutputProtocol::new(&mut out)),
        };
        let mut w = W(prot);
        f(&mut w);
        w.0.flush().unwrap();
    }
    out
}

/// A bare `Batch` struct.
pub fn encode_batch(b: &Batch, wire: Wire) -> Vec<u8> {
    with_protocol(wire, |w| w.batch(b))
}

/// An `Agent.<method>` oneway call whose argument 1 is the batch.
pub fn encode_agent_message(method: &str, b: &Batch, wire: Wire) -> Vec<u8> {
    with_protocol(wire, |w| {
        w.0.write_message_begin(&TMessageIdentifier::new(method, TMessageType::OneWay, 1))
            .unwrap();
        w.begin("emitBatch_args");
        w.field(TType::Struct, 1);
        w.batch(b);
        w.fend();
        w.end();
        w.0.write_message_end().unwrap();
    })
}
