//! Describe what this migration changes, and why.

use sea_orm_migration::prelude::*;

/// The change.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m00000000_000000_template"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// Every migration runs in a transaction, on SQLite too: none stays half-applied.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Build the DDL once for both backends; `crate::columns::Columns` has each
        // backend's column types and constraint names, e.g.
        //
        //     let c = crate::columns::Columns::new(manager.get_database_backend(), "tasks");
        //     manager
        //         .alter_table(
        //             Table::alter()
        //                 .table(Alias::new("tasks"))
        //                 .add_column(c.optional_text("priority"))
        //                 .to_owned(),
        //         )
        //         .await?;
        let _ = manager;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Undo `up`, so `migration down` and `refresh` work.
        let _ = manager;
        Ok(())
    }
}
