//! How queries run over the PG protocol: planned with nested columns (maps, lists,
//! structs) turned into JSON text, which the wire encoder can send; and, for the simple
//! protocol, collected under the query time and row limits.

use super::catalog::{is_nested, ToJsonText};
use super::pg_error;
use crate::engine::QueryConfig;
use arrow::datatypes::DataType;
use async_trait::async_trait;
use datafusion::common::{Column, ParamValues};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{cast, Expr, LogicalPlan, LogicalPlanBuilder, ScalarUDF};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, Expr as SqlExpr, Statement, Value, ValueWithSpan,
};
use datafusion_postgres::arrow_pg::datatypes::df::encode_dataframe;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::types::format::FormatOptions;
use datafusion_postgres::QueryHook;
use futures::StreamExt;
use std::ops::ControlFlow;
use std::sync::Arc;

fn api(e: DataFusionError) -> PgWireError {
    PgWireError::ApiError(Box::new(e))
}

/// Runs SELECT-style statements (both protocols' planning, and execution of simple ones).
pub struct Execute {
    pub cfg: Arc<QueryConfig>,
}

/// `quote_ident(table_schema) IN ('')`, which the protocol library leaves where Grafana's
/// search-path subquery was, becomes `IN ('public')`: Osprey's search path is `public`.
fn grafana_search_path(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |e: &mut SqlExpr| {
        if let SqlExpr::InList {
            list,
            negated: false,
            ..
        } = e
        {
            if list.len() == 1 {
                if let SqlExpr::Value(ValueWithSpan {
                    value: Value::SingleQuotedString(s),
                    ..
                }) = &mut list[0]
                {
                    if s.is_empty() {
                        *s = "public".into();
                    }
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// `plan` with every nested column replaced by its JSON text (same name), and columns of
/// no type yet (a bare `$1` in the select list) sent as text, as PostgreSQL does.
fn jsonify(plan: LogicalPlan) -> Result<LogicalPlan, DataFusionError> {
    let schema = plan.schema().clone();
    let untyped = |t: &DataType| matches!(t, DataType::Null);
    if !schema
        .fields()
        .iter()
        .any(|f| is_nested(f.data_type()) || untyped(f.data_type()))
    {
        return Ok(plan);
    }
    let to_json = Arc::new(ScalarUDF::from(ToJsonText::new()));
    let exprs: Vec<Expr> = schema
        .iter()
        .map(|(q, f)| {
            let c = Expr::Column(Column::new(q.cloned(), f.name()));
            if is_nested(f.data_type()) {
                to_json.call(vec![c]).alias_qualified(q.cloned(), f.name())
            } else if untyped(f.data_type()) {
                cast(c, DataType::Utf8).alias_qualified(q.cloned(), f.name())
            } else {
                c
            }
        })
        .collect();
    LogicalPlanBuilder::from(plan).project(exprs)?.build()
}

async fn plan(ctx: &SessionContext, statement: &Statement) -> PgWireResult<LogicalPlan> {
    let mut statement = statement.clone();
    grafana_search_path(&mut statement);
    let plan = ctx
        .state()
        .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
            statement,
        )))
        .await
        .map_err(api)?;
    jsonify(plan).map_err(api)
}

fn is_query(s: &Statement) -> bool {
    matches!(s, Statement::Query(_))
}

impl Execute {
    async fn simple(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> PgWireResult<Response> {
        let plan = plan(ctx, statement).await?;
        let df = ctx.execute_logical_plan(plan).await.map_err(api)?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let max_rows = self.cfg.max_rows;
        let collect = async {
            let mut stream = df.execute_stream().await.map_err(api)?;
            let mut batches = Vec::new();
            let mut rows = 0usize;
            while let Some(b) = stream.next().await {
                let b = b.map_err(api)?;
                rows += b.num_rows();
                if rows > max_rows {
                    return Err(pg_error(
                        "54000",
                        format!("the query returned more than the row limit of {max_rows} rows; add a LIMIT or narrow the WHERE clause"),
                    ));
                }
                batches.push(b);
            }
            Ok(batches)
        };
        let limit = self.cfg.timeout;
        let batches = match tokio::time::timeout(limit, collect).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(pg_error(
                    "57014",
                    format!("canceling statement: it ran past the query time limit of {limit:?}"),
                ))
            }
        };
        // Re-read the collected batches in order: one partition, so the engine cannot split
        // them across partitions and interleave them (ORDER BY must survive).
        let table = MemTable::try_new(schema, vec![batches]).map_err(api)?;
        let single = SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new().with_target_partitions(1),
        );
        let df = single.read_table(Arc::new(table)).map_err(api)?;
        let opts = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let resp = encode_dataframe(df, &Format::UnifiedText, Some(opts)).await?;
        Ok(Response::Query(resp))
    }
}

#[async_trait]
impl QueryHook for Execute {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if !is_query(statement) {
            return None;
        }
        Some(self.simple(statement, ctx, client).await)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if !is_query(statement) {
            return None;
        }
        Some(plan(ctx, statement).await)
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        None
    }
}
