//! Schema tooling: the drift check, the committed DDL and TypeScript artifacts, `generate`'s
//! scaffold, and the schema version.

use dal::Backend;
use migration::cli::{self, MigrateCommand, SchemaBackend};
use parity_tests::{TestDb, parity_test};
use sea_orm::{ConnectionTrait, Statement};

fn repo_file(path: &str) -> String {
    let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// Runs DDL as someone by hand would: on a connection of its own. (A pooled SQLite
/// connection keeps the schema it parsed until a statement verifies it, so DDL on one
/// connection right after DDL on another can be parsed against a stale catalog.)
async fn sql(t: &TestDb, statement: &str) {
    let db = t.connect(&t.config.clone().with_max_connections(1)).await;
    db.execute_unprepared(statement)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    db.close().await.unwrap();
}

/// SQLite cannot alter a column or a constraint: rebuild the (empty) table from edited DDL,
/// as a hand-made change would.
async fn sqlite_rebuild(t: &TestDb, table: &str, edit: impl Fn(&str) -> String) {
    let rows =
        t.db.query_all_raw(Statement::from_string(
            t.db.get_database_backend(),
            format!(
                "SELECT type, sql FROM sqlite_master WHERE tbl_name = '{table}' AND sql IS NOT NULL"
            ),
        ))
        .await
        .unwrap();
    let mut create = String::new();
    let mut indexes = Vec::new();
    for row in rows {
        let kind: String = row.try_get("", "type").unwrap();
        let ddl: String = row.try_get("", "sql").unwrap();
        if kind == "table" {
            create = ddl
        } else {
            indexes.push(ddl)
        }
    }
    let edited = edit(&create);
    assert_ne!(edited, create, "the edit changes the DDL");
    let mut script = format!("DROP TABLE {table}; {edited};");
    for index in indexes {
        script.push_str(&format!(" {index};"));
    }
    sql(t, &script).await;
}

async fn check(t: &TestDb) -> Vec<String> {
    cli::check(&t.config).await.expect("check runs")
}

async fn reset(t: &TestDb) {
    cli::execute(&t.config, MigrateCommand::Fresh, true)
        .await
        .unwrap();
    assert_eq!(check(t).await, Vec::<String>::new(), "fresh again");
}

parity_test!(async fn check_passes_on_a_migrated_database_and_names_each_drift(t) {
    assert_eq!(check(&t).await, Vec::<String>::new());

    // A dropped index.
    sql(&t, "DROP INDEX tasks_project_id_idx").await;
    let problems = check(&t).await;
    assert!(problems.iter().any(|p| p.contains("tasks_project_id_idx") && p.contains("missing")), "{problems:#?}");
    reset(&t).await;

    // An added column.
    sql(&t, "ALTER TABLE shots ADD COLUMN notes TEXT").await;
    let problems = check(&t).await;
    assert!(problems.iter().any(|p| p.contains("shots.notes") && p.contains("not in the migrations")), "{problems:#?}");
    reset(&t).await;

    // A changed column type.
    match t.backend() {
        Backend::Postgres => sql(&t, "ALTER TABLE shots ALTER COLUMN name TYPE varchar(80)").await,
        Backend::Sqlite => sqlite_rebuild(&t, "shots", |ddl| ddl.replace("\"name\" TEXT NOT NULL", "\"name\" VARCHAR(80) NOT NULL")).await,
    }
    let problems = check(&t).await;
    assert!(problems.iter().any(|p| p.contains("shots.name has type")), "{problems:#?}");
    reset(&t).await;

    // A removed CHECK.
    match t.backend() {
        Backend::Postgres => sql(&t, "ALTER TABLE tasks DROP CONSTRAINT tasks_status_check").await,
        Backend::Sqlite => sqlite_rebuild(&t, "tasks", |ddl| {
            let start = ddl.find("CONSTRAINT \"tasks_status_check\"").unwrap();
            let end = start + ddl[start..].find("'Cancelled'))").unwrap() + "'Cancelled'))".len();
            format!("{}{}", &ddl[..start], &ddl[end..])
        })
        .await,
    }
    let problems = check(&t).await;
    assert!(problems.iter().any(|p| p.contains("tasks_status_check") && p.contains("missing")), "{problems:#?}");
    reset(&t).await;

    // A changed foreign-key action.
    match t.backend() {
        Backend::Postgres => sql(&t, "ALTER TABLE shots DROP CONSTRAINT shots_project_id_fkey, \
            ADD CONSTRAINT shots_project_id_fkey FOREIGN KEY (project_id) REFERENCES projects(id) ON DELETE RESTRICT").await,
        Backend::Sqlite => sqlite_rebuild(&t, "shots", |ddl| ddl.replace("ON DELETE CASCADE", "ON DELETE RESTRICT")).await,
    }
    let problems = check(&t).await;
    assert!(
        problems.iter().any(|p| p.starts_with("shots: constraint") && p.contains("RESTRICT") && p.contains("CASCADE")),
        "{problems:#?}"
    );
    reset(&t).await;

    // A migration edited after it was applied (its recorded checksum no longer matches).
    sql(&t, "UPDATE dal_migration_checksums SET checksum = 'edited'").await;
    let problems = check(&t).await;
    assert!(problems.iter().any(|p| p.contains("edited after it was applied")), "{problems:#?}");
    reset(&t).await;

    // A migration not applied yet.
    cli::execute(&t.config, MigrateCommand::Down { num: 1 }, true).await.unwrap();
    let problems = check(&t).await;
    assert!(problems.iter().any(|p| p.contains("is not applied")), "{problems:#?}");
});

parity_test!(async fn check_names_a_missing_or_stale_trigger_and_a_missing_policy(t) {
    // The trigger that keeps each backend's sync bookkeeping: a database without it
    // syncs wrongly and silently.
    let (trigger, drop) = match t.backend() {
        Backend::Sqlite => ("tasks_capture_update", "DROP TRIGGER tasks_capture_update"),
        Backend::Postgres => ("tasks_sync_stamp", "DROP TRIGGER tasks_sync_stamp ON tasks"),
    };
    sql(&t, drop).await;
    let problems = check(&t).await;
    assert!(
        problems.iter().any(|p| p.starts_with(&format!("tasks: trigger {trigger} is missing"))),
        "{problems:#?}"
    );
    reset(&t).await;

    // A stale trigger: one that no longer captures a column (SQLite), one made for
    // INSERT only (Postgres).
    let stale = match t.backend() {
        Backend::Sqlite => {
            let rows = t.db.query_all_raw(Statement::from_string(
                t.db.get_database_backend(),
                "SELECT sql FROM sqlite_master WHERE name = 'tasks_capture_update'",
            ))
            .await
            .unwrap();
            let ddl: String = rows[0].try_get("", "sql").unwrap();
            let edited = ddl.replace("OLD.\"params\" IS NOT NEW.\"params\" OR ", "");
            assert_ne!(edited, ddl);
            format!("DROP TRIGGER tasks_capture_update; {edited}")
        }
        Backend::Postgres => "DROP TRIGGER tasks_sync_stamp ON tasks; CREATE TRIGGER tasks_sync_stamp \
            BEFORE INSERT ON tasks FOR EACH ROW EXECUTE FUNCTION dal_sync_stamp()"
            .to_owned(),
    };
    sql(&t, &stale).await;
    let problems = check(&t).await;
    assert!(
        problems.iter().any(|p| p.starts_with(&format!("tasks: trigger {trigger} is `"))
            && p.contains("but the migrations say")),
        "{problems:#?}"
    );
    reset(&t).await;

    if t.backend() == Backend::Postgres {
        sql(&t, "DROP POLICY tasks_owner ON tasks").await;
        let problems = check(&t).await;
        assert!(problems.iter().any(|p| p.starts_with("tasks: policy tasks_owner is missing")), "{problems:#?}");
        reset(&t).await;

        sql(&t, "ALTER TABLE shots DISABLE ROW LEVEL SECURITY").await;
        let problems = check(&t).await;
        assert!(
            problems.contains(&"shots: row-level security is disabled but the migrations say enabled".to_owned()),
            "{problems:#?}"
        );
        reset(&t).await;

        sql(&t, "CREATE OR REPLACE FUNCTION dal_sync_stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$").await;
        let problems = check(&t).await;
        assert!(problems.iter().any(|p| p.starts_with("function dal_sync_stamp() is `")), "{problems:#?}");
    }
});

parity_test!(async fn the_committed_ddl_is_what_the_migrations_produce(t) {
    let (backend, file) = match t.backend() {
        Backend::Sqlite => (SchemaBackend::Sqlite, "schema/sqlite.sql"),
        Backend::Postgres => (SchemaBackend::Postgres, "schema/postgres.sql"),
    };
    let produced = cli::schema(backend, Some(&t.config)).await.unwrap();
    assert_eq!(
        produced,
        repo_file(file),
        "{file} is stale: run `cargo run -p migration -- schema --backend {} --out {file}`",
        t.backend()
    );
    // Stable from run to run.
    assert_eq!(cli::schema(backend, Some(&t.config)).await.unwrap(), produced);
});

parity_test!(empty async fn the_generated_scaffold_applies_and_rolls_back(t) {
    // `generate` writes `template.rs` under a new name; the template is compiled into the
    // crate, so here it is applied after the real history, as a generated migration would be.
    use migration_history::{MigrationTrait, MigratorTrait};
    struct WithScaffold;
    #[async_trait::async_trait]
    impl MigratorTrait for WithScaffold {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            let mut all = migration_history::Migrator::migrations();
            all.push(Box::new(migration::template::Migration));
            all
        }
    }
    // Each step in a transaction of its own, as it must be behind a transaction pooler.
    let db = t.db.sea_orm_connection();
    let route = migration_history::locked::Route::of(&t.config);
    let applied = migration_history::locked::in_locked_transaction(db, route, |tx| {
        Box::pin(async move {
            WithScaffold::up(tx, None).await?;
            migration_history::applied_versions(tx).await
        })
    })
    .await
    .unwrap();
    assert!(applied.iter().any(|v| v == "m00000000_000000_template"), "{applied:?}");
    assert_eq!(applied.len(), migration_history::sources().len() + 1);
    let after = migration_history::locked::in_locked_transaction(db, route, |tx| {
        Box::pin(async move {
            WithScaffold::down(tx, Some(1)).await?;
            migration_history::applied_versions(tx).await
        })
    })
    .await
    .unwrap();
    assert!(!after.iter().any(|v| v == "m00000000_000000_template"), "{after:?}");
    assert_eq!(after.len(), applied.len() - 1);
});

parity_test!(empty async fn the_schema_version_is_the_newest_applied_migration(t) {
    assert_eq!(t.db.schema_version().await.unwrap(), None);
    t.db.migrate().await.unwrap();
    let latest = dal::Database::latest_schema_version();
    assert_eq!(t.db.schema_version().await.unwrap().as_deref(), Some(latest));
});

#[test]
fn the_committed_typescript_is_current_and_type_checks() {
    let produced = migration::typescript::render();
    assert_eq!(
        produced,
        repo_file("schema/schema.ts"),
        "schema/schema.ts is stale: run `cargo run -p migration -- typescript --out schema/schema.ts`"
    );
    let tsc = std::env::var("DAL_TSC").unwrap_or_else(|_| "tsc".to_owned());
    match std::process::Command::new(&tsc)
        .args(["--noEmit", "--strict", "--target", "es2020"])
        .arg(format!(
            "{}/../schema/schema.ts",
            env!("CARGO_MANIFEST_DIR")
        ))
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "tsc rejects schema.ts:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => eprintln!(
            "NOTE: no TypeScript compiler at `{tsc}` (set DAL_TSC); schema.ts was compared but not type-checked"
        ),
    }
}
