//! SQLite's value triggers pass over the rows a replica stores from the server.
//!
//! The value triggers (`m20261130_203628_values_every_reader_reads`) refuse what a reader
//! could not read back: text or JSON holding NUL or an unpaired surrogate, a timestamp
//! that is no instant, an id that is not a uuid. On Postgres the column types refuse the
//! same values, so a row the server sends has passed them already: the sync engine
//! selects it in the form SQLite stores (`uuid::text`, `to_char` of a `timestamptz`, the
//! `jsonb`'s text). Checking it again cost a sixth of a replica's full pull.
//!
//! While the sync engine stores rows the server sent (a pulled page, the rows a push's
//! answer brings back, an export from Postgres into a new replica), it sets the replica's
//! `sync_state` key `capture` to `'server'` for the length of that transaction (`'0'`
//! means sync is off, `'1'` that local writes are captured; both keep every check). Each
//! value trigger gets `WHEN … IS NOT 'server'`. The CHECK constraints still run for every
//! row, and every write of the application, the seeder or raw SQL is checked as before.
//!
//! The triggers are rewritten from their stored text (each gains its `WHEN` and nothing
//! else), so `down` gives back the text it started from. Postgres has no such triggers:
//! there this migration does nothing.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

/// Lets the value triggers pass over the server's rows (see the module docs).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_190000_server_rows_unchecked"
    }
}

/// A value trigger's condition: the row is not one the server sent.
pub const NOT_SERVER_ROWS: &str = "(SELECT value FROM sync_state WHERE key = 'capture') IS NOT 'server'";

/// The tables whose value triggers this migration rewrites, as they were when it was
/// written (a trigger of another table is not touched, whatever its name).
const TABLES: [&str; 6] = [
    "users",
    "projects",
    "generations",
    "shots",
    "shot_generations",
    "tasks",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// Every migration runs in a transaction, on SQLite too: none stays half-applied.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rewrite_value_triggers(manager, with_condition).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rewrite_value_triggers(manager, |sql| {
            sql.replacen(&format!(" WHEN {NOT_SERVER_ROWS} BEGIN "), " BEGIN ", 1)
        })
        .await
    }
}

/// `sql` with the condition in front of its body: only for a trigger shaped as the value
/// triggers were made (`… ON "<table>" BEGIN …`, no `WHEN` of its own); any other text is
/// left as it is rather than guessed at.
fn with_condition(sql: &str) -> String {
    match sql.split_once(" BEGIN ") {
        Some((head, body))
            if !head.contains(" WHEN ") && TABLES.iter().any(|t| head.ends_with(&format!(" ON \"{t}\""))) =>
        {
            format!("{head} WHEN {NOT_SERVER_ROWS} BEGIN {body}")
        }
        _ => sql.to_owned(),
    }
}

/// Replaces every `<table>_values_insert` / `_update` trigger by `rewrite` of its text.
/// (`m20261207_160000_value_check_fast_paths` has the same loop; a released migration's
/// file does not change, so it is not shared from there.)
async fn rewrite_value_triggers(
    manager: &SchemaManager<'_>,
    rewrite: impl Fn(&str) -> String,
) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Sqlite {
        return Ok(());
    }
    let db = manager.get_connection();
    for (name, sql) in value_triggers(db).await? {
        let rewritten = rewrite(&sql);
        if rewritten != sql {
            db.execute_unprepared(&format!("DROP TRIGGER \"{name}\""))
                .await?;
            db.execute_unprepared(&rewritten).await?;
        }
    }
    Ok(())
}

/// The value triggers of [`TABLES`]: name and text, by name.
async fn value_triggers<C: ConnectionTrait>(db: &C) -> Result<Vec<(String, String)>, DbErr> {
    let names: Vec<String> = TABLES
        .iter()
        .flat_map(|t| [format!("'{t}_values_insert'"), format!("'{t}_values_update'")])
        .collect();
    db.query_all_raw(Statement::from_string(
        DbBackend::Sqlite,
        format!(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN ({}) ORDER BY name",
            names.join(", ")
        ),
    ))
    .await?
    .iter()
    .map(|row| Ok((row.try_get("", "name")?, row.try_get("", "sql")?)))
    .collect()
}

#[cfg(test)]
mod tests {
    use sea_orm_migration::sea_orm::{Database, DatabaseConnection};

    use super::*;

    fn steps_through_this_one() -> u32 {
        let name = Migration.name().to_owned();
        crate::sources()
            .iter()
            .position(|(source, _)| *source == name)
            .expect("the migration is in the history") as u32
            + 1
    }

    async fn database(steps: u32) -> (tempfile::TempDir, DatabaseConnection) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
        let db = Database::connect(&url).await.unwrap();
        crate::Migrator::up(&db, Some(steps)).await.unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn every_value_trigger_gets_the_condition_and_down_restores_the_text() {
        let steps = steps_through_this_one();
        let (_dir, db) = database(steps - 1).await;
        let before = value_triggers(&db).await.unwrap();
        assert!(before.len() >= 12, "the value triggers of six tables");
        crate::Migrator::up(&db, Some(1)).await.unwrap();
        let after = value_triggers(&db).await.unwrap();
        assert_eq!(after.len(), before.len());
        for ((name, old), (_, new)) in before.iter().zip(&after) {
            assert_eq!(
                new.replacen(&format!(" WHEN {NOT_SERVER_ROWS}"), "", 1),
                *old,
                "{name} gains its WHEN and nothing else"
            );
            assert_ne!(new, old, "{name} has its WHEN");
        }
        crate::Migrator::down(&db, Some(1)).await.unwrap();
        assert_eq!(value_triggers(&db).await.unwrap(), before);
    }

    /// A later migration that makes a value trigger again (for a new column, say) must
    /// keep the condition, or replicas go back to checking every pulled row.
    #[tokio::test]
    async fn every_value_trigger_of_the_latest_schema_passes_over_the_servers_rows() {
        let (_dir, db) = database(crate::sources().len() as u32).await;
        let triggers = value_triggers(&db).await.unwrap();
        assert_eq!(triggers.len(), 2 * TABLES.len());
        for (name, sql) in triggers {
            assert!(
                sql.contains(&format!(" WHEN {NOT_SERVER_ROWS} BEGIN ")),
                "{name} checks the server's rows again: add the condition of \
                 m20261207_190000_server_rows_unchecked to it"
            );
        }
    }

    #[test]
    fn text_of_another_shape_is_left_alone() {
        let ours = r#"CREATE TRIGGER "tasks_values_insert" BEFORE INSERT ON "tasks" BEGIN SELECT 1; END"#;
        assert_eq!(
            with_condition(ours),
            format!(
                r#"CREATE TRIGGER "tasks_values_insert" BEFORE INSERT ON "tasks" WHEN {NOT_SERVER_ROWS} BEGIN SELECT 1; END"#
            )
        );
        for foreign in [
            r#"CREATE TRIGGER "tasks_values_insert" BEFORE INSERT ON "tasks" WHEN NEW.id IS NULL BEGIN SELECT 1; END"#,
            r#"CREATE TRIGGER "tasks_values_insert" BEFORE INSERT ON "my_tasks" BEGIN SELECT 1; END"#,
            r#"CREATE TRIGGER tasks_values_insert BEFORE INSERT ON tasks FOR EACH ROW BEGIN SELECT 1; END"#,
        ] {
            assert_eq!(with_condition(foreign), foreign);
        }
    }

    /// A value the checks refuse (a NUL inside a JSON string), written with `capture` at
    /// each of its values: refused unless the row is the server's.
    #[tokio::test]
    async fn only_rows_stored_as_the_servers_pass_over_the_checks() {
        let (_dir, db) = database(steps_through_this_one()).await;
        let run = |sql: String| {
            let db = &db;
            async move { db.execute_unprepared(&sql).await.map(|_| ()) }
        };
        run("INSERT INTO users (id, email, display_name) VALUES ('00000000-0000-4000-8000-000000000001', 'a@b.c', 'a')".into()).await.unwrap();
        run("INSERT INTO projects (id, name, user_id) VALUES ('00000000-0000-4000-8000-000000000002', 'p', '00000000-0000-4000-8000-000000000001')".into()).await.unwrap();
        let mut outcomes = Vec::new();
        for (n, capture) in ["0", "1", "server", "0"].iter().enumerate() {
            run(format!("UPDATE sync_state SET value = '{capture}' WHERE key = 'capture'"))
                .await
                .unwrap();
            let inserted = run(format!(
                "INSERT INTO tasks (id, task_type, params, project_id) VALUES \
                 ('00000000-0000-4000-8000-{n:012}', 'render', '{{\"a\": \"x\\u0000y\"}}', '00000000-0000-4000-8000-000000000002')"
            ))
            .await;
            let updated = run(format!(
                "UPDATE tasks SET task_type = 'a' || char(0) || '{n}' WHERE project_id = '00000000-0000-4000-8000-000000000002'"
            ))
            .await;
            outcomes.push((*capture, inserted.is_ok(), updated.is_ok()));
        }
        assert_eq!(
            outcomes,
            [
                ("0", false, true),
                ("1", false, true),
                ("server", true, true),
                ("0", false, false),
            ],
            "an update of no row passes; of the server's row with a NUL, only as the server's"
        );
    }
}
