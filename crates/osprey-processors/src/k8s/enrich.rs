//! Enrichment: finds the pod a resource came from (by the association rules, or upstream's
//! fallbacks when there are none) and adds the pod's, its namespace's and its node's
//! attributes to the resource, never replacing a non-empty attribute already there.

use super::index::PodIndex;
use super::pod::{IdPart, PodId, PodInfo};
use super::rules::{Rules, Source};
use crate::attrs;
use osprey_model::otlp::common::v1::{any_value::Value, KeyValue};
use osprey_model::otlp::resource::v1::Resource;
use osprey_model::TraceRequest;
use osprey_pipeline::{Context, LogsRequest, MetricsRequest, Payload};
use std::net::IpAddr;

/// Adds pod metadata to every resource of `req`.
pub fn enrich_traces(req: &mut TraceRequest, ctx: &Context, index: &PodIndex, rules: &Rules) {
    for rs in &mut req.resource_spans {
        enrich_resource(resource_attrs(&mut rs.resource), ctx, index, rules);
    }
}

/// Adds pod metadata to every resource of `req`.
pub fn enrich_metrics(req: &mut MetricsRequest, ctx: &Context, index: &PodIndex, rules: &Rules) {
    for rm in &mut req.resource_metrics {
        enrich_resource(resource_attrs(&mut rm.resource), ctx, index, rules);
    }
}

/// Adds pod metadata to every resource of `req`.
pub fn enrich_logs(req: &mut LogsRequest, ctx: &Context, index: &PodIndex, rules: &Rules) {
    for rl in &mut req.resource_logs {
        enrich_resource(resource_attrs(&mut rl.resource), ctx, index, rules);
    }
}

/// Enriches whichever signal `payload` carries.
pub fn enrich_payload(payload: &mut Payload, ctx: &Context, index: &PodIndex, rules: &Rules) {
    match payload {
        Payload::Traces(r) => enrich_traces(r, ctx, index, rules),
        Payload::Metrics(r) => enrich_metrics(r, ctx, index, rules),
        Payload::Logs(r) => enrich_logs(r, ctx, index, rules),
        // Undecoded: the caller decodes first (`Batch::payload_mut`).
        Payload::RawTraces(_) => {}
    }
}

fn resource_attrs(r: &mut Option<Resource>) -> &mut Vec<KeyValue> {
    &mut r.get_or_insert_with(Resource::default).attributes
}

/// The client address as the Collector renders it (an IPv4-mapped IPv6 address as IPv4).
pub fn connection_ip(ctx: &Context) -> Option<String> {
    ctx.client_addr.map(|ip| match ip {
        IpAddr::V6(v6) => v6.to_canonical().to_string(),
        v4 => v4.to_string(),
    })
}

/// A string attribute's value ("" when absent or not a string), as upstream reads them.
fn string_attr(attrs: &[KeyValue], key: &str) -> String {
    match attrs::get(attrs, key).and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        _ => String::new(),
    }
}

fn conn_part(value: String) -> PodId {
    vec![IdPart {
        source: Source::Connection,
        value,
    }]
}

/// The identifier of the pod `attrs` came from: the first association rule whose sources all
/// resolve. Without rules: `k8s.pod.ip`, then `ip`, then the connection, then `host.name`
/// when it is an IP address - each matched against pod IPs. Empty when nothing resolves.
pub fn extract_pod_id(ctx: &Context, attrs: &[KeyValue], associations: &[Vec<Source>]) -> PodId {
    let conn = connection_ip(ctx).unwrap_or_default();
    if associations.is_empty() {
        for key in ["k8s.pod.ip", "ip"] {
            let v = string_attr(attrs, key);
            if !v.is_empty() {
                return conn_part(v);
            }
        }
        if !conn.is_empty() {
            return conn_part(conn);
        }
        let host = string_attr(attrs, "host.name");
        if host.parse::<IpAddr>().is_ok() {
            return conn_part(host);
        }
        return PodId::new();
    }
    'assoc: for sources in associations {
        let mut id = PodId::with_capacity(sources.len());
        for source in sources {
            let value = match source {
                Source::Connection => conn.clone(),
                Source::Resource(name) => {
                    let v = string_attr(attrs, name);
                    if name == "host.name" && v.parse::<IpAddr>().is_err() {
                        continue 'assoc;
                    }
                    v
                }
            };
            if value.is_empty() {
                continue 'assoc;
            }
            id.push(IdPart {
                source: source.clone(),
                value,
            });
        }
        return id;
    }
    PodId::new()
}

/// Sets `key` unless the map already has a non-empty value for it (upstream's
/// `setResourceAttribute`).
fn set_if_absent(attrs: &mut Vec<KeyValue>, key: &str, value: &str) {
    let present = attrs::get(attrs, key).is_some_and(|v| !attrs::as_string(v).is_empty());
    if !present {
        attrs::put(attrs, key, attrs::str_value(value));
    }
}

/// Enriches one resource's attributes.
pub fn enrich_resource(attrs: &mut Vec<KeyValue>, ctx: &Context, index: &PodIndex, rules: &Rules) {
    let id = extract_pod_id(ctx, attrs, &rules.associations);
    if let Some(part) = id
        .iter()
        .find(|p| p.source == Source::Connection && !p.value.is_empty())
    {
        if rules.passthrough || rules.metadata.pod_ip {
            set_if_absent(attrs, "k8s.pod.ip", &part.value);
        }
    }
    if rules.passthrough {
        return;
    }
    let pod = if id.is_empty() { None } else { index.get(&id) };
    if pod.is_none() {
        tracing::trace!(identifier = ?id, "k8sattributes: no pod found");
    }
    if let Some(pod) = pod {
        for (k, v) in &pod.attributes {
            set_if_absent(attrs, k, v);
        }
        add_container_attributes(attrs, pod, rules);
        if rules.metadata.cluster_uid {
            if let Some(ns) = index.namespace("kube-system") {
                set_if_absent(attrs, "k8s.cluster.uid", &ns.uid);
            }
        }
    }
    let namespace = match pod {
        Some(p) if !p.namespace.is_empty() => p.namespace.clone(),
        _ => string_attr(attrs, "k8s.namespace.name"),
    };
    if let Some(ns) = index.namespace(&namespace) {
        for (k, v) in &ns.attributes {
            set_if_absent(attrs, k, v);
        }
    }
    let node_name = match pod {
        Some(p) if !p.node_name.is_empty() => p.node_name.clone(),
        _ => string_attr(attrs, "k8s.node.name"),
    };
    if let Some(node) = index.node(&node_name) {
        for (k, v) in &node.attributes {
            set_if_absent(attrs, k, v);
        }
        if rules.metadata.node_uid && !node.uid.is_empty() {
            set_if_absent(attrs, "k8s.node.uid", &node.uid);
        }
    }
}

/// Adds the attributes of the container the resource names (`k8s.container.name`, else
/// `container.id`), or of the pod's only container.
fn add_container_attributes(attrs: &mut Vec<KeyValue>, pod: &PodInfo, rules: &Rules) {
    let containers = &pod.containers;
    let by_name = string_attr(attrs, "k8s.container.name");
    let by_id = string_attr(attrs, "container.id");
    let container = if !by_name.is_empty() {
        containers.by_name.get(&by_name)
    } else if !by_id.is_empty() {
        containers
            .by_id
            .get(&by_id)
            .and_then(|n| containers.by_name.get(n))
    } else if containers.by_id.len() == 1 {
        containers
            .by_id
            .values()
            .next()
            .and_then(|n| containers.by_name.get(n))
    } else if containers.by_name.len() == 1 {
        containers.by_name.values().next()
    } else {
        None
    };
    let Some(c) = container else { return };
    for (key, value) in [
        ("k8s.container.name", &c.name),
        ("container.image.name", &c.image_name),
        ("container.image.tag", &c.image_tag),
    ] {
        if !value.is_empty() {
            set_if_absent(attrs, key, value);
        }
    }
    if !rules.metadata.container_id {
        return;
    }
    let run = match attrs::get(attrs, "k8s.container.restart_count").and_then(|v| v.value.as_ref())
    {
        Some(Value::IntValue(n)) => Some(*n),
        Some(Value::StringValue(s)) => s.trim().parse().ok(),
        Some(_) => None,
        None => c.ids_by_restart.keys().next_back().copied(),
    };
    if let Some(cid) = run.and_then(|r| c.ids_by_restart.get(&r)) {
        if !cid.is_empty() {
            set_if_absent(attrs, "container.id", cid);
        }
    }
}
