//! Stored spans → Jaeger's JSON trace model (what Jaeger UI and Grafana read), following
//! the OpenTelemetry → Jaeger translation: span kind, status and scope become tags, events
//! become logs, the parent becomes a CHILD_OF reference and links FOLLOWS_FROM ones, and
//! resource attributes other than `service.name` become the process's tags.

use osprey_model::from_arrow::{Attr, SpanRecord, Typed};
use serde_json::{json, Value};

/// One Jaeger tag (`{"key", "type", "value"}`).
pub fn tag(key: &str, value: &Typed) -> Value {
    let (ty, v) = match value {
        Typed::Str(s) => ("string", json!(s)),
        Typed::Bool(b) => ("bool", json!(b)),
        // Beyond JavaScript's safe integers Jaeger writes the number as a string.
        Typed::Int(i) if i.unsigned_abs() > (1u64 << 53) => ("int64", json!(i.to_string())),
        Typed::Int(i) => ("int64", json!(i)),
        Typed::Double(d) if d.is_finite() => ("float64", json!(d)),
        Typed::Double(_) => ("string", json!(value.text())),
        Typed::Bytes(b64) => ("binary", json!(b64)),
        Typed::Array(j) | Typed::Kvlist(j) => ("string", json!(j)),
        Typed::Empty => ("string", json!("")),
    };
    json!({ "key": key, "type": ty, "value": v })
}

fn str_tag(key: &str, value: &str) -> Value {
    json!({ "key": key, "type": "string", "value": value })
}

fn tags(attrs: &[Attr]) -> Vec<Value> {
    attrs.iter().map(|a| tag(&a.key, &a.value)).collect()
}

/// Jaeger's lower-case span kind (`server`, ...), or "" for unspecified.
pub fn kind_name(otlp: &str) -> &'static str {
    match otlp {
        "SPAN_KIND_SERVER" => "server",
        "SPAN_KIND_CLIENT" => "client",
        "SPAN_KIND_PRODUCER" => "producer",
        "SPAN_KIND_CONSUMER" => "consumer",
        "SPAN_KIND_INTERNAL" => "internal",
        _ => "",
    }
}

/// The OTLP span kind for Jaeger's lower-case name.
pub fn otlp_kind(jaeger: &str) -> Option<&'static str> {
    Some(match jaeger {
        "server" => "SPAN_KIND_SERVER",
        "client" => "SPAN_KIND_CLIENT",
        "producer" => "SPAN_KIND_PRODUCER",
        "consumer" => "SPAN_KIND_CONSUMER",
        "internal" => "SPAN_KIND_INTERNAL",
        "unspecified" => "SPAN_KIND_UNSPECIFIED",
        _ => return None,
    })
}

fn span_tags(r: &SpanRecord) -> Vec<Value> {
    let mut out = tags(&r.attributes);
    let kind = kind_name(&r.span_kind);
    if !kind.is_empty() {
        out.push(str_tag("span.kind", kind));
    }
    match r.status_code.as_str() {
        "STATUS_CODE_ERROR" => {
            out.push(str_tag("otel.status_code", "ERROR"));
            out.push(json!({ "key": "error", "type": "bool", "value": true }));
        }
        "STATUS_CODE_OK" => out.push(str_tag("otel.status_code", "OK")),
        _ => {}
    }
    if !r.status_message.is_empty() {
        out.push(str_tag("otel.status_description", &r.status_message));
    }
    if !r.scope_name.is_empty() {
        out.push(str_tag("otel.scope.name", &r.scope_name));
    }
    if !r.scope_version.is_empty() {
        out.push(str_tag("otel.scope.version", &r.scope_version));
    }
    if !r.trace_state.is_empty() {
        out.push(str_tag("w3c.tracestate", &r.trace_state));
    }
    out
}

/// Jaeger's spelling of a stored 32-hex trace id: just the low 16 digits when the high
/// half is zero (a 64-bit id), else all 32.
pub fn jaeger_trace_id(id: &str) -> String {
    match id.split_at_checked(16) {
        Some((high, low)) if id.len() == 32 && high.bytes().all(|b| b == b'0') => low.to_string(),
        _ => id.to_string(),
    }
}

fn micros(ns: i64) -> i64 {
    ns.div_euclid(1_000)
}

/// A whole trace in Jaeger's model. `spans` must all belong to one trace.
pub fn trace(trace_id: &str, spans: &[SpanRecord]) -> Value {
    // Processes: one per distinct (service, resource), numbered in order of appearance.
    let mut processes: Vec<(&str, &[Attr])> = Vec::new();
    let mut out_spans = Vec::with_capacity(spans.len());
    for r in spans {
        let key = (r.service_name.as_str(), r.resource.as_slice());
        let pid = match processes.iter().position(|p| *p == key) {
            Some(i) => i + 1,
            None => {
                processes.push(key);
                processes.len()
            }
        };
        let mut refs = Vec::new();
        if let Some(parent) = &r.parent_span_id {
            refs.push(json!({ "refType": "CHILD_OF", "traceID": jaeger_trace_id(&r.trace_id), "spanID": parent }));
        }
        for l in &r.links {
            refs.push(json!({ "refType": "FOLLOWS_FROM", "traceID": jaeger_trace_id(&l.trace_id), "spanID": l.span_id }));
        }
        let logs: Vec<Value> = r
            .events
            .iter()
            .map(|e| {
                let mut fields = vec![str_tag("event", &e.name)];
                fields.extend(tags(&e.attributes));
                json!({ "timestamp": micros(e.time_ns), "fields": fields })
            })
            .collect();
        out_spans.push(json!({
            "traceID": jaeger_trace_id(&r.trace_id),
            "spanID": r.span_id,
            "flags": r.flags,
            "operationName": r.span_name,
            "references": refs,
            "startTime": micros(r.start_ns),
            "duration": micros(r.end_ns) - micros(r.start_ns),
            "tags": span_tags(r),
            "logs": logs,
            "processID": format!("p{pid}"),
            "warnings": Value::Null,
        }));
    }
    let mut procs = serde_json::Map::new();
    for (i, (service, resource)) in processes.iter().enumerate() {
        let ptags: Vec<Value> = resource
            .iter()
            .filter(|a| a.key != "service.name")
            .map(|a| tag(&a.key, &a.value))
            .collect();
        procs.insert(
            format!("p{}", i + 1),
            json!({ "serviceName": service, "tags": ptags }),
        );
    }
    json!({
        "traceID": jaeger_trace_id(trace_id),
        "spans": out_spans,
        "processes": procs,
        "warnings": Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_typed() {
        assert_eq!(
            tag("a", &Typed::Int(5)),
            json!({"key": "a", "type": "int64", "value": 5})
        );
        assert_eq!(
            tag("a", &Typed::Double(1.5)),
            json!({"key": "a", "type": "float64", "value": 1.5})
        );
        assert_eq!(
            tag("a", &Typed::Bool(false)),
            json!({"key": "a", "type": "bool", "value": false})
        );
        assert_eq!(
            tag("a", &Typed::Array("[1,2]".into())),
            json!({"key": "a", "type": "string", "value": "[1,2]"})
        );
        assert_eq!(
            tag("big", &Typed::Int(i64::MAX)),
            json!({"key": "big", "type": "int64", "value": i64::MAX.to_string()})
        );
        assert_eq!(
            jaeger_trace_id("0000000000000000000000000000abcd"),
            "000000000000abcd"
        );
        assert_eq!(
            jaeger_trace_id("0a00000000000001000000000000abcd"),
            "0a00000000000001000000000000abcd"
        );
        assert_eq!(kind_name("SPAN_KIND_CLIENT"), "client");
        assert_eq!(otlp_kind("client"), Some("SPAN_KIND_CLIENT"));
        assert_eq!(otlp_kind("bogus"), None);
    }
}
