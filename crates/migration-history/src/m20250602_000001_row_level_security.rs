//! Row-level security on Postgres, Supabase style: a request runs as the `authenticated`
//! role with its JWT claims in `request.jwt.claims`, and sees only its own user's rows and
//! the projects, tasks, generations, shots and timelines under them. SQLite has no
//! row-level security; this migration does nothing there (the library's `for_user` views
//! are the guard on both backends).
//!
//! The connection's own role (the tables' owner) is not subject to the policies, so the
//! library and its tools work as before; `dal::Database::begin_as_user` switches a unit of
//! work to `authenticated` with the user's claims.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// Enables row-level security with per-user policies (Postgres only).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20250602_000001_row_level_security"
    }
}

const TABLES: [&str; 6] = ["users", "projects", "tasks", "generations", "shots", "shot_generations"];

/// Each table's policy: which rows belong to the requesting user.
const POLICIES: [(&str, &str); 6] = [
    ("users", "id = dal_request_user_id()"),
    ("projects", "user_id = dal_request_user_id()"),
    ("tasks", "EXISTS (SELECT 1 FROM projects p WHERE p.id = project_id AND p.user_id = dal_request_user_id())"),
    ("generations", "EXISTS (SELECT 1 FROM projects p WHERE p.id = project_id AND p.user_id = dal_request_user_id())"),
    ("shots", "EXISTS (SELECT 1 FROM projects p WHERE p.id = project_id AND p.user_id = dal_request_user_id())"),
    (
        "shot_generations",
        "EXISTS (SELECT 1 FROM shots s JOIN projects p ON p.id = s.project_id WHERE s.id = shot_id AND p.user_id = dal_request_user_id())",
    ),
];

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
        // Supabase has the role; elsewhere create it (a concurrent creator is fine).
        db.execute_unprepared(
            "DO $$ BEGIN CREATE ROLE authenticated NOLOGIN; \
             EXCEPTION WHEN duplicate_object THEN NULL; END $$",
        )
        .await?;
        // The requesting user: Supabase's `request.jwt.claim.sub`, or `sub` of
        // `request.jwt.claims`; NULL (no rows) when neither is set.
        db.execute_unprepared(
            "CREATE OR REPLACE FUNCTION dal_request_user_id() RETURNS uuid LANGUAGE sql STABLE AS $$ \
             SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''), \
                             (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid $$",
        )
        .await?;
        db.execute_unprepared("GRANT EXECUTE ON FUNCTION dal_request_user_id() TO authenticated")
            .await?;
        db.execute_unprepared("GRANT USAGE ON SCHEMA public TO authenticated").await?;
        for table in TABLES {
            db.execute_unprepared(&format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO authenticated"
            ))
            .await?;
            db.execute_unprepared(&format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"))
                .await?;
        }
        for (table, rule) in POLICIES {
            db.execute_unprepared(&format!(
                "CREATE POLICY {table}_owner ON {table} FOR ALL TO authenticated USING ({rule}) WITH CHECK ({rule})"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for (table, _) in POLICIES {
            db.execute_unprepared(&format!("DROP POLICY IF EXISTS {table}_owner ON {table}"))
                .await?;
        }
        for table in TABLES {
            db.execute_unprepared(&format!("ALTER TABLE {table} DISABLE ROW LEVEL SECURITY"))
                .await?;
            db.execute_unprepared(&format!(
                "REVOKE SELECT, INSERT, UPDATE, DELETE ON {table} FROM authenticated"
            ))
            .await?;
        }
        db.execute_unprepared("DROP FUNCTION IF EXISTS dal_request_user_id()").await?;
        Ok(())
    }
}
