//! Bulk writes: many rows in few statements.
//!
//! Postgres: one `INSERT ... SELECT FROM UNNEST(...)` per 20 000 rows, each column bound
//! as one array. SQLite: multi-row `INSERT ... VALUES` statements, as many rows per
//! statement as its 32 766 bind parameters allow (SQLite parses a statement in
//! microseconds; the win is one write transaction). Run inside a unit of work for
//! all-or-nothing (the repositories' `insert_many` do).
//!
//! ```no_run
//! use dal::prelude::*;
//! # async fn run(db: &Database, rows: Vec<dal::entities::user::ActiveModel>) -> dal::Result<()> {
//! let uow = db.begin().await?;
//! let inserted = dal::bulk::insert_missing(&uow, rows).await?; // existing ids are left alone
//! uow.commit().await?;
//! # Ok(()) }
//! ```

use dal_config::Backend;
use sea_orm::sea_query::{OnConflict, Value};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, EntityName, EntityTrait, IdenStatic, Iterable,
    PrimaryKeyToColumn, QueryTrait,
};

use crate::dialect::bulk::{Conflict, unnest_insert};
use crate::executor::dialect_of;
use crate::{DalError, Executor, Result};

/// Rows per Postgres `UNNEST` statement: big enough to amortise the round trip, small
/// enough to keep each statement's arrays a few megabytes.
const UNNEST_ROWS: usize = 20_000;

/// Inserts every row; a row whose primary key exists fails the statement with
/// [`DalError::Conflict`]. Returns the rows inserted.
pub async fn insert_all<E, A>(exec: &E, rows: Vec<A>) -> Result<u64>
where
    E: Executor,
    A: ActiveModelTrait + Send,
{
    write(exec, rows, Conflict::Fail).await
}

/// Inserts `rows` whose primary key is not taken yet and leaves existing rows untouched
/// (`ON CONFLICT (pk) DO NOTHING`); returns how many were inserted.
pub async fn insert_missing<E, A>(exec: &E, rows: Vec<A>) -> Result<u64>
where
    E: Executor,
    A: ActiveModelTrait + Send,
{
    write(exec, rows, Conflict::Skip).await
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
    let keep = keep.iter().map(|c| c.as_str().to_owned()).collect();
    write(exec, rows, Conflict::Overwrite(keep)).await
}

fn key_columns<T: EntityTrait>() -> Vec<T::Column> {
    T::PrimaryKey::iter().map(|k| k.into_column()).collect()
}

async fn write<E, A>(exec: &E, rows: Vec<A>, conflict: Conflict) -> Result<u64>
where
    E: Executor,
    A: ActiveModelTrait + Send,
{
    if rows.is_empty() {
        return Ok(0);
    }
    match exec.backend() {
        Backend::Postgres => write_unnest(exec, rows, &conflict).await,
        Backend::Sqlite => write_values(exec, rows, conflict).await,
    }
}

async fn write_unnest<E, A>(exec: &E, rows: Vec<A>, conflict: &Conflict) -> Result<u64>
where
    E: Executor,
    A: ActiveModelTrait + Send,
{
    let columns: Vec<<A::Entity as EntityTrait>::Column> =
        <A::Entity as EntityTrait>::Column::iter().collect();
    let described: Vec<(String, sea_orm::sea_query::ColumnType)> = columns
        .iter()
        .map(|c| (c.as_str().to_owned(), c.def().get_column_type().clone()))
        .collect();
    let key: Vec<String> = key_columns::<A::Entity>()
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    let table = A::Entity::default().table_name().to_owned();
    let mut written = 0;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Value>> = rows
            .by_ref()
            .take(UNNEST_ROWS)
            .map(|row| {
                columns
                    .iter()
                    .map(|c| match row.get(*c) {
                        ActiveValue::Set(v) | ActiveValue::Unchanged(v) => Ok(v),
                        ActiveValue::NotSet => Err(DalError::invalid(format!(
                            "bulk insert into {table} needs every column; {} is not set",
                            c.as_str()
                        ))),
                    })
                    .collect::<Result<Vec<Value>>>()
            })
            .collect::<Result<_>>()?;
        let stmt = unnest_insert(&table, &described, &key, chunk, conflict)?;
        written += exec.execute_raw(stmt).await?.rows_affected();
    }
    Ok(written)
}

async fn write_values<E, A>(exec: &E, rows: Vec<A>, conflict: Conflict) -> Result<u64>
where
    E: Executor,
    A: ActiveModelTrait + Send,
{
    let key = key_columns::<A::Entity>();
    let on_conflict = match conflict {
        Conflict::Fail => None,
        Conflict::Skip => Some(OnConflict::columns(key).do_nothing().to_owned()),
        Conflict::Overwrite(keep) => {
            let update: Vec<_> = <A::Entity as EntityTrait>::Column::iter()
                .filter(|c| !keep.iter().any(|k| k == c.as_str()))
                .filter(|c| !key.iter().any(|k| k.as_str() == c.as_str()))
                .collect();
            Some(OnConflict::columns(key).update_columns(update).to_owned())
        }
    };
    let columns = <A::Entity as EntityTrait>::Column::iter().count().max(1);
    let per_statement = (dialect_of(exec).max_bind_parameters() / columns).max(1);
    let mut written = 0;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(per_statement).collect();
        let mut insert = A::Entity::insert_many(chunk);
        if let Some(on_conflict) = &on_conflict {
            insert = insert.on_conflict(on_conflict.clone());
        }
        written += exec.execute(&insert.into_query()).await?.rows_affected();
    }
    Ok(written)
}
