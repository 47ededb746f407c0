//! The client's push: reading the outbox into batches, sending them, and settling each
//! answer; draining a long outbox with each answer settled locally while the next batch
//! is already with the server.
//!
//! Settling a batch (forgetting its entries, keeping refused ones as dead letters,
//! storing the rows the server sent back) touches only the entries it acknowledges and
//! rows with no entry still waiting; the next batch's entries are all still waiting. So
//! the next batch reads and is applied exactly as it would be after the settle, and the
//! replica's work overlaps the server's instead of following it. Each settle still
//! commits before the next one starts, in the order the server answered.

use std::sync::atomic::{AtomicBool, Ordering};

use dal::DalError;
use sea_orm::{ConnectionTrait, QueryResult};
use serde_json::Value as Json;
use uuid::Uuid;

use crate::client::{SyncClient, SyncError, sql};
use crate::engine::{SyncOptions, step};
use crate::protocol::{Entry, Op, PushAck, PushBatch, RowValues};
use crate::store::{dead_letter, store_server_rows};
use crate::tables;
use crate::transport::Transport;
use crate::wire;

/// About the most one push's entries carry (their changes, roughly as JSON text).
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Roughly the length of `value` as JSON text, without writing it.
fn json_size(value: &Json) -> usize {
    match value {
        Json::String(s) => s.len() + 2,
        Json::Array(items) => items.iter().map(json_size).sum::<usize>() + items.len() + 2,
        Json::Object(map) => {
            map.iter()
                .map(|(k, v)| k.len() + 4 + json_size(v))
                .sum::<usize>()
                + 2
        }
        _ => 8,
    }
}

impl SyncClient {
    /// Pushes up to `batch` outbox entries, oldest first. Returns how many were settled
    /// (0 when the outbox is empty). Entries leave the outbox only once the server has
    /// confirmed them; refused ones move to the dead-letter table.
    pub async fn push_once(
        &self,
        transport: &dyn Transport,
        batch: usize,
    ) -> Result<usize, SyncError> {
        let _exchange = self.exchange.lock().await;
        // The id before the entries, in the drain's order (see `push_pending`).
        let client_id = self.stored_client_id(&self.db).await?;
        let entries = self.outbox(i64::MIN, batch).await?;
        if entries.is_empty() {
            return Ok(0);
        }
        let sent = entries.last().map_or(0, |e| e.seq);
        let batch = PushBatch { client_id, entries };
        // A gap (the outbox lost entries the server never saw) is not retried: no later
        // push could fill it.
        let mut ack = transport.push(batch).await?;
        // The server acknowledges up to the last number it settled for the client id,
        // which is past this batch when the batch held only retries. The entries after
        // it were not compared with what the server settled under their numbers (a
        // restored replica's may be other writes): they stay until pushed themselves.
        ack.last_seq = ack.last_seq.min(sent);
        Ok(self.settle(client_id, &ack).await? as usize)
    }

    /// Up to `limit` outbox entries numbered after `after`, oldest first.
    async fn outbox(&self, after: i64, limit: usize) -> dal::Result<Vec<Entry>> {
        let rows = self
            .db
            .query_all_raw(sql(
                "SELECT seq, table_name, row_id, op, changes, base_version, client_time FROM sync_outbox \
                 WHERE seq > ? ORDER BY seq LIMIT ?",
                vec![after.into(), (limit as i64).into()],
            ))
            .await?;
        // A batch of large rows stops early, so its request stays well under a sync
        // server's body limit (32 MiB by default) whatever the batch size.
        let mut entries = Vec::with_capacity(rows.len());
        let mut bytes = 0;
        for row in &rows {
            let entry = self.entry(row)?;
            bytes += entry.changes.values().map(json_size).sum::<usize>() + 256;
            if !entries.is_empty() && bytes > MAX_BATCH_BYTES {
                break;
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    pub(crate) fn entry(&self, row: &QueryResult) -> dal::Result<Entry> {
        let seq: i64 = row.try_get("", "seq")?;
        let bad = |column: &'static str, why: &str| {
            DalError::undecodable("sync_outbox", seq, column, why)
        };
        let table: String = row.try_get("", "table_name")?;
        let spec = tables::table(&table).ok_or_else(|| bad("table_name", "not a synced table"))?;
        let changes: String = row.try_get("", "changes")?;
        let mut changes: RowValues =
            serde_json::from_str(&changes).map_err(|_| bad("changes", "not a JSON object"))?;
        // SQLite stores booleans as 0/1.
        for (column, value) in changes.iter_mut() {
            if spec.kind(column) == Some(tables::Kind::Bool)
                && let Some(n) = value.as_i64()
            {
                *value = Json::Bool(n != 0);
            }
        }
        let client_time: String = row.try_get("", "client_time")?;
        let client_time = wire::parse_timestamp(&client_time)
            .map(|t| wire::format_timestamp(t + self.clock_offset))
            .unwrap_or(client_time);
        Ok(Entry {
            seq,
            row_id: Uuid::parse_str(&row.try_get::<String>("", "row_id")?)
                .map_err(|_| bad("row_id", "not a uuid"))?,
            op: Op::parse(&row.try_get::<String>("", "op")?)
                .ok_or_else(|| bad("op", "not insert, update or delete"))?,
            table,
            changes,
            base_version: row.try_get("", "base_version")?,
            client_time,
        })
    }

    /// Forgets entries up to the acknowledged one, keeps refused ones as dead letters, and
    /// stores the server's version of the rows the batch wrote (which undoes a refused
    /// change), all in one transaction. A row with a later change still waiting keeps it:
    /// that change's answer brings the row back. Refused, changing nothing, when the
    /// replica no longer has `client_id`, the id the batch went under (another handle on
    /// the file took a new one and renumbered the outbox).
    async fn settle(&self, client_id: Uuid, ack: &PushAck) -> dal::Result<u64> {
        let last_seq = ack.last_seq;
        let uow = self.db.begin().await?;
        if self.stored_client_id(&uow).await? != client_id {
            return Err(client_id_changed());
        }
        for (seq, reason) in ack.rejected.iter().filter(|(s, _)| *s <= last_seq) {
            dead_letter(&uow, *seq, reason).await?;
        }
        let settled = uow
            .execute_raw(sql(
                "DELETE FROM sync_outbox WHERE seq <= ?",
                vec![last_seq.into()],
            ))
            .await?
            .rows_affected();
        store_server_rows(&uow, &ack.rows).await?;
        uow.commit().await?;
        Ok(settled)
    }

    /// [`SyncClient::settle`] alone, bounded by `options.step_timeout`.
    async fn settle_within(
        &self,
        options: &SyncOptions,
        client_id: Uuid,
        ack: &PushAck,
    ) -> Result<u64, SyncError> {
        step(options, async { Ok(self.settle(client_id, ack).await?) }).await
    }

    /// Pushes the outbox in batches of up to `batch` entries until it is empty (`true`)
    /// or `stop` is set (`false`), each batch (its push and the settle of the one before)
    /// bounded by `options.step_timeout`. On an error (the server's, or reading the next
    /// batch) every batch the server answered before it is settled, unless the error is
    /// the settle's own: then that answer is dropped, as if it had been lost, and its
    /// entries go again (the server passes over what it already settled).
    ///
    /// ```no_run
    /// # async fn run(client: sync::SyncClient, transport: &dyn sync::Transport) -> Result<(), sync::SyncError> {
    /// use std::sync::atomic::AtomicBool;
    /// let options = sync::SyncOptions::default();
    /// let drained = client.push_pending(transport, options.batch, &options, &AtomicBool::new(false)).await?;
    /// assert!(drained);
    /// # Ok(()) }
    /// ```
    pub async fn push_pending(
        &self,
        transport: &dyn Transport,
        batch: usize,
        options: &SyncOptions,
        stop: &AtomicBool,
    ) -> Result<bool, SyncError> {
        let _exchange = self.exchange.lock().await;
        // An answer not settled yet: its client id, the last entry its batch sent.
        let mut unsettled: Option<(PushAck, Uuid, i64)> = None;
        loop {
            // Read again for each batch: another process on the file may have taken a new
            // client id (renumbering the outbox; handles in this process wait for the
            // exchange lock); entries read after an old number would then be others.
            let client_id = self.stored_client_id(&self.db).await?;
            if unsettled
                .as_ref()
                .is_some_and(|(_, id, _)| *id != client_id)
            {
                return Err(client_id_changed().into());
            }
            let stopped = stop.load(Ordering::SeqCst);
            let after = unsettled.as_ref().map_or(i64::MIN, |(_, _, sent)| *sent);
            let entries = match stopped {
                true => Vec::new(),
                false => match self.outbox(after, batch.max(1)).await {
                    Ok(entries) => entries,
                    Err(e) => {
                        // The batch before is the server's word whatever this one holds
                        // (an entry that no longer decodes stops the outbox there): it is
                        // settled, as it would be pushed alone, before the error stops the
                        // push.
                        if let Some((ack, id, _)) = unsettled.take() {
                            self.settle_within(options, id, &ack).await?;
                        }
                        return Err(e.into());
                    }
                },
            };
            let Some(sent) = entries.last().map(|e| e.seq) else {
                if let Some((ack, id, _)) = unsettled.take() {
                    self.settle_within(options, id, &ack).await?;
                }
                return Ok(!stopped);
            };
            let request = PushBatch { client_id, entries };
            let previous = unsettled.take();
            let (settled, answer) = step(options, async {
                let push = async { transport.push(request).await };
                Ok(match &previous {
                    Some((ack, id, _)) => {
                        let (settled, answer) = tokio::join!(self.settle(*id, ack), push);
                        (settled.map(|_| ()), answer)
                    }
                    None => (Ok(()), push.await),
                })
            })
            .await?;
            settled?;
            let mut ack = answer?;
            // The server acknowledges up to the last number it settled for the client id,
            // which is past this batch when the batch held only retries. The entries after
            // it were not compared with what the server settled under their numbers (a
            // restored replica's may be other writes): they stay until pushed themselves.
            ack.last_seq = ack.last_seq.min(sent);
            if ack.last_seq < sent {
                // Short of the batch: settle it now and read the rest from the start.
                self.settle_within(options, client_id, &ack).await?;
            } else {
                unsettled = Some((ack, client_id, sent));
            }
        }
    }
}

/// The error of a push whose client id another process on the same file replaced while
/// the push was under way: its answer is left alone (the new id's recovery asked the
/// server what it had settled), and the next push goes under the new id.
fn client_id_changed() -> DalError {
    DalError::invalid(
        "the client id changed while a push was under way (another process on the file took \
         a new one); its answer was left to the new id's recovery",
    )
}
