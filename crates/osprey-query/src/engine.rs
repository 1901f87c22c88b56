//! The SQL engine: DataFusion over the store, read-only, with time, row and memory limits.
//!
//! Queries run on their own small tokio runtime so a heavy query competes with ingest only
//! for CPU, never for the receivers' async workers.

use crate::rollup::RollupTable;
use crate::table::SpansTable;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use osprey_store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Query limits.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// A query still running after this is cancelled.
    pub timeout: Duration,
    /// A query producing more rows than this fails (add a LIMIT).
    pub max_rows: usize,
    /// Memory for sorts, joins and aggregations across all running queries.
    pub memory_limit: usize,
    /// Threads of the query runtime.
    pub threads: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            timeout: Duration::from_secs(30),
            max_rows: 100_000,
            memory_limit: 512 << 20,
            threads: 2,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum QueryError {
    #[error("osprey SQL is read-only: {0} is refused; only SELECT-style queries are allowed")]
    ReadOnly(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the query returned more than the row limit of {limit} rows; add a LIMIT or narrow the WHERE clause")]
    TooManyRows { limit: usize },
    #[error("the query ran past the time limit of {limit:?} and was cancelled")]
    Timeout { limit: Duration },
    #[error("query failed: {0}")]
    Execution(String),
    #[error("the query engine is shutting down")]
    ShuttingDown,
}

impl QueryError {
    fn from_df(e: DataFusionError) -> QueryError {
        let msg = e.to_string();
        for prefix in [
            "DDL not supported: ",
            "DML not supported: ",
            "Statement not supported: ",
        ] {
            if let Some(pos) = msg.find(prefix) {
                let what = msg[pos + prefix.len()..].trim().to_string();
                return QueryError::ReadOnly(format!("the {what} statement"));
            }
        }
        match e.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_) => QueryError::Invalid(msg),
            DataFusionError::ResourcesExhausted(_) => QueryError::Execution(format!(
                "{msg} (the query needs more memory than the query memory limit)"
            )),
            _ => QueryError::Execution(msg),
        }
    }
}

/// A finished query.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    pub elapsed: Duration,
}

struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs SQL against the store. Cheap to clone.
#[derive(Clone)]
pub struct QueryEngine {
    store: Store,
    cfg: Arc<QueryConfig>,
    runtime: Arc<OwnedRuntime>,
    df_runtime: Arc<RuntimeEnv>,
}

impl QueryEngine {
    pub fn new(store: Store, cfg: QueryConfig) -> Result<QueryEngine, QueryError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.threads.max(1))
            .thread_name("osprey-query")
            .enable_all()
            .build()
            .map_err(|e| QueryError::Execution(format!("cannot start the query runtime: {e}")))?;
        let df_runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(cfg.memory_limit)))
            .build_arc()
            .map_err(QueryError::from_df)?;
        Ok(QueryEngine {
            store,
            cfg: Arc::new(cfg),
            runtime: Arc::new(OwnedRuntime(Some(rt))),
            df_runtime,
        })
    }

    pub fn config(&self) -> &QueryConfig {
        &self.cfg
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A session over the current snapshot with every Osprey table registered.
    pub fn session(&self) -> Result<SessionContext, QueryError> {
        self.session_with(false)
    }

    /// A session whose `spans` table also has the attribute type columns (for the typed
    /// APIs, which read rows back with [`osprey_model::from_arrow`]).
    fn session_with(&self, typed: bool) -> Result<SessionContext, QueryError> {
        let ctx =
            SessionContext::new_with_config_rt(self.session_config(), self.df_runtime.clone());
        let snapshot = self.store.snapshot();
        let table = Arc::new(if typed {
            SpansTable::with_types(snapshot.clone())
        } else {
            SpansTable::new(snapshot.clone())
        });
        ctx.register_table("spans", table)
            .map_err(QueryError::from_df)?;
        crate::rollup::register(&ctx, |w| RollupTable::new(snapshot.clone(), w))
            .map_err(QueryError::from_df)?;
        crate::promscale::register_functions(&ctx, Arc::new(SpansTable::new(snapshot)));
        Ok(ctx)
    }

    /// A long-lived session for the PostgreSQL protocol: default catalog `catalog` (the
    /// database name), live tables (each scan sees the store as it is then), the Promscale
    /// views and `pg_catalog`.
    pub async fn live_session(&self, catalog: &str) -> Result<SessionContext, QueryError> {
        // Osprey's own information_schema (PostgreSQL type names) replaces DataFusion's.
        let config = self
            .session_config()
            .with_information_schema(false)
            .with_default_catalog_and_schema(catalog, "public");
        let mut ctx = SessionContext::new_with_config_rt(config, self.df_runtime.clone());
        let table = Arc::new(SpansTable::live(self.store.clone()));
        ctx.register_table("spans", table.clone())
            .map_err(QueryError::from_df)?;
        crate::rollup::register(&ctx, |w| RollupTable::live(self.store.clone(), w))
            .map_err(QueryError::from_df)?;
        crate::promscale::register_functions(&ctx, table);
        crate::promscale::install(&mut ctx)
            .await
            .map_err(QueryError::from_df)?;
        datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog(
            &ctx,
            catalog,
            datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider,
        )
        .map_err(|e| QueryError::from_df(*e))?;
        Ok(ctx)
    }

    fn session_config(&self) -> SessionConfig {
        let mut config = SessionConfig::new()
            .with_target_partitions(self.cfg.threads.max(1))
            .with_information_schema(true);
        let opts = config.options_mut();
        opts.execution.parquet.pushdown_filters = true;
        opts.execution.parquet.reorder_filters = true;
        opts.execution.parquet.bloom_filter_on_read = true;
        opts.sql_parser.enable_ident_normalization = true;
        // PostgreSQL syntax: `->` binds tighter than `=`, as Promscale-era queries expect.
        opts.sql_parser.dialect = datafusion::common::config::Dialect::PostgreSQL;
        config
    }

    /// Runs one read-only statement with the configured limits.
    pub async fn query(&self, sql: &str) -> Result<QueryResult, QueryError> {
        self.query_with(sql, false).await
    }

    /// Like [`QueryEngine::query`], over the typed `spans` table (every stored column).
    pub async fn query_typed(&self, sql: &str) -> Result<QueryResult, QueryError> {
        self.query_with(sql, true).await
    }

    async fn query_with(&self, sql: &str, typed: bool) -> Result<QueryResult, QueryError> {
        let engine = self.clone();
        let sql = sql.to_string();
        let rt = self.runtime.0.as_ref().ok_or(QueryError::ShuttingDown)?;
        let task = rt.spawn(async move {
            let limit = engine.cfg.timeout;
            match tokio::time::timeout(limit, engine.run(&sql, typed)).await {
                Ok(r) => r,
                Err(_) => Err(QueryError::Timeout { limit }),
            }
        });
        task.await
            .map_err(|e| QueryError::Execution(format!("query task failed: {e}")))?
    }

    async fn run(&self, sql: &str, typed: bool) -> Result<QueryResult, QueryError> {
        let started = Instant::now();
        let mut ctx = self.session_with(typed)?;
        crate::promscale::install(&mut ctx)
            .await
            .map_err(QueryError::from_df)?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = ctx
            .sql_with_options(sql, options)
            .await
            .map_err(QueryError::from_df)?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let mut stream = df.execute_stream().await.map_err(QueryError::from_df)?;
        let mut batches = Vec::new();
        let mut rows = 0usize;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(QueryError::from_df)?;
            rows += batch.num_rows();
            if rows > self.cfg.max_rows {
                return Err(QueryError::TooManyRows {
                    limit: self.cfg.max_rows,
                });
            }
            if batch.num_rows() > 0 {
                batches.push(batch);
            }
        }
        Ok(QueryResult {
            schema,
            batches,
            rows,
            elapsed: started.elapsed(),
        })
    }
}
