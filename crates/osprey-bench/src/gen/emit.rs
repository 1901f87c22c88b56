//! Writes a trace's [`Node`]s into OTLP [`Span`]s, reusing the span's existing allocations
//! (strings, attribute vectors) so that a steady stream of batches allocates almost nothing.

use super::catalog::{Catalog, Endpoint};
use super::spec::Rpc;
use super::tree::{Node, NodeKind, NO_PARENT};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span, Status};
use std::fmt::Write;

/// Overwrites a span's attributes in place.
pub struct AttrW<'a> {
    v: &'a mut Vec<KeyValue>,
    n: usize,
}

impl<'a> AttrW<'a> {
    pub fn new(v: &'a mut Vec<KeyValue>) -> Self {
        AttrW { v, n: 0 }
    }

    fn slot(&mut self, key: &str) -> &mut KeyValue {
        if self.n == self.v.len() {
            self.v.push(KeyValue::default());
        }
        let kv = &mut self.v[self.n];
        self.n += 1;
        kv.key.clear();
        kv.key.push_str(key);
        kv
    }

    pub fn str_with(&mut self, key: &str, f: impl FnOnce(&mut String)) {
        let kv = self.slot(key);
        if !matches!(
            &kv.value,
            Some(AnyValue {
                value: Some(Value::StringValue(_))
            })
        ) {
            kv.value = Some(AnyValue {
                value: Some(Value::StringValue(String::new())),
            });
        }
        if let Some(AnyValue {
            value: Some(Value::StringValue(s)),
        }) = &mut kv.value
        {
            s.clear();
            f(s);
        }
    }

    pub fn str(&mut self, key: &str, val: &str) {
        self.str_with(key, |s| s.push_str(val));
    }

    pub fn int(&mut self, key: &str, i: i64) {
        let kv = self.slot(key);
        match &mut kv.value {
            Some(AnyValue {
                value: Some(Value::IntValue(v)),
            }) => *v = i,
            other => {
                *other = Some(AnyValue {
                    value: Some(Value::IntValue(i)),
                })
            }
        }
    }

    pub fn finish(self) {
        self.v.truncate(self.n);
    }
}

fn with_id(s: &mut String, parts: (&str, Option<&str>), num: u32) {
    s.push_str(parts.0);
    if let Some(rest) = parts.1 {
        let _ = write!(s, "{num}");
        s.push_str(rest);
    }
}

const EXCEPTIONS: &[(&str, &str)] = &[
    (
        "java.net.SocketTimeoutException",
        "Read timed out after 5000 ms",
    ),
    (
        "ConnectionResetError",
        "[Errno 104] Connection reset by peer",
    ),
    (
        "System.InvalidOperationException",
        "Sequence contains no elements",
    ),
    (
        "org.postgresql.util.PSQLException",
        "ERROR: deadlock detected",
    ),
    ("Error", "upstream request failed: 503 Service Unavailable"),
];

fn http_server_attrs(a: &mut AttrW, cat: &Catalog, e: &Endpoint, node: &Node) {
    let svc = &cat.services[e.svc as usize];
    a.str("http.request.method", e.method);
    a.str("http.route", e.route);
    a.str_with("url.path", |s| with_id(s, e.path, node.num));
    a.str("url.scheme", "http");
    a.str("server.address", &svc.name);
    a.int("server.port", svc.port);
    a.str("network.protocol.version", "1.1");
    a.int(
        "http.response.status_code",
        if node.error { 500 } else { 200 },
    );
    if node.parent == NO_PARENT {
        a.str(
            "user_agent.original",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0",
        );
        a.str_with("client.address", |s| {
            let _ = write!(s, "203.0.113.{}", node.num % 250 + 1);
        });
    }
}

fn rpc_attrs(a: &mut AttrW, cat: &Catalog, e: &Endpoint, node: &Node, rpc_service: &str) {
    let svc = &cat.services[e.svc as usize];
    a.str("rpc.system", "grpc");
    a.str("rpc.service", rpc_service);
    a.str("rpc.method", e.rpc_method);
    a.str("server.address", &svc.name);
    a.int("server.port", svc.port);
    a.int("rpc.grpc.status_code", if node.error { 13 } else { 0 });
}

/// Fills `span` from `node` (a node of the trace whose ids are `trace_id`/`nodes`).
pub fn write_span(
    span: &mut Span,
    cat: &Catalog,
    trace_id: &[u8; 16],
    nodes: &[Node],
    node: &Node,
) {
    span.trace_id.clear();
    span.trace_id.extend_from_slice(trace_id);
    span.span_id.clear();
    span.span_id.extend_from_slice(&node.id);
    span.parent_span_id.clear();
    let remote_parent = node.parent != NO_PARENT
        && matches!(node.kind, NodeKind::Server(_) | NodeKind::Consumer(_));
    if node.parent != NO_PARENT {
        span.parent_span_id
            .extend_from_slice(&nodes[node.parent as usize].id);
    }
    span.trace_state.clear();
    span.flags = if remote_parent { 0x301 } else { 0x101 };
    span.start_time_unix_nano = node.start;
    span.end_time_unix_nano = node.end();
    span.dropped_attributes_count = 0;
    span.dropped_events_count = 0;
    span.dropped_links_count = 0;
    span.events.clear();
    span.links.clear();
    span.name.clear();
    let mut a = AttrW::new(&mut span.attributes);
    let kind = match node.kind {
        NodeKind::Server(ep) => {
            let e = &cat.endpoints[ep as usize];
            span.name.push_str(&e.server_name);
            match cat.services[e.svc as usize].spec.rpc {
                Rpc::Http => http_server_attrs(&mut a, cat, e, node),
                Rpc::Grpc(service) => rpc_attrs(&mut a, cat, e, node, service),
            }
            SpanKind::Server
        }
        NodeKind::Client(ep) => {
            let e = &cat.endpoints[ep as usize];
            let target = &cat.services[e.svc as usize];
            span.name.push_str(&e.client_name);
            match target.spec.rpc {
                Rpc::Http => {
                    a.str("http.request.method", e.method);
                    a.str_with("url.full", |s| {
                        let _ = write!(s, "http://{}:{}", target.name, target.port);
                        with_id(s, e.path, node.num);
                    });
                    a.str("server.address", &target.name);
                    a.int("server.port", target.port);
                    a.int(
                        "http.response.status_code",
                        if node.error { 500 } else { 200 },
                    );
                }
                Rpc::Grpc(service) => rpc_attrs(&mut a, cat, e, node, service),
            }
            SpanKind::Client
        }
        NodeKind::Db(op) => {
            let d = &cat.db_ops[op as usize];
            span.name.push_str(&d.span_name);
            a.str("db.system", d.system);
            a.str("db.name", d.namespace);
            a.str("db.operation", d.op);
            a.str_with("db.statement", |s| with_id(s, d.stmt, node.num));
            a.str("server.address", &d.server);
            a.int("server.port", d.port);
            SpanKind::Client
        }
        NodeKind::Producer(t) => {
            let topic = &cat.topics[t as usize];
            span.name.push_str(&topic.publish_name);
            a.str("messaging.system", topic.system);
            a.str("messaging.destination.name", topic.name);
            a.str("messaging.operation", "publish");
            a.str_with("messaging.message.id", |s| {
                let _ = write!(s, "{}-{:08x}", topic.name, node.num);
            });
            SpanKind::Producer
        }
        NodeKind::Consumer(ep) => {
            let e = &cat.endpoints[ep as usize];
            let topic = &cat.topics[e.topic.unwrap_or(0) as usize];
            span.name.push_str(&e.server_name);
            a.str("messaging.system", topic.system);
            a.str("messaging.destination.name", topic.name);
            a.str("messaging.operation", "process");
            a.str(
                "messaging.consumer.group.name",
                &cat.services[e.svc as usize].name,
            );
            if let Some(parent) = nodes.get(node.parent as usize) {
                span.links.push(Link {
                    trace_id: trace_id.to_vec(),
                    span_id: parent.id.to_vec(),
                    flags: 0x101,
                    ..Default::default()
                });
            }
            SpanKind::Consumer
        }
        NodeKind::Internal(name) => {
            span.name.push_str(name);
            a.str("code.function", name);
            SpanKind::Internal
        }
    };
    a.finish();
    span.kind = kind as i32;
    if node.event {
        let (name, key, val) = match node.num % 3 {
            0 => ("cache.miss", "cache.key", "product-list"),
            1 => (
                "feature_flag.evaluation",
                "feature_flag.key",
                "new-checkout-flow",
            ),
            _ => ("retry", "retry.reason", "connection refused"),
        };
        span.events.push(Event {
            time_unix_nano: node.start + node.dur_ns / 3,
            name: name.to_string(),
            attributes: vec![super::catalog::kv_str(key, val)],
            dropped_attributes_count: 0,
        });
    }
    if node.error {
        let message = match node.kind {
            NodeKind::Client(_) => "500 Internal Server Error",
            _ => EXCEPTIONS[node.num as usize % EXCEPTIONS.len()].1,
        };
        if !matches!(node.kind, NodeKind::Client(_)) {
            let (ty, msg) = EXCEPTIONS[node.num as usize % EXCEPTIONS.len()];
            let stack = format!(
                "{ty}: {msg}\n    at handler ({}:{})\n    at dispatch (server.js:88)\n    at process (runtime:12)",
                span.name,
                node.num % 400 + 10
            );
            span.events.push(Event {
                time_unix_nano: node.end().saturating_sub(node.dur_ns / 10),
                name: "exception".to_string(),
                attributes: vec![
                    super::catalog::kv_str("exception.type", ty),
                    super::catalog::kv_str("exception.message", msg),
                    super::catalog::kv_str("exception.stacktrace", stack),
                ],
                dropped_attributes_count: 0,
            });
        }
        span.status = Some(Status {
            message: message.to_string(),
            code: StatusCode::Error as i32,
        });
    } else {
        span.status = None;
    }
}
