//! What an application (or Studio) may do with a dead letter: send it again, or drop it.

use dal::prelude::*;

use crate::client::SyncClient;

impl SyncClient {
    /// Queues dead letter `seq` again: its change goes back to the end of the outbox
    /// under a new sequence number, with the base version it was made on, and leaves the
    /// dead letters, in one local transaction. The next push sends it; the server applies
    /// it or refuses it again (then it is a dead letter again, with the new reason).
    /// `false` if there is no such dead letter.
    pub async fn retry_dead_letter(&self, seq: i64) -> dal::Result<bool> {
        let _exchange = self.exchange.lock().await;
        let uow = self.db.begin().await?;
        let moved = uow
            .execute_sql(
                "INSERT INTO sync_outbox (table_name, row_id, op, changes, base_version, client_time) \
                 SELECT table_name, row_id, op, changes, base_version, client_time \
                 FROM sync_dead_letters WHERE seq = ?",
                vec![seq.into()],
            )
            .await?;
        if moved == 0 {
            uow.rollback().await?;
            return Ok(false);
        }
        uow.execute_sql(
            "DELETE FROM sync_dead_letters WHERE seq = ?",
            vec![seq.into()],
        )
        .await?;
        uow.commit().await?;
        Ok(true)
    }

    /// Drops dead letter `seq` for good (its change is not sent again). `false` if there
    /// is no such dead letter.
    pub async fn discard_dead_letter(&self, seq: i64) -> dal::Result<bool> {
        let _exchange = self.exchange.lock().await;
        let dropped = self
            .db
            .execute_sql(
                "DELETE FROM sync_dead_letters WHERE seq = ?",
                vec![seq.into()],
            )
            .await?;
        Ok(dropped > 0)
    }
}
