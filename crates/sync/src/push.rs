//! Draining the outbox: batch after batch, each batch's answer settled locally while the
//! next batch is already with the server.
//!
//! Settling a batch (forgetting its entries, keeping refused ones as dead letters,
//! storing the rows the server sent back) touches only the entries it acknowledges and
//! rows with no entry still waiting; the next batch's entries are all still waiting. So
//! the next batch reads and is applied exactly as it would be after the settle, and the
//! replica's work overlaps the server's instead of following it. Each settle still
//! commits before the next one starts, in the order the server answered.

use std::sync::atomic::{AtomicBool, Ordering};

use dal::DalError;
use uuid::Uuid;

use crate::client::{SyncClient, SyncError};
use crate::engine::{SyncOptions, step};
use crate::protocol::{PushAck, PushBatch};
use crate::transport::Transport;

impl SyncClient {
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
            // Read again for each batch: another handle on the file may have taken a new
            // client id (renumbering the outbox); entries read after an old number would
            // then be other entries.
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
                            step(options, async { Ok(self.settle(id, &ack).await?) }).await?;
                        }
                        return Err(e.into());
                    }
                },
            };
            let Some(sent) = entries.last().map(|e| e.seq) else {
                if let Some((ack, id, _)) = unsettled.take() {
                    step(options, async { Ok(self.settle(id, &ack).await?) }).await?;
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
                step(options, async { Ok(self.settle(client_id, &ack).await?) }).await?;
            } else {
                unsettled = Some((ack, client_id, sent));
            }
        }
    }
}

/// The error of a push whose client id another handle on the same file replaced while
/// the push was under way: its answer is left alone (the new id's recovery asked the
/// server what it had settled), and the next push goes under the new id.
pub(crate) fn client_id_changed() -> DalError {
    DalError::invalid(
        "the client id changed while a push was under way (another handle on the file took a \
         new one); its answer was left to the new id's recovery",
    )
}
