//! The PostgreSQL wire protocol (port 5433): `psql`, Grafana's PostgreSQL data source and
//! any PG driver run read-only SQL over the same tables as `/api/sql`.
//!
//! The protocol (simple and extended query, text and binary results, `pg_catalog` and
//! `information_schema` for clients' table pickers) comes from `datafusion-postgres`. Osprey
//! adds: the database `osprey` with live `spans` and `ps_trace` tables, refusal of every
//! statement that would write (SQLSTATE 25006), optional cleartext password
//! authentication, optional TLS, and SQLSTATEs mapped from the engine's error kinds.

mod catalog;
mod exec;

use crate::engine::{QueryEngine, QueryError};
use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use datafusion_postgres::pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::api::{
    ClientInfo, ConnectionManager, ErrorHandler, PgWireServerHandlers,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::{DfSessionService, QueryHook};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The database name clients connect to.
pub const DATABASE: &str = "osprey";

/// PG listener options.
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    /// When set, clients must give this password (cleartext password exchange).
    pub password: Option<String>,
    /// PEM certificate chain and private key: clients may then switch to TLS.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// A TLS acceptor from PEM files; errors name the file and what was wrong.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, QueryError> {
    use tokio_rustls::rustls;
    let bad = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        QueryError::Invalid(format!("{what} {}: {e}", path.display()))
    };
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| bad("cannot read TLS file", path, &e))
    };
    let cert_pem = read(cert)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| bad("invalid PEM certificate in", cert, &e))?;
    if certs.is_empty() {
        return Err(bad(
            "no certificate found in",
            cert,
            &"expected a PEM CERTIFICATE block",
        ));
    }
    let key_pem = read(key)?;
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| bad("invalid PEM private key in", key, &e))?
        .ok_or_else(|| {
            bad(
                "no private key found in",
                key,
                &"expected a PEM PRIVATE KEY block",
            )
        })?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| bad("certificate and key do not form a usable pair:", cert, &e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

pub(crate) fn pg_error(code: &str, msg: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        msg.into(),
    )))
}

/// Refuses statements that would change anything, with PostgreSQL's read-only SQLSTATE.
#[derive(Debug)]
struct ReadOnly;

fn write_statement(s: &Statement) -> Option<&'static str> {
    Some(match s {
        Statement::Insert(_) => "INSERT",
        Statement::Update { .. } => "UPDATE",
        Statement::Delete(_) => "DELETE",
        Statement::Truncate { .. } => "TRUNCATE",
        Statement::Merge { .. } => "MERGE",
        Statement::Copy { .. } => "COPY",
        Statement::CreateTable(_) => "CREATE TABLE",
        Statement::CreateView { .. } => "CREATE VIEW",
        Statement::CreateSchema { .. } => "CREATE SCHEMA",
        Statement::CreateDatabase { .. } => "CREATE DATABASE",
        Statement::CreateIndex(_) => "CREATE INDEX",
        Statement::CreateFunction(_) => "CREATE FUNCTION",
        Statement::Drop { .. } => "DROP",
        Statement::AlterTable { .. } => "ALTER TABLE",
        _ => return None,
    })
}

fn refuse(s: &Statement) -> Option<PgWireError> {
    write_statement(s).map(|what| {
        pg_error(
            "25006",
            format!("cannot execute {what}: osprey's SQL is read-only (only SELECT-style queries are allowed)"),
        )
    })
}

#[async_trait]
impl QueryHook for ReadOnly {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        refuse(statement).map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        refuse(statement).map(Err)
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        refuse(statement).map(Err)
    }
}

/// The SQLSTATE for an engine error.
fn sqlstate(e: &DataFusionError) -> &'static str {
    match e.find_root() {
        DataFusionError::SQL(..) => "42601",
        DataFusionError::SchemaError(err, _) => {
            let msg = err.to_string();
            if msg.contains("not found") || msg.contains("No field named") {
                "42703"
            } else {
                "42P10"
            }
        }
        DataFusionError::Plan(msg) if msg.contains("table") && msg.contains("not found") => "42P01",
        DataFusionError::Plan(msg) if msg.contains("Invalid function") => "42883",
        DataFusionError::Plan(_) => "42804",
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::ResourcesExhausted(_) => "53200",
        DataFusionError::ArrowError(..) => "22000",
        _ => "XX000",
    }
}

/// Rewrites engine errors (which the protocol layer reports as internal, XX000) to the
/// SQLSTATE of their kind, so clients can tell a typo from a crash.
struct Errors;

impl ErrorHandler for Errors {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        if let PgWireError::ApiError(inner) = error {
            if let Some(pe) =
                inner.downcast_ref::<datafusion::sql::sqlparser::parser::ParserError>()
            {
                *error = pg_error("42601", format!("syntax error: {pe}"));
                return;
            }
            if let Some(df) = inner.downcast_ref::<DataFusionError>() {
                let code = sqlstate(df);
                let msg = df.to_string();
                tracing::debug!(error = %msg, code, "PG query failed");
                *error = pg_error(code, msg);
            }
        }
    }
}

/// The one configured password.
#[derive(Debug)]
struct OnePassword(String);

#[async_trait]
impl AuthSource for OnePassword {
    async fn get_password(&self, _login: &LoginInfo) -> PgWireResult<Password> {
        Ok(Password::new(None, self.0.as_bytes().to_vec()))
    }
}

/// No authentication (the local default).
struct Trust(Arc<ConnectionManager>);

impl NoopStartupHandler for Trust {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.0.clone())
    }
}

struct Handlers<S> {
    service: Arc<DfSessionService>,
    startup: Arc<S>,
    cancel: Arc<DefaultCancelHandler>,
}

impl<S: StartupHandler + 'static> PgWireServerHandlers for Handlers<S> {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.service.clone()
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.service.clone()
    }
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }
    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(Errors)
    }
    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

fn parameters() -> DefaultServerParameterProvider {
    let mut p = DefaultServerParameterProvider::default();
    p.server_version = format!("16.6 (osprey {})", env!("CARGO_PKG_VERSION"));
    p.default_transaction_read_only = true;
    p.is_superuser = false;
    p
}

async fn accept_loop<H, F>(
    listener: TcpListener,
    handlers: Arc<H>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: F,
) -> std::io::Result<()>
where
    H: PgWireServerHandlers + Send + Sync,
    F: Future<Output = ()> + Send,
{
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((socket, addr)) => {
                    let h = handlers.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        if let Err(e) =
                            datafusion_postgres::pgwire::tokio::process_socket(socket, tls, h).await
                        {
                            tracing::debug!(%addr, error = %e, "PG connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "PG accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Serves the PG protocol on `listener` until `stop` resolves.
pub async fn serve<F>(
    listener: TcpListener,
    engine: QueryEngine,
    opts: PgOptions,
    stop: F,
) -> Result<(), QueryError>
where
    F: Future<Output = ()> + Send,
{
    let tls = match &opts.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let ctx = engine.live_session(DATABASE).await?;
    catalog::register_functions(&ctx);
    catalog::install_information_schema(&ctx, DATABASE)
        .await
        .map_err(|e| QueryError::Execution(format!("cannot build information_schema: {e}")))?;
    let hooks: Vec<Arc<dyn QueryHook>> = vec![
        Arc::new(ReadOnly),
        Arc::new(exec::Execute {
            cfg: Arc::new(engine.config().clone()),
        }),
        Arc::new(CursorStatementHook),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ];
    let service = Arc::new(DfSessionService::new_with_hooks(Arc::new(ctx), hooks));
    let io = |e: std::io::Error| QueryError::Execution(format!("PG listener failed: {e}"));
    let manager = Arc::new(ConnectionManager::new());
    let cancel = Arc::new(DefaultCancelHandler::new(manager.clone()));
    match opts.password {
        Some(pw) => {
            let startup = CleartextPasswordAuthStartupHandler::new(OnePassword(pw), parameters())
                .with_connection_manager(manager);
            let handlers = Arc::new(Handlers {
                service,
                startup: Arc::new(startup),
                cancel,
            });
            accept_loop(listener, handlers, tls, stop).await.map_err(io)
        }
        None => {
            let handlers = Arc::new(Handlers {
                service,
                startup: Arc::new(Trust(manager)),
                cancel,
            });
            accept_loop(listener, handlers, tls, stop).await.map_err(io)
        }
    }
}
