//! Rows leaving replicas: deletes by any writer, and rows given to another user.
//!
//! A replica learns of changes by pulling rows stamped with their transaction id; a row
//! deleted outright on the server (the web app through Supabase, a DBA with psql) leaves
//! nothing to pull, and a project moved to another user leaves its old owner's replica
//! holding it. Postgres now logs both in `sync_removals`, in the writer's transaction:
//!
//! * `{table}_sync_removal`, `BEFORE DELETE` on every synced table, logs the row with its
//!   owning user (reason `deleted`). The owner is found by walking the table's owner path
//!   (`sync_owners`: each table's column towards `users`) over the live rows; a parent
//!   already gone is one Postgres's `ON DELETE CASCADE` deleted earlier in the same
//!   statement (every synced foreign key cascades), whose own removal, logged a moment
//!   before, names the owner. So a `DELETE FROM projects` logs the project and every row
//!   under it, each with its owner.
//! * `{table}_sync_moved`, `AFTER UPDATE` of the column towards the owner, logs the row
//!   for its old owner (reason `moved`) when the owner changes, and re-stamps every row
//!   under it with the current transaction id, so the new owner's next pull carries them
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
//! The per-table triggers come from `synced::removal_triggers`, which `synced::owner_policy`
//! calls, so a synced table created by a later migration gets them with its policy.
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

/// Each synced table's first step towards its owning user, as of this migration (the
/// row-level security policies' paths).
const OWNERS: [(&str, Option<(&str, &str)>); 6] = [
    ("users", None),
    ("projects", Some(("user_id", "users"))),
    ("tasks", Some(("project_id", "projects"))),
    ("generations", Some(("project_id", "projects"))),
    ("shots", Some(("project_id", "projects"))),
    ("shot_generations", Some(("shot_id", "shots"))),
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
     CREATE INDEX sync_removals_row_idx ON sync_removals (row_id, txid); \
     GRANT SELECT ON sync_removals TO authenticated; \
     ALTER TABLE sync_removals ENABLE ROW LEVEL SECURITY; \
     CREATE POLICY sync_removals_owner ON sync_removals FOR SELECT TO authenticated \
       USING (owner_id = dal_request_user_id()); \
     CREATE TABLE sync_owners ( \
       table_name text PRIMARY KEY, \
       parent_column text, \
       parent_table text, \
       CHECK ((parent_column IS NULL) = (parent_table IS NULL)))";

/// The owner of row `p_id` of `p_table`: the walk up `sync_owners` over live rows, or, for
/// a row already deleted in this transaction (a cascade), the owner its removal logged.
/// Definer's rights: the writer may be a user whom row-level security shows only part
/// of the path, and must not need to read or write the log itself.
const OWNER: &str = "CREATE FUNCTION dal_sync_owner(p_table text, p_id uuid) RETURNS uuid \
     LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$ \
     DECLARE step record; next_id uuid; found_rows bigint; hops int := 0; \
     BEGIN \
       LOOP \
         SELECT parent_column, parent_table INTO step FROM sync_owners WHERE table_name = p_table; \
         IF NOT FOUND THEN RETURN NULL; END IF; \
         IF step.parent_table IS NULL THEN RETURN p_id; END IF; \
         EXECUTE format('SELECT %I FROM %I WHERE id = $1', step.parent_column, p_table) \
           INTO next_id USING p_id; \
         GET DIAGNOSTICS found_rows = ROW_COUNT; \
         IF found_rows = 0 THEN \
           RETURN (SELECT r.owner_id FROM sync_removals r WHERE r.row_id = p_id \
                     AND r.table_name = p_table AND r.txid = pg_current_xact_id() \
                     AND r.reason = 'deleted' ORDER BY r.seq DESC LIMIT 1); \
         END IF; \
         IF next_id IS NULL THEN RETURN NULL; END IF; \
         hops := hops + 1; \
         IF hops > 64 THEN \
           RAISE EXCEPTION 'the owner path of % % does not reach users', p_table, p_id; \
         END IF; \
         p_table := step.parent_table; \
         p_id := next_id; \
       END LOOP; \
     END $$";

/// `BEFORE DELETE`: the row is still there, so its own walk finds its owner.
const REMOVAL: &str = "CREATE FUNCTION dal_sync_removal() RETURNS trigger \
     LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$ \
     BEGIN \
       INSERT INTO sync_removals (table_name, row_id, owner_id, reason) \
       VALUES (TG_TABLE_NAME, OLD.id, dal_sync_owner(TG_TABLE_NAME, OLD.id), 'deleted'); \
       RETURN OLD; \
     END $$";

/// Re-stamps the rows under `p_ids` of `p_table` (transitively, along the owner paths)
/// with the current transaction id, versions untouched.
const RESTAMP: &str = "CREATE FUNCTION dal_sync_restamp(p_table text, p_ids uuid[]) RETURNS void \
     LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$ \
     DECLARE child record; child_ids uuid[]; \
     BEGIN \
       FOR child IN SELECT table_name, parent_column FROM sync_owners \
                    WHERE parent_table = p_table ORDER BY table_name LOOP \
         PERFORM set_config('dal.sync_restamp', 'on', true); \
         EXECUTE format('WITH s AS (UPDATE %I SET sync_txid = pg_current_xact_id() \
                         WHERE %I = ANY($1) RETURNING id) SELECT array_agg(id) FROM s', \
                        child.table_name, child.parent_column) INTO child_ids USING p_ids; \
         PERFORM set_config('dal.sync_restamp', 'off', true); \
         IF child_ids IS NOT NULL THEN PERFORM dal_sync_restamp(child.table_name, child_ids); END IF; \
       END LOOP; \
     END $$";

/// `AFTER UPDATE OF` the owner column: the row has its new parent now.
const MOVED: &str = "CREATE FUNCTION dal_sync_moved() RETURNS trigger \
     LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$ \
     DECLARE step record; was uuid; now_owner uuid; \
     BEGIN \
       SELECT parent_column, parent_table INTO step FROM sync_owners WHERE table_name = TG_TABLE_NAME; \
       IF NOT FOUND OR step.parent_table IS NULL THEN RETURN NULL; END IF; \
       was := dal_sync_owner(step.parent_table, (to_jsonb(OLD) ->> step.parent_column)::uuid); \
       now_owner := dal_sync_owner(TG_TABLE_NAME, NEW.id); \
       IF was IS DISTINCT FROM now_owner THEN \
         IF was IS NOT NULL THEN \
           INSERT INTO sync_removals (table_name, row_id, owner_id, reason) \
           VALUES (TG_TABLE_NAME, OLD.id, was, 'moved'); \
         END IF; \
         PERFORM dal_sync_restamp(TG_TABLE_NAME, ARRAY[NEW.id]); \
       END IF; \
       RETURN NULL; \
     END $$";

const REFUSE_TRUNCATE: &str = "CREATE FUNCTION dal_sync_refuse_truncate() RETURNS trigger \
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
        for sql in [TABLES, OWNER, REMOVAL, RESTAMP, MOVED, REFUSE_TRUNCATE, STAMP, ROW_VERSION] {
            db.execute_unprepared(sql).await?;
        }
        for (table, parent) in OWNERS {
            synced::removal_triggers(manager, table, parent).await?;
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
                "SELECT table_name FROM sync_owners",
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
        }
        for sql in [
            STAMP_BEFORE,
            ROW_VERSION_BEFORE,
            "DROP FUNCTION dal_sync_moved()",
            "DROP FUNCTION dal_sync_restamp(text, uuid[])",
            "DROP FUNCTION dal_sync_removal()",
            "DROP FUNCTION dal_sync_owner(text, uuid)",
            "DROP FUNCTION dal_sync_refuse_truncate()",
            "DROP TABLE sync_owners",
            "DROP TABLE sync_removals",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
