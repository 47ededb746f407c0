//! [`Executor`]: where statements run, a pool ([`Database`]) or a transaction
//! ([`UnitOfWork`]), with the dialect's value mapping applied to every statement.

use async_trait::async_trait;
use dal_config::Backend;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, Statement};

use crate::dialect::values;
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
/// use sea_orm::EntityTrait;
/// # async fn run(db: &Database) -> dal::Result<()> {
/// let users = dal::entities::user::Entity::find().all(db).await?; // on the pool
/// let uow = db.begin().await?;
/// let same = dal::entities::user::Entity::find().all(&uow).await?; // in a transaction
/// uow.commit().await?;
/// # Ok(()) }
/// ```
pub trait Executor: ConnectionTrait + Send + Sync + sealed::Sealed {
    /// The backend statements run on.
    fn backend(&self) -> Backend;
}

/// Implements [`ConnectionTrait`] for a wrapper whose `inner` field is a SeaORM connection,
/// passing every statement through the dialect's value mapping first.
macro_rules! adapted_connection {
    ($wrapper:ty) => {
        #[async_trait]
        impl ConnectionTrait for $wrapper {
            fn get_database_backend(&self) -> DbBackend {
                self.inner.get_database_backend()
            }

            async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
                let stmt = values::prepare(self.dialect.0, stmt)?;
                self.inner.execute_raw(stmt).await
            }

            async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
                self.inner.execute_unprepared(sql).await
            }

            async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
                let stmt = values::prepare(self.dialect.0, stmt)?;
                self.inner.query_one_raw(stmt).await
            }

            async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
                let stmt = values::prepare(self.dialect.0, stmt)?;
                self.inner.query_all_raw(stmt).await
            }
        }

        impl Executor for $wrapper {
            fn backend(&self) -> Backend {
                self.dialect.0
            }
        }
    };
}

adapted_connection!(Database);
adapted_connection!(UnitOfWork);
