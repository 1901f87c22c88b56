//! Series identity for `spanmetrics`: the metric key (dimension values joined by NUL, as
//! upstream) and the data point attributes of a span, plus the resource key.

use super::config::Dimension;
use osprey_model::anyvalue;
use osprey_model::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use osprey_model::otlp::trace::v1::{span, status, Span};
use std::collections::HashSet;

pub(crate) const SERVICE_NAME: &str = "service.name";
pub(crate) const SPAN_NAME: &str = "span.name";
pub(crate) const SPAN_KIND: &str = "span.kind";
pub(crate) const STATUS_CODE: &str = "status.code";
pub(crate) const SCOPE_NAME: &str = "span.instrumentation.scope.name";
pub(crate) const SCOPE_VERSION: &str = "span.instrumentation.scope.version";
const SEP: char = '\0';

/// A prepared dimension: its name and the default value, if any.
#[derive(Debug, Clone)]
pub(crate) struct Dim {
    pub name: String,
    pub default: Option<AnyValue>,
}

impl Dim {
    pub fn from_config(dims: &[Dimension]) -> Vec<Dim> {
        dims.iter()
            .map(|d| Dim {
                name: d.name.clone(),
                default: d.default.as_ref().map(|s| string_value(s)),
            })
            .collect()
    }
}

pub(crate) fn string_value(s: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.to_string())),
    }
}

/// The value of `key` in `attrs`.
pub(crate) fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

/// The dimension's value: the first layer that has it (span attributes first), else its
/// default.
fn dimension_value<'a>(d: &'a Dim, layers: &[&'a [KeyValue]]) -> Option<&'a AnyValue> {
    layers
        .iter()
        .find_map(|attrs| find(attrs, &d.name))
        .or(d.default.as_ref())
}

/// `SPAN_KIND_SERVER`, ... as upstream's `traceutil.SpanKindStr` (empty when unknown).
pub(crate) fn span_kind_str(kind: i32) -> &'static str {
    span::SpanKind::try_from(kind).map_or("", |k| k.as_str_name())
}

/// `STATUS_CODE_ERROR`, ... as upstream's `traceutil.StatusCodeStr`.
pub(crate) fn status_code_str(span: &Span) -> &'static str {
    let code = span.status.as_ref().map_or(0, |s| s.code);
    status::StatusCode::try_from(code).map_or("", |c| c.as_str_name())
}

/// What identifies a series and what it is labelled with, for one kind of metric.
pub(crate) struct KeyBuilder<'c> {
    pub excluded: &'c Excluded,
    pub dims: &'c [Dim],
    pub include_scopes: &'c [String],
}

/// Which default dimensions `exclude_dimensions` removes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Excluded {
    pub service: bool,
    pub name: bool,
    pub kind: bool,
    pub status: bool,
}

impl Excluded {
    pub fn from_config(list: &[String]) -> Excluded {
        let has = |k: &str| list.iter().any(|x| x == k);
        Excluded {
            service: has(SERVICE_NAME),
            name: has(SPAN_NAME),
            kind: has(SPAN_KIND),
            status: has(STATUS_CODE),
        }
    }
}

/// The span's context for key building: its service, the attribute layers searched for
/// dimensions, and its scope.
pub(crate) struct SpanCtx<'a> {
    pub service: &'a str,
    pub span: &'a Span,
    pub layers: &'a [&'a [KeyValue]],
    pub scope: Option<&'a InstrumentationScope>,
}

impl KeyBuilder<'_> {
    fn scope_included<'a>(&self, cx: &SpanCtx<'a>) -> Option<&'a InstrumentationScope> {
        cx.scope
            .filter(|s| !s.name.is_empty() && self.include_scopes.contains(&s.name))
    }

    /// Writes the series key into `out` (cleared first).
    pub fn key_into(&self, cx: &SpanCtx<'_>, out: &mut String) {
        out.clear();
        let mut first = true;
        let mut push = |out: &mut String, v: &str| {
            if !first {
                out.push(SEP);
            }
            first = false;
            out.push_str(v);
        };
        if !self.excluded.service {
            push(out, cx.service);
        }
        if !self.excluded.name {
            push(out, &cx.span.name);
        }
        if !self.excluded.kind {
            push(out, span_kind_str(cx.span.kind));
        }
        if !self.excluded.status {
            push(out, status_code_str(cx.span));
        }
        for d in self.dims {
            if let Some(v) = dimension_value(d, cx.layers) {
                out.push(SEP);
                anyvalue::render_into(Some(v), out);
            }
        }
        if let Some(scope) = self.scope_included(cx) {
            out.push(SEP);
            out.push_str(&scope.name);
            out.push(SEP);
            out.push_str(&scope.version);
        }
    }

    /// The data point attributes of the span's series.
    pub fn attributes(&self, cx: &SpanCtx<'_>) -> Vec<KeyValue> {
        let mut attrs = Vec::with_capacity(4 + self.dims.len());
        let mut put = |k: &str, v: AnyValue| {
            attrs.push(KeyValue {
                key: k.to_string(),
                value: Some(v),
                ..Default::default()
            })
        };
        if !self.excluded.service {
            put(SERVICE_NAME, string_value(cx.service));
        }
        if !self.excluded.name {
            put(SPAN_NAME, string_value(&cx.span.name));
        }
        if !self.excluded.kind {
            put(SPAN_KIND, string_value(span_kind_str(cx.span.kind)));
        }
        if !self.excluded.status {
            put(STATUS_CODE, string_value(status_code_str(cx.span)));
        }
        for d in self.dims {
            if let Some(v) = dimension_value(d, cx.layers) {
                put(&d.name, v.clone());
            }
        }
        if let Some(scope) = self.scope_included(cx) {
            put(SCOPE_NAME, string_value(&scope.name));
            if !scope.version.is_empty() {
                put(SCOPE_VERSION, string_value(&scope.version));
            }
        }
        attrs
    }
}

/// The key grouping spans by resource: all resource attributes, or only those named in
/// `resource_metrics_key_attributes`, in key order.
pub(crate) fn resource_key(attrs: &[KeyValue], only: Option<&HashSet<String>>) -> String {
    let mut kept: Vec<&KeyValue> = attrs
        .iter()
        .filter(|kv| only.is_none_or(|set| set.contains(&kv.key)))
        .collect();
    kept.sort_by(|a, b| a.key.cmp(&b.key));
    let mut out = String::new();
    for kv in kept {
        out.push_str(&kv.key);
        out.push(SEP);
        out.push(char::from(
            b'0' + anyvalue::type_code(kv.value.as_ref()) as u8,
        ));
        anyvalue::render_into(kv.value.as_ref(), &mut out);
        out.push(SEP);
    }
    out
}
