//! Findings of a hostile review, each a test that failed before its fix.

use dal::Backend;
use migration::adopt::{AdoptError, AdoptOptions, DRAFT_POSTGRES, Outcome, adopt};
use parity_tests::{Setup, TestDb};
use sea_orm::{ConnectionTrait, Statement};

/// A Supabase draft commonly has a trigger that stamps `updated_at` on every UPDATE
/// (moddatetime). Adoption's backfill is an UPDATE: it must not fire the product's
/// triggers and silently rewrite the rows' `updated_at` (nor leave them off afterwards).
#[tokio::test]
async fn adoption_backfill_does_not_fire_the_drafts_update_triggers() {
    parity_tests::run(Backend::Postgres, Setup::Empty, |t| async move {
        let db = t.connect(&t.config.clone().with_max_connections(1)).await;
        db.execute_unprepared(DRAFT_POSTGRES).await.unwrap();
        db.execute_unprepared(
            "CREATE FUNCTION stamp_updated_at() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN NEW.updated_at = now(); RETURN NEW; END $$; \
             CREATE TRIGGER tasks_stamp BEFORE UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION stamp_updated_at(); \
             INSERT INTO users (id) VALUES ('11111111-1111-4111-8111-111111111111'); \
             INSERT INTO projects (id, name, user_id) VALUES ('22222222-2222-4222-8222-222222222222', 'p', '11111111-1111-4111-8111-111111111111'); \
             INSERT INTO tasks (id, task_type, params, status, created_at, updated_at, project_id) VALUES \
             ('33333333-3333-4333-8333-333333333333', 'render', '{}', NULL, '2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z', '22222222-2222-4222-8222-222222222222')",
        )
        .await
        .unwrap();
        db.close().await.unwrap();

        let options = AdoptOptions { apply: true, ..AdoptOptions::default() };
        let outcome = adopt(&t.config, options).await.unwrap();
        assert!(matches!(outcome, Outcome::Applied(_)), "{outcome}");

        let db = t.connect(&t.config.clone().with_max_connections(1)).await;
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT status, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS u, \
                 (SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'tasks_stamp') AS enabled FROM tasks",
            ))
            .await
            .unwrap()
            .unwrap();
        let status: String = row.try_get("", "status").unwrap();
        let updated: String = row.try_get("", "u").unwrap();
        let enabled: String = row.try_get("", "enabled").unwrap();
        db.close().await.unwrap();
        assert_eq!(status, "Pending", "the backfill ran");
        assert_eq!(updated, "2024-01-02 00:00:00", "adoption rewrote updated_at through the draft's trigger");
        assert_eq!(enabled, "O", "the draft's trigger is left as it was");
    })
    .await;
}

/// The Drizzle fixture (as `adopt.rs` loads it on SQLite) plus `extra`, on a connection
/// of its own.
async fn drizzle_draft_with(t: &TestDb, extra: &str) {
    let path = format!("{}/fixtures/drizzle_sqlite.sql", env!("CARGO_MANIFEST_DIR"));
    let fixture = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let db = t.connect(&t.config.clone().with_max_connections(1)).await;
    db.execute_unprepared(migration::adopt::DRAFT_SQLITE)
        .await
        .unwrap();
    db.execute_unprepared(&fixture).await.unwrap();
    db.execute_unprepared(extra).await.unwrap();
    db.close().await.unwrap();
}

/// Every schema object and every row of the six tables, as text.
async fn sqlite_snapshot(t: &TestDb) -> String {
    let db = t.connect(&t.config.clone().with_max_connections(1)).await;
    let all = |sql: String| {
        let db = &db;
        async move {
            db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<String>("", "v").unwrap())
                .collect::<Vec<_>>()
        }
    };
    let mut out = all(
        "SELECT type || ' ' || name || ' ' || coalesce(sql, '') AS v FROM sqlite_master ORDER BY 1"
            .into(),
    )
    .await;
    for table in [
        "users",
        "projects",
        "tasks",
        "generations",
        "shots",
        "shot_generations",
        "audit",
    ] {
        let columns = all(format!(
            "SELECT 'quote(\"' || name || '\")' AS v FROM pragma_table_info('{table}') ORDER BY cid"
        ))
        .await;
        out.extend(
            all(format!(
                "SELECT {} AS v FROM {table} ORDER BY 1",
                columns.join(" || ',' || ")
            ))
            .await,
        );
    }
    db.close().await.unwrap();
    out.join("\n")
}

/// SQLite rebuilds the six tables (DROP, RENAME): a user's trigger on one of them would
/// vanish with it, and a view over one makes the RENAME fail with a raw error. The plan
/// names them, and `--apply` refuses with a typed error, changing nothing.
#[tokio::test]
async fn sqlite_adoption_refuses_triggers_and_views_on_the_drafts_tables() {
    parity_tests::run(Backend::Sqlite, Setup::Empty, |t| async move {
        drizzle_draft_with(
            &t,
            "CREATE TABLE audit(task_id text, at integer); \
             CREATE TRIGGER tasks_audit AFTER UPDATE ON tasks BEGIN INSERT INTO audit VALUES (NEW.id, 1); END; \
             CREATE VIEW open_tasks AS SELECT id FROM tasks WHERE status IS NULL; \
             CREATE VIEW audit_count AS SELECT count(*) AS n FROM audit;",
        )
        .await;
        let Outcome::Planned(plan) = adopt(&t.config, AdoptOptions::default()).await.unwrap() else {
            panic!("a plan");
        };
        assert_eq!(
            plan.dependents,
            vec!["trigger tasks_audit".to_owned(), "view open_tasks".to_owned()],
            "only what refers to the six tables"
        );
        assert!(plan.to_string().contains("trigger tasks_audit"), "{plan}");

        let before = sqlite_snapshot(&t).await;
        let options = AdoptOptions { apply: true, quarantine: true, ..AdoptOptions::default() };
        match adopt(&t.config, options).await {
            Err(e @ AdoptError::Dependents(_)) => {
                let text = e.to_string();
                assert!(text.contains("trigger tasks_audit") && text.contains("view open_tasks"), "{text}");
                assert!(text.contains("nothing was changed"), "{text}");
            }
            other => panic!("expected a refusal naming the trigger and view, got {other:?}"),
        }
        assert_eq!(sqlite_snapshot(&t).await, before, "nothing changed");

        // Dropped, the adoption goes through, and they can be recreated afterwards.
        let db = t.connect(&t.config.clone().with_max_connections(1)).await;
        db.execute_unprepared("DROP TRIGGER tasks_audit; DROP VIEW open_tasks").await.unwrap();
        db.close().await.unwrap();
        let outcome = adopt(&t.config, options).await.unwrap();
        assert!(matches!(outcome, Outcome::Applied(_)), "{outcome}");
    })
    .await;
}

/// Quarantining a SQLite row that holds a BLOB must keep it, losslessly, in the JSON.
#[tokio::test]
async fn sqlite_quarantine_keeps_blob_values() {
    parity_tests::run(Backend::Sqlite, Setup::Empty, |t| async move {
        drizzle_draft_with(
            &t,
            "UPDATE tasks SET output_location = X'00FF10' WHERE id = '33333333-3333-4333-8333-000000000004'",
        )
        .await;
        let options = AdoptOptions { apply: true, quarantine: true, ..AdoptOptions::default() };
        let outcome = adopt(&t.config, options).await.unwrap();
        assert!(matches!(outcome, Outcome::Applied(_)), "{outcome}");
        let db = t.connect(&t.config.clone().with_max_connections(1)).await;
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT row_data ->> '$.output_location' AS o, json_type(row_data, '$.output_location') AS k, \
                 row_data ->> '$.task_type' AS tt FROM dal_adopt_quarantine \
                 WHERE row_id = '33333333-3333-4333-8333-000000000004'",
            ))
            .await
            .unwrap()
            .expect("the row is quarantined");
        db.close().await.unwrap();
        let kind: String = row.try_get("", "k").unwrap();
        let value: String = row.try_get("", "o").unwrap();
        let task_type: String = row.try_get("", "tt").unwrap();
        assert_eq!(kind, "object", "a BLOB is kept as an object, not a string");
        assert_eq!(value, r#"{"$blob_hex":"00FF10"}"#);
        assert_eq!(task_type, "orphan", "other values as they were");
    })
    .await;
}

/// A trigger alone (no view to make the rename fail) used to vanish with `DROP TABLE`
/// while `--apply` reported success.
#[tokio::test]
async fn sqlite_adoption_does_not_silently_drop_a_trigger() {
    parity_tests::run(Backend::Sqlite, Setup::Empty, |t| async move {
        drizzle_draft_with(
            &t,
            "CREATE TABLE audit(task_id text, at integer); \
             CREATE TRIGGER tasks_audit AFTER UPDATE ON tasks BEGIN INSERT INTO audit VALUES (NEW.id, 1); END;",
        )
        .await;
        let before = sqlite_snapshot(&t).await;
        let options = AdoptOptions { apply: true, quarantine: true, ..AdoptOptions::default() };
        match adopt(&t.config, options).await {
            Err(AdoptError::Dependents(list)) => assert_eq!(list, vec!["trigger tasks_audit".to_owned()]),
            other => panic!("expected a refusal naming the trigger, got {other:?}"),
        }
        assert_eq!(sqlite_snapshot(&t).await, before, "nothing changed, the trigger is still there");
    })
    .await;
}
