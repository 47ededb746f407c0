//! Live updates addressed to the users a change concerns: replaces each synced table's
//! `{table}_sync_notify` (one empty notification per statement, which woke every online
//! client of every user) with the per-event triggers of `notify::notify_triggers`, which
//! name the owners of the rows written. A queue worker updating one user's tasks no
//! longer makes every other user's devices pull. Postgres only.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::notify;

/// Replaces the notify triggers of the synced tables.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_234000_sync_notify_owners"
    }
}

/// The synced tables as of this migration, each with its path to `users` (the registry's
/// first parents; a test compares the live functions with the registry's).
const OWNERS: [(&str, &[(&str, &str)]); 6] = [
    ("users", &[]),
    ("projects", &[("user_id", "users")]),
    ("tasks", &[("project_id", "projects"), ("user_id", "users")]),
    ("generations", &[("project_id", "projects"), ("user_id", "users")]),
    ("shots", &[("project_id", "projects"), ("user_id", "users")]),
    (
        "shot_generations",
        &[("shot_id", "shots"), ("project_id", "projects"), ("user_id", "users")],
    ),
];

/// The first version's function, which `down` gives back.
const NOTIFY_EVERYONE: &str = "CREATE OR REPLACE FUNCTION dal_sync_notify() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN PERFORM pg_notify('dal_sync', ''); RETURN NULL; END $$";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        for (table, path) in OWNERS {
            notify::notify_triggers(manager, table, path).await?;
        }
        manager
            .get_connection()
            .execute_unprepared("DROP FUNCTION IF EXISTS dal_sync_notify()")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(NOTIFY_EVERYONE).await?;
        for (table, _) in OWNERS {
            for name in notify::trigger_names(table) {
                db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS \"{name}\" ON \"{table}\""))
                    .await?;
            }
            db.execute_unprepared(&format!("DROP FUNCTION IF EXISTS \"dal_sync_notify_{table}\"()"))
                .await?;
            db.execute_unprepared(&format!(
                "CREATE TRIGGER \"{table}_sync_notify\" AFTER INSERT OR UPDATE OR DELETE ON \"{table}\" \
                 FOR EACH STATEMENT EXECUTE FUNCTION dal_sync_notify()"
            ))
            .await?;
        }
        Ok(())
    }
}
