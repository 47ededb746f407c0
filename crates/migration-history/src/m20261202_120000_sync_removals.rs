//! Rows leaving replicas: deletes by any writer, and rows given to another user.
//!
//! A replica learns of changes by pulling rows stamped with their transaction id; a row
//! deleted outright on the server (the web app through Supabase, a DBA with psql) leaves
//! nothing to pull, and a project moved to another user leaves its old owner's replica
//! holding it. Postgres now logs both in `sync_removals`, in the writer's transaction:
//!
//! * `{table}_sync_removal`, `BEFORE DELETE` on every synced table, logs the row with its
//!   owning user (reason `deleted`), found over the live rows of the table's path to
//!   `users`. Every synced foreign key cascades (`ON DELETE CASCADE`, initial schema), so a
//!   `DELETE FROM projects` deletes the project, then its tasks, shots, ...: those find
//!   their path broken (the project is gone) and are not logged, since the project's
//!   removal covers them: a replica deletes a removed row with everything under it, as
//!   the cascade did. A delete logs one row per row it names, however much hangs off it.
//! * `{table}_sync_moved`, `AFTER UPDATE` of the column towards the owner, logs the row
//!   for its old owner (reason `moved`) when the owner changes, and re-stamps every row
//!   under it (down the owner paths, which the `_sync_moved` triggers' columns give) with
//!   the current transaction id, so the new owner's next pull carries them
//!   although they did not change. A re-stamp is no write: `dal_sync_stamp` and
//!   `dal_row_version` leave `sync_version` and `row_version` as they were (no spurious
//!   conflicts, no stale reads), which they recognise by the transaction-local setting
//!   `dal.sync_restamp` together with a row whose other columns did not change.
//! * `{table}_sync_truncate` refuses `TRUNCATE`, which fires no row triggers: replicas
//!   would keep the rows for ever.
//!
//! Pulls deliver the removals of their window (`sync::protocol::PullPage::removed`), a
//! user's own only in a pull made as that user (row-level security on `sync_removals`).
//! The log is never pruned here; `removed_at` is there to prune it by age.
//!
//! The per-table triggers and their functions come from `synced::removal_triggers`, which
//! `synced::owner_policy` calls, so a synced table created by a later migration gets them
//! with its policy. They run with the writer's rights: a user of the web app deleting
//! their own rows sees their whole path and may log removals of their own only (the
//! policy on `sync_removals`); Postgres runs a cascade's deletes as the tables' owner.
//! SQLite (the replica) needs nothing: this migration does nothing there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::synced;

/// Logs deletes and owner changes of synced rows for the replicas (Postgres only).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_120000_sync_removals"
    }
}

/// Each synced table's path to its owning user, as of this migration (the row-level
/// security policies' paths).
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

const TABLES: &str = "CREATE TABLE sync_removals ( \
       seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
       txid xid8 NOT NULL DEFAULT pg_current_xact_id(), \
       table_name text NOT NULL, \
       row_id uuid NOT NULL, \
       owner_id uuid, \
       reason text NOT NULL CHECK (reason IN ('deleted', 'moved')), \
       removed_at timestamptz NOT NULL DEFAULT now()); \
     CREATE INDEX sync_removals_window_idx ON sync_removals (txid, seq); \
     CREATE INDEX sync_removals_owner_idx ON sync_removals (owner_id, txid, seq); \
     GRANT SELECT, INSERT ON sync_removals TO authenticated; \
     ALTER TABLE sync_removals ENABLE ROW LEVEL SECURITY; \
     CREATE POLICY sync_removals_owner ON sync_removals FOR ALL TO authenticated \
       USING (owner_id = dal_request_user_id()) WITH CHECK (owner_id = dal_request_user_id())";

/// Re-stamps the rows under `p_ids` of `p_table` (transitively, along the owner paths)
/// with the current transaction id, versions untouched. A table's children on owner paths
/// are read from the schema itself: the tables whose `{table}_sync_moved` trigger watches
/// a column referencing `p_table` (that column is their first step towards `users`).
const RESTAMP: &str = "CREATE OR REPLACE FUNCTION dal_sync_restamp(p_table text, p_ids uuid[]) RETURNS void \
     LANGUAGE plpgsql AS $$ \
     DECLARE child record; child_ids uuid[]; \
     BEGIN \
       FOR child IN \
         SELECT k.relname::text AS table_name, a.attname::text AS parent_column \
         FROM pg_trigger t \
         JOIN pg_class k ON k.oid = t.tgrelid \
         JOIN pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum = t.tgattr[0] \
         JOIN pg_constraint c ON c.conrelid = t.tgrelid AND c.contype = 'f' \
           AND c.conkey = ARRAY[a.attnum] AND c.confrelid = to_regclass(quote_ident(p_table)) \
         WHERE t.tgname = k.relname || '_sync_moved' \
         ORDER BY 1 \
       LOOP \
         PERFORM set_config('dal.sync_restamp', 'on', true); \
         EXECUTE format('WITH s AS (UPDATE %I SET sync_txid = pg_current_xact_id() \
                         WHERE %I = ANY($1) RETURNING id) SELECT array_agg(id) FROM s', \
                        child.table_name, child.parent_column) INTO child_ids USING p_ids; \
         PERFORM set_config('dal.sync_restamp', 'off', true); \
         IF child_ids IS NOT NULL THEN PERFORM dal_sync_restamp(child.table_name, child_ids); END IF; \
       END LOOP; \
     END $$";

const REFUSE_TRUNCATE: &str = "CREATE OR REPLACE FUNCTION dal_sync_refuse_truncate() RETURNS trigger \
     LANGUAGE plpgsql AS $$ \
     BEGIN \
       RAISE EXCEPTION 'TRUNCATE of synced table % is refused: replicas would keep its rows. \
Use DELETE FROM %, which replicas follow', TG_TABLE_NAME, TG_TABLE_NAME \
         USING ERRCODE = 'feature_not_supported'; \
     END $$";

/// A re-stamp (see the module docs) keeps the version; any other write bumps it.
const STAMP: &str = "CREATE OR REPLACE FUNCTION dal_sync_stamp() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN \
       NEW.sync_txid := pg_current_xact_id(); \
       IF TG_OP = 'INSERT' THEN NEW.sync_version := 1; \
       ELSIF current_setting('dal.sync_restamp', true) = 'on' \
         AND (to_jsonb(NEW) - 'sync_txid') = (to_jsonb(OLD) - 'sync_txid') THEN NULL; \
       ELSE NEW.sync_version := OLD.sync_version + 1; END IF; \
       RETURN NEW; \
     END $$";

const ROW_VERSION: &str = "CREATE OR REPLACE FUNCTION dal_row_version() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN \
       IF current_setting('dal.sync_restamp', true) = 'on' \
         AND (to_jsonb(NEW) - 'sync_txid') = (to_jsonb(OLD) - 'sync_txid') THEN RETURN NEW; END IF; \
       IF NEW.row_version IS NOT DISTINCT FROM OLD.row_version THEN \
         NEW.row_version := OLD.row_version + 1; \
       END IF; \
       RETURN NEW; \
     END $$";

/// The two functions as the earlier migrations left them, for `down`.
const STAMP_BEFORE: &str = "CREATE OR REPLACE FUNCTION dal_sync_stamp() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN \
       NEW.sync_txid := pg_current_xact_id(); \
       IF TG_OP = 'INSERT' THEN NEW.sync_version := 1; \
       ELSE NEW.sync_version := OLD.sync_version + 1; END IF; \
       RETURN NEW; \
     END $$";

const ROW_VERSION_BEFORE: &str = "CREATE OR REPLACE FUNCTION dal_row_version() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN \
       IF NEW.row_version IS NOT DISTINCT FROM OLD.row_version THEN \
         NEW.row_version := OLD.row_version + 1; \
       END IF; \
       RETURN NEW; \
     END $$";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for sql in [TABLES, RESTAMP, REFUSE_TRUNCATE, STAMP, ROW_VERSION] {
            db.execute_unprepared(sql).await?;
        }
        for (table, path) in OWNERS {
            synced::removal_triggers(manager, table, path).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        // Every table that got the triggers, later ones included.
        let tables: Vec<String> = db
            .query_all_raw(sea_orm_migration::sea_orm::Statement::from_string(
                DbBackend::Postgres,
                "SELECT k.relname::text AS table_name FROM pg_trigger t JOIN pg_class k ON k.oid = t.tgrelid \
                 WHERE t.tgname = k.relname || '_sync_removal'",
            ))
            .await?
            .iter()
            .map(|row| row.try_get("", "table_name"))
            .collect::<Result<_, DbErr>>()?;
        for table in tables {
            for trigger in ["sync_removal", "sync_truncate", "sync_moved"] {
                db.execute_unprepared(&format!(
                    "DROP TRIGGER IF EXISTS \"{table}_{trigger}\" ON \"{table}\""
                ))
                .await?;
            }
            for function in ["removal", "moved"] {
                db.execute_unprepared(&format!(
                    "DROP FUNCTION IF EXISTS \"dal_sync_{function}_{table}\"()"
                ))
                .await?;
            }
        }
        for sql in [
            STAMP_BEFORE,
            ROW_VERSION_BEFORE,
            "DROP FUNCTION IF EXISTS dal_sync_restamp(text, uuid[])",
            "DROP FUNCTION IF EXISTS dal_sync_refuse_truncate()",
            "DROP TABLE IF EXISTS sync_removals",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
