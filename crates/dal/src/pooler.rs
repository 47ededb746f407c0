//! Statements through a transaction-mode pooler (PgBouncer `pool_mode=transaction`,
//! Supabase's port 6543): [`Pooler`] for the pool, [`PooledTransaction`] for a unit of work.
//!
//! Such a pooler lends a server session to a client for one transaction at a time. Two
//! round trips of one statement outside a transaction may reach different sessions, and
//! anything that outlives a transaction (a named prepared statement, a `SET`, a session
//! advisory lock) is left on a session some other client gets next. So here:
//!
//! * every statement runs inside an explicit transaction, which keeps one server session
//!   for the whole exchange; a statement on the pool gets a transaction of its own;
//! * statements use the *unnamed* prepared statement (sqlx `persistent(false)`), which
//!   ends with the transaction; SeaORM's own path would prepare `sqlx_s_N` and, with the
//!   statement cache off, never close it;
//! * the transaction begins with `BEGIN [ISOLATION LEVEL …]; SET LOCAL statement_timeout`
//!   in one simple-query round trip, since the pooler takes no session settings.
//!
//! A statement on the pool thus costs four round trips (begin, parse, bind/execute,
//! commit) where a direct connection's cached statement costs one; a unit of work costs
//! one more per statement (BENCHMARKS.md, "Through a transaction pooler").

use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::sea_query::Values;
use sea_orm::{
    ConnAcquireErr, ConnectionTrait, DbBackend, DbErr, ExecResult, IsolationLevel, QueryResult,
    RuntimeErr, Statement,
};
use sea_query_sqlx::SqlxValues;
use sqlx::pool::PoolConnection;
use sqlx::{Executor as _, PgPool, Postgres};
use sqlx_core::transaction::TransactionManager;
use tokio::sync::Mutex;

type Manager = <Postgres as sqlx::Database>::TransactionManager;

/// The pool, behind a transaction-mode pooler.
#[derive(Debug)]
pub(crate) struct Pooler {
    pool: PgPool,
    statement_timeout_ms: u128,
}

impl Pooler {
    pub(crate) fn new(pool: PgPool, statement_timeout: std::time::Duration) -> Pooler {
        Pooler {
            pool,
            statement_timeout_ms: statement_timeout.as_millis(),
        }
    }

    /// The one round trip that opens a transaction: the isolation level in `BEGIN`, the
    /// statement timeout with `SET LOCAL` (zero turns it off, as on a direct connection,
    /// whatever the server's or role's default).
    pub(crate) fn begin_statement(&self, isolation: Option<IsolationLevel>) -> String {
        let level = match isolation {
            Some(level) => format!(" ISOLATION LEVEL {level}"),
            None => String::new(),
        };
        format!(
            "BEGIN{level}; SET LOCAL statement_timeout = {}",
            self.statement_timeout_ms
        )
    }

    /// The sqlx pool (for `COPY`).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Starts a unit of work.
    pub(crate) async fn begin(
        &self,
        isolation: Option<IsolationLevel>,
    ) -> Result<PooledTransaction, DbErr> {
        let mut conn = self.pool.acquire().await.map_err(acquire_err)?;
        Manager::begin(&mut conn, Some(sql(self.begin_statement(isolation))))
            .await
            .map_err(query_err)?;
        Ok(PooledTransaction {
            conn: Arc::new(Mutex::new(conn)),
            open: true,
        })
    }

    /// Runs one statement in a transaction of its own. sqlx's `Transaction` rolls back if
    /// this future is dropped halfway or the commit fails, so the connection never goes
    /// back to the pool inside a transaction.
    async fn single<T>(
        &self,
        run: impl AsyncFnOnce(&mut sqlx::PgConnection) -> Result<T, DbErr>,
    ) -> Result<T, DbErr> {
        let mut tx = self
            .pool
            .begin_with(sqlx::AssertSqlSafe(self.begin_statement(None)))
            .await
            .map_err(acquire_err)?;
        match run(&mut tx).await {
            Ok(value) => {
                tx.commit().await.map_err(exec_err)?;
                Ok(value)
            }
            Err(e) => {
                // Give the server session back to the pooler at once; a failed rollback
                // means the connection is gone, and the pool drops it.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}

#[async_trait]
impl ConnectionTrait for Pooler {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.single(async |conn| execute(conn, &stmt).await).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.single(async |conn| execute_unprepared(conn, sql).await)
            .await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.single(async |conn| query_one(conn, &stmt).await).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.single(async |conn| query_all(conn, &stmt).await).await
    }
}

/// A transaction (or, nested, a savepoint) on one pooled connection, through a
/// transaction-mode pooler. Dropping it without commit rolls it back, like SeaORM's: the
/// `ROLLBACK` is queued and goes out before anything else on the connection.
#[derive(Debug)]
pub(crate) struct PooledTransaction {
    conn: Arc<Mutex<PoolConnection<Postgres>>>,
    open: bool,
}

impl PooledTransaction {
    /// A savepoint inside this transaction.
    pub(crate) async fn begin(&self) -> Result<PooledTransaction, DbErr> {
        let mut conn = self.conn.lock().await;
        Manager::begin(&mut conn, None).await.map_err(query_err)?;
        Ok(PooledTransaction {
            conn: self.conn.clone(),
            open: true,
        })
    }

    /// Commits (a savepoint: releases it). If that fails (a serialization failure at
    /// `COMMIT`, a lost connection), dropping `self` queues the rollback.
    pub(crate) async fn commit(mut self) -> Result<(), DbErr> {
        let mut conn = self.conn.lock().await;
        Manager::commit(&mut conn).await.map_err(exec_err)?;
        drop(conn);
        self.open = false;
        Ok(())
    }

    /// Rolls back (a savepoint: back to it).
    pub(crate) async fn rollback(mut self) -> Result<(), DbErr> {
        let mut conn = self.conn.lock().await;
        Manager::rollback(&mut conn).await.map_err(exec_err)?;
        drop(conn);
        self.open = false;
        Ok(())
    }
}

impl Drop for PooledTransaction {
    fn drop(&mut self) {
        if self.open {
            // Nothing else holds the lock when a unit of work is dropped: its statements
            // borrow it, so none is running.
            if let Ok(mut conn) = self.conn.try_lock() {
                Manager::start_rollback(&mut conn);
            }
        }
    }
}

#[async_trait]
impl ConnectionTrait for PooledTransaction {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        execute(&mut **self.conn.lock().await, &stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        execute_unprepared(&mut **self.conn.lock().await, sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        query_one(&mut **self.conn.lock().await, &stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        query_all(&mut **self.conn.lock().await, &stmt).await
    }
}

fn sql(text: String) -> sqlx::SqlStr {
    sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(text))
}

/// `stmt` as an sqlx query on the unnamed prepared statement.
fn unnamed(stmt: &Statement) -> sqlx::query::Query<'_, Postgres, SqlxValues> {
    let values = stmt.values.clone().unwrap_or(Values(Vec::new()));
    sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values)).persistent(false)
}

async fn execute(conn: &mut sqlx::PgConnection, stmt: &Statement) -> Result<ExecResult, DbErr> {
    unnamed(stmt)
        .execute(conn)
        .await
        .map(Into::into)
        .map_err(exec_err)
}

async fn execute_unprepared(conn: &mut sqlx::PgConnection, sql: &str) -> Result<ExecResult, DbErr> {
    // No arguments: the simple-query protocol, which prepares nothing.
    conn.execute(sqlx::AssertSqlSafe(sql.to_owned()))
        .await
        .map(Into::into)
        .map_err(exec_err)
}

async fn query_one(
    conn: &mut sqlx::PgConnection,
    stmt: &Statement,
) -> Result<Option<QueryResult>, DbErr> {
    unnamed(stmt)
        .fetch_optional(conn)
        .await
        .map(|row| row.map(Into::into))
        .map_err(query_err)
}

async fn query_all(
    conn: &mut sqlx::PgConnection,
    stmt: &Statement,
) -> Result<Vec<QueryResult>, DbErr> {
    unnamed(stmt)
        .fetch_all(conn)
        .await
        .map(|rows| rows.into_iter().map(Into::into).collect())
        .map_err(query_err)
}

// The same `DbErr` shapes SeaORM's driver produces, so `DalError::from` classifies a
// fault the same way on either path.

fn exec_err(e: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e)))
}

fn query_err(e: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(e)))
}

fn acquire_err(e: sqlx::Error) -> DbErr {
    match e {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        e => DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))),
    }
}
