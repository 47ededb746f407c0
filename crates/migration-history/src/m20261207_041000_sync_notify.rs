//! Live updates: every statement that changes a synced table notifies the `dal_sync`
//! channel ([`crate::synced::NOTIFY_CHANNEL`]), whoever runs it (a sync push, the web app
//! through supabase-js, a DBA in psql). A sync server `LISTEN`s there and tells its online
//! clients to pull. Postgres delivers a transaction's notifications at commit and folds
//! identical ones, so a bulk write costs one notification. Postgres only.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::synced::notify_trigger;

/// Adds `dal_sync_notify()` and a statement trigger calling it on every synced table.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_041000_sync_notify"
    }
}

/// The synced tables as of this migration; a table made synced later gets the trigger
/// from `synced::make_synced`.
const TABLES: [&str; 6] = ["users", "projects", "tasks", "generations", "shots", "shot_generations"];

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
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE OR REPLACE FUNCTION dal_sync_notify() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN PERFORM pg_notify('dal_sync', ''); RETURN NULL; END $$",
        )
        .await?;
        for table in TABLES {
            db.execute_unprepared(&notify_trigger(table)).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for table in TABLES {
            db.execute_unprepared(&format!(
                "DROP TRIGGER IF EXISTS \"{table}_sync_notify\" ON \"{table}\""
            ))
            .await?;
        }
        db.execute_unprepared("DROP FUNCTION IF EXISTS dal_sync_notify()")
            .await?;
        Ok(())
    }
}
