//! The data-access layer: repositories that behave the same over SQLite and Postgres.
//!
//! An application links this crate, builds a [`Database`] from the environment
//! (`APP_ENV=local`: SQLite at `./local.db`; `APP_ENV=web`: Postgres at `DATABASE_URL`) and
//! never asks which backend is behind it. One set of entities (`entities`) and one
//! migration history (`migration-history`) define the schema on both; the differences between the
//! two SQL dialects live in one private module, and every fault comes back as the same
//! [`DalError`] variant on both backends.
//!
//! ```no_run
//! use dal::prelude::*;
//! use serde_json::json;
//!
//! # async fn run() -> dal::Result<()> {
//! let db = Database::from_env().await?;
//! db.migrate().await?;
//! let user = db.users().create(NewUser::default()).await?;
//! let project = db.projects().create(NewProject::new(user.id, "Trailer")).await?;
//! let render = db.tasks().create(NewTask::queued(project.id, "render", json!({"frames": 240}))).await?;
//! db.tasks().create(NewTask::queued(project.id, "encode", json!({})).dependant_on([render.id])).await?;
//!
//! // A worker: claim the oldest ready task of a type, atomically, then finish it.
//! if let Some(task) = db.tasks().claim("render").await? {
//!     db.tasks().set_status(task.id, TaskStatus::Complete).await?;
//! }
//! match db.projects().get(Id::new()).await {
//!     Err(DalError::NotFound { .. }) => {} // the same variant on SQLite and Postgres
//!     other => panic!("{other:?}"),
//! }
//! # Ok(()) }
//! ```

pub mod bulk;
pub mod clock;
mod database;
mod decode;
mod dialect;
mod error;
mod executor;
mod pooler;
pub mod repo;
mod retry;
#[cfg(feature = "internals")]
pub mod tables;

pub use dal_config::{AppEnv, Backend, Config, ConfigError, PoolMode, SqliteMode};
pub use database::{BoxFuture, Database, UnitOfWork};
pub use error::{DalError, DriverError, ErrorKind, Result, SyncRefusal, TimeoutKind};
pub use executor::Executor;
pub use retry::{Isolation, RetryPolicy};

/// The schema's entities and column types, re-exported.
pub use entities;

/// SeaORM, at the version this crate uses: an [`Executor`] is a SeaORM
/// `ConnectionTrait`, so SeaORM queries built from the entities run on it (with the
/// value mapping) without a direct `sea-orm` dependency pinned to the same version.
pub use sea_orm;

/// Raw SQL with the library's value mapping and errors: [`Executor::execute_sql`] and
/// [`Executor::query_sql`], and the types they take and return.
pub mod sql {
    pub use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};
}

/// Everything an application service usually needs: `use dal::prelude::*;`.
pub mod prelude {
    pub use crate::repo::{
        Claim, Cursor, GenerationPatch, GenerationRepository, MAX_PAGE_SIZE, NewGeneration,
        NewProject, NewShot, NewTask, NewUser, Page, PageRequest, ProjectPatch, ProjectRepository,
        ShotPatch, ShotRepository, TaskFilter, TaskPatch, TaskRepository, TimelineEntry, UserPatch,
        UserRepository,
    };
    pub use crate::{
        Backend, Config, DalError, Database, Executor, Isolation, RetryPolicy, UnitOfWork,
    };
    pub use entities::{Id, IdList, TaskStatus};

    /// A row of `users`.
    pub type User = entities::user::Model;
    /// A row of `projects`.
    pub type Project = entities::project::Model;
    /// A row of `tasks`.
    pub type Task = entities::task::Model;
    /// A row of `generations`.
    pub type Generation = entities::generation::Model;
    /// A row of `shots`.
    pub type Shot = entities::shot::Model;
    /// A row of `shot_generations`: one place in a shot's timeline.
    pub type TimelineLink = entities::shot_generation::Model;
}
