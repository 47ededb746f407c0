//! Row writes: one entry applied to the server's row, as [`conflict::decide`] rules,
//! with inserts and updates written directly and deletes made through the repositories.

use std::collections::BTreeSet;

use dal::prelude::*;
use dal::{DalError, SyncRefusal};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, Value};
use serde_json::Value as Json;
use uuid::Uuid;

use super::acting::Actor;
use super::conflict::{self, Contested, Decision};
use super::history::{contested_columns, record_conflict, version};
use super::{Outcome, statement};
use crate::protocol::{Entry, Op, RowValues};
use crate::tables::{self, Table};
use crate::wire;

/// Applies `entry` from `client`, noting in `touched` the groups of a positioned table
/// (timelines: shots) whose positions it may have changed, renumbered once the batch is
/// through. The rows are read and written as `actor`, the conflict log as the server; it
/// starts and ends acting as the server.
pub(super) async fn apply_entry(
    uow: &UnitOfWork,
    actor: Actor,
    client: Uuid,
    entry: &Entry,
    touched: &mut BTreeSet<(&'static str, Uuid)>,
) -> dal::Result<Outcome> {
    let table = writable_table(entry)?;
    actor.rows(uow).await?;
    if let Some(positions) = tables::operations(table).positions {
        for group in groups_of(uow, table, positions.group, entry).await? {
            touched.insert((table.name, group));
        }
    }
    let existing = current(uow, table, entry.row_id).await?;
    if !conflict::deletes(entry) {
        // An insert over a tombstone brings the row back with the parents the entry does
        // not name: they are checked too (its parent's delete is what tombstoned it, as
        // likely as not). Any other write to a tombstone loses to the delete anyway.
        let kept = existing
            .as_ref()
            .filter(|row| entry.op == Op::Insert && conflict::is_tombstone(row));
        refuse_deleted_parents(uow, table, &entry.changes, kept).await?;
    }
    let contested = match &existing {
        Some(row) if !conflict::is_tombstone(row) && version(row) > entry.base_version => {
            actor.books(uow).await?;
            let contested = contested_columns(uow, client, entry, row).await?;
            actor.rows(uow).await?;
            contested
        }
        _ => Contested::none(),
    };
    let (outcome, conflicts) = match conflict::decide(table, entry, existing.as_ref(), &contested) {
        Decision::Noop(why) => (Outcome::Noop(why), Vec::new()),
        Decision::Refuse(why) => return Err(refused(why)),
        Decision::Insert => {
            insert(uow, table, client, entry).await?;
            (Outcome::Applied, Vec::new())
        }
        Decision::Recreate => {
            let mut changes = entry.changes.clone();
            changes.insert("deleted".into(), Json::Bool(false));
            update(uow, table, client, entry, &changes).await?;
            (Outcome::Applied, Vec::new())
        }
        Decision::Delete { conflicts } => {
            if !delete(uow, table, entry.row_id).await? {
                (Outcome::Noop("already gone"), Vec::new())
            } else {
                (Outcome::Applied, conflicts)
            }
        }
        Decision::Update { conflicts } => {
            update(uow, table, client, entry, &entry.changes).await?;
            (Outcome::Applied, conflicts)
        }
        Decision::Lost { conflicts } => (Outcome::Noop("the row was deleted"), conflicts),
    };
    actor.books(uow).await?;
    for lost in &conflicts {
        record_conflict(uow, client, entry, lost).await?;
    }
    Ok(outcome)
}

/// The entry's table, if sync writes it and the entry changes only its data columns.
pub(super) fn writable_table(entry: &Entry) -> dal::Result<&'static Table> {
    let table = tables::table(&entry.table).ok_or_else(|| {
        refused(SyncRefusal::UnsyncedTable {
            table: entry.table.clone(),
        })
    })?;
    for column in entry.changes.keys() {
        if !table.data_columns().any(|c| c == column) {
            return Err(refused(SyncRefusal::ColumnNotWritable {
                table: table.name.to_owned(),
                column: column.clone(),
            }));
        }
    }
    Ok(table)
}

/// The current row in wire form, locked for the rest of the transaction.
pub(super) async fn current(
    uow: &UnitOfWork,
    table: &Table,
    id: Uuid,
) -> dal::Result<Option<RowValues>> {
    let sql = format!("{} WHERE id = $1 FOR UPDATE", wire::pg_select(table));
    let row = uow
        .query_one_raw(statement(uow, &sql, vec![Value::Uuid(Some(id))]))
        .await?;
    row.map(|r| wire::read_row(table, &r).map_err(|e| DalError::from(sea_orm::DbErr::from(e))))
        .transpose()
}

/// A row may not be written under a parent that was deleted: the delete wins, and the
/// write is refused instead of leaving a live row under a tombstone. The parents are those
/// `changes` names, else those of `kept` (the row the write keeps the other columns of).
async fn refuse_deleted_parents(
    uow: &UnitOfWork,
    table: &Table,
    changes: &RowValues,
    kept: Option<&RowValues>,
) -> dal::Result<()> {
    for parent in &table.parents {
        let (column, parent) = (parent.column, parent.table);
        let Some(id) = changes
            .get(column)
            .or_else(|| kept.and_then(|row| row.get(column)))
            .and_then(Json::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
        else {
            continue;
        };
        let row = uow
            .query_one_raw(statement(
                uow,
                // FOR SHARE: a concurrent tombstone (an UPDATE) waits for this batch,
                // or this read waits for it and sees it.
                &format!("SELECT deleted FROM \"{parent}\" WHERE id = $1 FOR SHARE"),
                vec![Value::Uuid(Some(id))],
            ))
            .await?;
        if let Some(row) = row
            && row.try_get::<bool>("", "deleted")?
        {
            return Err(refused(SyncRefusal::ParentDeleted {
                table: parent.to_owned(),
                id,
            }));
        }
    }
    Ok(())
}

fn refused(why: SyncRefusal) -> DalError {
    DalError::sync_refused(why)
}

/// The groups (shots, for timeline entries) whose positions an entry of a positioned table
/// touches: the group it names and the one its row is in now.
async fn groups_of(
    uow: &UnitOfWork,
    table: &Table,
    group: &str,
    entry: &Entry,
) -> dal::Result<Vec<Uuid>> {
    let mut groups = Vec::new();
    if let Some(id) = entry
        .changes
        .get(group)
        .and_then(Json::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
    {
        groups.push(id);
    }
    let row = uow
        .query_one_raw(statement(
            uow,
            &format!(
                "SELECT \"{group}\" AS grp FROM \"{}\" WHERE id = $1",
                table.name
            ),
            vec![Value::Uuid(Some(entry.row_id))],
        ))
        .await?;
    if let Some(row) = row {
        groups.push(row.try_get::<Id>("", "grp")?.uuid());
    }
    Ok(groups)
}

/// The values to write for `changes`, with the server's own metadata.
pub(super) fn assignments(
    table: &Table,
    client: Uuid,
    entry: &Entry,
    changes: &RowValues,
) -> dal::Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for (column, value) in changes {
        let kind = table.kind(column).ok_or_else(|| {
            refused(SyncRefusal::ColumnNotWritable {
                table: table.name.to_owned(),
                column: column.clone(),
            })
        })?;
        out.push((
            column.clone(),
            wire::to_value(kind, value).map_err(|e| {
                refused(SyncRefusal::BadValue {
                    table: table.name.to_owned(),
                    column: column.clone(),
                    reason: e.to_string(),
                })
            })?,
        ));
    }
    out.push(("device_id".into(), Value::String(Some(client.to_string()))));
    out.push((
        "last_modified_at".into(),
        Value::ChronoDateTimeUtc(wire::parse_timestamp(&entry.client_time).ok()),
    ));
    Ok(out)
}

async fn insert(uow: &UnitOfWork, table: &Table, client: Uuid, entry: &Entry) -> dal::Result<()> {
    let values = assignments(table, client, entry, &entry.changes)?;
    let mut columns = vec![Alias::new("id")];
    let mut exprs = vec![Expr::val(Value::Uuid(Some(entry.row_id)))];
    for (column, value) in values {
        columns.push(Alias::new(column));
        exprs.push(Expr::val(value));
    }
    let insert = Query::insert()
        .into_table(Alias::new(table.name))
        .columns(columns)
        .values_panic(exprs)
        .to_owned();
    uow.execute(&insert).await?;
    Ok(())
}

async fn update(
    uow: &UnitOfWork,
    table: &Table,
    client: Uuid,
    entry: &Entry,
    changes: &RowValues,
) -> dal::Result<()> {
    let values = assignments(table, client, entry, changes)?;
    let update = Query::update()
        .table(Alias::new(table.name))
        .values(
            values
                .into_iter()
                .map(|(c, v)| (Alias::new(c), Expr::val(v))),
        )
        .and_where(Expr::col(Alias::new("id")).eq(Value::Uuid(Some(entry.row_id))))
        .to_owned();
    uow.execute(&update).await?;
    Ok(())
}

/// Deletes through the repositories, so the tombstone cascades to what hangs off the row.
/// `false` when there was nothing live to delete (it went with a parent meanwhile).
async fn delete(uow: &UnitOfWork, table: &Table, id: Uuid) -> dal::Result<bool> {
    let id = Id(id);
    let result = (tables::operations(table).delete)(uow, id).await;
    match result {
        Ok(()) => Ok(true),
        Err(DalError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}
