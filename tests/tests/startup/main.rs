//! Start-up: the database URL forms an application is given, many processes creating
//! and migrating the same new database at once, and the migration history applied
//! through Supabase's own tooling.

mod concurrent;
mod sqlite_urls;
mod supabase;

use sea_orm::{ConnectionTrait, Statement};
use sqlx::{Connection, PgConnection};

/// A new, empty Postgres database on the test server, dropped by [`drop_database`].
pub async fn create_database() -> (String, String) {
    let admin_url = parity_tests::postgres_admin_url();
    let name = format!("dal_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .expect("the Postgres test server answers (see README, Testing)");
    // The role the row-level-security migration grants to; created up front as the
    // parity harness does, because two first CREATE ROLEs racing in parallel tests fail.
    sqlx::query(
        "DO $$ BEGIN CREATE ROLE authenticated NOLOGIN; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    )
    .execute(&mut admin)
    .await
    .expect("the authenticated role exists");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE");
    let _ = admin.close().await;
    (parity_tests::database_url(&admin_url, &name), name)
}

/// Drops a database made by [`create_database`].
pub async fn drop_database(name: &str) {
    let mut admin = PgConnection::connect(&parity_tests::postgres_admin_url())
        .await
        .expect("admin connection");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .expect("DROP DATABASE");
    let _ = admin.close().await;
}

/// The single number a `SELECT count(*) AS n ...` returns.
pub async fn count(db: &impl ConnectionTrait, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("one row");
    row.try_get("", "n").expect("a count named n")
}
