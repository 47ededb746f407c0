//! Writing what the server sent into the replica: the rows of a push's answer, the rows
//! a pull removed, refused entries as dead letters. The callers hold the transaction.

use std::collections::HashSet;

use chrono::Utc;
use dal::DalError;
use dal::prelude::*;
use sea_orm::ConnectionTrait;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::apply;
use crate::client::{count, set_state, sql};
use crate::protocol::RowValues;
use crate::tables::{self, tables};
use crate::wire;

/// Moves outbox entry `seq` to the dead letters, refused for `reason`.
pub(crate) async fn dead_letter(uow: &UnitOfWork, seq: i64, reason: &str) -> dal::Result<()> {
    uow.execute_raw(sql(
        "INSERT OR IGNORE INTO sync_dead_letters (seq, table_name, row_id, op, changes, base_version, client_time, reason, failed_at) \
         SELECT seq, table_name, row_id, op, changes, base_version, client_time, ?, ? FROM sync_outbox WHERE seq = ?",
        vec![reason.into(), wire::format_timestamp(Utc::now()).into(), seq.into()],
    ))
    .await?;
    Ok(())
}

/// Stores the server's version of rows (`(table, id, row)`, parents first; `None`: the
/// server has none) as a push's answer carries them, without capturing them: each row
/// with no change of ours still waiting in the outbox (a waiting change keeps the row
/// until its own answer brings it back).
pub(crate) async fn store_server_rows(
    uow: &UnitOfWork,
    rows: &[(String, Uuid, Option<RowValues>)],
) -> dal::Result<()> {
    // The server's version is not a local change.
    set_state(uow, "capture", apply::SERVER_ROWS).await?;
    uow.execute_unprepared("PRAGMA defer_foreign_keys = ON")
        .await?;
    let pending = pending_among(
        uow,
        rows.iter().map(|(t, id, _)| (t.as_str(), id.to_string())),
    )
    .await?;
    // In the answer's order (parents first); runs of stored rows go set-based.
    let mut run: Vec<(&str, &RowValues)> = Vec::new();
    for (table, id, row) in rows {
        if pending.contains(&(table.clone(), id.to_string())) {
            continue;
        }
        match row {
            Some(values) => run.push((table.as_str(), values)),
            None => {
                apply::upsert(uow, &run, apply::Replace::UnlessOlder).await?;
                run.clear();
                let spec = tables::table(table).ok_or_else(|| unsynced(table))?;
                uow.execute_raw(sql(
                    &format!("DELETE FROM \"{}\" WHERE id = ?", spec.name),
                    vec![id.to_string().into()],
                ))
                .await?;
            }
        }
    }
    apply::upsert(uow, &run, apply::Replace::UnlessOlder).await?;
    set_state(uow, "capture", "1").await?;
    Ok(())
}

/// Deletes each removed row (see [`PullPage::removed`](crate::protocol::PullPage)) and
/// every row under it, as the server's cascade did: for good, not as a tombstone, since
/// the server has no row left either. The caller has capture off, so nothing reaches the
/// outbox; entries already waiting there for these rows stay, and the server refuses
/// them when they arrive (their row or parent is gone), which dead-letters them.
pub(crate) async fn apply_removals(
    uow: &UnitOfWork,
    removed: &[(String, Uuid)],
) -> dal::Result<()> {
    if removed.is_empty() {
        return Ok(());
    }
    // Level by level down the parent links, then deleted children first, so no row is
    // left pointing at a deleted parent whatever the foreign-key settings.
    let mut doomed: Vec<(&'static str, Json)> = Vec::new();
    let mut level: Vec<(&'static str, Vec<String>)> = Vec::new();
    for table in tables() {
        let ids: Vec<String> = removed
            .iter()
            .filter(|(t, _)| t == table.name)
            .map(|(_, id)| id.to_string())
            .collect();
        if !ids.is_empty() {
            level.push((table.name, ids));
        }
    }
    while !level.is_empty() {
        let mut below = Vec::new();
        for (table, ids) in level {
            let ids = Json::from(ids);
            for child in tables() {
                for link in child.parents.iter().filter(|p| p.table == table) {
                    let rows = uow
                        .query_all_raw(sql(
                            &format!(
                                "SELECT id FROM \"{}\" WHERE \"{}\" IN (SELECT value FROM json_each(?))",
                                child.name, link.column
                            ),
                            vec![ids.to_string().into()],
                        ))
                        .await?;
                    let found = rows
                        .iter()
                        .map(|r| r.try_get::<String>("", "id"))
                        .collect::<Result<Vec<_>, _>>()?;
                    if !found.is_empty() {
                        below.push((child.name, found));
                    }
                }
            }
            doomed.push((table, ids));
        }
        level = below;
    }
    for (table, ids) in doomed.iter().rev() {
        uow.execute_raw(sql(
            &format!("DELETE FROM \"{table}\" WHERE id IN (SELECT value FROM json_each(?))"),
            vec![ids.to_string().into()],
        ))
        .await?;
    }
    Ok(())
}

/// A wire row's id.
pub(crate) fn row_id(values: &RowValues) -> String {
    values
        .get("id")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Which of `rows` (`(table, id)`) have outbox entries waiting: one indexed lookup per
/// row in a single statement, whatever the outbox's length.
pub(crate) async fn pending_among<'a>(
    uow: &UnitOfWork,
    rows: impl Iterator<Item = (&'a str, String)>,
) -> dal::Result<HashSet<(String, String)>> {
    // A first pull meets an empty outbox: no need to build and look up its keys.
    if count(uow, "SELECT EXISTS (SELECT 1 FROM sync_outbox) AS n").await? == 0 {
        return Ok(HashSet::new());
    }
    let keys = Json::Array(
        rows.map(|(table, id)| Json::Array(vec![table.into(), id.into()]))
            .collect(),
    );
    let rows = uow
        .query_all_raw(sql(
            "SELECT DISTINCT o.table_name, o.row_id FROM json_each(?) AS k \
             JOIN sync_outbox AS o ON o.table_name = k.value ->> 0 AND o.row_id = k.value ->> 1",
            vec![keys.to_string().into()],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("", "table_name")?, r.try_get("", "row_id")?)))
        .collect::<Result<_, sea_orm::DbErr>>()
        .map_err(DalError::from)
}

/// A server row of a table this client does not sync.
pub(crate) fn unsynced(table: &str) -> DalError {
    DalError::sync_refused(dal::SyncRefusal::UnsyncedTable {
        table: table.to_owned(),
    })
}
