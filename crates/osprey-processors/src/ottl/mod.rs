//! A subset of the OpenTelemetry Transformation Language's conditions, as the `filter`
//! processor and `tail_sampling`'s `ottl_condition` policy use them.
//!
//! Supported: paths of the span, span event and log contexts (`name`, `kind`, `status.code`,
//! `attributes["k"]` with nested `["k"]`/`[0]` indexes, `resource.attributes["k"]`,
//! `instrumentation_scope.name`/`version`/`attributes`, `trace_id`/`span_id`/
//! `parent_span_id` and their `.string`, `trace_state` and `trace_state["k"]`,
//! `start_time_unix_nano`/`end_time_unix_nano`, dropped counts; for events `name`,
//! `time_unix_nano`, `attributes`, `span.*`; for logs `body`, `severity_number`,
//! `severity_text`, `attributes`, `time_unix_nano`, ...), an optional context prefix
//! (`span.name`), enums (`SPAN_KIND_*`, `STATUS_CODE_*`, `SEVERITY_NUMBER_*`), literals
//! (strings, ints, floats, `true`, `false`, `nil`), `== != < <= > >=`, `and`, `or`, `not`,
//! parentheses, and the functions `IsMatch(target, "regex")`, `IsRootSpan()`,
//! `IsString/IsInt/IsDouble/IsBool/IsMap/IsList(value)`. Anything else (math, other
//! functions, time paths such as `start_time`) is rejected when the config is loaded.

pub mod eval;
pub mod lexer;
pub mod parser;
pub mod paths;

pub use eval::{EventCtx, LogCtx, Resolve, ResourceCtx, SpanCtx};
pub use parser::ContextKind;

use osprey_pipeline::ConfigError;
use parser::BoolExpr;

/// How a processor reacts to a condition that fails to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorMode {
    /// Fail the whole payload.
    Propagate,
    /// Log the error and treat the condition as false.
    Ignore,
    /// Treat the condition as false without logging.
    Silent,
}

/// A list of conditions, true when any of them is.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    list: Vec<(String, BoolExpr)>,
}

impl Conditions {
    /// Parses `list` (found at config key `path`, e.g. `traces.span`); an error names the
    /// condition, e.g. `traces.span[1]`, and the offending token.
    pub fn compile(list: &[String], ctx: ContextKind, path: &str) -> Result<Self, ConfigError> {
        let mut out = Vec::with_capacity(list.len());
        for (i, c) in list.iter().enumerate() {
            let expr = parser::parse(c, ctx).map_err(|e| {
                ConfigError::new(format!("{path}[{i}]"), format!("condition {c:?}: {e}"))
            })?;
            out.push((c.clone(), expr));
        }
        Ok(Conditions { list: out })
    }

    /// Parses one condition found at config key `path`.
    pub fn compile_one(cond: &str, ctx: ContextKind, path: &str) -> Result<Self, ConfigError> {
        let expr = parser::parse(cond, ctx)
            .map_err(|e| ConfigError::new(path, format!("condition {cond:?}: {e}")))?;
        Ok(Conditions {
            list: vec![(cond.to_string(), expr)],
        })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether any condition holds for `r`.
    pub fn any(&self, r: &dyn Resolve, mode: ErrorMode) -> Result<bool, String> {
        for (text, expr) in &self.list {
            match eval::eval(expr, r) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(e) => match mode {
                    ErrorMode::Propagate => {
                        return Err(format!("failed to eval condition {text:?}: {e}"))
                    }
                    ErrorMode::Ignore => {
                        tracing::warn!(condition = %text, error = %e, "failed to eval condition")
                    }
                    ErrorMode::Silent => {}
                },
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::str_value;
    use crate::testutil::{span, with_attr, with_status};
    use osprey_model::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};

    fn holds(cond: &str, s: &osprey_model::otlp::trace::v1::Span) -> bool {
        let c = Conditions::compile(&[cond.to_string()], ContextKind::Span, "traces.span").unwrap();
        let res = vec![KeyValue {
            key: "service.name".into(),
            value: Some(str_value("api-gw")),
            ..Default::default()
        }];
        c.any(
            &SpanCtx {
                resource: &res,
                scope: None,
                span: s,
            },
            ErrorMode::Propagate,
        )
        .unwrap()
    }

    #[test]
    fn span_conditions() {
        let s = with_status(
            with_attr(
                with_attr(
                    span(7, 1, "GET /health"),
                    "http.status_code",
                    AnyValue {
                        value: Some(Value::IntValue(503)),
                    },
                ),
                "ratio",
                AnyValue {
                    value: Some(Value::DoubleValue(0.5)),
                },
            ),
            2,
        );
        assert!(holds(r#"name == "GET /health""#, &s));
        assert!(holds("kind == SPAN_KIND_SERVER", &s));
        assert!(holds("kind == 2", &s));
        assert!(holds("status.code == STATUS_CODE_ERROR", &s));
        assert!(holds(
            r#"attributes["http.status_code"] >= 500 and attributes["http.status_code"] < 600"#,
            &s
        ));
        assert!(
            holds(r#"attributes["ratio"] < 1"#, &s),
            "int/double compare numerically"
        );
        assert!(holds(r#"attributes["missing"] == nil"#, &s));
        assert!(
            !holds(r#"attributes["http.status_code"] == "503""#, &s),
            "different types are never equal"
        );
        assert!(holds(r#"attributes["http.status_code"] != "503""#, &s));
        assert!(holds(
            r#"IsMatch(resource.attributes["service.name"], "^api-")"#,
            &s
        ));
        assert!(
            holds(r#"IsMatch(attributes["http.status_code"], "^5")"#, &s),
            "ints match as text"
        );
        assert!(
            !holds(r#"IsMatch(attributes["nope"], ".*")"#, &s),
            "nil never matches"
        );
        assert!(holds(
            r#"not (name == "x" or kind == SPAN_KIND_CLIENT)"#,
            &s
        ));
        assert!(holds(
            r#"trace_id.string == "00000000000000000000000000000007""#,
            &s
        ));
        assert!(holds("IsRootSpan()", &s));
        assert!(holds(r#"name > "A" and "b" > "a""#, &s));
        assert!(!holds("true == 1", &s));
    }

    #[test]
    fn error_path_names_the_condition() {
        let e = Conditions::compile(
            &["name == \"a\"".into(), "duration > 3".into()],
            ContextKind::Span,
            "traces.span",
        )
        .unwrap_err();
        assert_eq!(e.path, "traces.span[1]");
        assert!(e.message.contains("duration"), "{e}");
    }
}
