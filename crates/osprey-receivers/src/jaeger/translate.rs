//! Jaeger batches to OTLP, following upstream's `pkg/translator/jaeger` (`ThriftToTraces`,
//! `ProtoToTraces`):
//!
//! - the process becomes the resource (`service.name` + its tags, with the `hostname` and
//!   `jaeger.version` renames); Protobuf spans with their own process are regrouped under it;
//! - ids are big-endian (`traceIdHigh` then `traceIdLow`); times are nanoseconds;
//! - the parent is the explicit parent id, else the first same-trace CHILD_OF reference, else
//!   the first same-trace FOLLOWS_FROM one; the other references become links tagged
//!   `opentracing.ref_type`;
//! - `span.kind` sets the kind, the status tags set the status ([`super::attrs`]), the
//!   sampled bit of `flags` becomes bit 0 of the OTLP flags;
//! - logs become events named by their `event` field;
//! - Protobuf only (as upstream): `otel.scope.name`/`otel.scope.version` (or the older
//!   `otel.library.*`) group spans by scope, `w3c.tracestate` becomes the trace state.

use super::attrs::{span_kind, take_status, Attrs};
use super::model::{Batch, Process, RefType, Span, Tag, Value};
use osprey_model::otlp::common::v1::any_value::Value as Av;
use osprey_model::otlp::common::v1::InstrumentationScope;
use osprey_model::otlp::resource::v1::Resource;
use osprey_model::otlp::trace::v1::span::{Event, Link, SpanKind};
use osprey_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span as OtlpSpan};
use osprey_model::TraceRequest;

/// Which decoder the batch came from; upstream translates the two slightly differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Thrift,
    Proto,
}

/// The service name upstream's OTLP-to-Jaeger translator writes for a resource without one.
const NO_SERVICE_NAME: &str = "OTLPResourceNoServiceName";

pub fn trace_id_bytes(high: u64, low: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    b.extend_from_slice(&high.to_be_bytes());
    b.extend_from_slice(&low.to_be_bytes());
    b
}

fn resource(process: Option<&Process>, flavor: Flavor) -> Resource {
    let mut res = Resource::default();
    let Some(p) = process else { return res };
    if flavor == Flavor::Proto && p.service_name == NO_SERVICE_NAME {
        return res;
    }
    if p.service_name.is_empty() && p.tags.is_none() {
        return res;
    }
    let mut tags = Vec::with_capacity(p.tags.as_ref().map_or(0, Vec::len) + 1);
    if !p.service_name.is_empty() {
        tags.push(Tag {
            key: "service.name".into(),
            value: Value::Str(p.service_name.clone()),
        });
    }
    tags.extend(p.tags.iter().flatten().cloned());
    let mut attrs = Attrs::from_tags(tags);
    attrs.translate_resource_keys();
    res.attributes = attrs.0;
    res
}

/// Removes the first tag named `key` and returns its string value ("" if not a string).
fn take_tag(tags: &mut Vec<Tag>, key: &str) -> Option<String> {
    let i = tags.iter().position(|t| t.key == key)?;
    Some(tags.remove(i).str_value().to_string())
}

/// The instrumentation scope a Protobuf span names in its tags (removed from them).
fn take_scope(tags: &mut Vec<Tag>) -> (String, String) {
    for (name_key, version_key) in [
        ("otel.scope.name", "otel.scope.version"),
        ("otel.library.name", "otel.library.version"),
    ] {
        if let Some(name) = take_tag(tags, name_key) {
            let version = take_tag(tags, version_key).unwrap_or_default();
            return (name, version);
        }
    }
    (String::new(), String::new())
}

fn span(s: Span, flavor: Flavor) -> OtlpSpan {
    let parent = s.parent();
    let mut attrs = Attrs::from_tags(s.tags);
    let mut kind = SpanKind::Unspecified;
    if attrs.contains("span.kind") {
        kind = span_kind(&attrs.get_str("span.kind").unwrap_or_default());
        attrs.remove("span.kind");
    }
    let status = take_status(&mut attrs, kind);
    let mut trace_state = String::new();
    if flavor == Flavor::Proto {
        if let Some(ts) = attrs.get_str("w3c.tracestate") {
            trace_state = ts;
            attrs.remove("w3c.tracestate");
        }
    }
    let events = s
        .logs
        .into_iter()
        .map(|log| {
            let mut a = Attrs::from_tags(log.fields);
            let name = match a.get_str("event") {
                Some(n) => {
                    a.remove("event");
                    n
                }
                None => String::new(),
            };
            Event {
                time_unix_nano: log.timestamp_ns,
                name,
                attributes: a.0,
                dropped_attributes_count: 0,
            }
        })
        .collect();
    let links = s
        .references
        .iter()
        .filter(|r| !(r.span_id == parent && r.ref_type == RefType::ChildOf))
        .map(|r| {
            let mut a = Attrs::default();
            let ref_type = match r.ref_type {
                RefType::ChildOf => "child_of",
                RefType::FollowsFrom => "follows_from",
            };
            a.put(
                "opentracing.ref_type".into(),
                Av::StringValue(ref_type.into()),
            );
            Link {
                trace_id: trace_id_bytes(r.trace_id_high, r.trace_id_low),
                span_id: r.span_id.to_be_bytes().to_vec(),
                attributes: a.0,
                ..Default::default()
            }
        })
        .collect();
    OtlpSpan {
        trace_id: trace_id_bytes(s.trace_id_high, s.trace_id_low),
        span_id: s.span_id.to_be_bytes().to_vec(),
        trace_state,
        parent_span_id: if parent != 0 {
            parent.to_be_bytes().to_vec()
        } else {
            Vec::new()
        },
        flags: s.flags & 1,
        name: s.operation_name,
        kind: kind as i32,
        start_time_unix_nano: s.start_time_ns,
        end_time_unix_nano: s.end_time_ns,
        attributes: attrs.0,
        events,
        links,
        status,
        ..Default::default()
    }
}

/// Protobuf batches may carry a process per span: group spans by effective process, in
/// first-seen order (upstream uses a hash map, so its order is unspecified).
fn regroup(batch: Batch) -> Vec<(Option<Process>, Vec<Span>)> {
    let mut groups: Vec<(Option<Process>, Vec<Span>)> = vec![(batch.process, Vec::new())];
    for mut s in batch.spans {
        let Some(own) = s.process.take() else {
            groups[0].1.push(s);
            continue;
        };
        let key = Some(own);
        match groups.iter_mut().find(|(p, _)| *p == key) {
            Some((_, spans)) => spans.push(s),
            None => groups.push((key, vec![s])),
        }
    }
    groups.retain(|(p, spans)| p.is_some() || !spans.is_empty());
    groups
}

fn scope_spans(spans: Vec<Span>, flavor: Flavor) -> Vec<ScopeSpans> {
    if spans.is_empty() {
        return Vec::new();
    }
    if flavor == Flavor::Thrift {
        return vec![ScopeSpans {
            scope: Some(InstrumentationScope::default()),
            spans: spans
                .into_iter()
                .filter(|s| !s.is_blank())
                .map(|s| span(s, flavor))
                .collect(),
            schema_url: String::new(),
        }];
    }
    let mut out: Vec<ScopeSpans> = Vec::new();
    for mut s in spans.into_iter().filter(|s| !s.is_blank()) {
        let (name, version) = take_scope(&mut s.tags);
        let converted = span(s, flavor);
        let found = out.iter_mut().find(|ss| {
            ss.scope
                .as_ref()
                .is_some_and(|sc| sc.name == name && sc.version == version)
        });
        match found {
            Some(ss) => ss.spans.push(converted),
            None => out.push(ScopeSpans {
                scope: Some(InstrumentationScope {
                    name,
                    version,
                    ..Default::default()
                }),
                spans: vec![converted],
                schema_url: String::new(),
            }),
        }
    }
    out
}

/// Translates one decoded batch.
pub fn to_otlp(batch: Batch, flavor: Flavor) -> TraceRequest {
    let groups = match flavor {
        Flavor::Thrift if batch.process.is_none() && batch.spans.is_empty() => Vec::new(),
        Flavor::Thrift => vec![(batch.process, batch.spans)],
        Flavor::Proto => regroup(batch),
    };
    TraceRequest {
        resource_spans: groups
            .into_iter()
            .map(|(process, spans)| ResourceSpans {
                resource: Some(resource(process.as_ref(), flavor)),
                scope_spans: scope_spans(spans, flavor),
                schema_url: String::new(),
            })
            .collect(),
    }
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
