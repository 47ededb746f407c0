//! Which user a sync client belongs to: `sync_clients.user_id`, set by the HTTP sync
//! server the first time an authenticated user pushes under a client id, and compared on
//! every later push, so one user cannot replay or continue another user's sequence
//! numbers. Clients of the direct transport (trusted services) leave it empty.
//! Postgres only: `sync_clients` lives on the server.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// Adds `sync_clients.user_id` (Postgres only).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_040000_sync_client_users"
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
            .execute_unprepared("ALTER TABLE sync_clients ADD COLUMN user_id uuid")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE sync_clients DROP COLUMN user_id")
            .await?;
        Ok(())
    }
}
