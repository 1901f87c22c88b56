//! Promscale's trace functions as table functions: `trace_tree(trace_id)`,
//! `upstream_spans(trace_id, span_id [, max_dist])` and
//! `downstream_spans(trace_id, span_id [, max_dist])`.
//!
//! Each reads the trace's spans (one bloom-filtered lookup) and walks the parent links in
//! memory. Output columns as Promscale's: `trace_id`, `parent_span_id`, `span_id`, then `lvl`
//! (tree depth from 1 at the roots) or `dist` (hops from the given span), and `path` (span ids
//! from the root, or from the given span, as a text array).

use crate::table::SpansTable;
use arrow::array::{
    Array, AsArray, Int32Array, ListBuilder, RecordBatch, StringArray, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::{plan_err, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{col, lit};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Walk {
    Tree,
    Upstream,
    Downstream,
}

impl Walk {
    fn name(self) -> &'static str {
        match self {
            Walk::Tree => "trace_tree",
            Walk::Upstream => "upstream_spans",
            Walk::Downstream => "downstream_spans",
        }
    }
}

/// One of the three functions, bound to the `spans` table of its session.
#[derive(Debug)]
pub struct TraceFn {
    pub walk: Walk,
    pub table: Arc<SpansTable>,
}

fn text_arg(e: &Expr, what: &str, f: &str) -> Result<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Ok(s.to_ascii_lowercase()),
        other => plan_err!("{f}: {what} must be a text literal, got {other}"),
    }
}

impl TableFunctionImpl for TraceFn {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let f = self.walk.name();
        let (want, usage) = match self.walk {
            Walk::Tree => (1..=1, "trace_tree(trace_id)"),
            _ => (2..=3, "(trace_id, span_id [, max_dist])"),
        };
        if !want.contains(&exprs.len()) {
            return plan_err!("{f} takes {usage}; got {} arguments", exprs.len());
        }
        let trace_id = text_arg(&exprs[0], "trace_id", f)?;
        let span_id = match exprs.get(1) {
            Some(e) => Some(text_arg(e, "span_id", f)?),
            None => None,
        };
        let max_dist = match exprs.get(2) {
            None | Some(Expr::Literal(ScalarValue::Null, _)) => None,
            Some(Expr::Literal(v, _)) => match v.clone().cast_to(&DataType::Int64)? {
                ScalarValue::Int64(Some(n)) => Some(n),
                _ => None,
            },
            Some(other) => {
                return plan_err!("{f}: max_dist must be an integer literal, got {other}")
            }
        };
        Ok(Arc::new(TraceWalk {
            walk: self.walk,
            table: self.table.clone(),
            trace_id,
            span_id,
            max_dist,
        }))
    }
}

#[derive(Debug)]
struct TraceWalk {
    walk: Walk,
    table: Arc<SpansTable>,
    trace_id: String,
    span_id: Option<String>,
    max_dist: Option<i64>,
}

fn out_schema(walk: Walk) -> SchemaRef {
    let depth = if walk == Walk::Tree { "lvl" } else { "dist" };
    Arc::new(Schema::new(vec![
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("parent_span_id", DataType::Utf8, true),
        Field::new("span_id", DataType::Utf8, false),
        Field::new(depth, DataType::Int32, false),
        Field::new(
            "path",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
    ]))
}

/// (span, parent, depth, path) rows of the walk.
type Row = (String, Option<String>, i32, Vec<String>);

fn walk_rows(
    walk: Walk,
    spans: &[(String, Option<String>)],
    start: Option<&str>,
    max: Option<i64>,
) -> Vec<Row> {
    let parent_of: HashMap<&str, Option<&str>> = spans
        .iter()
        .map(|(s, p)| (s.as_str(), p.as_deref()))
        .collect();
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for (s, p) in spans {
        if let Some(p) = p {
            children.entry(p.as_str()).or_default().push(s.as_str());
        }
    }
    for v in children.values_mut() {
        v.sort();
    }
    let within = |d: i32| max.is_none_or(|m| i64::from(d) <= m);
    let mut out = Vec::new();
    // Depth-first from `from`, following children.
    fn down<'a>(
        at: &'a str,
        depth: i32,
        path: &mut Vec<String>,
        children: &HashMap<&'a str, Vec<&'a str>>,
        parent_of: &HashMap<&'a str, Option<&'a str>>,
        within: &dyn Fn(i32) -> bool,
        out: &mut Vec<Row>,
    ) {
        if !within(depth) || path.iter().any(|p| p == at) {
            return;
        }
        path.push(at.to_string());
        let parent = parent_of.get(at).copied().flatten().map(str::to_string);
        out.push((at.to_string(), parent, depth, path.clone()));
        if let Some(kids) = children.get(at) {
            for k in kids {
                down(k, depth + 1, path, children, parent_of, within, out);
            }
        }
        path.pop();
    }
    match walk {
        Walk::Tree => {
            // Roots: no parent, or a parent that is not in the trace.
            let mut roots: Vec<&str> = spans
                .iter()
                .filter(|(_, p)| p.as_deref().is_none_or(|p| !parent_of.contains_key(p)))
                .map(|(s, _)| s.as_str())
                .collect();
            roots.sort();
            for r in roots {
                down(
                    r,
                    1,
                    &mut Vec::new(),
                    &children,
                    &parent_of,
                    &within,
                    &mut out,
                );
            }
        }
        Walk::Downstream => {
            if let Some(s) = start.filter(|s| parent_of.contains_key(s)) {
                down(
                    s,
                    0,
                    &mut Vec::new(),
                    &children,
                    &parent_of,
                    &within,
                    &mut out,
                );
            }
        }
        Walk::Upstream => {
            let mut at = start.filter(|s| parent_of.contains_key(s));
            let mut path = Vec::new();
            let mut dist = 0;
            while let Some(s) = at {
                if !within(dist) || path.iter().any(|p: &String| p == s) {
                    break;
                }
                path.push(s.to_string());
                let parent = parent_of.get(s).copied().flatten();
                out.push((
                    s.to_string(),
                    parent.map(str::to_string),
                    dist,
                    path.clone(),
                ));
                at = parent.filter(|p| parent_of.contains_key(p));
                dist += 1;
            }
        }
    }
    out
}

#[async_trait]
impl TableProvider for TraceWalk {
    fn schema(&self) -> SchemaRef {
        out_schema(self.walk)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = self.table.schema();
        let idx = |name: &str| schema.index_of(name);
        let cols = vec![idx("trace_id")?, idx("span_id")?, idx("parent_span_id")?];
        let filter = col("trace_id").eq(lit(self.trace_id.clone()));
        let plan = self.table.scan(state, Some(&cols), &[filter], None).await?;
        let batches = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
        let mut spans = Vec::new();
        for b in &batches {
            let (t, s, p) = (
                b.column(0).as_string::<i32>(),
                b.column(1).as_string::<i32>(),
                b.column(2).as_string::<i32>(),
            );
            for i in 0..b.num_rows() {
                if t.value(i) == self.trace_id {
                    let parent = (!p.is_null(i)).then(|| p.value(i).to_string());
                    spans.push((s.value(i).to_string(), parent));
                }
            }
        }
        spans.sort();
        spans.dedup();
        let rows = walk_rows(self.walk, &spans, self.span_id.as_deref(), self.max_dist);
        let mut paths = ListBuilder::new(StringBuilder::new());
        for (_, _, _, path) in &rows {
            for p in path {
                paths.values().append_value(p);
            }
            paths.append(true);
        }
        let out = out_schema(self.walk);
        let batch = RecordBatch::try_new(
            out.clone(),
            vec![
                Arc::new(StringArray::from(vec![self.trace_id.as_str(); rows.len()])),
                Arc::new(rows.iter().map(|r| r.1.clone()).collect::<StringArray>()),
                Arc::new(
                    rows.iter()
                        .map(|r| Some(r.0.clone()))
                        .collect::<StringArray>(),
                ),
                Arc::new(Int32Array::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
                Arc::new(paths.finish()),
            ],
        )?;
        let _ = batch.column(0).len();
        MemorySourceConfig::try_new_exec(&[vec![batch]], out, projection.cloned())
            .map(|e| e as Arc<dyn ExecutionPlan>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans() -> Vec<(String, Option<String>)> {
        // a -> b -> c, a -> d
        vec![
            ("a".into(), None),
            ("b".into(), Some("a".into())),
            ("c".into(), Some("b".into())),
            ("d".into(), Some("a".into())),
        ]
    }

    #[test]
    fn tree_levels_and_paths() {
        let rows = walk_rows(Walk::Tree, &spans(), None, None);
        let got: Vec<(String, i32, String)> = rows
            .iter()
            .map(|r| (r.0.clone(), r.2, r.3.join("/")))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), 1, "a".into()),
                ("b".into(), 2, "a/b".into()),
                ("c".into(), 3, "a/b/c".into()),
                ("d".into(), 2, "a/d".into()),
            ]
        );
    }

    #[test]
    fn upstream_and_downstream() {
        let up = walk_rows(Walk::Upstream, &spans(), Some("c"), None);
        assert_eq!(
            up.iter().map(|r| (r.0.as_str(), r.2)).collect::<Vec<_>>(),
            vec![("c", 0), ("b", 1), ("a", 2)]
        );
        let down = walk_rows(Walk::Downstream, &spans(), Some("a"), Some(1));
        assert_eq!(
            down.iter().map(|r| (r.0.as_str(), r.2)).collect::<Vec<_>>(),
            vec![("a", 0), ("b", 1), ("d", 1)]
        );
        assert!(walk_rows(Walk::Upstream, &spans(), Some("zz"), None).is_empty());
    }
}
