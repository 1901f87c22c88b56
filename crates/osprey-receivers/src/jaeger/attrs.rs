//! Jaeger tags as an OTLP attribute map, and the rules upstream's translator applies to the
//! special tags: the span status (`error`, `otel.status_code`, `otel.status_description`,
//! `http.status_code`) and the resource renames (`hostname`, `jaeger.version`).

use super::model::{Tag, Value};
use osprey_model::otlp::common::v1::any_value::Value as Av;
use osprey_model::otlp::common::v1::{AnyValue, KeyValue};
use osprey_model::otlp::trace::v1::span::SpanKind;
use osprey_model::otlp::trace::v1::status::StatusCode;
use osprey_model::otlp::trace::v1::Status;

/// An attribute map with pdata's semantics: one entry per key, a put replaces in place.
#[derive(Debug, Default)]
pub struct Attrs(pub Vec<KeyValue>);

impl Attrs {
    pub fn from_tags(tags: Vec<Tag>) -> Self {
        let mut a = Attrs(Vec::with_capacity(tags.len()));
        for t in tags {
            let v = match t.value {
                Value::Str(s) => Av::StringValue(s),
                Value::Bool(b) => Av::BoolValue(b),
                Value::Long(i) => Av::IntValue(i),
                Value::Double(d) => Av::DoubleValue(d),
                Value::Binary(b) => Av::BytesValue(b),
                Value::Unknown(s) => Av::StringValue(s),
            };
            a.put(t.key, v);
        }
        a
    }

    pub fn put(&mut self, key: String, value: Av) {
        let value = Some(AnyValue { value: Some(value) });
        match self.0.iter_mut().find(|kv| kv.key == key) {
            Some(kv) => kv.value = value,
            None => self.0.push(KeyValue {
                key,
                value,
                ..Default::default()
            }),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Av> {
        self.0
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|kv| kv.key == key)
    }

    /// pdata's `Value.Str()`: the string, or "" for any other type.
    pub fn get_str(&self, key: &str) -> Option<String> {
        self.contains(key).then(|| match self.get(key) {
            Some(Av::StringValue(s)) => s.clone(),
            _ => String::new(),
        })
    }

    pub fn remove(&mut self, key: &str) -> Option<Av> {
        let i = self.0.iter().position(|kv| kv.key == key)?;
        self.0.remove(i).value.and_then(|v| v.value)
    }

    /// Upstream's resource renames: `hostname` becomes `host.name` (unless set), and
    /// `jaeger.version` becomes `opencensus.exporterversion` = `Jaeger-<version>`.
    pub fn translate_resource_keys(&mut self) {
        if self.contains("hostname") && !self.contains("host.name") {
            if let Some(v) = self.remove("hostname") {
                self.put("host.name".into(), v);
            }
        }
        if self.contains("jaeger.version") && !self.contains("opencensus.exporterversion") {
            let v = self.get_str("jaeger.version").unwrap_or_default();
            self.put(
                "opencensus.exporterversion".into(),
                Av::StringValue(format!("Jaeger-{v}")),
            );
            self.remove("jaeger.version");
        }
    }
}

/// The `span.kind` tag's value.
pub fn span_kind(value: &str) -> SpanKind {
    match value {
        "client" => SpanKind::Client,
        "server" => SpanKind::Server,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        "internal" => SpanKind::Internal,
        _ => SpanKind::Unspecified,
    }
}

/// An integer from an int or a decimal-string attribute (`http.status_code`).
fn code_from(v: Option<&Av>) -> Option<i64> {
    match v? {
        Av::IntValue(i) => Some(*i),
        Av::StringValue(s) => s.parse().ok(),
        _ => None,
    }
}

/// OpenTelemetry's HTTP status rule: 4xx is an error for clients, unset for servers; other
/// codes outside 100..399 are errors.
fn status_from_http(code: i64, kind: SpanKind) -> StatusCode {
    if (400..500).contains(&code) {
        match kind {
            SpanKind::Client => return StatusCode::Error,
            SpanKind::Server => return StatusCode::Unset,
            _ => {}
        }
    }
    if (100..399).contains(&code) {
        StatusCode::Unset
    } else {
        StatusCode::Error
    }
}

/// The span status from its tags, removing the tags it consumes: a boolean `error=true` wins
/// (message from `otel.status_description`, else `http.status_message`); otherwise
/// `otel.status_code` (OK/ERROR); otherwise `http.status_code`. `None`: no status was given.
pub fn take_status(attrs: &mut Attrs, kind: SpanKind) -> Option<Status> {
    const DESC: &str = "otel.status_description";
    const HTTP_MSG: &str = "http.status_message";
    let mut code = StatusCode::Unset;
    let mut message = String::new();
    let mut exists = false;

    if let Some(Av::BoolValue(true)) = attrs.get("error") {
        code = StatusCode::Error;
        attrs.remove("error");
        exists = true;
        if let Some(desc) = attrs.get_str(DESC) {
            attrs.remove(DESC);
            message = desc;
        } else if let Some(msg) = attrs.get_str(HTTP_MSG) {
            message = msg;
        }
    }

    if attrs.contains("otel.status_code") {
        if !exists {
            exists = true;
            code = match attrs
                .get_str("otel.status_code")
                .unwrap_or_default()
                .to_uppercase()
                .as_str()
            {
                "OK" => StatusCode::Ok,
                "ERROR" => StatusCode::Error,
                _ => StatusCode::Unset,
            };
            if let Some(desc) = attrs.get_str(DESC) {
                attrs.remove(DESC);
                message = desc;
            }
        }
        attrs.remove("otel.status_code");
    } else if !exists && attrs.contains("http.status_code") {
        if let Some(http) = code_from(attrs.get("http.status_code")) {
            let c = status_from_http(http, kind);
            if c != StatusCode::Unset {
                exists = true;
                code = c;
            }
            if let Some(msg) = attrs.get_str(HTTP_MSG) {
                message = msg;
            }
        }
    }

    exists.then_some(Status {
        message,
        code: code as i32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jaeger::testutil::{s, tag};

    fn status(tags: Vec<Tag>, kind: SpanKind) -> (Option<(StatusCode, String)>, Vec<String>) {
        let mut a = Attrs::from_tags(tags);
        let st =
            take_status(&mut a, kind).map(|s| (StatusCode::try_from(s.code).unwrap(), s.message));
        (st, a.0.into_iter().map(|kv| kv.key).collect())
    }

    #[test]
    fn status_rules_follow_upstream() {
        let (st, left) = status(
            vec![
                tag("error", Value::Bool(true)),
                tag("otel.status_code", s("OK")),
                tag("http.status_message", s("teapot")),
            ],
            SpanKind::Server,
        );
        assert_eq!(st, Some((StatusCode::Error, "teapot".into())));
        assert_eq!(left, vec!["http.status_message"]);

        let (st, left) = status(
            vec![
                tag("otel.status_code", s("error")),
                tag("otel.status_description", s("bad")),
            ],
            SpanKind::Unspecified,
        );
        assert_eq!(st, Some((StatusCode::Error, "bad".into())));
        assert!(left.is_empty());

        // error=false is left as an attribute and does not set a status.
        let (st, left) = status(vec![tag("error", Value::Bool(false))], SpanKind::Client);
        assert_eq!(st, None);
        assert_eq!(left, vec!["error"]);

        let http = |code: Value, kind| status(vec![tag("http.status_code", code)], kind).0;
        assert_eq!(http(Value::Long(404), SpanKind::Server), None);
        assert_eq!(
            http(s("404"), SpanKind::Client),
            Some((StatusCode::Error, String::new()))
        );
        assert_eq!(http(Value::Long(200), SpanKind::Client), None);
        assert_eq!(
            http(Value::Long(503), SpanKind::Server),
            Some((StatusCode::Error, String::new()))
        );
        assert_eq!(http(Value::Double(500.0), SpanKind::Server), None);
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_in_the_first_place() {
        let a = Attrs::from_tags(vec![
            tag("a", s("1")),
            tag("b", s("2")),
            tag("a", Value::Long(3)),
        ]);
        assert_eq!(a.0.len(), 2);
        assert_eq!(a.get("a"), Some(&Av::IntValue(3)));
        assert_eq!(a.0[0].key, "a");
    }

    #[test]
    fn resource_keys_are_renamed() {
        let mut a = Attrs::from_tags(vec![
            tag("hostname", s("h")),
            tag("jaeger.version", s("Go-2.30.0")),
        ]);
        a.translate_resource_keys();
        assert_eq!(a.get("host.name"), Some(&Av::StringValue("h".into())));
        assert_eq!(
            a.get("opencensus.exporterversion"),
            Some(&Av::StringValue("Jaeger-Go-2.30.0".into()))
        );
        assert!(!a.contains("hostname") && !a.contains("jaeger.version"));
        let mut b = Attrs::from_tags(vec![tag("hostname", s("h")), tag("host.name", s("x"))]);
        b.translate_resource_keys();
        assert!(b.contains("hostname"));
    }
}
