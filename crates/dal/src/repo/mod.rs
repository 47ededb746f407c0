//! Repositories: one trait per aggregate, one implementation for both backends.
//!
//! Each repository borrows an [`Executor`] (the pool or a unit of work),
//! so the same calls run on their own or inside a transaction. Ids (UUIDv7) and
//! timestamps (UTC, microseconds) are set here, never by the caller or the database.

mod claim;
mod generations;
mod lease;
mod page;
mod patch;
mod projects;
mod scoped;
mod shots;
mod task_lists;
mod tasks;
mod users;

pub use claim::Claim;
pub use generations::{GenerationRepository, Generations, NewGeneration};
pub use lease::{DEFAULT_LEASE, DEFAULT_MAX_ATTEMPTS, default_worker};
pub use page::{Cursor, MAX_PAGE_SIZE, Page, PageRequest};
pub use patch::{GenerationPatch, ProjectPatch, ShotPatch, TaskPatch, UserPatch};
pub use projects::{NewProject, ProjectRepository, Projects};
pub use scoped::{ScopedGenerations, ScopedProjects, ScopedShots, ScopedTasks, UserScope};
pub use shots::{NewShot, ShotRepository, Shots, TimelineEntry};
pub use tasks::{MAX_TASK_TYPE_BYTES, NewTask, TaskFilter, TaskRepository, Tasks};
pub use users::{MAX_EMAIL_BYTES, NewUser, UserRepository, Users};

use sea_orm::sea_query::{Query, UpdateStatement};
use sea_orm::{ConnectionTrait, EntityTrait, Iterable, QueryTrait, Select, Statement};

use crate::decode::{FromRow, Raw};
use crate::{BoxFuture, DalError, Executor, Result, UnitOfWork};

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
        .await
        .map_err(|e| {
            DalError::from(e).in_table(sea_orm::EntityName::table_name(&A::Entity::default()))
        })?;
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
        .bump_version()
        .filter(condition)
        .filter(live::<T>())
        .exec(exec)
        .await?
        .rows_affected)
}

/// The column holding each row's version (optimistic concurrency; see the
/// `row_versions` migration).
pub(crate) const ROW_VERSION: &str = "row_version";

/// `row_version = row_version + 1`, for every update the library makes. The triggers
/// would bump it too, but on SQLite only after the statement, so `RETURNING` would show
/// the old version; setting it here keeps the returned row exact on both backends.
pub(crate) fn next_version() -> (sea_orm::sea_query::Alias, sea_orm::sea_query::SimpleExpr) {
    use sea_orm::sea_query::{Alias, Expr, ExprTrait};
    (
        Alias::new(ROW_VERSION),
        Expr::col(Alias::new(ROW_VERSION)).add(1),
    )
}

/// Sets the next version in an update (see [`next_version`]).
pub(crate) trait BumpVersion {
    /// The same update, also setting `row_version = row_version + 1`.
    fn bump_version(self) -> Self;
}

impl<T: EntityTrait> BumpVersion for sea_orm::UpdateMany<T> {
    fn bump_version(self) -> Self {
        let (column, next) = next_version();
        self.col_expr(column, next)
    }
}

/// The version a full update based on `expected` (the caller's, so any `i64`) writes.
/// Saturating: a row at the largest version cannot move on, and the database refuses the
/// write (its trigger's bump overflows) rather than the version wrapping round to
/// `i64::MIN`; a made-up `i64::MAX` matches no row and is `Stale`.
pub(crate) fn version_after(expected: i64) -> i64 {
    expected.saturating_add(1)
}

/// Writes `row` (every column set, `row_version` set to [`version_after`]`(expected)`) over the live row
/// with its key, if the row is still at version `expected`, and returns the row as stored;
/// [`DalError::Stale`] when it has moved on, `NotFound` when there is none (never written,
/// or tombstoned).
pub(crate) async fn update_live<E, A>(
    exec: &E,
    row: A,
    entity: &'static str,
    key: entities::Id,
    expected: i64,
) -> Result<<A::Entity as EntityTrait>::Model>
where
    E: Executor,
    A: sea_orm::ActiveModelTrait + Send,
    <A::Entity as EntityTrait>::Model: sea_orm::IntoActiveModel<A> + FromRow,
{
    use sea_orm::QueryFilter;
    use sea_orm::sea_query::{Alias, Expr, ExprTrait};
    let update = <A::Entity as EntityTrait>::update(row)
        .validate()?
        .filter(live::<A::Entity>())
        .filter(Expr::col(Alias::new(ROW_VERSION)).eq(expected))
        .into_query();
    write_one::<_, A::Entity>(exec, update, entity, key, Some(expected)).await
}

/// Runs `update`, which writes at most the one row `id`, and returns that row as stored.
/// When it wrote nothing: [`DalError::Stale`] if the live row exists at another version
/// than `expected`, else `NotFound`.
pub(crate) async fn write_one<E, T>(
    exec: &E,
    update: UpdateStatement,
    entity: &'static str,
    id: entities::Id,
    expected: Option<i64>,
) -> Result<T::Model>
where
    E: Executor,
    T: EntityTrait,
    T::Model: FromRow,
{
    let mut rows = update_returning::<_, T>(exec, update).await?;
    match rows.pop() {
        Some(row) => Ok(row),
        None => Err(missing_or_stale::<_, T>(exec, entity, id, expected).await?),
    }
}

/// Why an update of row `id` that expected version `expected` wrote nothing.
pub(crate) async fn missing_or_stale<E, T>(
    exec: &E,
    entity: &'static str,
    id: entities::Id,
    expected: Option<i64>,
) -> Result<DalError>
where
    E: Executor,
    T: EntityTrait,
{
    use sea_orm::sea_query::{Alias, Expr, ExprTrait};
    use sea_orm::{QueryFilter, QuerySelect};
    if let Some(expected) = expected {
        let actual: Option<i64> = T::find()
            .select_only()
            .expr(Expr::col((T::default(), Alias::new(ROW_VERSION))))
            .filter(Expr::col((T::default(), Alias::new("id"))).eq(id))
            .filter(live::<T>())
            .into_tuple()
            .one(exec)
            .await?;
        if let Some(actual) = actual
            && actual != expected
        {
            return Ok(DalError::Stale {
                entity,
                id,
                expected,
                actual,
            });
        }
    }
    Ok(DalError::not_found(entity, id))
}

/// Runs `update` (an UPDATE of `T`) returning every column of the rows it wrote, and reads
/// them before the write can commit: on the pool in a transaction of its own, committed
/// only if every row reads; inside a unit of work directly, where a row that cannot be
/// read aborts the unit (so its commit rolls back). Either the write is kept and its rows
/// returned, or an error is returned and nothing is kept.
pub(crate) async fn update_returning<E, T>(
    exec: &E,
    mut update: UpdateStatement,
) -> Result<Vec<T::Model>>
where
    E: Executor,
    T: EntityTrait,
    T::Model: FromRow,
{
    update.returning(Query::returning().columns(T::Column::iter()));
    let stmt = exec.get_database_backend().build(&update);
    atomically(exec, move |uow| {
        Box::pin(async move {
            let rows = uow
                .query_all_raw(stmt)
                .await
                .map_err(|e| DalError::from(e).in_table(T::default().table_name()))?;
            read_rows(&rows).inspect_err(|e| uow.abort(e))
        })
    })
    .await
}

/// Runs `work` in a unit of work: `exec` itself when it is one, or else a new one that
/// commits if `work` returns `Ok` and rolls back if not.
pub(crate) async fn atomically<E, T, F>(exec: &E, work: F) -> Result<T>
where
    E: Executor,
    T: Send,
    F: for<'u> FnOnce(&'u UnitOfWork) -> BoxFuture<'u, Result<T>> + Send,
{
    match exec.unit() {
        Some(uow) => work(uow).await,
        None => {
            let uow = exec.begin().await?;
            let outcome = work(&uow).await;
            uow.finish(outcome).await
        }
    }
}

/// Reads every row as an `M`.
pub(crate) fn read_rows<M: FromRow>(rows: &[sea_orm::QueryResult]) -> Result<Vec<M>> {
    rows.iter()
        .map(|row| M::from_row(Raw::of(row)?, 0))
        .collect()
}

/// The rows `select` finds, read with the library's decoders (every value the schema
/// admits; [`DalError::Undecodable`] naming the row otherwise).
pub(crate) async fn select_all<E, T>(exec: &E, select: Select<T>) -> Result<Vec<T::Model>>
where
    E: Executor,
    T: EntityTrait,
    T::Model: FromRow,
{
    let rows = exec
        .query_all_raw(select.build(exec.get_database_backend()))
        .await?;
    read_rows(&rows)
}

/// The first row `select` finds, if any (see [`select_all`]).
pub(crate) async fn select_one<E, T>(exec: &E, select: Select<T>) -> Result<Option<T::Model>>
where
    E: Executor,
    T: EntityTrait,
    T::Model: FromRow,
{
    use sea_orm::QuerySelect;
    let stmt: Statement = select.limit(1).build(exec.get_database_backend());
    match exec.query_one_raw(stmt).await? {
        Some(row) => Ok(Some(T::Model::from_row(Raw::of(&row)?, 0)?)),
        None => Ok(None),
    }
}

/// The row of `T` with primary key `id`. The statement text is built once per table and
/// backend and reused: a point read is the hottest path, and rebuilding the same SQL on
/// every call costs more than the lookup.
pub(crate) async fn find_by_id<E, T>(exec: &E, id: entities::Id) -> Result<Option<T::Model>>
where
    E: crate::Executor,
    T: sea_orm::EntityTrait,
    T::Model: FromRow,
    <T::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType: From<entities::Id>,
{
    use std::collections::HashMap;
    use std::sync::{OnceLock, RwLock};

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
        Some(row) => Ok(Some(T::Model::from_row(Raw::of(&row)?, 0)?)),
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
