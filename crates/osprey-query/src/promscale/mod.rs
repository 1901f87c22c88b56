//! Promscale compatibility: the `ps_trace.span`, `ps_trace.event` and `ps_trace.link` views
//! with Promscale's column names, its tag operators `->` / `->>` on attribute maps, and its
//! trace functions ([`tree`]).
//!
//! Differences from Promscale are listed in `docs/sql.md`: ids are hex text (Promscale used a
//! uuid type and bigint span ids), tag values are text (Promscale used jsonb), so
//! `span_tags -> 'k'` gives the text, and a JSON-quoted string literal compared with a tag
//! (`span_tags -> 'http.method' = '"GET"'`, Promscale's idiom) is unquoted so that it works.

mod tree;

use crate::table::SpansTable;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::Expr;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::BinaryOperator;
use std::sync::Arc;

const SPAN_COLUMNS: &str = "\
    trace_id, span_id, trace_state, parent_span_id, parent_span_id IS NULL AS is_root_span, \
    service_name, span_name, lower(substr(span_kind, 11)) AS span_kind, \
    start_time, end_time, duration_ms, span_attributes AS span_tags, \
    dropped_attributes_count AS dropped_tags_count, dropped_events_count, \
    dropped_links_count AS dropped_link_count, lower(substr(status_code, 13)) AS status_code, \
    status_message, scope_name AS instrumentation_lib_name, \
    scope_version AS instrumentation_lib_version, resource_attributes AS resource_tags";

/// The view definitions, created in every session.
pub fn view_sql() -> Vec<String> {
    vec![
        "CREATE SCHEMA IF NOT EXISTS ps_trace".into(),
        format!("CREATE VIEW ps_trace.span AS SELECT {SPAN_COLUMNS} FROM spans"),
        "CREATE VIEW ps_trace.event AS SELECT trace_id, span_id, e['time'] AS time, \
         e['name'] AS event_name, e['attributes'] AS event_tags, trace_state, service_name, \
         span_name, span_kind, start_time AS span_start_time, end_time AS span_end_time, \
         duration_ms AS span_duration_ms, span_tags, dropped_tags_count AS dropped_span_tags_count, \
         resource_tags, status_code, status_message \
         FROM (SELECT *, unnest(events) AS e FROM (SELECT events, SPAN_COLUMNS_HERE FROM spans))"
            .replace("SPAN_COLUMNS_HERE", SPAN_COLUMNS),
        "CREATE VIEW ps_trace.link AS SELECT trace_id, span_id, trace_state, parent_span_id, \
         is_root_span, service_name, span_name, span_kind, start_time, end_time, duration_ms, \
         span_tags, status_code, status_message, resource_tags, \
         l['trace_id'] AS linked_trace_id, l['span_id'] AS linked_span_id, \
         l['trace_state'] AS linked_trace_state, l['attributes'] AS link_tags \
         FROM (SELECT *, unnest(links) AS l FROM (SELECT links, SPAN_COLUMNS_HERE FROM spans))"
            .replace("SPAN_COLUMNS_HERE", SPAN_COLUMNS),
    ]
}

/// Registers Promscale's trace functions (`trace_tree`, `upstream_spans`,
/// `downstream_spans`) over `table`.
pub fn register_functions(ctx: &SessionContext, table: Arc<SpansTable>) {
    for walk in [
        tree::Walk::Tree,
        tree::Walk::Upstream,
        tree::Walk::Downstream,
    ] {
        let name = match walk {
            tree::Walk::Tree => "trace_tree",
            tree::Walk::Upstream => "upstream_spans",
            tree::Walk::Downstream => "downstream_spans",
        };
        ctx.register_udtf(
            name,
            Arc::new(tree::TraceFn {
                walk,
                table: table.clone(),
            }),
        );
    }
}

/// Registers the tag operators and `time_bucket`, and creates the views in `ctx`.
pub async fn install(ctx: &mut SessionContext) -> Result<()> {
    use datafusion::execution::FunctionRegistry;
    ctx.register_expr_planner(Arc::new(TagOperators))?;
    // Timescale's time_bucket(interval, ts): DataFusion's date_bin, whose default origin
    // (the epoch) gives the same buckets for intervals under a week.
    let date_bin = datafusion::functions::datetime::date_bin();
    SessionContext::register_udf(ctx, date_bin.as_ref().clone().with_aliases(["time_bucket"]));
    for sql in view_sql() {
        ctx.sql(&sql).await?;
    }
    Ok(())
}

/// `map -> 'key'` and `map ->> 'key'`: the value of `key` (text), as Promscale's tag maps
/// allowed; and `<tag lookup> = '"json string"'` compares with the unquoted string.
#[derive(Debug)]
struct TagOperators;

fn string_literal(e: &Expr) -> Option<&str> {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)), _) => {
            Some(s.as_str())
        }
        _ => None,
    }
}

fn is_map_lookup(e: &Expr) -> bool {
    matches!(e, Expr::ScalarFunction(f) if f.func.name() == "get_field")
}

/// `"GET"` (a JSON string) → `GET`.
fn unquote_json(s: &str) -> Option<String> {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        serde_json::from_str::<String>(s).ok()
    } else {
        None
    }
}

impl ExprPlanner for TagOperators {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        match expr.op {
            BinaryOperator::Arrow | BinaryOperator::LongArrow => {
                let is_map = match &expr.left {
                    Expr::Column(c) => schema.qualified_field_from_column(c).is_ok_and(|(_, f)| {
                        matches!(f.data_type(), arrow::datatypes::DataType::Map(..))
                    }),
                    _ => false,
                };
                match (is_map, string_literal(&expr.right)) {
                    (true, Some(key)) => Ok(PlannerResult::Planned(
                        datafusion::functions::core::expr_fn::get_field(
                            expr.left.clone(),
                            key.to_string(),
                        ),
                    )),
                    _ => Ok(PlannerResult::Original(expr)),
                }
            }
            BinaryOperator::Eq | BinaryOperator::NotEq => {
                let unquoted = if is_map_lookup(&expr.left) {
                    string_literal(&expr.right)
                        .and_then(unquote_json)
                        .map(|s| (true, s))
                } else if is_map_lookup(&expr.right) {
                    string_literal(&expr.left)
                        .and_then(unquote_json)
                        .map(|s| (false, s))
                } else {
                    None
                };
                match unquoted {
                    Some((lookup_left, s)) => {
                        let lit = Expr::Literal(ScalarValue::Utf8(Some(s)), None);
                        let (left, right) = if lookup_left {
                            (expr.left, lit)
                        } else {
                            (lit, expr.right)
                        };
                        Ok(PlannerResult::Original(RawBinaryExpr {
                            op: expr.op,
                            left,
                            right,
                        }))
                    }
                    None => Ok(PlannerResult::Original(expr)),
                }
            }
            _ => Ok(PlannerResult::Original(expr)),
        }
    }
}
