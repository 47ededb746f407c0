//! Pull pages are read in `(sync_txid, id)` order and resume after the last row of the
//! previous page. With an index on `sync_txid` alone, every page sorted all rows of its
//! transaction ids, and the rows present when sync was added all share one id (the
//! migration's), so a full pull of a large table sorted the whole table once per page.
//! An index on `(sync_txid, id)` serves each page as a range scan; it replaces the old one,
//! which it covers. Postgres only: SQLite replicas have no `sync_txid`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// Indexes the pull order `(sync_txid, id)` on every synced table (Postgres only).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_112756_sync_pull_order_index"
    }
}

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
        for table in TABLES {
            db.execute_unprepared(&format!(
                "CREATE INDEX {table}_sync_txid_id_idx ON {table} (sync_txid, id)"
            ))
            .await?;
            db.execute_unprepared(&format!("DROP INDEX {table}_sync_txid_idx")).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for table in TABLES {
            db.execute_unprepared(&format!("CREATE INDEX {table}_sync_txid_idx ON {table} (sync_txid)"))
                .await?;
            db.execute_unprepared(&format!("DROP INDEX {table}_sync_txid_id_idx")).await?;
        }
        Ok(())
    }
}
