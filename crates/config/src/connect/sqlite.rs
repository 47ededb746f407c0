//! Opening a SQLite pool: options per [`SqliteMode`], and the retry that lets many
//! processes create and open the same new file at once.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use sqlx::ConnectOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::time::Instant;
use tracing::log::LevelFilter;

use crate::sqlite_url::MEMORY;
use crate::{Config, ConfigError, SqliteMode};

/// Longest pause between two attempts to open a busy database.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// Opens the pool, retrying while SQLite answers "busy" without having waited.
///
/// Switching a new file to WAL takes an exclusive lock, and SQLite reports `SQLITE_BUSY`
/// at once (without calling the busy handler, which could deadlock) when another process
/// holds the file open at that moment. Every other lock is waited for by SQLite itself up
/// to the busy timeout; this loop gives the first open the same time limit.
pub(super) async fn open(
    config: &Config,
    path: &Path,
    mode: SqliteMode,
) -> Result<SqlitePool, sqlx::Error> {
    let options = options(config, path, mode);
    let deadline = Instant::now() + config.busy_timeout;
    let mut backoff = Duration::from_millis(2);
    loop {
        let attempt = async {
            probe(options.clone()).await?;
            pool_options(config, mode)
                .connect_with(options.clone())
                .await
        }
        .await;
        match attempt {
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                let pause = rand::rng().random_range(backoff / 2..=backoff);
                tokio::time::sleep_until((Instant::now() + pause).min(deadline)).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(unusable_file(e, path, mode)),
            Ok(pool) => return Ok(pool),
        }
    }
}

/// Opens one connection and reads the file's header, so that a file that is not a
/// database fails here in every mode (a read-only connection runs no statement that
/// would read it), and closes it.
async fn probe(options: SqliteConnectOptions) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut conn = options.connect().await?;
    sqlx::query("PRAGMA schema_version")
        .execute(&mut conn)
        .await?;
    conn.close().await
}

/// The connection options for `mode`.
fn options(config: &Config, path: &Path, mode: SqliteMode) -> SqliteConnectOptions {
    let options = match mode {
        SqliteMode::Memory => memory(path),
        _ => SqliteConnectOptions::new().filename(path),
    }
    .foreign_keys(true)
    .busy_timeout(config.busy_timeout)
    .log_statements(LevelFilter::Debug);
    match mode {
        SqliteMode::ReadWriteCreate => options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal),
        SqliteMode::ReadWrite => options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal),
        // A read-only connection cannot change the journal mode; it reads the file in the
        // mode it was written in.
        SqliteMode::ReadOnly => options.read_only(true),
        SqliteMode::Immutable => options.read_only(true).immutable(true),
        // An in-memory database keeps its journal in memory; WAL needs a file.
        SqliteMode::Memory => options.create_if_missing(true),
    }
}

/// An in-memory database every connection of the pool shares.
///
/// SQLite's `memdb` VFS, with a name starting with `/`, is one database per process
/// shared by every connection that opens that name, with ordinary locking: a writer waits
/// for another up to the busy timeout and readers see committed data only. (sqlx's own
/// `:memory:` uses shared-cache mode instead, whose table locks are waited for without
/// any time limit, so a read issued while a unit of work is open could hang.) The
/// database lives while one connection to it is open; the pool keeps its connections.
fn memory(path: &Path) -> SqliteConnectOptions {
    static ANONYMOUS: AtomicU64 = AtomicU64::new(0);
    let name = if path.as_os_str() == MEMORY {
        // A new database for each connect, as sqlx gives each `sqlite::memory:` its own.
        format!(
            "/dal-memory-{}-{}",
            std::process::id(),
            ANONYMOUS.fetch_add(1, Ordering::Relaxed)
        )
    } else {
        format!("/{}", path.display())
    };
    SqliteConnectOptions::new().filename(name).vfs("memdb")
}

fn pool_options(config: &Config, mode: SqliteMode) -> SqlitePoolOptions {
    let pool = SqlitePoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .test_before_acquire(false);
    if mode == SqliteMode::Memory {
        // The database is gone when its last connection closes: never retire them.
        pool.idle_timeout(None).max_lifetime(None)
    } else {
        pool
    }
}

/// The primary result code of a SQLite error (the low byte of the extended code).
fn sqlite_code(e: &sqlx::Error) -> Option<i32> {
    match e {
        sqlx::Error::Database(db)
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() =>
        {
            db.code()
                .and_then(|c| c.parse::<i32>().ok())
                .map(|c| c & 0xff)
        }
        _ => None,
    }
}

/// SQLITE_BUSY and its extended codes.
fn is_busy(e: &sqlx::Error) -> bool {
    const SQLITE_BUSY: i32 = 5;
    sqlite_code(e) == Some(SQLITE_BUSY)
}

/// A file that cannot be used as it is, is a configuration error naming the file, not
/// a (retryable) connection failure: one that does not exist, opened in a mode that
/// never creates one; one SQLite cannot open or create (SQLITE_CANTOPEN: say, its
/// directory does not exist); one that is not a database (SQLITE_NOTADB).
fn unusable_file(e: sqlx::Error, path: &Path, mode: SqliteMode) -> sqlx::Error {
    const SQLITE_CANTOPEN: i32 = 14;
    const SQLITE_NOTADB: i32 = 26;
    let opens_existing_only = matches!(
        mode,
        SqliteMode::ReadWrite | SqliteMode::ReadOnly | SqliteMode::Immutable
    );
    let reason = || match &e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    };
    let config = if opens_existing_only && !path.exists() {
        ConfigError::SqliteFileMissing {
            path: path.to_owned(),
            parameter: mode.url_parameter(),
        }
    } else if sqlite_code(&e) == Some(SQLITE_CANTOPEN) {
        ConfigError::SqliteCannotOpen {
            path: path.to_owned(),
            reason: reason(),
        }
    } else if sqlite_code(&e) == Some(SQLITE_NOTADB) {
        ConfigError::SqliteNotADatabase {
            path: path.to_owned(),
            reason: reason(),
        }
    } else {
        return e;
    };
    sqlx::Error::Configuration(Box::new(config))
}
