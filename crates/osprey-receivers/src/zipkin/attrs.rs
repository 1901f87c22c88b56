//! Attribute helpers for the Zipkin translation: an insertion-ordered attribute list with
//! upsert, `parse_string_tags` typing, the keys that belong to the resource rather than the
//! span, and the JSON attribute maps the Collector's Zipkin exporter embeds in events and links.

use osprey_model::otlp::common::v1::any_value::Value;
use osprey_model::otlp::common::v1::{AnyValue, KeyValue};

/// Local endpoint address (`network.local.address`, semconv v1.40; upstream's default since
/// its `EmitV1NetworkConventions`/`DontEmitV0NetworkConventions` gates went beta).
pub const LOCAL_ADDRESS: &str = "network.local.address";
pub const LOCAL_PORT: &str = "net.host.port";
/// Remote endpoint service (`service.peer.name`, formerly `peer.service`).
pub const PEER_SERVICE: &str = "service.peer.name";
pub const PEER_ADDRESS: &str = "network.peer.address";
pub const PEER_PORT: &str = "net.peer.port";

/// Resource semantic-convention keys: a span tag with one of these names moves to the
/// resource (from a group's first span) and never stays on a span.
const RESOURCE_KEYS: &[&str] = &[
    "service.name",
    "service.namespace",
    "service.instance.id",
    "service.version",
    "telemetry.sdk.name",
    "telemetry.sdk.language",
    "telemetry.sdk.version",
    "telemetry.auto.version",
    "telemetry.distro.name",
    "telemetry.distro.version",
    "container.name",
    "container.id",
    "container.runtime",
    "container.image.name",
    "container.image.tag",
    "container.image.id",
    "container.command",
    "container.command_line",
    "container.command_args",
    "deployment.environment",
    "deployment.environment.name",
    "device.id",
    "device.model.identifier",
    "device.model.name",
    "device.manufacturer",
    "faas.name",
    "faas.id",
    "faas.version",
    "faas.instance",
    "faas.max_memory",
    "host.id",
    "host.name",
    "host.type",
    "host.arch",
    "host.image.name",
    "host.image.id",
    "host.image.version",
    "k8s.cluster.name",
    "k8s.node.name",
    "k8s.node.uid",
    "k8s.namespace.name",
    "k8s.pod.uid",
    "k8s.pod.name",
    "k8s.container.name",
    "k8s.container.restart_count",
    "k8s.replicaset.uid",
    "k8s.replicaset.name",
    "k8s.deployment.uid",
    "k8s.deployment.name",
    "k8s.statefulset.uid",
    "k8s.statefulset.name",
    "k8s.daemonset.uid",
    "k8s.daemonset.name",
    "k8s.job.uid",
    "k8s.job.name",
    "k8s.cronjob.uid",
    "k8s.cronjob.name",
    "os.type",
    "os.description",
    "os.name",
    "os.version",
    "process.pid",
    "process.parent_pid",
    "process.executable.name",
    "process.executable.path",
    "process.command",
    "process.command_line",
    "process.command_args",
    "process.owner",
    "process.runtime.name",
    "process.runtime.version",
    "process.runtime.description",
    "cloud.provider",
    "cloud.account.id",
    "cloud.region",
    "cloud.availability_zone",
    "cloud.platform",
    "cloud.resource_id",
    "aws.ecs.container.arn",
    "aws.ecs.cluster.arn",
    "aws.ecs.launchtype",
    "aws.ecs.task.arn",
    "aws.ecs.task.family",
    "aws.ecs.task.revision",
    "aws.eks.cluster.arn",
    "aws.log.group.names",
    "aws.log.group.arns",
    "aws.log.stream.names",
    "aws.log.stream.arns",
    "webengine.name",
    "webengine.version",
    "webengine.description",
    "opencensus.starttime",
    "opencensus.exporterversion",
    "opencensus.resourcetype",
];

/// Keys that never become span attributes: the resource keys, the scope keys and the
/// service-name source marker.
const OTHER_NON_SPAN_KEYS: &[&str] = &[
    "otlp.service.name.source",
    "otel.library.name",
    "otel.library.version",
    "otel.scope.name",
    "otel.scope.version",
];

pub fn is_resource_key(key: &str) -> bool {
    RESOURCE_KEYS.contains(&key)
}

pub fn is_non_span_key(key: &str) -> bool {
    is_resource_key(key) || OTHER_NON_SPAN_KEYS.contains(&key)
}

/// Attributes in insertion order; `put` replaces an earlier value under the same key.
#[derive(Debug, Default)]
pub struct AttrList(Vec<KeyValue>);

impl AttrList {
    pub fn put(&mut self, key: &str, value: Value) {
        let value = Some(AnyValue { value: Some(value) });
        match self.0.iter_mut().find(|kv| kv.key == key) {
            Some(kv) => kv.value = value,
            None => self.0.push(KeyValue {
                key: key.to_string(),
                value,
                ..Default::default()
            }),
        }
    }
    pub fn put_str(&mut self, key: &str, value: &str) {
        self.put(key, Value::StringValue(value.to_string()));
    }
    pub fn put_int(&mut self, key: &str, value: i64) {
        self.put(key, Value::IntValue(value));
    }
    pub fn put_bool(&mut self, key: &str, value: bool) {
        self.put(key, Value::BoolValue(value));
    }
    pub fn into_vec(self) -> Vec<KeyValue> {
        self.0
    }
}

/// `parse_string_tags`: `-?\d+` is an int (saturating, as Go's `ParseInt`), `-?\d+\.\d+` a
/// double, `true`/`false` a bool; anything else stays a string.
pub fn typed_value(text: &str) -> Value {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    if digits(unsigned) {
        let n = text.parse::<i64>().unwrap_or(if text.starts_with('-') {
            i64::MIN
        } else {
            i64::MAX
        });
        return Value::IntValue(n);
    }
    if let Some((int, frac)) = unsigned.split_once('.') {
        if digits(int) && digits(frac) {
            if let Ok(f) = text.parse::<f64>() {
                return Value::DoubleValue(f);
            }
        }
    }
    match text {
        "true" => Value::BoolValue(true),
        "false" => Value::BoolValue(false),
        _ => Value::StringValue(text.to_string()),
    }
}

/// A link's trace or span id: hex, maybe quoted; empty means all zero.
pub fn link_id<const N: usize>(text: &str) -> Option<Vec<u8>> {
    let t = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if t.is_empty() {
        return Some(vec![0; N]);
    }
    if t.len() != N * 2 {
        return None;
    }
    (0..N)
        .map(|i| u8::from_str_radix(t.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect()
}

/// A flat JSON object as attributes: strings, booleans, integral numbers as ints and other
/// numbers as doubles; other values are skipped. `None` if `json` is not an object.
pub fn json_attributes(json: &str) -> Option<Vec<KeyValue>> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).ok()?;
    let mut out = AttrList::default();
    for (k, v) in map {
        match v {
            serde_json::Value::String(s) => out.put_str(&k, &s),
            serde_json::Value::Bool(b) => out.put_bool(&k, b),
            serde_json::Value::Number(n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => out.put_int(&k, f as i64),
                Some(f) => out.put(&k, Value::DoubleValue(f)),
                None => {}
            },
            _ => {}
        }
    }
    Some(out.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_tags_are_typed_like_upstream() {
        assert_eq!(typed_value("42"), Value::IntValue(42));
        assert_eq!(typed_value("-7"), Value::IntValue(-7));
        assert_eq!(
            typed_value("99999999999999999999"),
            Value::IntValue(i64::MAX)
        );
        assert_eq!(typed_value("3.25"), Value::DoubleValue(3.25));
        assert_eq!(typed_value("true"), Value::BoolValue(true));
        for s in ["True", "1e5", ".5", "5.", "", "0x10", "GET"] {
            assert_eq!(typed_value(s), Value::StringValue(s.into()), "{s}");
        }
    }

    #[test]
    fn link_ids_and_json_attributes() {
        assert_eq!(
            link_id::<8>("\"0102030405060708\""),
            Some(vec![1, 2, 3, 4, 5, 6, 7, 8])
        );
        assert_eq!(link_id::<8>(""), Some(vec![0; 8]));
        assert_eq!(link_id::<8>("01"), None);
        let a = json_attributes(r#"{"s":"x","i":3,"d":1.5,"b":false,"n":null}"#).unwrap();
        let keys: Vec<_> = a.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys.len(), 4);
        assert!(json_attributes("[1]").is_none());
    }
}
