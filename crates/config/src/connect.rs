//! [`connect`]: a pool with the settings every connection must have.

use std::str::FromStr;

use sea_orm::{DatabaseConnection, SqlxPostgresConnector, SqlxSqliteConnector};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tracing::log::LevelFilter;

use crate::{Config, DatabaseTarget, PoolMode};

/// Opening the pool failed. The message names the database (password hidden) and the
/// driver's reason.
#[derive(Debug, thiserror::Error)]
#[error("cannot open {target}: {source}")]
pub struct ConnectError {
    /// The database, safe to print.
    pub target: String,
    /// The driver's error.
    #[source]
    pub source: sqlx::Error,
}

/// Opens a connection pool for `config` and checks that one connection works.
///
/// SQLite: the file is created if missing (unless the URL's `mode` says otherwise; see
/// [`crate::SqliteMode`]); every connection gets `foreign_keys=ON` and the configured busy
/// timeout, and a writable file `journal_mode=WAL` and `synchronous=NORMAL`. Where SQLite
/// answers "busy" at once instead of waiting (switching a new file to WAL while another
/// process opens it), opening is retried with jittered backoff within the busy timeout,
/// so any number of processes can create and open the same new file together.
/// Postgres: TLS as the URL's `sslmode` says, the configured `statement_timeout` and
/// `application_name`; behind a transaction-mode pooler ([`PoolMode::Transaction`]) no
/// statement cache and no start-up parameters the pooler does not track, so the statement
/// timeout is left to each transaction. On both, the pool does not ping a connection on every acquire
/// (a round trip per call) and statements are logged at `DEBUG`, not `INFO`.
pub async fn connect(config: &Config) -> Result<DatabaseConnection, ConnectError> {
    let fail = |source| ConnectError {
        target: config.describe_target(),
        source,
    };
    match &config.target {
        DatabaseTarget::Sqlite { path, mode } => {
            config
                .validate()
                .map_err(|e| fail(sqlx::Error::Configuration(Box::new(e))))?;
            let pool = sqlite::open(config, path, *mode).await.map_err(fail)?;
            Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
        }
        DatabaseTarget::Postgres { url } => {
            let mut options = PgConnectOptions::from_str(url.expose_secret())
                .map_err(fail)?
                .application_name(&config.application_name)
                .log_statements(LevelFilter::Debug);
            match config.pool_mode {
                PoolMode::Session => {
                    let timeout_ms = config.statement_timeout.as_millis().to_string();
                    options = options.options([("statement_timeout", timeout_ms.as_str())]);
                }
                // A transaction-mode pooler hands each transaction to any server session:
                // a statement prepared (and cached) in one is missing, or another client's,
                // in the next, and start-up parameters it does not track are refused
                // (`options`) or would land on some other client's session. The statement
                // timeout is set per transaction instead (dal's `SET LOCAL`).
                PoolMode::Transaction => {
                    options = options.statement_cache_capacity(0).extra_float_digits(None);
                }
            }
            probe(options.clone())
                .await
                .map_err(|e| fail(missing_database(e, &options)))?;
            let pool = PgPoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(config.acquire_timeout)
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .map_err(fail)?;
            Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
        }
    }
}

mod sqlite;

/// A database that does not exist (3D000) is a configuration error naming it, not a
/// (retryable) connection failure: nothing will create it meanwhile.
fn missing_database(e: sqlx::Error, options: &PgConnectOptions) -> sqlx::Error {
    const INVALID_CATALOG_NAME: &str = "3D000";
    let missing = matches!(&e, sqlx::Error::Database(db)
        if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .is_some_and(|pg| pg.code() == INVALID_CATALOG_NAME));
    if !missing {
        return e;
    }
    // sqlx connects to the database named after the user when the URL names none.
    let database = options
        .get_database()
        .unwrap_or_else(|| options.get_username())
        .to_owned();
    sqlx::Error::Configuration(Box::new(crate::ConfigError::PostgresDatabaseMissing {
        database,
    }))
}

/// Opens and closes one connection, so a failure reports the driver's reason (refused,
/// authentication, no such database, cannot open the file) rather than the pool's
/// "timed out" after retrying it until the acquire timeout.
async fn probe<O>(options: O) -> Result<(), sqlx::Error>
where
    O: ConnectOptions,
    O::Connection: Sized,
{
    let conn = options.connect().await?;
    sqlx::Connection::close(conn).await
}
