//! A server-made replica: the rows a user may read (or every row) copied from one
//! consistent Postgres snapshot into a new SQLite database in the library's form, with
//! the pull cursor set to the snapshot's point, so the replica goes on with incremental
//! pulls and misses nothing committed meanwhile.
//!
//! The cursor is the pull horizon taken before the snapshot (see `pull.rs`): every
//! transaction below it had committed, so the snapshot holds all its rows; a transaction
//! still open then has ids at or above it, so its rows come with the first pull. Rows the
//! snapshot holds from above the horizon come again with that pull, which stores a row
//! only when its version is newer: nothing is lost and nothing goes back.

use std::collections::BTreeMap;

use dal::prelude::*;
use dal::{Backend, DalError, Isolation};
use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use super::{Server, pull, statement};
use crate::apply;
use crate::protocol::RowValues;
use crate::tables::{Table, tables};
use crate::wire;

/// Rows read from Postgres per statement: bounds memory whatever the table's size.
const PAGE: u64 = 5_000;

/// The `sync_state` key that marks a replica made by the server: opening it for sync
/// ([`crate::SyncClient::open`]) does not queue its rows to be pushed back.
pub(crate) const SERVER_MADE: &str = "server_made";

/// What [`Server::export`] copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    /// The pull cursor the replica continues from.
    pub horizon: u64,
    /// Rows copied, per synced table (parents first).
    pub rows: BTreeMap<&'static str, u64>,
}

impl Server {
    /// Copies the rows `user` may read (`None`: every row) into `replica`, a new, migrated
    /// SQLite database that holds no synced rows and no sync identity yet, all from one
    /// repeatable-read snapshot and in one local transaction, and sets the replica's pull
    /// cursor to the snapshot's point. `progress` is told each table's count as it goes.
    ///
    /// Opened with [`crate::SyncClient::open`], the replica gets a client id of its own
    /// and does not push the copied rows back; its first pull brings what was committed
    /// since the snapshot.
    pub async fn export(
        &self,
        user: Option<Uuid>,
        replica: &Database,
        mut progress: impl FnMut(&'static str, u64) + Send,
    ) -> dal::Result<Exported> {
        if replica.backend() != Backend::Sqlite {
            return Err(DalError::invalid(
                "an exported replica is a SQLite database",
            ));
        }
        let local = replica.begin().await?;
        refuse_non_empty(&local).await?;
        let horizon = pull::horizon(&self.db).await?;
        let uow = self.db.begin_with(Isolation::RepeatableRead).await?;
        if let Some(user) = user {
            uow.act_as_user(Id(user)).await?;
        }
        local
            .execute_unprepared("PRAGMA defer_foreign_keys = ON")
            .await?;
        set(&local, "capture", apply::SERVER_ROWS).await?;
        let mut rows = BTreeMap::new();
        for table in tables().iter() {
            // The next page is read from Postgres while this one is stored in SQLite.
            let mut copied = 0u64;
            let mut page = read_page(&uow, table, None).await?;
            loop {
                let after = (page.len() as u64 == PAGE)
                    .then(|| page.last().and_then(row_id))
                    .flatten();
                let stored: Vec<(&str, &RowValues)> =
                    page.iter().map(|values| (table.name, values)).collect();
                let next = async {
                    match after {
                        Some(after) => read_page(&uow, table, Some(after)).await.map(Some),
                        None => Ok(None),
                    }
                };
                let (stored, next) = futures::join!(apply::upsert_newer(&local, &stored), next);
                stored?;
                copied += page.len() as u64;
                progress(table.name, copied);
                match next? {
                    Some(more) => page = more,
                    None => break,
                }
            }
            rows.insert(table.name, copied);
        }
        let _ = uow.rollback().await;
        // Sync is off in the new replica until it is opened as one.
        set(&local, "capture", "0").await?;
        set(&local, "pull_from", &horizon.to_string()).await?;
        set(&local, SERVER_MADE, "1").await?;
        local.commit().await?;
        Ok(Exported { horizon, rows })
    }
}

/// Up to [`PAGE`] rows of `table` in wire form, in id order, after `after`.
async fn read_page(
    uow: &UnitOfWork,
    table: &'static Table,
    after: Option<Uuid>,
) -> dal::Result<Vec<RowValues>> {
    let mut sql = wire::pg_select(table);
    let mut values = Vec::new();
    if let Some(after) = after {
        sql.push_str(&format!(" WHERE \"{}\".id > $1", table.name));
        values.push(Value::Uuid(Some(after)));
    }
    sql.push_str(&format!(" ORDER BY \"{}\".id LIMIT {PAGE}", table.name));
    let page = uow.query_all_raw(statement(uow, &sql, values)).await?;
    let read = page
        .iter()
        .map(|row| wire::read_row(table, row))
        .collect::<Result<Vec<_>, _>>()
        .map_err(sea_orm::DbErr::from)?;
    Ok(read)
}

fn row_id(values: &RowValues) -> Option<Uuid> {
    values
        .get("id")
        .and_then(|id| id.as_str())
        .and_then(|id| Uuid::parse_str(id).ok())
}

/// An export goes into a fresh replica only: merging into one with rows or an identity
/// would mix two histories.
async fn refuse_non_empty(local: &UnitOfWork) -> dal::Result<()> {
    let identity = local
        .query_one_raw(statement(
            local,
            "SELECT count(*) AS n FROM sync_state WHERE key IN ('client_id', 'pull_from')",
            vec![],
        ))
        .await?
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    if identity > 0 {
        return Err(DalError::invalid(
            "the replica to export into already syncs (it has a client id or a pull cursor)",
        ));
    }
    for table in tables().iter() {
        let any = local
            .query_one_raw(statement(
                local,
                &format!("SELECT EXISTS (SELECT 1 FROM \"{}\") AS found", table.name),
                vec![],
            ))
            .await?
            .map(|r| r.try_get::<i64>("", "found"))
            .transpose()?
            .unwrap_or(0);
        if any != 0 {
            return Err(DalError::invalid(format!(
                "the replica to export into already holds rows of {}",
                table.name
            )));
        }
    }
    Ok(())
}

async fn set(local: &UnitOfWork, key: &str, value: &str) -> dal::Result<()> {
    local
        .execute_raw(statement(
            local,
            "INSERT INTO sync_state (key, value) VALUES (?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![key.into(), value.into()],
        ))
        .await?;
    Ok(())
}
