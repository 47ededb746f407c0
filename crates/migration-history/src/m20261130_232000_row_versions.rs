//! Every row carries `row_version`, the token of optimistic concurrency: it starts at 1
//! and grows by one with every write to the row, whoever makes it.
//!
//! The library's updates name the version they read (`WHERE row_version = $read`) and
//! set the next one themselves, so a write based on a stale read changes nothing and is
//! reported as `DalError::Stale`. Other writers (the web app through Supabase, a DBA with
//! psql, the sync engine applying pulled rows, the sqlite3 CLI) do not know the column; a
//! trigger bumps it for them, so a UI that read a row before such a write cannot
//! overwrite it either:
//!
//! * Postgres: a `BEFORE UPDATE` trigger sets `NEW.row_version = OLD.row_version + 1`
//!   unless the statement already changed it.
//! * SQLite (whose `BEFORE` triggers cannot change `NEW`): an `AFTER UPDATE` trigger
//!   writes the next version when the statement left it unchanged. Its inner update
//!   changes no synced column, so the sync capture triggers record nothing for it.
//!
//! `row_version` is local to each database: it is not `sync_version` (the server's
//! version of a synced row, which a SQLite replica only learns from the server) and it is
//! not synced.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::columns::Columns;

/// Adds `row_version` to every table and the triggers that keep it (see the module docs).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261130_232000_row_versions"
    }
}

/// The tables as of this migration.
const TABLES: [&str; 6] = ["users", "projects", "tasks", "generations", "shots", "shot_generations"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// Every migration runs in a transaction, on SQLite too: none stays half-applied.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let db = manager.get_connection();
        if backend == DbBackend::Postgres {
            db.execute_unprepared(
                "CREATE OR REPLACE FUNCTION dal_row_version() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN \
                   IF NEW.row_version IS NOT DISTINCT FROM OLD.row_version THEN \
                     NEW.row_version := OLD.row_version + 1; \
                   END IF; \
                   RETURN NEW; \
                 END $$",
            )
            .await?;
        }
        for table in TABLES {
            let mut column = Columns::new(backend, table).big_integer("row_version", 1);
            if backend == DbBackend::Sqlite {
                // What the values migration checks for the other integer columns.
                column.check((
                    Alias::new(format!("{table}_row_version_is_integer")),
                    Expr::cust("typeof(\"row_version\") = 'integer'"),
                ));
            }
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
            db.execute_unprepared(&match backend {
                DbBackend::Postgres => format!(
                    "CREATE TRIGGER \"{table}_row_version\" BEFORE UPDATE ON \"{table}\" \
                     FOR EACH ROW EXECUTE FUNCTION dal_row_version()"
                ),
                _ => format!(
                    "CREATE TRIGGER \"{table}_row_version\" AFTER UPDATE ON \"{table}\" \
                     WHEN NEW.\"row_version\" IS OLD.\"row_version\" BEGIN \
                     UPDATE \"{table}\" SET \"row_version\" = OLD.\"row_version\" + 1 WHERE \"id\" = NEW.\"id\"; END"
                ),
            })
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let db = manager.get_connection();
        for table in TABLES {
            db.execute_unprepared(&match backend {
                DbBackend::Postgres => format!("DROP TRIGGER \"{table}_row_version\" ON \"{table}\""),
                _ => format!("DROP TRIGGER \"{table}_row_version\""),
            })
            .await?;
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        .drop_column(Alias::new("row_version"))
                        .to_owned(),
                )
                .await?;
        }
        if backend == DbBackend::Postgres {
            db.execute_unprepared("DROP FUNCTION IF EXISTS dal_row_version()").await?;
        }
        Ok(())
    }
}
