//! Repositories: one trait per aggregate, one implementation for both backends.
//!
//! Each repository borrows an [`Executor`](crate::Executor) (the pool or a unit of work),
//! so the same calls run on their own or inside a transaction. Ids (UUIDv7) and
//! timestamps (UTC, microseconds) are set here, never by the caller or the database.

mod generations;
mod page;
mod projects;
mod scoped;
mod shots;
mod tasks;
mod users;

pub use generations::{GenerationRepository, Generations, NewGeneration};
pub use page::{Cursor, MAX_PAGE_SIZE, Page, PageRequest};
pub use projects::{NewProject, ProjectRepository, Projects};
pub use scoped::{ScopedGenerations, ScopedProjects, ScopedShots, ScopedTasks, UserScope};
pub use shots::{NewShot, ShotRepository, Shots, TimelineEntry};
pub use tasks::{NewTask, TaskFilter, TaskRepository, Tasks};
pub use users::{MAX_EMAIL_BYTES, NewUser, UserRepository, Users};

use crate::{DalError, Result};

/// Inserts `model` as it is and returns it. No `RETURNING`: every value was made here and
/// is stored exactly (timestamps are already truncated, ids canonical), so reading the
/// row back would only cost a decode.
pub(crate) async fn insert_model<E, M, A>(exec: &E, model: M) -> Result<M>
where
    E: crate::Executor,
    M: sea_orm::IntoActiveModel<A> + Clone,
    A: sea_orm::ActiveModelTrait + Send,
{
    let row = model.clone().into_active_model().reset_all();
    <A::Entity as sea_orm::EntityTrait>::insert(row)
        .exec_without_returning(exec)
        .await?;
    Ok(model)
}

/// Rows of `T` that are not tombstoned (`deleted = false`). Every read of the
/// repositories includes it; deletes set the flag rather than remove the row, so the
/// deletion can travel to other replicas (see the sync migration).
pub(crate) fn live<T: sea_orm::EntityTrait>() -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::{Alias, Expr, ExprTrait};
    Expr::col((T::default(), Alias::new("deleted"))).eq(false)
}

/// Tombstones the live rows of `T` matching `condition`; returns how many.
pub(crate) async fn tombstone<E, T>(exec: &E, condition: sea_orm::Condition) -> Result<u64>
where
    E: crate::Executor,
    T: sea_orm::EntityTrait,
{
    use sea_orm::QueryFilter;
    use sea_orm::sea_query::{Alias, Expr};
    Ok(T::update_many()
        .col_expr(Alias::new("deleted"), Expr::value(true))
        .filter(condition)
        .filter(live::<T>())
        .exec(exec)
        .await?
        .rows_affected)
}

/// Writes `row` (every column set) over the live row with its key; `NotFound` when there
/// is none (never written, or tombstoned).
pub(crate) async fn update_live<E, A>(
    exec: &E,
    row: A,
    entity: &'static str,
    key: entities::Id,
) -> Result<<A::Entity as sea_orm::EntityTrait>::Model>
where
    E: crate::Executor,
    A: sea_orm::ActiveModelTrait + Send,
    <A::Entity as sea_orm::EntityTrait>::Model: sea_orm::IntoActiveModel<A>,
{
    use sea_orm::QueryFilter;
    let update = <A::Entity as sea_orm::EntityTrait>::update(row)
        .validate()?
        .filter(live::<A::Entity>());
    updated(update.exec(exec).await, entity, key)
}

/// The row of `T` with primary key `id`. The statement text is built once per table and
/// backend and reused: a point read is the hottest path, and rebuilding the same SQL on
/// every call costs more than the lookup.
pub(crate) async fn find_by_id<E, T>(exec: &E, id: entities::Id) -> Result<Option<T::Model>>
where
    E: crate::Executor,
    T: sea_orm::EntityTrait,
    T::Model: sea_orm::FromQueryResult,
    <T::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType: From<entities::Id>,
{
    use std::collections::HashMap;
    use std::sync::{OnceLock, RwLock};

    use sea_orm::{FromQueryResult, QueryTrait};

    type Key = (&'static str, crate::Backend);
    static SQL: OnceLock<RwLock<HashMap<Key, std::sync::Arc<str>>>> = OnceLock::new();
    let cache = SQL.get_or_init(Default::default);
    let table = T::default().table_name();
    let key = (table, exec.backend());
    let cached = cache.read().ok().and_then(|c| c.get(&key).cloned());
    let sql = match cached {
        Some(sql) => sql,
        None => {
            let sql: std::sync::Arc<str> =
                sea_orm::QueryFilter::filter(T::find_by_id(id), live::<T>())
                    .build(exec.get_database_backend())
                    .sql
                    .into();
            if let Ok(mut c) = cache.write() {
                c.insert(key, sql.clone());
            }
            sql
        }
    };
    let stmt = sea_orm::Statement::from_sql_and_values(
        exec.get_database_backend(),
        sql.as_ref(),
        [
            sea_orm::Value::Uuid(Some(id.uuid())),
            sea_orm::Value::Bool(Some(false)),
        ],
    );
    match exec.query_one_raw(stmt).await? {
        Some(row) => Ok(Some(T::Model::from_query_result(&row, "")?)),
        None => Ok(None),
    }
}

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
