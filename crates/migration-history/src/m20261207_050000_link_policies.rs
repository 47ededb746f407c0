//! A row that names more than one parent may be written only if every parent it names is
//! the user's: `shot_generations` links a shot to a generation, and its policy checked
//! only the shot, so a user could link another user's generation into their own
//! timeline (and learn from the answer whether a generation id exists). Reading is
//! unchanged (the rows under the user's shots). Postgres only.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::synced;

/// Tightens the write check of the tables with more than one parent (Postgres only).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_050000_link_policies"
    }
}

type Path = Vec<(&'static str, &'static str)>;

/// The tables with more than one parent, as of this migration, with the path to `users`
/// through each parent column (the first parent's first).
fn linked() -> Vec<(&'static str, Vec<Path>)> {
    vec![(
        "shot_generations",
        vec![
            vec![("shot_id", "shots"), ("project_id", "projects"), ("user_id", "users")],
            vec![
                ("generation_id", "generations"),
                ("project_id", "projects"),
                ("user_id", "users"),
            ],
        ],
    )]
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
        for (table, paths) in linked() {
            synced::parents_policy(manager, table, &paths).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        for (table, paths) in linked() {
            synced::parents_policy(manager, table, &paths[..1]).await?;
        }
        Ok(())
    }
}
