//! The server remembers a digest of every outbox entry it settled, so a client that sends
//! a sequence number again with a different write (its database was restored from a
//! backup, or copied to a second device that kept the client id) is refused instead of
//! having that write taken for a retry and dropped. Entries settled before this migration
//! have no digest and are not compared. Postgres only: `sync_log` lives on the server.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// Adds `sync_log.entry_digest` (Postgres only).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_112940_sync_log_entry_digest"
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
            .execute_unprepared("ALTER TABLE sync_log ADD COLUMN entry_digest text")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE sync_log DROP COLUMN entry_digest")
            .await?;
        Ok(())
    }
}
