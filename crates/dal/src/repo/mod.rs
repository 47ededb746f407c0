//! Repositories: one trait per aggregate, one implementation for both backends.
//!
//! Each repository borrows an [`Executor`](crate::Executor) (the pool or a unit of work),
//! so the same calls run on their own or inside a transaction. Ids (UUIDv7) and
//! timestamps (UTC, microseconds) are set here, never by the caller or the database.

mod generations;
mod page;
mod projects;
mod shots;
mod tasks;
mod users;

pub use generations::{GenerationRepository, Generations, NewGeneration};
pub use page::{Cursor, MAX_PAGE_SIZE, Page, PageRequest};
pub use projects::{NewProject, ProjectRepository, Projects};
pub use shots::{NewShot, ShotRepository, Shots, TimelineEntry};
pub use tasks::{NewTask, TaskFilter, TaskRepository, Tasks};
pub use users::{NewUser, UserRepository, Users};

use crate::{DalError, Result};

/// Refuses an empty or blank required text field, naming it.
pub(crate) fn require_text(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(DalError::invalid(format!("{field} must not be empty")));
    }
    Ok(())
}

/// `Some(row)` or a [`DalError::NotFound`] naming what was looked up.
pub(crate) fn found<T>(
    row: Option<T>,
    entity: &'static str,
    key: impl std::fmt::Display,
) -> Result<T> {
    row.ok_or_else(|| DalError::not_found(entity, key))
}

/// Maps "no row was updated" to [`DalError::NotFound`].
pub(crate) fn updated<T>(
    result: std::result::Result<T, sea_orm::DbErr>,
    entity: &'static str,
    key: impl std::fmt::Display,
) -> Result<T> {
    match result {
        Err(sea_orm::DbErr::RecordNotUpdated) => Err(DalError::not_found(entity, key)),
        other => Ok(other?),
    }
}

/// Maps "no row was deleted" to [`DalError::NotFound`].
pub(crate) fn deleted(
    rows_affected: u64,
    entity: &'static str,
    key: impl std::fmt::Display,
) -> Result<()> {
    if rows_affected == 0 {
        return Err(DalError::not_found(entity, key));
    }
    Ok(())
}
