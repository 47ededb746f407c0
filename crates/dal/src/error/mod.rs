//! [`DalError`]: one error type, the same variant for the same fault on both backends.

use std::fmt;

use dal_config::ConfigError;

mod classify;
mod culprit;
mod driver;
mod kind;
mod refusal;

pub(crate) use classify::{AbortedUnit, RefusedValue};
pub use driver::DriverError;
pub use kind::ErrorKind;
pub use refusal::SyncRefusal;

/// Result alias for this crate.
pub type Result<T, E = DalError> = std::result::Result<T, E>;

/// Everything that can go wrong in the data-access layer.
///
/// Match on the variant ([`DalError::kind`] gives it as a plain value), never on the
/// text: the `detail` strings carry the driver's message for logs and differ between
/// SQLite and Postgres, the variants do not. [`DalError::is_retryable`] tells whether
/// running the same unit of work again can succeed.
///
/// Constraint errors name what they are about where the database says:
/// [`DalError::table`], [`DalError::constraint`] and [`DalError::column`]. SQLite
/// reports less than Postgres; each variant says what is missing there.
///
/// An error the driver raised keeps the driver's error as its
/// [`source`](std::error::Error::source): a `sqlx::Error` (or a `sea_orm::DbErr` where
/// SeaORM raised it), for logs or for what this type does not model.
///
/// Every variant is `#[non_exhaustive]` (fields may be added; match with `{ .. }`), except
/// [`DalError::Config`], whose [`ConfigError`] is non-exhaustive itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DalError {
    /// The row asked for does not exist (or is outside the caller's scope).
    #[error("{entity} {key} not found")]
    #[non_exhaustive]
    NotFound {
        /// The table or aggregate, e.g. `"project"`.
        entity: &'static str,
        /// The key that was looked up.
        key: String,
    },
    /// An update based on a stale read: the row's
    /// [`row_version`](entities::task::Model::row_version) is no longer the one the caller
    /// read (someone else wrote the row since), so nothing was written. Read the row
    /// again, decide, and write with the new version. Not retryable as it is: the same
    /// write would be refused again.
    #[error("{entity} {id} changed since it was read (version {expected}, now {actual})")]
    #[non_exhaustive]
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
    /// A worker asked to heartbeat, complete or fail a task whose lease it does not hold:
    /// it never claimed the task, or its lease lapsed and another claim took the task
    /// over, or the task is no longer `In Progress` (finished by someone else, or ended
    /// `Failed` after its last lapsed lease). Nothing was written. Not retryable: the
    /// worker should drop the task (its result may duplicate the new holder's).
    #[error("worker {worker:?} does not hold task {task} (now {status}, held by {holder:?})")]
    #[non_exhaustive]
    LeaseLost {
        /// The task.
        task: entities::Id,
        /// The worker that asked.
        worker: String,
        /// The worker holding the task now, if it is `In Progress` under a claim.
        holder: Option<String>,
        /// The task's status now.
        status: entities::TaskStatus,
    },
    /// A unique constraint (primary key, `users.email`) already holds this value.
    ///
    /// Both backends give `table` and, for a single-column key, `column` (`users` /
    /// `email` for a taken email, `users` / `id` for an id that exists). Postgres also
    /// gives `constraint` (`users_email_key`, `users_pkey`); SQLite does not name the
    /// constraint (except a unique index on expressions, which it names instead of
    /// columns).
    #[error("conflict with an existing row: {detail}")]
    #[non_exhaustive]
    Conflict {
        /// The driver's message.
        detail: String,
        /// The table holding the existing row.
        table: Option<String>,
        /// The unique constraint or index (Postgres).
        constraint: Option<String>,
        /// The key's column, when the key is one column.
        column: Option<String>,
        /// The driver's error.
        #[source]
        source: Option<DriverError>,
    },
    /// A foreign key points at a row that does not exist.
    ///
    /// `table` is the table of the row that points (`projects` for a project whose user
    /// does not exist). Postgres gives it with `constraint` (`projects_user_id_fkey`) and
    /// `column` (`user_id`). SQLite's report names nothing at all ("FOREIGN KEY
    /// constraint failed"), not even which of a row's foreign keys failed: the
    /// repositories fill in `table` (the table they wrote); raw SQL gets `None`.
    #[error("the referenced parent row does not exist: {detail}")]
    #[non_exhaustive]
    MissingParent {
        /// The driver's message.
        detail: String,
        /// The table of the row whose reference is dangling.
        table: Option<String>,
        /// The foreign key (Postgres).
        constraint: Option<String>,
        /// The referencing column (Postgres, single-column keys).
        column: Option<String>,
        /// The driver's error.
        #[source]
        source: Option<DriverError>,
    },
    /// A value the schema refuses: a CHECK (task status, JSON, uuid shape), NOT NULL, a
    /// value neither backend can store the same way (NUL in text, a year outside
    /// 1..=9999), or an argument the library validated before reaching the database.
    ///
    /// NOT NULL: `table` and `column` on both. CHECK: `constraint` on both (the schema
    /// names its checks the same on both, e.g. `tasks_status_check`); `table` on
    /// Postgres, and on SQLite when a repository wrote the row. A value refused by the
    /// library or by a Postgres type (a malformed uuid) names nothing.
    #[error("invalid value: {detail}")]
    #[non_exhaustive]
    InvalidValue {
        /// What is wrong.
        detail: String,
        /// The table written.
        table: Option<String>,
        /// The CHECK constraint that failed.
        constraint: Option<String>,
        /// The column, for NOT NULL and the SQLite schema's value triggers.
        column: Option<String>,
        /// The driver's error (`None` when the library refused the value).
        #[source]
        source: Option<DriverError>,
    },
    /// The database refused the operation for the current role: a Postgres row-level
    /// security policy (`WITH CHECK`) or a missing privilege (42501). SQLite never reports
    /// it; there the `for_user` views refuse with `NotFound` before the database is asked.
    #[error("permission denied: {detail}")]
    #[non_exhaustive]
    PermissionDenied {
        /// The driver's message.
        detail: String,
        /// The table, where Postgres names it.
        table: Option<String>,
        /// The driver's error.
        #[source]
        source: Option<DriverError>,
    },
    /// The database is open read-only and the operation writes: a SQLite URL with
    /// `mode=ro` or `immutable=1` (SQLITE_READONLY), or a Postgres read-only transaction
    /// (25006: `default_transaction_read_only`, a hot standby). Not retryable.
    #[error("the database is read-only: {detail}")]
    #[non_exhaustive]
    ReadOnly {
        /// The driver's message.
        detail: String,
        /// The driver's error.
        #[source]
        source: Option<DriverError>,
    },
    /// Lock contention: SQLite busy/locked past the busy timeout, a Postgres serialization
    /// failure (40001), deadlock (40P01) or lock timeout (55P03). Retry the whole unit of work.
    #[error("database busy, retry: {detail}")]
    #[non_exhaustive]
    Busy {
        /// The driver's message.
        detail: String,
        /// The driver's error.
        #[source]
        source: Option<DriverError>,
    },
    /// A time limit ran out.
    #[error("timed out waiting for {what}")]
    #[non_exhaustive]
    Timeout {
        /// What was being waited for.
        what: TimeoutKind,
        /// The driver's error.
        #[source]
        source: Option<DriverError>,
    },
    /// The database cannot be reached or the connection broke.
    #[error("database connection failed: {detail}")]
    #[non_exhaustive]
    Connection {
        /// What happened (never a password).
        detail: String,
        /// The driver's error.
        #[source]
        source: Option<DriverError>,
    },
    /// The environment does not describe a usable database: a bad setting, or a database
    /// the settings point at that cannot be used as it is (a SQLite file that cannot be
    /// opened or is not a database, a Postgres database that does not exist). Not
    /// retryable. Not `#[non_exhaustive]`: [`ConfigError`] is, and carries the detail.
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
    #[non_exhaustive]
    TransactionAborted {
        /// The first failure.
        detail: String,
    },
    /// Applying or reading the migration history failed.
    #[error("migration failed: {detail}")]
    #[non_exhaustive]
    Migration {
        /// The driver's or migrator's message.
        detail: String,
        /// The driver's error.
        #[source]
        source: Option<DriverError>,
    },
    /// A stored row the library cannot read: a value no write through the schema could
    /// have produced (say, written while a constraint was dropped, or text that is not
    /// UTF-8 on SQLite, which no SQLite schema can check). The same variant on both
    /// backends. A write that returns such a row changes nothing: on its own it is rolled
    /// back; inside a unit of work the unit can then only roll back
    /// ([`DalError::TransactionAborted`] on commit). A list that meets such a row fails
    /// with this error rather than leave the row out. Not retryable: fix the row.
    #[error("cannot read {table} row {id}: column {column}: {reason}")]
    #[non_exhaustive]
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
    /// The sync protocol refused a change for good (a dead letter), as opposed to
    /// failing to apply it. Not retryable.
    #[error("sync refused the change: {reason}")]
    #[non_exhaustive]
    SyncRefused {
        /// Why.
        reason: SyncRefusal,
    },
    /// Anything else the database reported.
    #[error("database error: {detail}")]
    #[non_exhaustive]
    Database {
        /// The driver's message.
        detail: String,
        /// The driver's error.
        #[source]
        source: Option<DriverError>,
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

    /// The variant, as a `Copy` value with a stable name ([`ErrorKind::as_str`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            DalError::NotFound { .. } => ErrorKind::NotFound,
            DalError::Stale { .. } => ErrorKind::Stale,
            DalError::LeaseLost { .. } => ErrorKind::LeaseLost,
            DalError::Conflict { .. } => ErrorKind::Conflict,
            DalError::MissingParent { .. } => ErrorKind::MissingParent,
            DalError::InvalidValue { .. } => ErrorKind::InvalidValue,
            DalError::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            DalError::ReadOnly { .. } => ErrorKind::ReadOnly,
            DalError::Busy { .. } => ErrorKind::Busy,
            DalError::Timeout { .. } => ErrorKind::Timeout,
            DalError::Connection { .. } => ErrorKind::Connection,
            DalError::Config(_) => ErrorKind::Config,
            DalError::TransactionAborted { .. } => ErrorKind::TransactionAborted,
            DalError::Migration { .. } => ErrorKind::Migration,
            DalError::Undecodable { .. } => ErrorKind::Undecodable,
            DalError::SyncRefused { .. } => ErrorKind::SyncRefused,
            DalError::Database { .. } => ErrorKind::Database,
        }
    }

    /// The table the error is about, where known: constraint errors as the database
    /// reports them (see each variant), and [`DalError::Undecodable`].
    pub fn table(&self) -> Option<&str> {
        match self {
            DalError::Conflict { table, .. }
            | DalError::MissingParent { table, .. }
            | DalError::InvalidValue { table, .. }
            | DalError::PermissionDenied { table, .. } => table.as_deref(),
            DalError::Undecodable { table, .. } => Some(table),
            _ => None,
        }
    }

    /// The constraint (or unique index) that refused the write, where the database
    /// names it: always on Postgres; on SQLite only for a named CHECK.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            DalError::Conflict { constraint, .. }
            | DalError::MissingParent { constraint, .. }
            | DalError::InvalidValue { constraint, .. } => constraint.as_deref(),
            _ => None,
        }
    }

    /// The column the error is about, where known (see each variant).
    pub fn column(&self) -> Option<&str> {
        match self {
            DalError::Conflict { column, .. }
            | DalError::MissingParent { column, .. }
            | DalError::InvalidValue { column, .. } => column.as_deref(),
            DalError::Undecodable { column, .. } => Some(column),
            _ => None,
        }
    }

    /// A [`DalError::NotFound`]: no `entity` with this `key` (for implementations of
    /// the repository traits outside this crate).
    pub fn not_found(entity: &'static str, key: impl fmt::Display) -> DalError {
        DalError::NotFound {
            entity,
            key: key.to_string(),
        }
    }

    /// A [`DalError::LeaseLost`]: `worker` does not hold `task`, which is in `status`
    /// and held by `holder` (for implementations of the repository traits outside this
    /// crate).
    pub fn lease_lost(
        task: entities::Id,
        worker: impl Into<String>,
        holder: Option<String>,
        status: entities::TaskStatus,
    ) -> DalError {
        DalError::LeaseLost {
            task,
            worker: worker.into(),
            holder,
            status,
        }
    }

    /// A [`DalError::InvalidValue`] refused before reaching the database: it names no
    /// table or constraint and has no source.
    pub fn invalid(detail: impl Into<String>) -> DalError {
        DalError::InvalidValue {
            detail: detail.into(),
            table: None,
            constraint: None,
            column: None,
            source: None,
        }
    }

    /// A [`DalError::MissingParent`] found before reaching the database (say, ids a
    /// batch refers to that do not exist): `table` is the table whose rows refer to them.
    pub fn missing_parent(table: Option<&str>, detail: impl Into<String>) -> DalError {
        DalError::MissingParent {
            detail: detail.into(),
            table: table.map(str::to_owned),
            constraint: None,
            column: None,
            source: None,
        }
    }

    /// A [`DalError::Undecodable`] for a stored value read outside the repositories.
    pub fn undecodable(
        table: &'static str,
        id: impl fmt::Display,
        column: &'static str,
        reason: impl Into<String>,
    ) -> DalError {
        DalError::Undecodable {
            table,
            id: id.to_string(),
            column,
            reason: reason.into(),
        }
    }

    /// A [`DalError::SyncRefused`].
    pub fn sync_refused(reason: SyncRefusal) -> DalError {
        DalError::SyncRefused { reason }
    }

    /// A [`DalError::Database`] with no driver error behind it: a database answer the
    /// caller cannot use (say, a query that must return a row returned none).
    pub fn database(detail: impl Into<String>) -> DalError {
        DalError::Database {
            detail: detail.into(),
            source: None,
        }
    }

    /// A [`DalError::ReadOnly`] the library raises itself.
    pub(crate) fn read_only(detail: impl Into<String>) -> DalError {
        DalError::ReadOnly {
            detail: detail.into(),
            source: None,
        }
    }

    /// Names `table` (the table a statement wrote) on a constraint error whose database
    /// did not name one: SQLite's foreign-key and CHECK failures.
    pub(crate) fn in_table(mut self, written: &str) -> DalError {
        if let DalError::Conflict { table, source, .. }
        | DalError::MissingParent { table, source, .. }
        | DalError::InvalidValue { table, source, .. } = &mut self
            && source.is_some()
            && table.is_none()
        {
            *table = Some(written.to_owned());
        }
        self
    }
}

impl From<entities::UnknownTaskStatus> for DalError {
    /// A status string that is not one of the six: the same variant the database's CHECK
    /// gives, so validating early changes nothing for the caller.
    fn from(e: entities::UnknownTaskStatus) -> Self {
        DalError::invalid(e.to_string())
    }
}

impl From<SyncRefusal> for DalError {
    fn from(reason: SyncRefusal) -> Self {
        DalError::SyncRefused { reason }
    }
}
