//! Storing server rows in the replica (a pulled page, the rows a push's answer sends
//! back), set-based: one statement per run of a table's rows (up to [`CHUNK`] rows), not
//! one per row.
//!
//! Under sqlx every SQLite statement is a round trip to its worker thread, which cost
//! more than the row's own insert; a page of 500 rows was 500 round trips. Here the rows
//! of a run travel as one JSON array parameter to `INSERT … SELECT … FROM json_each(?)`
//! (as the library's bulk insert does): SQLite parses it in C, the statement text is the
//! same for every run of a table, so it is prepared once, and the triggers (value checks,
//! capture) still run for every row. Rows are inserted in the order given, so parents
//! stay before children.

use std::fmt::Write as _;

use dal::DalError;
use dal::prelude::*;
use sea_orm::{ConnectionTrait, Statement, Value};
use serde_json::Value as Json;

use crate::protocol::RowValues;
use crate::tables::{self, Kind, Table};

/// The replica's `sync_state.capture` while it stores rows the server sent: not captured
/// (they are not local changes), and passed over by the value triggers, since Postgres's
/// column types have refused what those refuse (migration
/// `m20261207_190000_server_rows_unchecked`). The CHECK constraints still run.
pub(crate) const SERVER_ROWS: &str = "server";

/// Rows per statement: bounds the JSON parameter (about 1 KiB a row) whatever the page
/// size.
const CHUNK: usize = 2_000;

/// When a server row replaces the local copy of its row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Replace {
    /// Only if its `sync_version` is newer (pulls).
    IfNewer,
    /// Unless the local copy is a newer server version (a push's answer: the row as the
    /// batch left it). Local writes never raise `sync_version`, so this undoes a refused
    /// change; and a pull that stored a later version meanwhile (through another
    /// `SyncClient` on the same file) is not taken back.
    UnlessOlder,
}

/// Stores server rows as a pull does: each one replaces the local copy only if its
/// `sync_version` is newer. Consecutive rows of one table go in one statement, in order.
pub(crate) async fn upsert_newer(uow: &UnitOfWork, rows: &[(&str, &RowValues)]) -> dal::Result<()> {
    upsert(uow, rows, Replace::IfNewer).await
}

/// Stores server rows, each replacing the local copy as `replace` says. Consecutive rows
/// of one table go in one statement, in order.
pub(crate) async fn upsert(
    uow: &UnitOfWork,
    rows: &[(&str, &RowValues)],
    replace: Replace,
) -> dal::Result<()> {
    let mut run: Option<(&'static Table, Vec<&RowValues>)> = None;
    for &(table, values) in rows {
        match &mut run {
            Some((spec, batch)) if spec.name == table && batch.len() < CHUNK => {
                batch.push(values);
                continue;
            }
            _ => {}
        }
        if let Some((spec, batch)) = run.take() {
            store_run(uow, spec, &batch, replace).await?;
        }
        let spec = tables::table(table).ok_or_else(|| unsynced(table))?;
        run = Some((spec, vec![values]));
    }
    if let Some((spec, batch)) = run {
        store_run(uow, spec, &batch, replace).await?;
    }
    Ok(())
}

/// One statement for `rows` of `table`.
async fn store_run(
    uow: &UnitOfWork,
    table: &Table,
    rows: &[&RowValues],
    replace: Replace,
) -> dal::Result<()> {
    let mut json = String::with_capacity(rows.len() * 512);
    json.push('[');
    for (r, values) in rows.iter().enumerate() {
        if r > 0 {
            json.push(',');
        }
        json.push('[');
        push_cell(&mut json, Kind::Uuid, values.get("id"));
        for column in table.wire_columns() {
            json.push(',');
            push_cell(&mut json, column.kind, values.get(column.name));
        }
        json.push(']');
    }
    json.push(']');
    uow.execute_raw(Statement::from_sql_and_values(
        sea_orm::DbBackend::Sqlite,
        upsert_sql(table, replace),
        [Value::String(Some(json))],
    ))
    .await?;
    Ok(())
}

/// `WITH r (v) AS (… json_each(?)) INSERT … SELECT r.v->>0, … FROM r … ON CONFLICT (id)
/// DO UPDATE … WHERE excluded.sync_version > sync_version` (`>=` for
/// [`Replace::UnlessOlder`]): the same text for every run of `table`.
fn upsert_sql(table: &Table, replace: Replace) -> String {
    let compare = match replace {
        Replace::IfNewer => ">",
        Replace::UnlessOlder => ">=",
    };
    let mut columns = vec!["id".to_owned()];
    columns.extend(table.wire_columns().map(|c| format!("\"{}\"", c.name)));
    let selected: Vec<String> = (0..columns.len()).map(|i| format!("r.v->>{i}")).collect();
    let updates: Vec<String> = columns
        .iter()
        .skip(1)
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    // Each row is converted to SQLite's binary JSON once, in a materialized CTE: taking
    // every column out of the row's text with `->>` parsed that text again per column
    // (measured: a fifth of storing a page of tasks). `WHERE true`: SQLite would
    // otherwise read ON CONFLICT as a join's ON.
    format!(
        "WITH r (v) AS MATERIALIZED (SELECT jsonb(value) FROM json_each(?)) \
         INSERT INTO \"{name}\" ({}) SELECT {} FROM r WHERE true \
         ON CONFLICT (id) DO UPDATE SET {} WHERE excluded.sync_version {compare} \"{name}\".sync_version",
        columns.join(", "),
        selected.join(", "),
        updates.join(", "),
        name = table.name,
    )
}

/// Appends a wire value as the JSON that `->>` turns into what SQLite stores for a column
/// of `kind` (as the per-row statements it replaced bound it): integers
/// for integer and boolean columns, text for everything else, NULL for what is missing.
fn push_cell(out: &mut String, kind: Kind, value: Option<&Json>) {
    let value = value.unwrap_or(&Json::Null);
    let integer = match (kind, value) {
        (_, Json::Null) => {
            out.push_str("null");
            return;
        }
        (Kind::Int, v) => v.as_i64(),
        (Kind::Bool, Json::Bool(b)) => Some(i64::from(*b)),
        (Kind::Bool, v) => v.as_i64(),
        (_, Json::String(s)) => {
            push_string(out, s);
            return;
        }
        (_, other) => {
            push_string(out, &other.to_string());
            return;
        }
    };
    match integer {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push_str("null"),
    }
}

fn push_string(out: &mut String, s: &str) {
    // Serialising a `str` cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// A server row of a table this client does not sync.
fn unsynced(table: &str) -> DalError {
    DalError::sync_refused(dal::SyncRefusal::UnsyncedTable {
        table: table.to_owned(),
    })
}
