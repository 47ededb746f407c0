//! The six tables of the product's schema.

use sea_orm_migration::prelude::*;

use crate::columns::Columns;

/// Creates `users`, `projects`, `tasks`, `generations`, `shots` and `shot_generations`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20250601_000001_initial_schema"
    }
}

/// The task statuses the CHECK allows, in the product's order.
const TASK_STATUSES: [&str; 6] = [
    "Pending",
    "In Progress",
    "Complete",
    "Failed",
    "Queued",
    "Cancelled",
];

/// Tables in creation order; `down` drops them in reverse.
const TABLES: [&str; 6] = [
    "users",
    "projects",
    "tasks",
    "generations",
    "shots",
    "shot_generations",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();

        let c = Columns::new(backend, "users");
        let mut email = c.optional_text("email");
        email.unique_key();
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("users"))
                    .col(c.id())
                    .col(email)
                    .col(c.optional_text("display_name"))
                    .col(c.timestamp("created_at"))
                    .to_owned(),
            )
            .await?;

        let c = Columns::new(backend, "projects");
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("projects"))
                    .col(c.id())
                    .col(c.text("name"))
                    .col(c.uuid("user_id"))
                    .col(c.timestamp("created_at"))
                    .foreign_key(&mut c.cascade_to("user_id", "users"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(c.index_on("user_id")).await?;

        let c = Columns::new(backend, "tasks");
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("tasks"))
                    .col(c.id())
                    .col(c.text("task_type"))
                    .col(c.json("params"))
                    .col(c.text_in("status", &TASK_STATUSES, "Pending"))
                    .col(c.uuid_list("dependant_on"))
                    .col(c.optional_text("output_location"))
                    .col(c.timestamp("created_at"))
                    .col(c.timestamp("updated_at"))
                    .col(c.uuid("project_id"))
                    .foreign_key(&mut c.cascade_to("project_id", "projects"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(c.index_on("project_id")).await?;

        let c = Columns::new(backend, "generations");
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("generations"))
                    .col(c.id())
                    .col(c.uuid_list("tasks"))
                    .col(c.optional_text("location"))
                    .col(c.optional_text("type"))
                    .col(c.timestamp("created_at"))
                    .col(c.timestamp("updated_at"))
                    .col(c.uuid("project_id"))
                    .foreign_key(&mut c.cascade_to("project_id", "projects"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(c.index_on("project_id")).await?;

        let c = Columns::new(backend, "shots");
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("shots"))
                    .col(c.id())
                    .col(c.text("name"))
                    .col(c.timestamp("created_at"))
                    .col(c.timestamp("updated_at"))
                    .col(c.uuid("project_id"))
                    .foreign_key(&mut c.cascade_to("project_id", "projects"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(c.index_on("project_id")).await?;

        let c = Columns::new(backend, "shot_generations");
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("shot_generations"))
                    .col(c.id())
                    .col(c.uuid("shot_id"))
                    .col(c.uuid("generation_id"))
                    .col(c.integer("position", 0))
                    .foreign_key(&mut c.cascade_to("shot_id", "shots"))
                    .foreign_key(&mut c.cascade_to("generation_id", "generations"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(c.index_on("shot_id")).await?;
        manager.create_index(c.index_on("generation_id")).await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES.iter().rev() {
            manager
                .drop_table(Table::drop().table(Alias::new(*table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
