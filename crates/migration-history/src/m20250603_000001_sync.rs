//! Offline-first sync: row metadata on every table, the server's change stamp, and the
//! client's outbox.
//!
//! On both backends every table gains `sync_version` (the row's version, assigned by the
//! server), `last_modified_at` and `device_id` (information only, never used for
//! ordering) and `deleted` (the tombstone). The repositories hide tombstoned rows.
//!
//! Postgres (the server) also gets `sync_txid`, the id of the transaction that last
//! changed the row, kept by a trigger with the version. Pulls select rows by transaction
//! id against the snapshot's `xmin`, which orders changes by commit, not by start.
//! The server also gets `sync_clients` (each client's last applied sequence number),
//! `sync_log` (one row per applied entry, so an entry is applied exactly once) and
//! `sync_conflicts` (the values a conflict rule overwrote).
//!
//! SQLite (the client) gets `sync_outbox`, filled by triggers in the same transaction as
//! the write they record, plus `sync_dead_letters` and `sync_state` (client id, cursor,
//! capture switch). Capture is off until sync is enabled, so a database that never syncs
//! never accumulates an outbox.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::columns::Columns;

/// Adds sync metadata, the server's change stamps and the client's outbox.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20250603_000001_sync"
    }
}

/// Each synced table and its data columns (everything but `id` and the sync metadata),
/// as of this migration.
pub const SYNCED: [(&str, &[&str]); 6] = [
    ("users", &["email", "display_name", "created_at", "deleted"]),
    ("projects", &["name", "user_id", "created_at", "deleted"]),
    (
        "tasks",
        &[
            "task_type",
            "params",
            "status",
            "dependant_on",
            "output_location",
            "created_at",
            "updated_at",
            "project_id",
            "deleted",
        ],
    ),
    (
        "generations",
        &["tasks", "location", "type", "created_at", "updated_at", "project_id", "deleted"],
    ),
    ("shots", &["name", "created_at", "updated_at", "project_id", "deleted"]),
    ("shot_generations", &["shot_id", "generation_id", "position", "deleted"]),
];

const SQLITE_NOW: &str = "strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        for (table, _) in SYNCED {
            let c = Columns::new(backend, table);
            for column in [
                c.big_integer("sync_version", 0),
                c.optional_timestamp("last_modified_at"),
                c.optional_text("device_id"),
                c.boolean("deleted", false),
            ] {
                manager
                    .alter_table(
                        Table::alter()
                            .table(Alias::new(table))
                            .add_column(column)
                            .to_owned(),
                    )
                    .await?;
            }
        }
        let db = manager.get_connection();
        match backend {
            DbBackend::Postgres => postgres_up(db).await,
            _ => sqlite_up(db).await,
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let db = manager.get_connection();
        match backend {
            DbBackend::Postgres => {
                for (table, _) in SYNCED {
                    db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {table}_sync_stamp ON {table}"))
                        .await?;
                    db.execute_unprepared(&format!("DROP INDEX IF EXISTS {table}_sync_txid_idx")).await?;
                    db.execute_unprepared(&format!("ALTER TABLE {table} DROP COLUMN sync_txid")).await?;
                }
                db.execute_unprepared("DROP FUNCTION IF EXISTS dal_sync_stamp()").await?;
                for table in ["sync_conflicts", "sync_log", "sync_clients"] {
                    db.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}")).await?;
                }
            }
            _ => {
                for (table, _) in SYNCED {
                    for op in ["insert", "update", "delete"] {
                        db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {table}_capture_{op}"))
                            .await?;
                    }
                }
                for table in ["sync_dead_letters", "sync_outbox", "sync_state"] {
                    db.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}")).await?;
                }
            }
        }
        for (table, _) in SYNCED {
            for column in ["deleted", "device_id", "last_modified_at", "sync_version"] {
                manager
                    .alter_table(
                        Table::alter()
                            .table(Alias::new(table))
                            .drop_column(Alias::new(column))
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}

async fn postgres_up<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    db.execute_unprepared(
        "CREATE OR REPLACE FUNCTION dal_sync_stamp() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           NEW.sync_txid := pg_current_xact_id(); \
           IF TG_OP = 'INSERT' THEN NEW.sync_version := 1; \
           ELSE NEW.sync_version := OLD.sync_version + 1; END IF; \
           RETURN NEW; \
         END $$",
    )
    .await?;
    for (table, _) in SYNCED {
        db.execute_unprepared(&format!(
            "ALTER TABLE {table} ADD COLUMN sync_txid xid8 NOT NULL DEFAULT pg_current_xact_id()"
        ))
        .await?;
        db.execute_unprepared(&format!("CREATE INDEX {table}_sync_txid_idx ON {table} (sync_txid)"))
            .await?;
        db.execute_unprepared(&format!(
            "CREATE TRIGGER {table}_sync_stamp BEFORE INSERT OR UPDATE ON {table} \
             FOR EACH ROW EXECUTE FUNCTION dal_sync_stamp()"
        ))
        .await?;
    }
    db.execute_unprepared(
        "CREATE TABLE sync_clients (client_id uuid PRIMARY KEY, last_seq bigint NOT NULL DEFAULT 0, \
         updated_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    db.execute_unprepared(
        "CREATE TABLE sync_log (client_id uuid NOT NULL, seq bigint NOT NULL, table_name text NOT NULL, \
         row_id uuid NOT NULL, op text NOT NULL, outcome text NOT NULL, \
         applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (client_id, seq))",
    )
    .await?;
    db.execute_unprepared(
        "CREATE TABLE sync_conflicts (id bigserial PRIMARY KEY, client_id uuid NOT NULL, seq bigint NOT NULL, \
         table_name text NOT NULL, row_id uuid NOT NULL, column_name text, losing_value jsonb, \
         winning_value jsonb, rule text NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    Ok(())
}

async fn sqlite_up<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    db.execute_unprepared("CREATE TABLE sync_state (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL)")
        .await?;
    db.execute_unprepared("INSERT INTO sync_state (key, value) VALUES ('capture', '0')").await?;
    db.execute_unprepared(
        "CREATE TABLE sync_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, table_name TEXT NOT NULL, \
         row_id TEXT NOT NULL, op TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')), \
         changes TEXT NOT NULL CHECK (json_valid(changes)), base_version INTEGER NOT NULL, \
         client_time TEXT NOT NULL)",
    )
    .await?;
    db.execute_unprepared("CREATE INDEX sync_outbox_row_idx ON sync_outbox (table_name, row_id)")
        .await?;
    db.execute_unprepared(
        "CREATE TABLE sync_dead_letters (seq INTEGER NOT NULL PRIMARY KEY, table_name TEXT NOT NULL, \
         row_id TEXT NOT NULL, op TEXT NOT NULL, changes TEXT NOT NULL, base_version INTEGER NOT NULL, \
         client_time TEXT NOT NULL, reason TEXT NOT NULL, failed_at TEXT NOT NULL)",
    )
    .await?;
    let capturing = "(SELECT value FROM sync_state WHERE key = 'capture') = '1'";
    for (table, columns) in SYNCED {
        let new_values: Vec<String> = columns.iter().map(|c| format!("'{c}', NEW.\"{c}\"")).collect();
        db.execute_unprepared(&format!(
            "CREATE TRIGGER {table}_capture_insert AFTER INSERT ON {table} WHEN {capturing} BEGIN \
             INSERT INTO sync_outbox (table_name, row_id, op, changes, base_version, client_time) \
             VALUES ('{table}', NEW.id, 'insert', json_object({}), NEW.sync_version, {SQLITE_NOW}); END",
            new_values.join(", ")
        ))
        .await?;
        let changed: Vec<String> = columns
            .iter()
            .map(|c| format!("SELECT '{c}' AS k, NEW.\"{c}\" AS v WHERE OLD.\"{c}\" IS NOT NEW.\"{c}\""))
            .collect();
        let any_changed: Vec<String> = columns.iter().map(|c| format!("OLD.\"{c}\" IS NOT NEW.\"{c}\"")).collect();
        db.execute_unprepared(&format!(
            "CREATE TRIGGER {table}_capture_update AFTER UPDATE ON {table} \
             WHEN {capturing} AND ({}) BEGIN \
             INSERT INTO sync_outbox (table_name, row_id, op, changes, base_version, client_time) \
             SELECT '{table}', NEW.id, CASE WHEN NEW.deleted = 1 AND OLD.deleted = 0 THEN 'delete' ELSE 'update' END, \
             (SELECT json_group_object(k, v) FROM ({})), OLD.sync_version, {SQLITE_NOW}; END",
            any_changed.join(" OR "),
            changed.join(" UNION ALL ")
        ))
        .await?;
        db.execute_unprepared(&format!(
            "CREATE TRIGGER {table}_capture_delete AFTER DELETE ON {table} WHEN {capturing} AND OLD.deleted = 0 BEGIN \
             INSERT INTO sync_outbox (table_name, row_id, op, changes, base_version, client_time) \
             VALUES ('{table}', OLD.id, 'delete', json_object('deleted', 1), OLD.sync_version, {SQLITE_NOW}); END"
        ))
        .await?;
    }
    Ok(())
}
