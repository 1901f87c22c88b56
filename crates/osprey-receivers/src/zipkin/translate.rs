//! Zipkin v2 spans to OTLP, as the Collector's `pkg/translator/zipkin` (`zipkinv2`) does:
//! spans grouped by local service (one resource each) and instrumentation scope, special tags
//! (`otel.status_code`, `error`, `w3c.tracestate`, `otlp.link.N`, `span.kind`, scope and
//! resource keys) lifted out of the attributes, endpoints turned into network attributes,
//! annotations into events.

use super::attrs::{self, AttrList};
use super::model::{Kind, ZipkinSpan};
use osprey_model::otlp::common::v1::InstrumentationScope;
use osprey_model::otlp::resource::v1::Resource;
use osprey_model::otlp::trace::v1::span::{Event, Link, SpanKind};
use osprey_model::otlp::trace::v1::status::StatusCode;
use osprey_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use osprey_model::TraceRequest;

/// Tag naming the resource attribute that carries the local service name.
const TAG_SERVICE_NAME_SOURCE: &str = "otlp.service.name.source";
/// Attribute set on spans that arrived without a timestamp.
pub const START_TIME_ABSENT: &str = "otel.zipkin.absentField.startTime";
const SCOPE_NAME_KEYS: [&str; 2] = ["otel.scope.name", "otel.library.name"];
const SCOPE_VERSION_KEYS: [&str; 2] = ["otel.scope.version", "otel.library.version"];

/// Converts decoded spans into one OTLP request.
pub fn to_otlp(mut spans: Vec<ZipkinSpan>, parse_string_tags: bool) -> TraceRequest {
    // Group by local service, then scope, keeping arrival order inside a group.
    spans.sort_by(|a, b| (service_name(a), scope_name(a)).cmp(&(service_name(b), scope_name(b))));
    let mut out = TraceRequest::default();
    let mut cur_service: Option<Option<String>> = None;
    let mut cur_scope: Option<String> = None;
    for zspan in spans {
        let mut tags = zspan.tags.clone();
        let service = service_name(&zspan).map(str::to_owned);
        if cur_service.as_ref() != Some(&service) {
            out.resource_spans.push(ResourceSpans {
                resource: Some(resource(&mut tags, service.as_deref())),
                ..Default::default()
            });
            cur_service = Some(service);
            cur_scope = None;
        }
        let scope = scope_name(&zspan).to_owned();
        let Some(rs) = out.resource_spans.last_mut() else {
            continue;
        };
        if cur_scope.as_ref() != Some(&scope) || rs.scope_spans.is_empty() {
            let version = take_first(&mut tags, &SCOPE_VERSION_KEYS).unwrap_or_default();
            rs.scope_spans.push(ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: scope.clone(),
                    version: if scope.is_empty() {
                        String::new()
                    } else {
                        version
                    },
                    ..Default::default()
                }),
                ..Default::default()
            });
            cur_scope = Some(scope);
        }
        if let Some(ss) = rs.scope_spans.last_mut() {
            ss.spans.push(span(zspan, tags, parse_string_tags));
        }
    }
    out
}

fn service_name(s: &ZipkinSpan) -> Option<&str> {
    s.local_endpoint
        .as_ref()
        .map(|e| e.service_name.as_str())
        .filter(|n| !n.is_empty())
}

fn scope_name(s: &ZipkinSpan) -> &str {
    SCOPE_NAME_KEYS.iter().find_map(|k| s.tag(k)).unwrap_or("")
}

fn take(tags: &mut Vec<(String, String)>, key: &str) -> Option<String> {
    let pos = tags.iter().position(|(k, _)| k == key)?;
    Some(tags.remove(pos).1)
}

fn take_first(tags: &mut Vec<(String, String)>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| take(tags, k))
}

/// The resource of a group, from its first span: `service.name` (or the key named by
/// `otlp.service.name.source`) plus the resource-convention tags, which leave the span.
fn resource(tags: &mut Vec<(String, String)>, service: Option<&str>) -> Resource {
    let mut attributes = AttrList::default();
    if let Some(service) = service {
        let key = take(tags, TAG_SERVICE_NAME_SOURCE)
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| "service.name".to_string());
        attributes.put_str(&key, service);
        let mut i = 0;
        while i < tags.len() {
            if attrs::is_resource_key(&tags[i].0) {
                let (k, v) = tags.remove(i);
                attributes.put_str(&k, &v);
            } else {
                i += 1;
            }
        }
    }
    Resource {
        attributes: attributes.into_vec(),
        ..Default::default()
    }
}

fn span(z: ZipkinSpan, mut tags: Vec<(String, String)>, parse_string_tags: bool) -> Span {
    let trace_state = take(&mut tags, "w3c.tracestate").unwrap_or_default();
    let parent_span_id = z
        .parent_id
        .filter(|p| *p != z.id)
        .map(|p| p.to_vec())
        .unwrap_or_default();
    let kind = match z.kind {
        Some(Kind::Client) => SpanKind::Client,
        Some(Kind::Server) => SpanKind::Server,
        Some(Kind::Producer) => SpanKind::Producer,
        Some(Kind::Consumer) => SpanKind::Consumer,
        None => match take(&mut tags, "span.kind").as_deref() {
            Some("internal") => SpanKind::Internal,
            _ => SpanKind::Unspecified,
        },
    };
    let status = status(&mut tags);
    let links = links(&mut tags);

    let mut attributes = AttrList::default();
    for (k, v) in tags {
        if attrs::is_non_span_key(&k) {
            continue;
        }
        if parse_string_tags {
            attributes.put(&k, attrs::typed_value(&v));
        } else {
            attributes.put_str(&k, &v);
        }
    }
    if let Some(local) = &z.local_endpoint {
        if let Some(ip) = local.ipv4 {
            attributes.put_str(attrs::LOCAL_ADDRESS, &ip.to_string());
        }
        if let Some(ip) = local.ipv6 {
            attributes.put_str(attrs::LOCAL_ADDRESS, &ip.to_string());
        }
        if local.port > 0 {
            attributes.put_int(attrs::LOCAL_PORT, i64::from(local.port));
        }
    }
    if let Some(remote) = &z.remote_endpoint {
        if !remote.service_name.is_empty() {
            attributes.put_str(attrs::PEER_SERVICE, &remote.service_name);
        }
        if let Some(ip) = remote.ipv4 {
            attributes.put_str(attrs::PEER_ADDRESS, &ip.to_string());
        }
        if let Some(ip) = remote.ipv6 {
            attributes.put_str(attrs::PEER_ADDRESS, &ip.to_string());
        }
        if remote.port > 0 {
            attributes.put_int(attrs::PEER_PORT, i64::from(remote.port));
        }
    }
    let (start, end) = if z.timestamp_us == 0 {
        // Zipkin allows an absent timestamp; upstream keeps the duration from the epoch.
        attributes.put_bool(START_TIME_ABSENT, true);
        (0, z.duration_us.saturating_mul(1000))
    } else {
        let start = z.timestamp_us.saturating_mul(1000);
        (
            start,
            start.saturating_add(z.duration_us.saturating_mul(1000)),
        )
    };
    Span {
        trace_id: z.trace_id.to_vec(),
        span_id: z.id.to_vec(),
        trace_state,
        parent_span_id,
        name: z.name,
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: attributes.into_vec(),
        events: z
            .annotations
            .iter()
            .map(|a| event(a.timestamp_us, &a.value))
            .collect(),
        links,
        status,
        ..Default::default()
    }
}

/// `otel.status_code` (+ `otel.status_description`), else `error: "true"`.
fn status(tags: &mut Vec<(String, String)>) -> Option<Status> {
    let mut status: Option<Status> = None;
    if let Some(code) = take(tags, "otel.status_code") {
        let code = match code.to_ascii_uppercase().trim_start_matches("STATUS_CODE_") {
            "OK" => StatusCode::Ok,
            "ERROR" => StatusCode::Error,
            _ => StatusCode::Unset,
        };
        status = Some(Status {
            code: code as i32,
            message: take(tags, "otel.status_description").unwrap_or_default(),
        });
    }
    if tags.iter().any(|(k, v)| k == "error" && v == "true") {
        take(tags, "error");
        status.get_or_insert_with(Status::default).code = StatusCode::Error as i32;
    }
    status
}

/// Links carried as `otlp.link.0`, `otlp.link.1`, ... tags:
/// `traceid|spanid|tracestate|{json attributes}|dropped count`. Malformed ones are dropped.
fn links(tags: &mut Vec<(String, String)>) -> Vec<Link> {
    let mut out = Vec::new();
    for i in 0..128 {
        let Some(value) = take(tags, &format!("otlp.link.{i}")) else {
            break;
        };
        let parts: Vec<&str> = value.split('|').collect();
        if parts.len() < 5 {
            continue;
        }
        let n = parts.len();
        let trace_id = attrs::link_id::<16>(parts[0]);
        let span_id = attrs::link_id::<8>(parts[1]);
        let json = parts[3..n - 1].join("|");
        let (Some(trace_id), Some(span_id), Some(attributes), Ok(dropped)) = (
            trace_id,
            span_id,
            attrs::json_attributes(&json),
            parts[n - 1].parse::<u32>(),
        ) else {
            tracing::debug!(link = %value, "zipkin receiver: dropping a malformed otlp.link tag");
            continue;
        };
        out.push(Link {
            trace_id,
            span_id,
            trace_state: parts[2].to_string(),
            attributes,
            dropped_attributes_count: dropped,
            ..Default::default()
        });
    }
    out
}

/// An annotation as an event: `name|{json attributes}|dropped` when it has that form (as the
/// Collector's Zipkin exporter writes events), else the whole value as the name.
fn event(timestamp_us: u64, value: &str) -> Event {
    let time_unix_nano = timestamp_us.saturating_mul(1000);
    let parts: Vec<&str> = value.split('|').collect();
    let n = parts.len();
    if n >= 3 {
        let json = parts[1..n - 1].join("|");
        if let (Some(attributes), Ok(dropped)) =
            (attrs::json_attributes(&json), parts[n - 1].parse::<u32>())
        {
            return Event {
                time_unix_nano,
                name: parts[0].to_string(),
                attributes,
                dropped_attributes_count: dropped,
            };
        }
        return Event {
            time_unix_nano,
            name: value.to_string(),
            ..Default::default()
        };
    }
    Event {
        time_unix_nano,
        name: parts.first().copied().unwrap_or("").to_string(),
        ..Default::default()
    }
}
