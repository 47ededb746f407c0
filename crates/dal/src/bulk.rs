//! Bulk writes: many rows in few statements, chunked under each backend's bind limit.
//!
//! ```no_run
//! use dal::prelude::*;
//! use sea_orm::Set;
//! # async fn run(db: &Database, rows: Vec<dal::entities::user::ActiveModel>) -> dal::Result<()> {
//! let uow = db.begin().await?;
//! let inserted = dal::bulk::insert_missing(&uow, rows).await?; // existing ids are left alone
//! uow.commit().await?;
//! # Ok(()) }
//! ```

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, EntityTrait, IdenStatic, Iterable, PrimaryKeyToColumn, QueryTrait,
};

use crate::executor::dialect_of;
use crate::{Executor, Result};

/// Inserts `rows` whose primary key is not taken yet and leaves existing rows untouched
/// (`ON CONFLICT (pk) DO NOTHING`); returns how many were inserted. Rows go in as few
/// multi-row statements as the backend's bind-parameter limit allows. Run it in a unit
/// of work for all-or-nothing.
pub async fn insert_missing<E, A>(exec: &E, rows: Vec<A>) -> Result<u64>
where
    E: Executor,
    A: ActiveModelTrait + Send,
{
    let on_conflict = OnConflict::columns(primary_key_columns::<A::Entity>())
        .do_nothing()
        .to_owned();
    write_chunks(exec, rows, on_conflict).await
}

/// Inserts `rows`, overwriting every column but the primary key and `keep` on rows whose
/// primary key exists (`ON CONFLICT (pk) DO UPDATE`). Returns the rows written.
pub async fn upsert<E, A>(
    exec: &E,
    rows: Vec<A>,
    keep: &[<A::Entity as EntityTrait>::Column],
) -> Result<u64>
where
    E: Executor,
    A: ActiveModelTrait + Send,
{
    let pk = primary_key_columns::<A::Entity>();
    let update: Vec<_> = <A::Entity as EntityTrait>::Column::iter()
        .filter(|c| !keep.iter().any(|k| k.as_str() == c.as_str()))
        .filter(|c| !pk.iter().any(|p| p.as_str() == c.as_str()))
        .collect();
    let on_conflict = OnConflict::columns(pk).update_columns(update).to_owned();
    write_chunks(exec, rows, on_conflict).await
}

fn primary_key_columns<T: EntityTrait>() -> Vec<T::Column> {
    T::PrimaryKey::iter().map(|k| k.into_column()).collect()
}

async fn write_chunks<E, A>(exec: &E, rows: Vec<A>, on_conflict: OnConflict) -> Result<u64>
where
    E: Executor,
    A: ActiveModelTrait + Send,
{
    let columns = <A::Entity as EntityTrait>::Column::iter().count().max(1);
    let per_statement = (dialect_of(exec).max_bind_parameters() / columns).max(1);
    let mut written = 0;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(per_statement).collect();
        let stmt = A::Entity::insert_many(chunk)
            .on_conflict(on_conflict.clone())
            .into_query();
        written += exec.execute(&stmt).await?.rows_affected();
    }
    Ok(written)
}
