//! [`Database`]: the pool an application holds, and [`UnitOfWork`]: a transaction.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use dal_config::{Backend, Config};
use migration_history::locked::Route as MigrationRoute;
use migration_history::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, TransactionTrait};

use crate::dialect::Dialect;
use crate::pooler::{PooledTransaction, Pooler};
use crate::{DalError, Result};

/// A connection pool to the configured database: the handle an application keeps (it is
/// cheap to clone) and asks for repositories.
///
/// ```no_run
/// use dal::prelude::*;
/// # async fn run() -> dal::Result<()> {
/// // APP_ENV=local (default): ./local.db; APP_ENV=web: Postgres at DATABASE_URL.
/// let db = Database::from_env().await?;
/// db.migrate().await?;
/// let user = db.users().create(NewUser::new().display_name("Ada")).await?;
/// let first = db.projects().list_for_user(user.id, PageRequest::first(20)).await?;
/// if let Some(cursor) = first.next {
///     let second = db.projects().list_for_user(user.id, PageRequest::after(cursor, 20)).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Database {
    pub(crate) inner: DatabaseConnection,
    pub(crate) dialect: Dialect,
    pub(crate) statements: Arc<AtomicU64>,
    /// Opened read-only (a sqlite URL with `mode=ro` or `immutable=1`).
    pub(crate) read_only: bool,
    /// Set behind a transaction-mode pooler: every statement goes through it.
    pub(crate) pooler: Option<Arc<Pooler>>,
    migration_route: MigrationRoute,
}

impl Database {
    /// Reads the configuration from the environment (and `.env`) and connects.
    pub async fn from_env() -> Result<Database> {
        Database::connect(&Config::from_env()?).await
    }

    /// Connects as `config` says, and applies pending migrations first if
    /// `config.migrate_on_connect` is set.
    pub async fn connect(config: &Config) -> Result<Database> {
        let inner = dal_config::connect(config).await?;
        let pooler = config.behind_transaction_pooler().then(|| {
            Arc::new(Pooler::new(
                inner.get_postgres_connection_pool().clone(),
                config.statement_timeout,
            ))
        });
        let db = Database {
            inner,
            dialect: Dialect(config.backend()),
            statements: Arc::default(),
            read_only: matches!(
                config.target,
                dal_config::DatabaseTarget::Sqlite { mode, .. } if mode.is_read_only()
            ),
            pooler,
            migration_route: MigrationRoute::of(config),
        };
        if config.migrate_on_connect {
            db.migrate().await?;
        }
        Ok(db)
    }

    /// The backend behind this pool.
    pub fn backend(&self) -> Backend {
        self.dialect.0
    }

    /// Whether this pool reaches Postgres through a transaction-mode pooler
    /// ([`dal_config::PoolMode::Transaction`]): every statement then runs in a transaction.
    pub fn behind_transaction_pooler(&self) -> bool {
        self.pooler.is_some()
    }

    /// Where statements of the pool itself go: SeaORM's pool, or a transaction each
    /// behind a transaction-mode pooler. Not counted in `statements_executed`, and without
    /// the dialect's value mapping: for the crate's own catalog reads.
    pub(crate) fn route(&self) -> crate::executor::Route<'_> {
        match &self.pooler {
            Some(pooler) => crate::executor::Route::Pooler(pooler),
            None => crate::executor::Route::Pool(&self.inner),
        }
    }

    /// Applies every pending migration, all in one transaction, serialised against other
    /// processes migrating the same database at the same time (Postgres: an advisory lock;
    /// SQLite: the write lock of `BEGIN IMMEDIATE`). On a database opened read-only it is
    /// [`DalError::ReadOnly`], even with nothing pending, as on a read-only Postgres.
    pub async fn migrate(&self) -> Result<()> {
        if self.read_only {
            // SQLite would let a history with nothing pending pass without writing, while
            // Postgres refuses the migrator's first DDL in a read-only transaction.
            return Err(DalError::read_only(
                "the SQLite database is opened read-only (mode=ro or immutable=1); migrations write",
            ));
        }
        migration_history::locked::up(&self.inner, self.migration_route, None)
            .await
            .map_err(migration_error)
    }

    /// The schema version: the newest applied migration's name (`None` before the first
    /// migration). One indexed read, cheap enough to ask on every client handshake.
    /// Compare with [`Database::latest_schema_version`] to see whether this database is
    /// behind the library.
    pub async fn schema_version(&self) -> Result<Option<String>> {
        let row = self
            .route()
            .query_one_raw(sea_orm::Statement::from_string(
                self.inner.get_database_backend(),
                "SELECT version FROM seaql_migrations ORDER BY version DESC LIMIT 1",
            ))
            .await;
        match row {
            Ok(row) => Ok(row
                .map(|r| r.try_get::<String>("", "version"))
                .transpose()?),
            Err(e) => {
                // No history table yet: nothing is applied.
                match migration_history::has_table(&self.route(), "seaql_migrations").await {
                    Ok(false) => Ok(None),
                    _ => Err(e.into()),
                }
            }
        }
    }

    /// Whether the database has `table` (on Postgres, in the current schema): tools that
    /// look at a database that may not be migrated yet ask before reading it.
    pub async fn has_table(&self, table: &str) -> Result<bool> {
        Ok(migration_history::has_table(&self.route(), table).await?)
    }

    /// The newest migration this build of the library knows.
    pub fn latest_schema_version() -> &'static str {
        migration_history::sources()
            .last()
            .map(|(name, _)| *name)
            .expect("the history has a migration")
    }

    /// Names of the applied migrations, oldest first; the last one is the schema version.
    pub async fn applied_migrations(&self) -> Result<Vec<String>> {
        let applied = Migrator::get_applied_migrations(&self.route())
            .await
            .map_err(migration_error)?;
        Ok(applied.iter().map(|m| m.name().to_owned()).collect())
    }

    /// Starts a unit of work. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`),
    /// waiting up to the busy timeout for another writer, so it never fails halfway with
    /// SQLITE_BUSY. Dropping it without [`UnitOfWork::commit`] rolls back.
    pub async fn begin(&self) -> Result<UnitOfWork> {
        self.begin_unit(self.dialect.write_transaction()).await
    }

    pub(crate) async fn begin_unit(
        &self,
        options: sea_orm::TransactionOptions,
    ) -> Result<UnitOfWork> {
        let tx = match &self.pooler {
            Some(pooler) => Tx::Pooled(pooler.begin(options.isolation_level).await?),
            None => Tx::Orm(self.inner.begin_with_options(options).await?),
        };
        Ok(UnitOfWork {
            inner: tx,
            dialect: self.dialect,
            statements: self.statements.clone(),
            failure: Default::default(),
        })
    }

    /// How many statements this pool (and the units of work begun from it) has run through
    /// the data-access layer: a cheap counter for tests and diagnostics (an N+1 query shows
    /// up as a count that grows with N). Behind the `internals` feature: a test hook, not
    /// part of the stable API.
    #[cfg(feature = "internals")]
    pub fn statements_executed(&self) -> u64 {
        self.statements.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Starts a unit of work on behalf of `user`. On Postgres it runs as the
    /// `authenticated` role with `request.jwt.claims` set to the user, transaction-locally,
    /// so the row-level security policies (migration `m20250602_000001_row_level_security`)
    /// hide and refuse every row that is not the user's, whatever the code in it does. On
    /// SQLite, which has no row-level security, it is a plain unit of work: use
    /// `uow.for_user(user)` there (and on Postgres too, for `NotFound` instead of
    /// `PermissionDenied` on writes).
    pub async fn begin_as_user(&self, user: entities::Id) -> Result<UnitOfWork> {
        let uow = self.begin().await?;
        uow.act_as_user(user).await?;
        Ok(uow)
    }

    /// Runs `work` in a unit of work: commits if it returns `Ok`, rolls back if it returns
    /// `Err` (or panics, or the future is dropped).
    ///
    /// ```no_run
    /// use dal::prelude::*;
    /// # async fn run(db: &Database, user: Id) -> dal::Result<()> {
    /// let (project, shot) = db
    ///     .transaction(|uow| Box::pin(async move {
    ///         let project = uow.projects().create(NewProject::new(user, "Trailer")).await?;
    ///         let shot = uow.shots().create(NewShot::new(project.id, "Opening")).await?;
    ///         Ok((project, shot))
    ///     }))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T, F>(&self, work: F) -> Result<T>
    where
        T: Send,
        F: for<'u> FnOnce(&'u UnitOfWork) -> BoxFuture<'u, Result<T>> + Send,
    {
        let uow = self.begin().await?;
        let outcome = work(&uow).await;
        uow.finish(outcome).await
    }

    /// A pool is always usable; failures are per statement.
    pub(crate) fn usable(&self) -> std::result::Result<(), sea_orm::DbErr> {
        Ok(())
    }

    /// Statement results pass through unchanged on the pool.
    pub(crate) fn outcome<T>(
        &self,
        result: std::result::Result<T, sea_orm::DbErr>,
    ) -> std::result::Result<T, sea_orm::DbErr> {
        result
    }

    /// The Postgres pool and the statement that begins a transaction on it, when this is
    /// one (for `COPY`, which needs a connection of its own).
    pub(crate) fn copy_target(&self) -> Option<crate::executor::CopyTarget<'_>> {
        match (self.dialect.0, &self.pooler) {
            (Backend::Sqlite, _) => None,
            (Backend::Postgres, None) => Some(crate::executor::CopyTarget {
                pool: self.inner.get_postgres_connection_pool(),
                begin: None,
            }),
            (Backend::Postgres, Some(pooler)) => Some(crate::executor::CopyTarget {
                pool: pooler.pool(),
                begin: Some(pooler.begin_statement(None)),
            }),
        }
    }

    /// The SeaORM connection underneath. Statements run on it directly do **not** get the
    /// value mapping (on SQLite a `Uuid` would be stored as a BLOB); prefer `&Database`.
    /// Behind a transaction-mode pooler, SeaORM's statements outside a transaction may
    /// reach another server session between their two round trips: use `&Database`.
    /// Behind the `internals` feature: an escape hatch for this workspace's tools and
    /// benchmarks, not part of the stable API.
    #[cfg(feature = "internals")]
    pub fn sea_orm_connection(&self) -> &DatabaseConnection {
        &self.inner
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(self) -> Result<()> {
        self.inner.close().await?;
        Ok(())
    }
}

/// A boxed future borrowing a unit of work, as [`Database::transaction`] takes.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A transaction handing out the same repositories as [`Database`]. Everything done
/// through it commits together with [`UnitOfWork::commit`] or not at all; dropping it
/// rolls back.
#[derive(Debug)]
pub struct UnitOfWork {
    pub(crate) inner: Tx,
    pub(crate) dialect: Dialect,
    pub(crate) statements: Arc<AtomicU64>,
    /// The first statement failure, after which the unit can only roll back.
    pub(crate) failure: std::sync::Mutex<Option<String>>,
}

impl UnitOfWork {
    /// Where its statements run.
    pub(crate) fn tx(&self) -> &Tx {
        &self.inner
    }

    /// A unit of work has its connection; bulk paths use it rather than the pool.
    pub(crate) fn no_copy_target(&self) -> Option<crate::executor::CopyTarget<'_>> {
        None
    }

    /// Starts a nested unit of work (a savepoint): committing it keeps its changes in this
    /// one, rolling it back (or dropping it) undoes only its own changes.
    pub async fn begin(&self) -> Result<UnitOfWork> {
        self.usable()?;
        Ok(UnitOfWork {
            inner: self.inner.begin().await?,
            dialect: self.dialect,
            statements: self.statements.clone(),
            failure: Default::default(),
        })
    }

    /// Runs the rest of this transaction on behalf of `user`, as
    /// [`Database::begin_as_user`] does from its start: on Postgres the `authenticated`
    /// role under the row-level security policies, until [`UnitOfWork::act_as_session_user`].
    /// Transaction-local; in a nested unit of work that rolls back, it is undone with it.
    /// Nothing on SQLite. For a unit begun otherwise (with an isolation level of its own,
    /// say), settings the role may not change come first.
    pub async fn act_as_user(&self, user: entities::Id) -> Result<()> {
        for statement in self.dialect.act_as_user(user) {
            self.execute_raw(statement).await?;
        }
        Ok(())
    }

    /// Ends [`UnitOfWork::act_as_user`]: the rest of the transaction runs as the role the
    /// connection logged in as again (for the work a user must not do themselves).
    pub async fn act_as_session_user(&self) -> Result<()> {
        if let Some(statement) = self.dialect.act_as_session_user() {
            self.execute_raw(statement).await?;
        }
        Ok(())
    }

    /// Makes every change durable (for a nested unit of work: part of its parent).
    /// If a statement of this unit failed, rolls back instead and returns
    /// [`DalError::TransactionAborted`].
    pub async fn commit(self) -> Result<()> {
        let failure = self.failure.lock().map(|f| f.clone()).unwrap_or_default();
        if let Some(detail) = failure {
            let _ = self.inner.rollback().await;
            return Err(DalError::TransactionAborted { detail });
        }
        self.inner.commit().await?;
        Ok(())
    }

    /// Refuses to run anything once a statement of this unit has failed.
    pub(crate) fn usable(&self) -> std::result::Result<(), sea_orm::DbErr> {
        match self.failure.lock().ok().and_then(|f| f.clone()) {
            Some(detail) => Err(crate::error::AbortedUnit(detail).into_db_err()),
            None => Ok(()),
        }
    }

    /// Remembers the first failed statement.
    pub(crate) fn outcome<T>(
        &self,
        result: std::result::Result<T, sea_orm::DbErr>,
    ) -> std::result::Result<T, sea_orm::DbErr> {
        if let Err(e) = &result
            && let Ok(mut failure) = self.failure.lock()
        {
            failure.get_or_insert_with(|| DalError::from(e.clone()).to_string());
        }
        result
    }

    /// Marks the unit as failed, as a failed statement does: it can then only roll back.
    /// For a write that succeeded but returned a row the library cannot read, so that the
    /// write is never committed.
    pub(crate) fn abort(&self, cause: &DalError) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert_with(|| cause.to_string());
        }
    }

    /// Discards every change.
    pub async fn rollback(self) -> Result<()> {
        self.inner.rollback().await?;
        Ok(())
    }

    /// Commits if `outcome` is `Ok`, rolls back if not, and returns the outcome (or the
    /// commit's error).
    pub(crate) async fn finish<T>(self, outcome: Result<T>) -> Result<T> {
        match outcome {
            Ok(value) => {
                self.commit().await?;
                Ok(value)
            }
            Err(e) => {
                // The work's error is the one worth reporting; a failed rollback only
                // means the connection is gone, and the pool discards it.
                let _ = self.rollback().await;
                Err(e)
            }
        }
    }
}

/// The transaction under a unit of work: SeaORM's, or one made for a transaction-mode
/// pooler.
#[derive(Debug)]
pub(crate) enum Tx {
    Orm(DatabaseTransaction),
    Pooled(PooledTransaction),
}

impl Tx {
    async fn begin(&self) -> std::result::Result<Tx, sea_orm::DbErr> {
        Ok(match self {
            Tx::Orm(tx) => Tx::Orm(tx.begin().await?),
            Tx::Pooled(tx) => Tx::Pooled(tx.begin().await?),
        })
    }

    async fn commit(self) -> std::result::Result<(), sea_orm::DbErr> {
        match self {
            Tx::Orm(tx) => tx.commit().await,
            Tx::Pooled(tx) => tx.commit().await,
        }
    }

    async fn rollback(self) -> std::result::Result<(), sea_orm::DbErr> {
        match self {
            Tx::Orm(tx) => tx.rollback().await,
            Tx::Pooled(tx) => tx.rollback().await,
        }
    }
}

fn migration_error(e: sea_orm::DbErr) -> DalError {
    match DalError::from(e) {
        DalError::Database { detail, source } => DalError::Migration { detail, source },
        other => other,
    }
}
