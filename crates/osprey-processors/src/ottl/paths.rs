//! Path and enum resolution per OTTL context, and context inference from path prefixes.

use super::lexer::{lex, Tok};
use super::parser::{ContextKind, Field, Key};

/// Infers the context of a condition whose paths carry a context prefix (`span.name`,
/// `spanevent.attributes["k"]`, `resource.attributes["k"]`): the lowest context any path
/// names, among `traces` (resource, span, spanevent) or `logs` (resource, log) contexts.
pub fn infer_context(src: &str, allowed: &[ContextKind]) -> Result<ContextKind, String> {
    let toks = lex(src)?;
    let rank = |c: ContextKind| match c {
        ContextKind::Resource => 0,
        ContextKind::Span | ContextKind::Log => 1,
        ContextKind::SpanEvent => 2,
    };
    let mut found: Option<ContextKind> = None;
    for (i, (t, at)) in toks.iter().enumerate() {
        let Tok::Ident(name) = t else { continue };
        let after_dot = i > 0 && toks[i - 1].0 == Tok::Dot;
        let is_path_head = !after_dot && matches!(toks.get(i + 1).map(|t| &t.0), Some(Tok::Dot));
        if !is_path_head {
            continue;
        }
        let ctx = match name.as_str() {
            "resource" => ContextKind::Resource,
            "span" => ContextKind::Span,
            "spanevent" => ContextKind::SpanEvent,
            "log" => ContextKind::Log,
            other => return Err(format!("path `{other}` at column {} has no context prefix (span., spanevent., log. or resource.)", at + 1)),
        };
        if !allowed.contains(&ctx) {
            return Err(format!(
                "context `{name}` at column {} is not supported here",
                at + 1
            ));
        }
        if found.is_none_or(|f| rank(ctx) > rank(f)) {
            found = Some(ctx);
        }
    }
    found.ok_or_else(|| "cannot infer the context: prefix paths with their context (span., spanevent., log., resource.)".to_string())
}

fn no_keys(keys: &[Key], f: Field) -> Option<Field> {
    keys.is_empty().then_some(f)
}

/// Resolves path segments (plus `[...]` keys) in a context.
pub(super) fn resolve(segs: &[&str], keys: Vec<Key>, ctx: ContextKind) -> Option<Field> {
    // An explicit context prefix (`span.name`, `spanevent.name`, `log.body`) is accepted.
    let own = match ctx {
        ContextKind::Resource => "resource",
        ContextKind::Span => "span",
        ContextKind::SpanEvent => "spanevent",
        ContextKind::Log => "log",
    };
    let segs = if segs.len() > 1 && segs[0] == own {
        &segs[1..]
    } else {
        segs
    };
    match segs {
        ["resource", "attributes"] => return Some(Field::ResourceAttrs(keys)),
        ["instrumentation_scope" | "scope", rest @ ..] if ctx != ContextKind::Resource => {
            return match rest {
                ["name"] => no_keys(&keys, Field::ScopeName),
                ["version"] => no_keys(&keys, Field::ScopeVersion),
                ["attributes"] => Some(Field::ScopeAttrs(keys)),
                _ => None,
            }
        }
        _ => {}
    }
    match ctx {
        ContextKind::Resource => match segs {
            ["attributes"] => Some(Field::ResourceAttrs(keys)),
            _ => None,
        },
        ContextKind::Span => span_field(segs, keys),
        ContextKind::SpanEvent => match segs {
            ["span", rest @ ..] => span_field(rest, keys),
            ["name"] => no_keys(&keys, Field::EventName),
            ["time_unix_nano"] => no_keys(&keys, Field::EventTime),
            ["attributes"] => Some(Field::EventAttrs(keys)),
            ["dropped_attributes_count"] => no_keys(&keys, Field::EventDroppedAttrs),
            _ => None,
        },
        ContextKind::Log => match segs {
            ["body"] => Some(Field::LogBody(keys)),
            ["severity_number"] => no_keys(&keys, Field::LogSeverityNumber),
            ["severity_text"] => no_keys(&keys, Field::LogSeverityText),
            ["attributes"] => Some(Field::LogAttrs(keys)),
            ["time_unix_nano"] => no_keys(&keys, Field::LogTime),
            ["observed_time_unix_nano"] => no_keys(&keys, Field::LogObservedTime),
            ["trace_id"] => no_keys(&keys, Field::LogTraceId { string: false }),
            ["trace_id", "string"] => no_keys(&keys, Field::LogTraceId { string: true }),
            ["span_id"] => no_keys(&keys, Field::LogSpanId { string: false }),
            ["span_id", "string"] => no_keys(&keys, Field::LogSpanId { string: true }),
            ["flags"] => no_keys(&keys, Field::LogFlags),
            ["event_name"] => no_keys(&keys, Field::LogEventName),
            _ => None,
        },
    }
}

fn span_field(segs: &[&str], keys: Vec<Key>) -> Option<Field> {
    let f = match segs {
        ["attributes"] => return Some(Field::SpanAttrs(keys)),
        ["trace_state"] => {
            return match keys.as_slice() {
                [] => Some(Field::TraceState(None)),
                [Key::Str(k)] => Some(Field::TraceState(Some(k.clone()))),
                _ => None,
            }
        }
        ["name"] => Field::SpanName,
        ["kind"] => Field::SpanKind,
        ["status", "code"] => Field::StatusCode,
        ["status", "message"] => Field::StatusMessage,
        ["trace_id"] => Field::TraceId { string: false },
        ["trace_id", "string"] => Field::TraceId { string: true },
        ["span_id"] => Field::SpanId { string: false },
        ["span_id", "string"] => Field::SpanId { string: true },
        ["parent_span_id"] => Field::ParentSpanId { string: false },
        ["parent_span_id", "string"] => Field::ParentSpanId { string: true },
        ["start_time_unix_nano"] => Field::StartTime,
        ["end_time_unix_nano"] => Field::EndTime,
        ["dropped_attributes_count"] => Field::SpanDropped(0),
        ["dropped_events_count"] => Field::SpanDropped(1),
        ["dropped_links_count"] => Field::SpanDropped(2),
        _ => return None,
    };
    no_keys(&keys, f)
}

/// The value of an OTTL enum name in a context.
pub(super) fn enum_value(name: &str, ctx: ContextKind) -> Option<i64> {
    const KINDS: [&str; 6] = [
        "SPAN_KIND_UNSPECIFIED",
        "SPAN_KIND_INTERNAL",
        "SPAN_KIND_SERVER",
        "SPAN_KIND_CLIENT",
        "SPAN_KIND_PRODUCER",
        "SPAN_KIND_CONSUMER",
    ];
    const STATUS: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];
    const SEV: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    if ctx != ContextKind::Log {
        if let Some(i) = KINDS.iter().position(|k| *k == name) {
            return Some(i as i64);
        }
        if let Some(i) = STATUS.iter().position(|k| *k == name) {
            return Some(i as i64);
        }
        return None;
    }
    let rest = name.strip_prefix("SEVERITY_NUMBER_")?;
    if rest == "UNSPECIFIED" {
        return Some(0);
    }
    let (base, step) = match rest.find(|c: char| c.is_ascii_digit()) {
        Some(i) => (
            &rest[..i],
            rest[i..]
                .parse::<i64>()
                .ok()
                .filter(|s| (2..=4).contains(s))?,
        ),
        None => (rest, 1),
    };
    let idx = SEV.iter().position(|s| *s == base)? as i64;
    Some(idx * 4 + step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_contexts() {
        let traces = [
            ContextKind::Resource,
            ContextKind::Span,
            ContextKind::SpanEvent,
        ];
        assert_eq!(
            infer_context(r#"resource.attributes["a"] == "b""#, &traces),
            Ok(ContextKind::Resource)
        );
        assert_eq!(
            infer_context(
                r#"resource.attributes["a"] == "b" and span.name == "x""#,
                &traces
            ),
            Ok(ContextKind::Span)
        );
        assert_eq!(
            infer_context(r#"spanevent.name == "x" and span.name == "y""#, &traces),
            Ok(ContextKind::SpanEvent)
        );
        assert!(infer_context(r#"name == "x""#, &traces).is_err());
        assert!(infer_context(r#"log.body == "x""#, &traces).is_err());
    }

    #[test]
    fn severity_enums() {
        assert_eq!(
            enum_value("SEVERITY_NUMBER_INFO", ContextKind::Log),
            Some(9)
        );
        assert_eq!(
            enum_value("SEVERITY_NUMBER_ERROR4", ContextKind::Log),
            Some(20)
        );
        assert_eq!(
            enum_value("SEVERITY_NUMBER_UNSPECIFIED", ContextKind::Log),
            Some(0)
        );
    }
}
