//! From the driver's errors to [`DalError`]: by error code, never by message text.

use std::sync::Arc;

use dal_config::{ConfigError, ConnectError};
use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};

use super::culprit::Culprit;
use super::{DalError, DriverError, TimeoutKind};

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
            source: Arc::new(self),
        }
    }
}

impl RefusedValue {
    pub(crate) fn into_db_err(self) -> DbErr {
        DbErr::TryIntoErr {
            from: "value",
            into: "database value",
            source: Arc::new(self),
        }
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
        let detail = e.to_string();
        let source = Arc::new(e.source);
        match classify_sqlx(&source, || DriverError::shared(source.clone())) {
            // A database error at connect with no variant of its own (authentication,
            // say) stays a connection failure, as before this source was kept.
            Some(DalError::Database { source, .. }) => DalError::Connection { detail, source },
            Some(other) => other,
            None => DalError::Connection {
                detail,
                source: Some(DriverError::shared(source)),
            },
        }
    }
}

impl From<sqlx::Error> for DalError {
    fn from(e: sqlx::Error) -> Self {
        let e = Arc::new(e);
        classify_sqlx(&e, || DriverError::shared(e.clone())).unwrap_or_else(|| DalError::Database {
            detail: e.to_string(),
            source: Some(DriverError::shared(e.clone())),
        })
    }
}

impl From<DbErr> for DalError {
    fn from(e: DbErr) -> Self {
        let whole = || Some(DriverError::new(e.clone()));
        match &e {
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => DalError::Timeout {
                what: TimeoutKind::PoolAcquire,
                source: whole(),
            },
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
                        source: whole(),
                    }
                }
            }
            // The sqlx error itself becomes the source, so callers can downcast to it.
            DbErr::Conn(RuntimeErr::SqlxError(sqlx)) => DalError::Connection {
                detail: e.to_string(),
                source: Some(DriverError::shared(sqlx.clone())),
            },
            DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) | DbErr::Conn(_) => {
                DalError::Connection {
                    detail: e.to_string(),
                    source: whole(),
                }
            }
            DbErr::Exec(RuntimeErr::SqlxError(sqlx))
            | DbErr::Query(RuntimeErr::SqlxError(sqlx)) => classify_sqlx(sqlx, || {
                DriverError::shared(sqlx.clone())
            })
            .unwrap_or_else(|| DalError::Database {
                detail: e.to_string(),
                source: Some(DriverError::shared(sqlx.clone())),
            }),
            DbErr::Migration(detail) => DalError::Migration {
                detail: detail.clone(),
                source: whole(),
            },
            _ => DalError::Database {
                detail: e.to_string(),
                source: whole(),
            },
        }
    }
}

/// Maps a driver error to its variant by error code, never by message text (the text is
/// read only for the names in [`Culprit`]). `source` makes the driver error to keep.
fn classify_sqlx(e: &sqlx::Error, source: impl Fn() -> DriverError) -> Option<DalError> {
    match e {
        sqlx::Error::Database(db) => {
            let detail = db.message().to_owned();
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                Some(classify_sqlstate(pg, detail, source()))
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
                Some(classify_sqlite_code(code, detail, source()))
            } else {
                None
            }
        }
        sqlx::Error::PoolTimedOut => Some(DalError::Timeout {
            what: TimeoutKind::PoolAcquire,
            source: Some(source()),
        }),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Some(DalError::Connection {
            detail: e.to_string(),
            source: Some(source()),
        }),
        _ => None,
    }
}

fn conflict(c: Culprit, detail: String, source: DriverError) -> DalError {
    DalError::Conflict {
        detail,
        table: c.table,
        constraint: c.constraint,
        column: c.column,
        source: Some(source),
    }
}

fn missing_parent(c: Culprit, detail: String, source: DriverError) -> DalError {
    DalError::MissingParent {
        detail,
        table: c.table,
        constraint: c.constraint,
        column: c.column,
        source: Some(source),
    }
}

fn invalid_value(c: Culprit, detail: String, source: DriverError) -> DalError {
    DalError::InvalidValue {
        detail,
        table: c.table,
        constraint: c.constraint,
        column: c.column,
        source: Some(source),
    }
}

/// Postgres SQLSTATE codes (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).
fn classify_sqlstate(
    pg: &sqlx::postgres::PgDatabaseError,
    detail: String,
    source: DriverError,
) -> DalError {
    let culprit = || Culprit::postgres(pg);
    match pg.code() {
        "23505" => conflict(culprit(), detail, source),
        "23503" => missing_parent(culprit(), detail, source),
        // check_violation, not_null_violation, and every data exception (class 22):
        // malformed uuid text, NUL in text, \u0000 in jsonb, out-of-range values.
        // A value of the wrong type for its column (42804: text bound to a uuid column).
        // ... and 54000 (program_limit_exceeded): a value too big to index.
        "23514" | "23502" | "42804" | "54000" => invalid_value(culprit(), detail, source),
        c if c.starts_with("22") => invalid_value(culprit(), detail, source),
        "40001" | "40P01" | "55P03" => DalError::Busy {
            detail,
            source: Some(source),
        },
        "42501" => DalError::PermissionDenied {
            detail,
            table: pg.table().map(str::to_owned),
            source: Some(source),
        },
        "25006" => DalError::ReadOnly {
            detail,
            source: Some(source),
        },
        "57014" => DalError::Timeout {
            what: TimeoutKind::Statement,
            source: Some(source),
        },
        // connection exceptions, admin/crash shutdown, cannot connect now, too many connections
        c if c.starts_with("08") => DalError::Connection {
            detail,
            source: Some(source),
        },
        "57P01" | "57P02" | "57P03" | "53300" => DalError::Connection {
            detail,
            source: Some(source),
        },
        _ => DalError::Database {
            detail,
            source: Some(source),
        },
    }
}

/// SQLite extended result codes (<https://www.sqlite.org/rescode.html>).
fn classify_sqlite_code(code: i32, detail: String, source: DriverError) -> DalError {
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
    let culprit = || Culprit::sqlite(code, &detail);
    match code {
        SQLITE_CONSTRAINT_PRIMARYKEY | SQLITE_CONSTRAINT_UNIQUE => {
            conflict(culprit(), detail, source)
        }
        // SQLite names nothing here: not the table, the key, or the parent.
        SQLITE_CONSTRAINT_FOREIGNKEY => missing_parent(Culprit::default(), detail, source),
        SQLITE_CONSTRAINT_CHECK
        | SQLITE_CONSTRAINT_NOTNULL
        | SQLITE_CONSTRAINT_DATATYPE
        | SQLITE_CONSTRAINT_TRIGGER => invalid_value(culprit(), detail, source),
        c if c & 0xff == SQLITE_BUSY || c & 0xff == SQLITE_LOCKED => DalError::Busy {
            detail,
            source: Some(source),
        },
        c if c & 0xff == SQLITE_READONLY => DalError::ReadOnly {
            detail,
            source: Some(source),
        },
        // SQLITE_CANTOPEN and SQLITE_NOTADB when opening are configuration errors naming
        // the file (dal_config's connect); met later (a directory removed under a running
        // pool), they fall here: not retryable, since trying again cannot help.
        _ => DalError::Database {
            detail,
            source: Some(source),
        },
    }
}
