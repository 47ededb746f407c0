//! Migration transactions: every migration command's statements in one transaction,
//! serialised against other migrators, and safe through a transaction-mode pooler.
//!
//! Postgres: the first statement takes an advisory lock held until the transaction ends
//! (`pg_advisory_xact_lock`; a session lock would outlive the transaction on a pooler's
//! shared server session). SQLite: `BEGIN IMMEDIATE` takes the write lock, and a read of
//! the catalog makes a pooled connection reload a schema another connection changed.
//!
//! Behind a transaction-mode pooler ([`Route::TransactionPooler`]) the migrator's
//! statements are still prepared by SeaORM as named statements (sqlx names them
//! `sqlx_s_N`, per client connection, and with the statement cache off never closes them).
//! A server session must not carry them into another client's transaction, where the same
//! name would collide: the transaction begins and ends with `DEALLOCATE ALL` (on rollback
//! too, right after the `ROLLBACK`, in the same round trip), and sets the statement
//! timeout with `SET LOCAL`, since the pooler takes no session settings.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use dal_config::{Config, PoolMode};
use sea_orm_migration::sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::{Migrator, MigratorTrait, checksum};

/// An arbitrary constant key for the migration lock, shared by every process migrating
/// the same database.
pub const ADVISORY_LOCK_KEY: i64 = 7316052144200925;

/// How the connection reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Each connection is a server session of its own (direct, or a session pooler), or
    /// SQLite.
    Session,
    /// Through a transaction-mode pooler: nothing may outlive the transaction, and the
    /// statement timeout is set per transaction.
    TransactionPooler {
        /// `SET LOCAL statement_timeout` (zero: none).
        statement_timeout: Duration,
    },
}

impl Route {
    /// The route `config` describes.
    pub fn of(config: &Config) -> Route {
        match config.pool_mode {
            PoolMode::Session => Route::Session,
            PoolMode::Transaction => Route::TransactionPooler {
                statement_timeout: config.statement_timeout,
            },
        }
    }
}

/// A boxed future borrowing the migration transaction.
pub type TxFuture<'t, T> = Pin<Box<dyn Future<Output = Result<T, DbErr>> + Send + 't>>;

/// A boxed future borrowing the migration transaction, with an error type of its own.
pub type TxFutureWith<'t, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 't>>;

/// How a locked transaction ends when its work succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// Commit what the work did.
    Commit,
    /// Roll it back: a dry run (`adopt` without `--apply`), or nothing to change.
    Rollback,
}

/// Runs `work` in one transaction holding the migration lock; commits if it succeeds,
/// rolls back (leaving nothing behind) if it fails.
pub async fn in_locked_transaction<T, F>(
    db: &DatabaseConnection,
    route: Route,
    work: F,
) -> Result<T, DbErr>
where
    T: Send,
    F: for<'t> FnOnce(&'t DatabaseTransaction) -> TxFuture<'t, T> + Send,
{
    in_locked_transaction_then(db, route, true, work, |_| Finish::Commit).await
}

/// [`in_locked_transaction`] for work whose result decides how the transaction ends, with
/// an error of its own: after `Ok(value)` it commits if `finish(&value)` says so and rolls
/// back otherwise; after an error it rolls back. Behind a transaction-mode pooler the
/// server session is left without prepared statements in every case.
///
/// `sqlite_write` makes a SQLite transaction take the write lock up front (`BEGIN
/// IMMEDIATE`); without it the transaction is deferred, for work that only reads (and
/// writes temporary tables). Postgres always takes the advisory lock.
pub async fn in_locked_transaction_then<T, E, F>(
    db: &DatabaseConnection,
    route: Route,
    sqlite_write: bool,
    work: F,
    finish: fn(&T) -> Finish,
) -> Result<T, E>
where
    T: Send,
    E: From<DbErr> + Send,
    F: for<'t> FnOnce(&'t DatabaseTransaction) -> TxFutureWith<'t, T, E> + Send,
{
    let backend = db.get_database_backend();
    let options = TransactionOptions {
        sqlite_transaction_mode: (backend == DbBackend::Sqlite && sqlite_write)
            .then_some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    let tx = db.begin_with_options(options).await?;
    let outcome = async {
        tx.execute_unprepared(&preamble(backend, route)).await?;
        let value = work(&tx).await?;
        if route != Route::Session {
            tx.execute_unprepared("DEALLOCATE ALL").await?;
        }
        Ok::<_, E>(value)
    }
    .await;
    match outcome {
        Ok(value) => {
            match finish(&value) {
                Finish::Commit => tx.commit().await?,
                Finish::Rollback => tx.rollback().await?,
            }
            Ok(value)
        }
        Err(e) => {
            if route != Route::Session {
                // One round trip on the same server session: end the transaction, then
                // drop what it prepared. (The rollback below then finds no transaction,
                // which Postgres only warns about.)
                let _ = tx.execute_unprepared("ROLLBACK; DEALLOCATE ALL").await;
            }
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// The first statements of a migration transaction, in one round trip (also what
/// `adopt` starts with).
pub fn preamble(backend: DbBackend, route: Route) -> String {
    match (backend, route) {
        (DbBackend::Sqlite, _) => "SELECT count(*) FROM sqlite_master".to_owned(),
        (_, Route::Session) => format!("SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY})"),
        (_, Route::TransactionPooler { statement_timeout }) => format!(
            "DEALLOCATE ALL; SET LOCAL statement_timeout = {}; SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY})",
            statement_timeout.as_millis()
        ),
    }
}

/// Applies pending migrations (all, or the next `steps`) and records their checksums, in
/// one locked transaction: what `dal::Database::migrate` and `migration up` both run.
pub async fn up(db: &DatabaseConnection, route: Route, steps: Option<u32>) -> Result<(), DbErr> {
    in_locked_transaction(db, route, move |tx| Box::pin(apply_pending(tx, steps))).await
}

/// What [`up`] runs inside its transaction, for a caller that holds the locked transaction
/// itself (from [`in_locked_transaction`]) to do more in it: `migration up` also reads the
/// status there. On a transaction without the lock, concurrent migrators would race.
pub async fn apply_pending(tx: &DatabaseTransaction, steps: Option<u32>) -> Result<(), DbErr> {
    Migrator::up(tx, steps).await?;
    checksum::record(tx).await
}
