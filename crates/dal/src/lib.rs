//! The data-access layer: repositories that behave the same over SQLite and Postgres.
//!
//! An application links this crate, builds a [`Database`] from the environment
//! (`APP_ENV=local`: SQLite at `./local.db`; `APP_ENV=web`: Postgres at `DATABASE_URL`) and
//! never asks which backend is behind it. One set of entities (`entities`) and one
//! migration history (`migration`) define the schema on both; the differences between the
//! two SQL dialects live in one private module, and every fault comes back as the same
//! [`DalError`] variant on both backends.

mod database;
mod dialect;
mod error;
mod executor;

pub use dal_config::{AppEnv, Backend, Config, ConfigError};
pub use database::{BoxFuture, Database, UnitOfWork};
pub use error::{DalError, Result, TimeoutKind};
pub use executor::Executor;

/// The schema's entities and column types, re-exported.
pub use entities;

/// Everything an application service usually needs: `use dal::prelude::*;`.
pub mod prelude {
    pub use crate::{Backend, Config, DalError, Database, Executor, UnitOfWork};
    pub use entities::{Id, IdList, TaskStatus};
}
