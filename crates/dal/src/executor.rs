//! [`Executor`]: where statements run, a pool ([`Database`]) or a transaction
//! ([`UnitOfWork`]), with the dialect's value mapping applied to every statement.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use dal_config::Backend;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, Statement};

use crate::Result;
use crate::dialect::{Dialect, values};
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
    fn copy_pool(&self) -> Option<&sqlx::PgPool> {
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

    /// The repositories as `user` may use them: only their projects and what is under
    /// them; anything else is `NotFound`.
    fn for_user(&self, user: entities::Id) -> UserScope<'_, Self>
    where
        Self: Sized,
    {
        UserScope::new(self, user)
    }
}

/// Implements [`ConnectionTrait`] for a wrapper whose `inner` field is a SeaORM connection,
/// passing every statement through the dialect's value mapping first.
macro_rules! adapted_connection {
    ($wrapper:ty, $copy_pool:expr, $unit:expr) => {
        #[async_trait]
        impl ConnectionTrait for $wrapper {
            fn get_database_backend(&self) -> DbBackend {
                self.inner.get_database_backend()
            }

            async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
                self.statements.fetch_add(1, Ordering::Relaxed);
                self.usable()?;
                let stmt = self.outcome(values::prepare(self.dialect.0, stmt))?;
                let result = self.inner.execute_raw(stmt).await;
                self.outcome(result)
            }

            async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
                self.statements.fetch_add(1, Ordering::Relaxed);
                self.usable()?;
                let result = self.inner.execute_unprepared(sql).await;
                self.outcome(result)
            }

            async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
                self.statements.fetch_add(1, Ordering::Relaxed);
                self.usable()?;
                let stmt = self.outcome(values::prepare(self.dialect.0, stmt))?;
                let result = self.inner.query_one_raw(stmt).await;
                self.outcome(result)
            }

            async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
                self.statements.fetch_add(1, Ordering::Relaxed);
                self.usable()?;
                let stmt = self.outcome(values::prepare(self.dialect.0, stmt))?;
                let result = self.inner.query_all_raw(stmt).await;
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

            fn copy_pool(&self) -> Option<&sqlx::PgPool> {
                ($copy_pool)(self)
            }

            fn unit(&self) -> Option<&UnitOfWork> {
                ($unit)(self)
            }
        }
    };
}

adapted_connection!(Database, Database::pg_pool, |_| None);
adapted_connection!(UnitOfWork, UnitOfWork::no_pool, Some);

/// The dialect of an executor, for the crate's own SQL.
pub(crate) fn dialect_of<E: Executor>(exec: &E) -> Dialect {
    Dialect(exec.backend())
}
