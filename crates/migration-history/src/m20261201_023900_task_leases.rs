//! Task leases: a claimed task belongs to its worker only until its lease runs out, so a
//! worker that dies does not leave its task `In Progress` for ever; and indexes that serve
//! the claim, the ready list and the dependants lookup without reading every task.
//!
//! New columns on `tasks`:
//!
//! * `claimed_by` (text): the worker that claimed the task last;
//! * `lease_expires_at` (timestamp): when the claim lapses, while the task is `In Progress`
//!   under a lease; after it, another claim of the type may take the task over;
//! * `attempts` (int, 0): how many times the task was claimed;
//! * `max_attempts` (int, 3, at least 1): after this many claims, a lapsed lease or a
//!   failure ends the task `Failed` instead of handing it out again;
//! * `last_error` (text): why the last attempt failed (the worker's reason, or a lapsed
//!   lease).
//!
//! Indexes, all partial so they hold only the rows a claim can want (the finished tasks,
//! usually most of the table, are not in them):
//!
//! * `tasks_queued_idx (task_type, created_at, id)` of the live `Queued` tasks: the claim's
//!   pick (the oldest queued task of a type) and `ready(Some(type))`, a range read in order;
//! * `tasks_queued_order_idx (created_at, id)` of the same rows: `ready(None)`;
//! * `tasks_leases_idx (task_type, lease_expires_at, id)` of the live `In Progress` tasks:
//!   the lapsed leases of a type, oldest first;
//! * Postgres only, `tasks_dependant_on_idx`, a GIN index on the `uuid[]` column:
//!   `dependants_of` (`dependant_on @> ARRAY[id]`). SQLite has no index over the elements
//!   of a JSON array, so that lookup still reads the live tasks there.
//!
//! The predicates are written as the library's queries write them (`"status" = 'Queued'
//! AND "deleted" = false`, literals rather than parameters), which is what lets both
//! planners prove that a query's rows are in the index: SQLite matches the terms, and a
//! Postgres generic plan cannot use a partial index whose predicate is a parameter.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::columns::Columns;
use crate::synced;

/// Adds the lease columns and the claim's indexes to `tasks` (see the module docs).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_023900_task_leases"
    }
}

const TABLE: &str = "tasks";

/// Partial indexes: name, columns, predicate (the same text on both backends).
const PARTIAL_INDEXES: [(&str, &str, &str); 3] = [
    (
        "tasks_queued_idx",
        "\"task_type\", \"created_at\", \"id\"",
        "\"status\" = 'Queued' AND \"deleted\" = false",
    ),
    (
        "tasks_queued_order_idx",
        "\"created_at\", \"id\"",
        "\"status\" = 'Queued' AND \"deleted\" = false",
    ),
    (
        "tasks_leases_idx",
        "\"task_type\", \"lease_expires_at\", \"id\"",
        "\"status\" = 'In Progress' AND \"deleted\" = false",
    ),
];

/// The columns this migration adds, in the order it adds them (`down` drops them).
const COLUMNS: [&str; 5] = [
    "claimed_by",
    "lease_expires_at",
    "attempts",
    "max_attempts",
    "last_error",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// Every migration runs in a transaction, on SQLite too: none stays half-applied.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let sqlite = backend == DbBackend::Sqlite;
        let c = Columns::new(backend, TABLE);

        // One CHECK per column, named as Postgres names a column's check, the same on
        // both backends. On SQLite they also keep what the values migration checks for the
        // older columns (its triggers name only the columns of their time): text without
        // NUL, integers stored as integers in the 32-bit range. On Postgres, the years both
        // backends store.
        let mut claimed_by = c.optional_text("claimed_by");
        let mut last_error = c.optional_text("last_error");
        let mut lease_expires_at = c.optional_timestamp("lease_expires_at");
        let mut attempts = c.integer("attempts", 0);
        let mut max_attempts = c.integer("max_attempts", 3);
        if sqlite {
            for (col, name) in [(&mut claimed_by, "claimed_by"), (&mut last_error, "last_error")]
            {
                col.check((
                    Alias::new(format!("{TABLE}_{name}_check")),
                    Expr::cust(format!(
                        "\"{name}\" IS NULL OR (typeof(\"{name}\") = 'text' AND instr(\"{name}\", char(0)) = 0)"
                    )),
                ));
            }
        } else {
            lease_expires_at.check((
                Alias::new(format!("{TABLE}_lease_expires_at_check")),
                Expr::cust(
                    "\"lease_expires_at\" >= '0001-01-01 00:00:00+00'::timestamptz \
                     AND \"lease_expires_at\" < '10000-01-01 00:00:00+00'::timestamptz",
                ),
            ));
        }
        for (col, name, least) in [(&mut attempts, "attempts", 0), (&mut max_attempts, "max_attempts", 1)] {
            let range = if sqlite {
                format!("typeof(\"{name}\") = 'integer' AND \"{name}\" BETWEEN {least} AND 2147483647")
            } else {
                format!("\"{name}\" >= {least}")
            };
            col.check((Alias::new(format!("{TABLE}_{name}_check")), Expr::cust(range)));
        }

        // SQLite adds one column per ALTER TABLE; Postgres could take them in one, but the
        // same statements on both keep the history simple to read.
        for column in [claimed_by, lease_expires_at, attempts, max_attempts, last_error] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(TABLE))
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }

        let db = manager.get_connection();
        for (name, columns, predicate) in PARTIAL_INDEXES {
            db.execute_unprepared(&format!(
                "CREATE INDEX \"{name}\" ON \"{TABLE}\" ({columns}) WHERE {predicate}"
            ))
            .await?;
        }
        if !sqlite {
            db.execute_unprepared(
                "CREATE INDEX \"tasks_dependant_on_idx\" ON \"tasks\" USING gin (\"dependant_on\")",
            )
            .await?;
        }
        // The replica's capture triggers list the columns they record: rebuilt, the new
        // columns travel to the server like the others.
        synced::rebuild_capture(manager, TABLE).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared("DROP INDEX \"tasks_dependant_on_idx\"")
                .await?;
        }
        for (name, _, _) in PARTIAL_INDEXES {
            db.execute_unprepared(&format!("DROP INDEX \"{name}\"")).await?;
        }
        synced::drop_capture(manager, TABLE).await?;
        for column in COLUMNS.iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(TABLE))
                        .drop_column(Alias::new(*column))
                        .to_owned(),
                )
                .await?;
        }
        synced::rebuild_capture(manager, TABLE).await?;
        Ok(())
    }
}
