//! The schema registry ([`entities::schema`]) with the library's per-table operations:
//! what the sync engine calls for a table it knows only by its registry entry.
//!
//! Each entity implements [`RowOperations`]; the list of tables is the registry's own
//! ([`entities::for_each_table!`]), so a new entity without an implementation here does
//! not compile, and nothing dispatches on a table's name.
//!
//! Behind the `internals` feature (the sync engine's), not part of the stable API.

use std::sync::LazyLock;

use entities::schema::{self, Table};
use entities::{generation, project, shot, shot_generation, task, user};
use sea_orm::{EntityName, EntityTrait};

use crate::repo::{
    GenerationRepository, ProjectRepository, ShotRepository, TaskRepository, UserRepository,
};
use crate::{BoxFuture, Executor, Result, UnitOfWork};
use entities::Id;

/// A per-table operation on a row (or group of rows) named by id.
pub type RowOperation = for<'a> fn(&'a UnitOfWork, Id) -> BoxFuture<'a, Result<()>>;

/// Rows kept in a dense order within a group (timeline entries within their shot).
#[derive(Clone, Copy, Debug)]
pub struct Positions {
    /// The column naming the group (`shot_id`).
    pub group: &'static str,
    /// Closes gaps and ties in one group's positions, keeping their order.
    pub renumber: RowOperation,
}

/// One table of the registry with what the library does with its rows.
#[derive(Clone, Copy, Debug)]
pub struct TableOperations {
    /// The registry entry.
    pub table: &'static Table,
    /// Deletes (tombstones) a live row as its repository does, cascading to the rows that
    /// hang off it; `NotFound` when there is no live row.
    pub delete: RowOperation,
    /// Set when the rows are ordered within a group that must be renumbered after
    /// writes that set positions directly (sync merging two clients' timelines).
    pub positions: Option<Positions>,
}

/// The library's operations on the rows of one entity.
pub trait RowOperations: EntityTrait {
    /// See [`TableOperations::delete`].
    fn delete(uow: &UnitOfWork, id: Id) -> BoxFuture<'_, Result<()>>;

    /// See [`TableOperations::positions`].
    const POSITIONS: Option<Positions> = None;
}

impl RowOperations for user::Entity {
    fn delete(uow: &UnitOfWork, id: Id) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { uow.users().delete(id).await })
    }
}

impl RowOperations for project::Entity {
    fn delete(uow: &UnitOfWork, id: Id) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { uow.projects().delete(id).await })
    }
}

impl RowOperations for task::Entity {
    fn delete(uow: &UnitOfWork, id: Id) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { uow.tasks().delete(id).await })
    }
}

impl RowOperations for generation::Entity {
    fn delete(uow: &UnitOfWork, id: Id) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { uow.generations().delete(id).await })
    }
}

impl RowOperations for shot::Entity {
    fn delete(uow: &UnitOfWork, id: Id) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { uow.shots().delete(id).await })
    }
}

impl RowOperations for shot_generation::Entity {
    fn delete(uow: &UnitOfWork, id: Id) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { uow.shots().remove_from_timeline(id).await })
    }

    const POSITIONS: Option<Positions> = Some(Positions {
        group: "shot_id",
        renumber: |uow, shot| Box::pin(async move { uow.shots().renumber_timeline(shot).await }),
    });
}

macro_rules! operations_of {
    ($($entity:ty),+ $(,)?) => {
        vec![$(
            TableOperations {
                table: schema::table(<$entity>::default().table_name())
                    .expect("the registry lists every entity"),
                delete: <$entity as RowOperations>::delete,
                positions: <$entity as RowOperations>::POSITIONS,
            }
        ),+]
    };
}

static OPERATIONS: LazyLock<Vec<TableOperations>> =
    LazyLock::new(|| entities::for_each_table!(operations_of));

/// Every table with its operations, parents before children.
pub fn all() -> &'static [TableOperations] {
    &OPERATIONS
}

/// The table called `name` with its operations, if the schema has one.
pub fn named(name: &str) -> Option<&'static TableOperations> {
    all().iter().find(|t| t.table.name == name)
}
