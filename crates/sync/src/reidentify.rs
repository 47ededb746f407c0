//! A replica taking a new client id: how a database restored from a backup, or copied to
//! a second device, goes on syncing.
//!
//! The server knows a client by its id and the sequence numbers of its entries. A restored
//! or copied replica carries an id whose history on the server went on without it: its
//! next entries reuse numbers the server settled as other writes, and the server refuses
//! them ([`TransportError::Diverged`]). [`SyncClient::reidentify`] moves the replica onto
//! a fresh id:
//!
//! 1. It asks the server which of its outbox entries it has settled under the old id as
//!    the very same writes ([`Transport::settled`], by number and
//!    [`Entry::digest`](crate::protocol::Entry::digest)): those are on the server already.
//!    Read-only on both sides; the question goes in chunks.
//! 2. In one local transaction: it drops those entries (the ones the server refused go to
//!    the dead letters, as a push's answer would have put them), stores the server's
//!    version of the rows they wrote, renumbers the other entries 1..n under a new random
//!    id in their order, moves the dead letters of the old id below the new numbers, and
//!    records what it did (`sync_state`, shown by [`SyncStatus`](crate::SyncStatus)).
//!
//! Then pushes and pulls go on as usual: the new id is unknown to the server, so the
//! entries it lacks are applied once each, and the pull cursor (as old as the backup)
//! brings what the replica missed. A crash or failure before step 2 commits changes
//! nothing; running it again is harmless (it asks about whatever id the replica has then).
//!
//! The engine does this by itself when a push answers `Diverged`. Then every entry the
//! other history shares with this outbox is settled already (a device pushes in order, so
//! the server reached the reused number only after the shared ones), so nothing is sent
//! twice. An application that restores a backup on a device may call it at once instead
//! ([`SyncEngine::reidentify`](crate::SyncEngine::reidentify)). On a *copy* whose twin is
//! still in use, leave it to the engine: the entries both files hold and neither has
//! pushed yet would otherwise reach the server once from each.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dal::DalError;
use dal::prelude::*;
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use uuid::Uuid;

use crate::client::{SyncClient, SyncError, set_state, sql, state};
use crate::protocol::{SettledQuery, SettledReply};
use crate::store::{dead_letter, store_server_rows};
use crate::transport::{Transport, TransportError};

/// Outbox entries per question to the server (well under a sync server's batch limit).
const QUESTION_ENTRIES: i64 = 500;

/// What one change of client id did: kept in the replica and shown in
/// [`SyncStatus::reidentified`](crate::SyncStatus::reidentified).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reidentified {
    /// The client id given up.
    pub from: Uuid,
    /// The new client id.
    pub to: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// Why: the refusal that made the engine do it, or that the application asked.
    pub reason: String,
    /// Outbox entries the server already had as the same writes under the old id: dropped
    /// instead of being sent again (the refused ones among them are dead letters now).
    pub already_on_server: u64,
    /// Of those, the ones the server had refused: moved to the dead letters.
    pub dead_lettered: u64,
    /// Entries the server did not have: queued again under the new id, numbered 1..n in
    /// their order.
    pub requeued: u64,
}

impl SyncClient {
    /// Takes a new client id without losing or doubling a write: for a replica restored
    /// from a backup or copied from another device (whose pushes the server refuses with
    /// [`TransportError::Diverged`]), and harmless for any other. Entries the server has
    /// already settled under the old id as the same writes are dropped (refused ones
    /// become dead letters), the rest are queued again under the new id; the next push
    /// sends them, and the next pull brings what the replica missed. Needs the server: it
    /// fails, changing nothing, when the server cannot answer. See the module
    /// documentation for the steps and the case of a copy still in use.
    pub async fn reidentify(&self, transport: &dyn Transport) -> Result<Reidentified, SyncError> {
        self.reidentify_because(
            transport,
            "asked by the application",
            Duration::from_secs(60),
        )
        .await
    }

    /// [`SyncClient::reidentify`], recording `reason`, each question to the server bounded
    /// by `step_timeout`.
    pub(crate) async fn reidentify_because(
        &self,
        transport: &dyn Transport,
        reason: &str,
        step_timeout: Duration,
    ) -> Result<Reidentified, SyncError> {
        let _exchange = self.exchange.lock().await;
        let old = self.stored_client_id(&self.db).await?;
        let answer = self.ask(transport, old, step_timeout).await?;

        let uow = self.db.begin().await?;
        if self.stored_client_id(&uow).await? != old {
            // Another handle on the same file changed it meanwhile: its answer stands.
            return Err(DalError::invalid(
                "the client id changed while a new one was being taken; nothing was changed",
            )
            .into());
        }
        for (seq, why) in &answer.rejected {
            dead_letter(&uow, *seq, why).await?;
        }
        let already_on_server = uow
            .execute_raw(sql(
                "DELETE FROM sync_outbox WHERE seq IN (SELECT value FROM json_each(?))",
                vec![Json::from(answer.settled.clone()).to_string().into()],
            ))
            .await?
            .rows_affected();
        store_server_rows(&uow, &answer.rows).await?;
        retire_dead_letters(&uow).await?;
        let requeued = renumber_outbox(&uow).await?;
        let record = Reidentified {
            from: old,
            to: Uuid::new_v4(),
            at: Utc::now(),
            reason: reason.to_owned(),
            already_on_server,
            dead_lettered: answer.rejected.len() as u64,
            requeued,
        };
        set_state(&uow, "client_id", &record.to.to_string()).await?;
        set_state(
            &uow,
            "reidentified",
            &serde_json::to_string(&record).unwrap_or_default(),
        )
        .await?;
        uow.commit().await?;
        *self.client_id.lock().expect("client id lock") = record.to;
        tracing::warn!(
            from = %record.from,
            to = %record.to,
            already_on_server,
            requeued,
            reason,
            "the replica took a new client id"
        );
        Ok(record)
    }

    /// What the last change of client id did, if the replica ever changed it.
    pub async fn last_reidentified(&self) -> dal::Result<Option<Reidentified>> {
        Ok(state(&self.db, "reidentified")
            .await?
            .and_then(|text| serde_json::from_str(&text).ok()))
    }

    /// Asks the server, chunk by chunk, which outbox entries it settled under `client` as
    /// the same writes; the rows of the answers are kept in order, each row once.
    async fn ask(
        &self,
        transport: &dyn Transport,
        client: Uuid,
        step_timeout: Duration,
    ) -> Result<SettledReply, SyncError> {
        let mut answer = SettledReply::default();
        let mut seen = std::collections::HashSet::new();
        let mut after = i64::MIN;
        // A server with a lower limit answers "too large": ask about fewer at a time.
        let mut chunk = QUESTION_ENTRIES;
        loop {
            let rows = self
                .db
                .query_all_raw(sql(
                    "SELECT seq, table_name, row_id, op, changes, base_version, client_time \
                     FROM sync_outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                    vec![after.into(), chunk.into()],
                ))
                .await?;
            let Some(last) = rows.last() else {
                return Ok(answer);
            };
            let last: i64 = last.try_get("", "seq").map_err(DalError::from)?;
            let entries = rows
                .iter()
                .map(|row| self.entry(row).map(|e| (e.seq, e.digest())))
                .collect::<dal::Result<Vec<_>>>()?;
            let query = SettledQuery {
                client_id: client,
                entries,
            };
            let reply = match tokio::time::timeout(step_timeout, transport.settled(query)).await {
                Ok(Err(TransportError::TooLarge(_))) if chunk > 1 => {
                    chunk /= 2;
                    continue;
                }
                Ok(reply) => reply?,
                Err(_) => {
                    return Err(TransportError::Transient(format!(
                        "no answer within {step_timeout:?}"
                    ))
                    .into());
                }
            };
            after = last;
            answer.settled.extend(reply.settled);
            answer.rejected.extend(reply.rejected);
            answer.rows.extend(
                reply
                    .rows
                    .into_iter()
                    .filter(|(table, id, _)| seen.insert((table.clone(), *id))),
            );
        }
    }
}

/// Moves every dead letter to a number at or below 0, below any it already has there,
/// keeping their order: the new client id numbers its entries from 1 again, and its
/// refusals must not collide with the old ones. The shift takes each number out of the
/// range the table holds, so no two rows ever share one midway through the update.
async fn retire_dead_letters(uow: &UnitOfWork) -> dal::Result<()> {
    let row = uow
        .query_one_raw(sql(
            "SELECT min(seq) AS low, max(seq) AS high FROM sync_dead_letters",
            vec![],
        ))
        .await?;
    let (Some(low), Some(high)) = (
        row.as_ref()
            .and_then(|r| r.try_get::<Option<i64>>("", "low").ok().flatten()),
        row.as_ref()
            .and_then(|r| r.try_get::<Option<i64>>("", "high").ok().flatten()),
    ) else {
        return Ok(());
    };
    if high <= 0 {
        return Ok(());
    }
    let shift = high.max(high - low + 1);
    uow.execute_raw(sql(
        "UPDATE sync_dead_letters SET seq = seq - ?",
        vec![shift.into()],
    ))
    .await?;
    Ok(())
}

/// Renumbers the outbox 1..n in its order and makes the next entry n + 1: the sequence a
/// new client id starts with. Through negative numbers, so no two rows ever share one.
async fn renumber_outbox(uow: &UnitOfWork) -> dal::Result<u64> {
    uow.execute_raw(sql("UPDATE sync_outbox SET seq = -seq", vec![]))
        .await?;
    let n = uow
        .execute_raw(sql(
            "UPDATE sync_outbox SET seq = r.n FROM \
             (SELECT seq AS old, row_number() OVER (ORDER BY seq DESC) AS n FROM sync_outbox) AS r \
             WHERE sync_outbox.seq = r.old",
            vec![],
        ))
        .await?
        .rows_affected();
    // The outbox's AUTOINCREMENT counter: entries written from now on follow on from n.
    uow.execute_raw(sql(
        "DELETE FROM sqlite_sequence WHERE name = 'sync_outbox'",
        vec![],
    ))
    .await?;
    uow.execute_raw(sql(
        "INSERT INTO sqlite_sequence (name, seq) VALUES ('sync_outbox', ?)",
        vec![(n as i64).into()],
    ))
    .await?;
    Ok(n)
}
