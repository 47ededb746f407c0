//! What the server remembers of each settled outbox entry, beyond its outcome:
//!
//! * `entry_digest`: a digest of the write, so a client that sends a sequence number again
//!   with a different write (its database was restored from a backup, or copied to a
//!   second device that kept the client id) is refused instead of having that write taken
//!   for a retry and dropped.
//! * `changed_columns` and `row_version` (the row's version after the entry): which
//!   columns each version of a row changed and who wrote it, so a conflict is recorded
//!   exactly for the columns another writer changed since the entry's base version.
//!
//! Entries settled before this migration have none of these and are not compared.
//! Postgres only: `sync_log` lives on the server.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// Adds `sync_log.entry_digest`, `changed_columns` and `row_version` (Postgres only).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_112940_sync_log_details"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// Every migration runs in a transaction, on SQLite too: none stays half-applied.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE sync_log ADD COLUMN entry_digest text, \
                 ADD COLUMN changed_columns text[], ADD COLUMN row_version bigint",
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared("CREATE INDEX sync_log_row_idx ON sync_log (row_id, row_version)")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                "DROP INDEX sync_log_row_idx; ALTER TABLE sync_log DROP COLUMN entry_digest, \
                 DROP COLUMN changed_columns, DROP COLUMN row_version",
            )
            .await?;
        Ok(())
    }
}
