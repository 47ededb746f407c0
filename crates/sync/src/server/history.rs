//! What the log of settled entries (`sync_log`) says about a row: which columns other
//! writers changed since an entry's base (the input of the conflict rule), and the
//! conflicts recorded (`sync_conflicts`).

use std::collections::HashSet;

use dal::prelude::*;
use sea_orm::{ConnectionTrait, Value};
use serde_json::Value as Json;
use uuid::Uuid;

use super::conflict::{Conflict, Contested};
use super::statement;
use crate::protocol::{Entry, RowValues};

/// What other writers changed in `row` between the entry's base version and now, from the
/// log of the versions sync wrote. The client's own earlier entries never conflict with
/// it; they are why a base can be behind without anyone else having written.
pub(super) async fn contested_columns(
    uow: &UnitOfWork,
    client: Uuid,
    entry: &Entry,
    row: &RowValues,
) -> dal::Result<Contested> {
    if version(row) <= entry.base_version {
        return Ok(Contested::none());
    }
    let log = uow
        .query_all_raw(statement(
            uow,
            "SELECT client_id, array_to_string(changed_columns, ',') AS columns, row_version \
             FROM sync_log WHERE row_id = $1 AND table_name = $2 \
             AND row_version > $3 AND row_version <= $4",
            vec![
                Value::Uuid(Some(entry.row_id)),
                entry.table.clone().into(),
                entry.base_version.into(),
                version(row).into(),
            ],
        ))
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get("", "client_id")?,
                r.try_get("", "columns")?,
                r.try_get("", "row_version")?,
            ))
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    Ok(contested_from(&log, client, entry.base_version, row))
}

/// The columns of `row` other writers changed since `base`, from the log of the versions
/// sync wrote after it (`(writer, changed columns joined by commas, version)`): exactly
/// those when the log accounts for every version since, else every column (when the last
/// writer is someone else).
pub(super) fn contested_from(
    log: &[(Uuid, String, i64)],
    client: Uuid,
    base: i64,
    row: &RowValues,
) -> Contested {
    let now = version(row);
    if now <= base {
        return Contested::none();
    }
    let mut versions = HashSet::new();
    let mut columns = HashSet::new();
    for (writer, changed, row_version) in log {
        versions.insert(*row_version);
        if *writer != client {
            columns.extend(changed.split(',').map(str::to_owned));
        }
    }
    if versions.len() as i64 == now - base {
        Contested::Columns(columns)
    } else {
        Contested::Unknown(last_writer(row) != Some(client))
    }
}

/// The row's `sync_version` (0 when it has none).
pub(super) fn version(row: &RowValues) -> i64 {
    row.get("sync_version").and_then(Json::as_i64).unwrap_or(0)
}

/// The client that wrote the row last, if a client did.
fn last_writer(row: &RowValues) -> Option<Uuid> {
    row.get("device_id")
        .and_then(Json::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// Records a value lost to another writer.
pub(super) async fn record_conflict(
    uow: &UnitOfWork,
    client: Uuid,
    entry: &Entry,
    conflict: &Conflict,
) -> dal::Result<()> {
    let json = |v: &Option<Json>| Value::Json(v.as_ref().map(|v| Box::new(v.clone())));
    uow.execute_raw(statement(
        uow,
        "INSERT INTO sync_conflicts (client_id, seq, table_name, row_id, column_name, losing_value, winning_value, rule) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        vec![
            Value::Uuid(Some(client)),
            entry.seq.into(),
            entry.table.clone().into(),
            Value::Uuid(Some(entry.row_id)),
            conflict.column.clone().into(),
            json(&conflict.losing),
            json(&conflict.winning),
            conflict.rule.into(),
        ],
    ))
    .await?;
    Ok(())
}
