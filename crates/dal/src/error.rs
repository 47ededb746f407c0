//! [`DalError`]: one error type, the same variant for the same fault on both backends.

use std::fmt;

use dal_config::{ConfigError, ConnectError};
use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};

/// Result alias for this crate.
pub type Result<T, E = DalError> = std::result::Result<T, E>;

/// Everything that can go wrong in the data-access layer.
///
/// Match on the variant, never on the text: the `detail` strings carry the driver's
/// message for logs and differ between SQLite and Postgres, the variants do not.
/// [`DalError::is_retryable`] tells whether running the same unit of work again can
/// succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DalError {
    /// The row asked for does not exist (or is outside the caller's scope).
    #[error("{entity} {key} not found")]
    NotFound {
        /// The table or aggregate, e.g. `"project"`.
        entity: &'static str,
        /// The key that was looked up.
        key: String,
    },
    /// An update based on a stale read: the row's [`row_version`](entities::task::Model::row_version)
    /// is no longer the one the caller read (someone else wrote the row since), so
    /// nothing was written. Read the row again, decide, and write with the new version.
    /// Not retryable as it is: the same write would be refused again.
    #[error("{entity} {id} changed since it was read (version {expected}, now {actual})")]
    Stale {
        /// The table or aggregate, e.g. `"task"`.
        entity: &'static str,
        /// The row's id.
        id: entities::Id,
        /// The version the caller read.
        expected: i64,
        /// The row's version now.
        actual: i64,
    },
    /// A unique constraint (primary key, `users.email`) already holds this value.
    #[error("conflict with an existing row: {detail}")]
    Conflict {
        /// The driver's message.
        detail: String,
    },
    /// A foreign key points at a row that does not exist.
    #[error("the referenced parent row does not exist: {detail}")]
    MissingParent {
        /// The driver's message.
        detail: String,
    },
    /// A value the schema refuses: a CHECK (task status, JSON, uuid shape), NOT NULL, a
    /// value neither backend can store the same way (NUL in text, a year outside
    /// 1..=9999), or an argument the library validated before reaching the database.
    #[error("invalid value: {detail}")]
    InvalidValue {
        /// What is wrong.
        detail: String,
    },
    /// The database refused the operation for the current role: a Postgres row-level
    /// security policy (`WITH CHECK`) or a missing privilege (42501). SQLite never reports
    /// it; there the `for_user` views refuse with `NotFound` before the database is asked.
    #[error("permission denied: {detail}")]
    PermissionDenied {
        /// The driver's message.
        detail: String,
    },
    /// The database is open read-only and the operation writes: a SQLite URL with
    /// `mode=ro` or `immutable=1` (SQLITE_READONLY), or a Postgres read-only transaction
    /// (25006: `default_transaction_read_only`, a hot standby). Not retryable.
    #[error("the database is read-only: {detail}")]
    ReadOnly {
        /// The driver's message.
        detail: String,
    },
    /// Lock contention: SQLite busy/locked past the busy timeout, a Postgres serialization
    /// failure (40001), deadlock (40P01) or lock timeout (55P03). Retry the whole unit of work.
    #[error("database busy, retry: {detail}")]
    Busy {
        /// The driver's message.
        detail: String,
    },
    /// A time limit ran out.
    #[error("timed out waiting for {what}")]
    Timeout {
        /// What was being waited for.
        what: TimeoutKind,
    },
    /// The database cannot be reached or the connection broke.
    #[error("database connection failed: {detail}")]
    Connection {
        /// What happened (never a password).
        detail: String,
    },
    /// The environment does not describe a usable database.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A statement of this unit of work failed earlier, so the unit can only be rolled
    /// back: further statements and `commit` return this error (and `commit` rolls back).
    /// Postgres aborts a transaction at its first error while SQLite would carry on; this
    /// makes both behave like Postgres, so no commit silently loses work. Use a nested unit
    /// of work (a savepoint) around a statement that may fail and be recovered from.
    #[error(
        "the unit of work cannot continue after an earlier failed statement ({detail}); roll it back"
    )]
    TransactionAborted {
        /// The first failure.
        detail: String,
    },
    /// Applying or reading the migration history failed.
    #[error("migration failed: {detail}")]
    Migration {
        /// The driver's or migrator's message.
        detail: String,
    },
    /// A stored row the library cannot read: a value no write through the schema could
    /// have produced (say, written while a constraint was dropped, or text that is not
    /// UTF-8 on SQLite, which no SQLite schema can check). The same variant on both
    /// backends. A write that returns such a row changes nothing: on its own it is rolled
    /// back; inside a unit of work the unit can then only roll back
    /// ([`DalError::TransactionAborted`] on commit). A list that meets such a row fails
    /// with this error rather than leave the row out. Not retryable: fix the row.
    #[error("cannot read {table} row {id}: column {column}: {reason}")]
    Undecodable {
        /// The table, e.g. `"tasks"`.
        table: &'static str,
        /// The row's id (as stored, when the id itself is unreadable).
        id: String,
        /// The column that cannot be read.
        column: &'static str,
        /// What is wrong with the stored value (never the content of a text or JSON
        /// column; a malformed uuid or status may be quoted).
        reason: String,
    },
    /// Anything else the database reported.
    #[error("database error: {detail}")]
    Database {
        /// The driver's message.
        detail: String,
    },
}

/// What a [`DalError::Timeout`] was waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// A connection from the pool (`DB_ACQUIRE_TIMEOUT_MS`).
    PoolAcquire,
    /// A statement to finish (Postgres `statement_timeout`, `DB_STATEMENT_TIMEOUT_MS`).
    Statement,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::PoolAcquire => "a pooled connection",
            TimeoutKind::Statement => "a statement (statement_timeout)",
        })
    }
}

impl DalError {
    /// Whether the same unit of work, run again, can succeed: busy, timed out, or a
    /// broken connection. Constraint and validation errors are not retryable.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            DalError::Busy { .. } | DalError::Timeout { .. } | DalError::Connection { .. }
        )
    }

    pub(crate) fn not_found(entity: &'static str, key: impl fmt::Display) -> DalError {
        DalError::NotFound {
            entity,
            key: key.to_string(),
        }
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> DalError {
        DalError::InvalidValue {
            detail: detail.into(),
        }
    }
}

/// A value refused before it reached the database, carried through `DbErr` as a typed
/// source so that [`DalError::from`] can recognise it without reading text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RefusedValue(pub String);

/// A statement refused because its unit of work already failed, carried like
/// [`RefusedValue`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct AbortedUnit(pub String);

impl AbortedUnit {
    pub(crate) fn into_db_err(self) -> DbErr {
        DbErr::TryIntoErr {
            from: "statement",
            into: "aborted unit of work",
            source: std::sync::Arc::new(self),
        }
    }
}

impl RefusedValue {
    pub(crate) fn into_db_err(self) -> DbErr {
        DbErr::TryIntoErr {
            from: "value",
            into: "database value",
            source: std::sync::Arc::new(self),
        }
    }
}

impl From<entities::UnknownTaskStatus> for DalError {
    /// A status string that is not one of the six: the same variant the database's CHECK
    /// gives, so validating early changes nothing for the caller.
    fn from(e: entities::UnknownTaskStatus) -> Self {
        DalError::invalid(e.to_string())
    }
}

impl From<ConnectError> for DalError {
    fn from(e: ConnectError) -> Self {
        if let sqlx::Error::Configuration(reason) = &e.source {
            // Not retryable: the settings are wrong, not the network.
            if let Some(config) = reason.downcast_ref::<ConfigError>() {
                return DalError::Config(config.clone());
            }
            return DalError::Config(ConfigError::InvalidUrl {
                reason: reason.to_string(),
            });
        }
        match classify_sqlx(&e.source) {
            Some(DalError::Database { .. }) | None => DalError::Connection {
                detail: e.to_string(),
            },
            Some(other) => other,
        }
    }
}

impl From<sqlx::Error> for DalError {
    fn from(e: sqlx::Error) -> Self {
        classify_sqlx(&e).unwrap_or_else(|| DalError::Database {
            detail: e.to_string(),
        })
    }
}

impl From<DbErr> for DalError {
    fn from(e: DbErr) -> Self {
        match &e {
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => DalError::Timeout {
                what: TimeoutKind::PoolAcquire,
            },
            DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) | DbErr::Conn(_) => {
                DalError::Connection {
                    detail: e.to_string(),
                }
            }
            DbErr::TryIntoErr { source, .. } => {
                if let Some(refused) = source.downcast_ref::<RefusedValue>() {
                    DalError::invalid(refused.0.clone())
                } else if let Some(aborted) = source.downcast_ref::<AbortedUnit>() {
                    DalError::TransactionAborted {
                        detail: aborted.0.clone(),
                    }
                } else {
                    DalError::Database {
                        detail: e.to_string(),
                    }
                }
            }
            DbErr::Exec(RuntimeErr::SqlxError(sqlx))
            | DbErr::Query(RuntimeErr::SqlxError(sqlx)) => {
                classify_sqlx(sqlx).unwrap_or_else(|| DalError::Database {
                    detail: e.to_string(),
                })
            }
            DbErr::Migration(detail) => DalError::Migration {
                detail: detail.clone(),
            },
            _ => DalError::Database {
                detail: e.to_string(),
            },
        }
    }
}

/// Maps a driver error to its variant by error code, never by message text.
fn classify_sqlx(e: &sqlx::Error) -> Option<DalError> {
    match e {
        sqlx::Error::Database(db) => {
            let detail = db.message().to_owned();
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                Some(classify_sqlstate(pg.code(), detail))
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
                Some(classify_sqlite_code(code, detail))
            } else {
                None
            }
        }
        sqlx::Error::PoolTimedOut => Some(DalError::Timeout {
            what: TimeoutKind::PoolAcquire,
        }),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Some(DalError::Connection {
            detail: e.to_string(),
        }),
        _ => None,
    }
}

/// Postgres SQLSTATE codes (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).
fn classify_sqlstate(code: &str, detail: String) -> DalError {
    match code {
        "23505" => DalError::Conflict { detail },
        "23503" => DalError::MissingParent { detail },
        // check_violation, not_null_violation, and every data exception (class 22):
        // malformed uuid text, NUL in text, \u0000 in jsonb, out-of-range values.
        // A value of the wrong type for its column (42804: text bound to a uuid column).
        // ... and 54000 (program_limit_exceeded): a value too big to index.
        "23514" | "23502" | "42804" | "54000" => DalError::InvalidValue { detail },
        c if c.starts_with("22") => DalError::InvalidValue { detail },
        "40001" | "40P01" | "55P03" => DalError::Busy { detail },
        "42501" => DalError::PermissionDenied { detail },
        "25006" => DalError::ReadOnly { detail },
        "57014" => DalError::Timeout {
            what: TimeoutKind::Statement,
        },
        // connection exceptions, admin/crash shutdown, cannot connect now, too many connections
        c if c.starts_with("08") => DalError::Connection { detail },
        "57P01" | "57P02" | "57P03" | "53300" => DalError::Connection { detail },
        _ => DalError::Database { detail },
    }
}

/// SQLite extended result codes (<https://www.sqlite.org/rescode.html>).
fn classify_sqlite_code(code: i32, detail: String) -> DalError {
    const SQLITE_BUSY: i32 = 5;
    const SQLITE_LOCKED: i32 = 6;
    const SQLITE_CONSTRAINT_CHECK: i32 = 275;
    const SQLITE_CONSTRAINT_FOREIGNKEY: i32 = 787;
    const SQLITE_CONSTRAINT_NOTNULL: i32 = 1299;
    const SQLITE_CONSTRAINT_PRIMARYKEY: i32 = 1555;
    const SQLITE_CONSTRAINT_UNIQUE: i32 = 2067;
    const SQLITE_CONSTRAINT_DATATYPE: i32 = 3091;
    const SQLITE_READONLY: i32 = 8;
    // RAISE(ABORT, ...) in a trigger: the schema's value checks on SQLite.
    const SQLITE_CONSTRAINT_TRIGGER: i32 = 1811;
    const SQLITE_CANTOPEN: i32 = 14;
    const SQLITE_NOTADB: i32 = 26;
    match code {
        SQLITE_CONSTRAINT_PRIMARYKEY | SQLITE_CONSTRAINT_UNIQUE => DalError::Conflict { detail },
        SQLITE_CONSTRAINT_FOREIGNKEY => DalError::MissingParent { detail },
        SQLITE_CONSTRAINT_CHECK
        | SQLITE_CONSTRAINT_NOTNULL
        | SQLITE_CONSTRAINT_DATATYPE
        | SQLITE_CONSTRAINT_TRIGGER => DalError::InvalidValue { detail },
        c if c & 0xff == SQLITE_BUSY || c & 0xff == SQLITE_LOCKED => DalError::Busy { detail },
        c if c & 0xff == SQLITE_READONLY => DalError::ReadOnly { detail },
        c if c & 0xff == SQLITE_CANTOPEN || c & 0xff == SQLITE_NOTADB => {
            DalError::Connection { detail }
        }
        _ => DalError::Database { detail },
    }
}
