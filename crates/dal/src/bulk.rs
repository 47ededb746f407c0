//! Bulk writes: many rows in few statements.
//!
//! Postgres: `COPY ... FROM STDIN` for [`insert_all`] on the pool, otherwise one
//! `INSERT ... SELECT FROM UNNEST(...)` per 20 000 rows, each column bound as one array.
//! SQLite: one `INSERT ... SELECT ... FROM json_each(?)` per 20 000 rows, all rows in one
//! JSON parameter, so neither the bind-parameter limit nor per-value binding costs apply.
//! [`insert_all`] is all or nothing by itself; run the others in a unit of work.
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
use sea_orm::sea_query::Value;
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, EntityName, EntityTrait, IdenStatic, Iterable,
    PrimaryKeyToColumn,
};

use crate::dialect::bulk::{Conflict, copy_line, json_each_insert, unnest_insert};
use crate::{DalError, Executor, Result};

/// Rows per Postgres `UNNEST` statement: big enough to amortise the round trip, small
/// enough to keep each statement's arrays a few megabytes.
const UNNEST_ROWS: usize = 20_000;

/// Rows per SQLite `json_each` statement, for the same reasons.
const JSON_ROWS: usize = 20_000;

/// Inserts every row, all or none; a row whose primary key exists fails the whole call
/// with [`DalError::Conflict`]. Returns the rows inserted.
///
/// On a Postgres [`Database`](crate::Database) (not inside a unit of work) the rows go in
/// with `COPY ... FROM STDIN` in a transaction of their own, the fastest load Postgres
/// has; inside a unit of work they go through `UNNEST`, on the unit's connection.
pub async fn insert_all<E, A>(exec: &E, rows: Vec<A>) -> Result<u64>
where
    E: Executor,
    A: ActiveModelTrait + Send,
{
    if rows.is_empty() {
        return Ok(0);
    }
    if let Some(target) = exec.copy_target() {
        return copy_in(target, rows).await;
    }
    let uow = exec.begin().await?;
    let written = write(&uow, rows, Conflict::Fail).await?;
    uow.commit().await?;
    Ok(written)
}

/// `COPY table (columns) FROM STDIN` in its own transaction (behind a transaction-mode
/// pooler that transaction also sets the statement timeout; `COPY` itself prepares
/// nothing, so it is safe there).
async fn copy_in<A>(target: crate::executor::CopyTarget<'_>, rows: Vec<A>) -> Result<u64>
where
    A: ActiveModelTrait + Send,
{
    let (table, columns, _) = describe::<A>();
    let names: Vec<String> = columns
        .iter()
        .map(|(n, _)| format!("\"{}\"", n.replace('"', "\"\"")))
        .collect();
    let statement = format!("COPY \"{table}\" ({}) FROM STDIN", names.join(", "));
    let mut tx = match target.begin {
        None => target.pool.begin().await?,
        Some(begin) => target.pool.begin_with(sqlx::AssertSqlSafe(begin)).await?,
    };
    let mut copy = tx.copy_in_raw(&statement).await?;
    // Encode and send in ~1 MiB pieces: the server parses one piece while the next is
    // encoded. A row refused here ends the COPY with CopyFail, so the connection goes back
    // to the pool in a clean state (a COPY left open would wedge its next user).
    let mut buffer = String::with_capacity(1 << 20);
    let mut sent: std::result::Result<(), DalError> = Ok(());
    for row in rows {
        if let Err(e) = row_values(&table, &row).and_then(|v| Ok(copy_line(&mut buffer, v)?)) {
            sent = Err(e);
            break;
        }
        if buffer.len() >= 1 << 20 {
            if let Err(e) = copy.send(std::mem::take(&mut buffer).into_bytes()).await {
                sent = Err(e.into());
                break;
            }
            buffer.reserve(1 << 20);
        }
    }
    if let Err(e) = sent {
        let _ = copy.abort("a row was refused").await;
        return Err(e);
    }
    if !buffer.is_empty() {
        copy.send(buffer.into_bytes()).await?;
    }
    let written = copy.finish().await?;
    tx.commit().await?;
    Ok(written)
}

/// The entity's table, its columns with their types, and its key columns.
#[allow(clippy::type_complexity)]
fn describe<A: ActiveModelTrait>() -> (
    String,
    Vec<(String, sea_orm::sea_query::ColumnType)>,
    Vec<String>,
) {
    let columns = <A::Entity as EntityTrait>::Column::iter()
        .map(|c| (c.as_str().to_owned(), c.def().get_column_type().clone()))
        .collect();
    let key = key_columns::<A::Entity>()
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    (A::Entity::default().table_name().to_owned(), columns, key)
}

/// Every column's value of `row`, in column order; bulk writes need them all set.
fn row_values<A: ActiveModelTrait>(table: &str, row: &A) -> Result<Vec<Value>> {
    <A::Entity as EntityTrait>::Column::iter()
        .map(|c| match row.get(c) {
            ActiveValue::Set(v) | ActiveValue::Unchanged(v) => Ok(v),
            ActiveValue::NotSet => Err(DalError::invalid(format!(
                "bulk insert into {table} needs every column; {} is not set",
                c.as_str()
            ))),
        })
        .collect()
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
    let written = match exec.backend() {
        Backend::Postgres => write_unnest(exec, rows, &conflict).await,
        Backend::Sqlite => write_json(exec, rows, &conflict).await,
    };
    written.map_err(|e| e.in_table(A::Entity::default().table_name()))
}

async fn write_unnest<E, A>(exec: &E, rows: Vec<A>, conflict: &Conflict) -> Result<u64>
where
    E: Executor,
    A: ActiveModelTrait + Send,
{
    let (table, columns, key) = describe::<A>();
    let mut written = 0;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk = rows
            .by_ref()
            .take(UNNEST_ROWS)
            .map(|row| row_values(&table, &row))
            .collect::<Result<Vec<_>>>()?;
        let stmt = unnest_insert(&table, &columns, &key, chunk, conflict)?;
        written += exec.execute_raw(stmt).await?.rows_affected();
    }
    Ok(written)
}

async fn write_json<E, A>(exec: &E, rows: Vec<A>, conflict: &Conflict) -> Result<u64>
where
    E: Executor,
    A: ActiveModelTrait + Send,
{
    let (table, columns, key) = describe::<A>();
    let mut written = 0;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk = rows
            .by_ref()
            .take(JSON_ROWS)
            .map(|row| row_values(&table, &row))
            .collect::<Result<Vec<_>>>()?;
        let stmt = json_each_insert(&table, &columns, &key, chunk, conflict)?;
        written += exec.execute_raw(stmt).await?.rows_affected();
    }
    Ok(written)
}
