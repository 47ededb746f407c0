//! [`Executor`]: where statements run, a pool ([`Database`]) or a transaction
//! ([`UnitOfWork`]), with the dialect's value mapping applied to every statement.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use dal_config::Backend;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, Statement};

use crate::Result;
use crate::database::Tx;
use crate::dialect::{Dialect, values};
use crate::pooler::Pooler;
use crate::repo::{Generations, Projects, Shots, Tasks, UserScope, Users};
use crate::{Database, UnitOfWork};

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::Database {}
    impl Sealed for crate::UnitOfWork {}
}

/// Something repositories can run on: the pool or a unit of work. Both hand out the same
/// repositories, so code written against a repository runs unchanged inside a transaction.
///
/// It is also a SeaORM [`ConnectionTrait`], so SeaORM queries built from the `entities`
/// run on it too, with uuids, uuid lists, JSON and timestamps stored as the schema expects
/// on either backend. The trait is sealed: a plain `sea_orm::DatabaseConnection` on SQLite
/// would store uuids as BLOBs, so it cannot be passed where an `Executor` is expected.
///
/// ```no_run
/// use dal::prelude::*;
/// # async fn run(db: &Database) -> dal::Result<()> {
/// let user = db.users().create(NewUser::default()).await?; // on the pool
/// let uow = db.begin().await?;
/// uow.projects().create(NewProject::new(user.id, "Film")).await?; // in a transaction
/// uow.commit().await?;
///
/// // Service code can take either.
/// async fn rename<E: Executor>(exec: &E, id: Id, name: &str) -> dal::Result<()> {
///     let mut project = exec.projects().get(id).await?;
///     project.name = name.to_owned();
///     exec.projects().update(project).await?;
///     Ok(())
/// }
/// # Ok(()) }
/// ```
#[async_trait]
pub trait Executor: ConnectionTrait + Send + Sync + sealed::Sealed {
    /// The backend statements run on.
    fn backend(&self) -> Backend;

    /// Starts a unit of work here: a transaction on the pool (`BEGIN IMMEDIATE` on
    /// SQLite), or a savepoint inside a unit of work. Repositories use it for operations
    /// of several statements, so they are atomic wherever they are called from.
    async fn begin(&self) -> Result<UnitOfWork>;

    /// The Postgres pool behind a [`Database`], for paths that need a connection of their
    /// own (bulk `COPY`); `None` inside a unit of work and on SQLite.
    #[doc(hidden)]
    fn copy_target(&self) -> Option<CopyTarget<'_>> {
        None
    }

    /// The unit of work this is, when it is one (`None` for the pool): repositories run a
    /// write that returns rows directly in it, and in a transaction of their own on the pool.
    #[doc(hidden)]
    fn unit(&self) -> Option<&UnitOfWork> {
        None
    }

    /// Users.
    fn users(&self) -> Users<'_, Self>
    where
        Self: Sized,
    {
        Users::new(self)
    }

    /// Projects.
    fn projects(&self) -> Projects<'_, Self>
    where
        Self: Sized,
    {
        Projects::new(self)
    }

    /// Tasks.
    fn tasks(&self) -> Tasks<'_, Self>
    where
        Self: Sized,
    {
        Tasks::new(self)
    }

    /// Generations.
    fn generations(&self) -> Generations<'_, Self>
    where
        Self: Sized,
    {
        Generations::new(self)
    }

    /// Shots and their timelines.
    fn shots(&self) -> Shots<'_, Self>
    where
        Self: Sized,
    {
        Shots::new(self)
    }

    /// Runs one SQL statement with `values` bound, through the library's value mapping
    /// (uuids, uuid lists, JSON and timestamps stored as the schema expects on this
    /// backend) and its error mapping; returns the rows affected. Placeholders are the
    /// backend's own (`$1` on Postgres, `?` on SQLite; [`Executor::backend`] says which).
    ///
    /// ```no_run
    /// use dal::prelude::*;
    /// use dal::sql::Value;
    /// # async fn run(db: &Database, project: Id) -> dal::Result<()> {
    /// let sql = match db.backend() {
    ///     Backend::Postgres => "UPDATE tasks SET output_location = NULL WHERE project_id = $1",
    ///     Backend::Sqlite => "UPDATE tasks SET output_location = NULL WHERE project_id = ?",
    /// };
    /// let cleared = db.execute_sql(sql, vec![Value::from(project)]).await?;
    /// # let _ = cleared; Ok(()) }
    /// ```
    async fn execute_sql(&self, sql: &str, values: Vec<sea_orm::Value>) -> Result<u64> {
        let stmt = Statement::from_sql_and_values(self.get_database_backend(), sql, values);
        Ok(self.execute_raw(stmt).await?.rows_affected())
    }

    /// Runs one query like [`Executor::execute_sql`] and returns its rows; read columns
    /// with [`QueryResult::try_get`](sea_orm::QueryResult::try_get).
    ///
    /// An `UPDATE ... RETURNING` should set `row_version = row_version + 1` itself: on
    /// SQLite the trigger that bumps it otherwise runs after the statement, so `RETURNING`
    /// would show the old version (Postgres's trigger runs before).
    async fn query_sql(&self, sql: &str, values: Vec<sea_orm::Value>) -> Result<Vec<QueryResult>> {
        let stmt = Statement::from_sql_and_values(self.get_database_backend(), sql, values);
        Ok(self.query_all_raw(stmt).await?)
    }

    /// The repositories as `user` may use them: only their projects and what is under
    /// them; anything else is `NotFound`.
    fn for_user(&self, user: entities::Id) -> UserScope<'_, Self>
    where
        Self: Sized,
    {
        UserScope::new(self, user)
    }
}

/// Where a `COPY` goes: the pool, and the statement that begins its transaction (`None`:
/// a plain `BEGIN`).
#[doc(hidden)]
#[derive(Debug)]
pub struct CopyTarget<'a> {
    pub(crate) pool: &'a sqlx::PgPool,
    pub(crate) begin: Option<String>,
}

/// Where a statement of the pool goes: SeaORM's pool (a session per connection), or a
/// transaction of its own behind a transaction-mode pooler.
#[derive(Clone, Copy)]
pub(crate) enum Route<'a> {
    Pool(&'a sea_orm::DatabaseConnection),
    Pooler(&'a Pooler),
}

/// Inherent methods, so the hot path adds no boxed future of its own; the
/// [`ConnectionTrait`] impl below lends them to the migrator's catalog reads.
macro_rules! dispatch {
    ($($enum:ident :: $variant:ident),+) => {
        pub(crate) async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
            match self { $($enum::$variant(c) => c.execute_raw(stmt).await),+ }
        }

        pub(crate) async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
            match self { $($enum::$variant(c) => c.execute_unprepared(sql).await),+ }
        }

        pub(crate) async fn query_one_raw(
            &self,
            stmt: Statement,
        ) -> Result<Option<QueryResult>, DbErr> {
            match self { $($enum::$variant(c) => c.query_one_raw(stmt).await),+ }
        }

        pub(crate) async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
            match self { $($enum::$variant(c) => c.query_all_raw(stmt).await),+ }
        }
    };
}

impl Route<'_> {
    dispatch!(Route::Pool, Route::Pooler);
}

impl Tx {
    dispatch!(Tx::Orm, Tx::Pooled);
}

#[async_trait]
impl ConnectionTrait for Route<'_> {
    fn get_database_backend(&self) -> DbBackend {
        match self {
            Route::Pool(c) => c.get_database_backend(),
            Route::Pooler(c) => c.get_database_backend(),
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        Route::execute_raw(self, stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        Route::execute_unprepared(self, sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        Route::query_one_raw(self, stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        Route::query_all_raw(self, stmt).await
    }
}

/// Implements [`ConnectionTrait`] for a wrapper whose `$target()` is where its statements
/// run, passing every statement through the dialect's value mapping first.
macro_rules! adapted_connection {
    ($wrapper:ty, $target:ident, $copy_target:expr, $unit:expr) => {
        #[async_trait]
        impl ConnectionTrait for $wrapper {
            fn get_database_backend(&self) -> DbBackend {
                match self.dialect.0 {
                    Backend::Postgres => DbBackend::Postgres,
                    Backend::Sqlite => DbBackend::Sqlite,
                }
            }

            async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
                self.statements.fetch_add(1, Ordering::Relaxed);
                self.usable()?;
                let stmt = self.outcome(values::prepare(self.dialect.0, stmt))?;
                let result = self.$target().execute_raw(stmt).await;
                self.outcome(result)
            }

            async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
                self.statements.fetch_add(1, Ordering::Relaxed);
                self.usable()?;
                let result = self.$target().execute_unprepared(sql).await;
                self.outcome(result)
            }

            async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
                self.statements.fetch_add(1, Ordering::Relaxed);
                self.usable()?;
                let stmt = self.outcome(values::prepare(self.dialect.0, stmt))?;
                let result = self.$target().query_one_raw(stmt).await;
                self.outcome(result)
            }

            async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
                self.statements.fetch_add(1, Ordering::Relaxed);
                self.usable()?;
                let stmt = self.outcome(values::prepare(self.dialect.0, stmt))?;
                let result = self.$target().query_all_raw(stmt).await;
                self.outcome(result)
            }
        }

        #[async_trait]
        impl Executor for $wrapper {
            fn backend(&self) -> Backend {
                self.dialect.0
            }

            async fn begin(&self) -> Result<UnitOfWork> {
                <$wrapper>::begin(self).await
            }

            fn copy_target(&self) -> Option<CopyTarget<'_>> {
                ($copy_target)(self)
            }

            fn unit(&self) -> Option<&UnitOfWork> {
                ($unit)(self)
            }
        }
    };
}

adapted_connection!(Database, route, Database::copy_target, |_| None);
adapted_connection!(UnitOfWork, tx, UnitOfWork::no_copy_target, Some);

/// The dialect of an executor, for the crate's own SQL.
pub(crate) fn dialect_of<E: Executor>(exec: &E) -> Dialect {
    Dialect(exec.backend())
}
