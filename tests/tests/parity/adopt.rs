//! `migration adopt`: taking over a database that has the product's draft schema and dirty
//! data (tests/fixtures/draft_postgres.sql on Postgres, the same rows as Drizzle wrote them
//! in tests/fixtures/drizzle_sqlite.sql on SQLite), so both backends must decide the same.

use chrono::{DateTime, Utc};
use dal::prelude::*;
use dal::{Backend, Database};
use migration::adopt::{AdoptError, AdoptOptions, Outcome, Plan, adopt};
use migration::cli::{self, MigrateCommand};
use migration::{Migrator, MigratorTrait};
use parity_tests::{Setup, TestDb, parity_test};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs a script as the product's own tools did: on a connection of its own.
async fn run_script(t: &TestDb, script: &str) {
    let db = t.connect(&t.config.clone().with_max_connections(1)).await;
    db.execute_unprepared(script)
        .await
        .unwrap_or_else(|e| panic!("script fails: {e}"));
    db.close().await.unwrap();
}

/// The draft with the fixture's dirty data, in the backend's own form.
async fn load_draft(t: &TestDb) {
    let (schema, data) = match t.backend() {
        Backend::Postgres => (migration::adopt::DRAFT_POSTGRES, "draft_postgres.sql"),
        Backend::Sqlite => (migration::adopt::DRAFT_SQLITE, "drizzle_sqlite.sql"),
    };
    run_script(t, &format!("{schema}\n{}", fixture(data))).await;
}

async fn rows(t: &TestDb, sql: &str) -> Vec<sea_orm::QueryResult> {
    let db = t.connect(&t.config.clone().with_max_connections(1)).await;
    let out = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    db.close().await.unwrap();
    out
}

/// Every table of the database and every row in it, as text: equal snapshots mean
/// nothing changed.
async fn snapshot(t: &TestDb) -> String {
    let list = match t.backend() {
        Backend::Postgres => {
            "SELECT tablename::text AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        }
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1"
        }
    };
    let db = t.connect(&t.config.clone().with_max_connections(1)).await;
    let mut out = migration::inspect::inspect(&db).await.unwrap().ddl();
    let names: Vec<String> = rows(t, list)
        .await
        .iter()
        .map(|r| r.try_get("", "name").unwrap())
        .collect();
    for name in names {
        let sql = match t.backend() {
            Backend::Postgres => format!(
                "SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') AS v FROM \"{name}\" t"
            ),
            Backend::Sqlite => {
                let columns: Vec<String> =
                    rows(t, &format!("SELECT name FROM pragma_table_info('{name}')"))
                        .await
                        .iter()
                        .map(|r| format!("quote(\"{}\")", r.try_get::<String>("", "name").unwrap()))
                        .collect();
                format!(
                    "SELECT coalesce(group_concat(v, char(10)), '') AS v FROM (SELECT {} AS v FROM \"{name}\" ORDER BY 1)",
                    columns.join(" || ',' || ")
                )
            }
        };
        let dump: String = rows(t, &sql).await[0].try_get("", "v").unwrap();
        out.push_str(&format!("\n-- {name}\n{dump}\n"));
    }
    db.close().await.unwrap();
    out
}

/// The rows of the fixture that cannot satisfy the new constraints, on both backends.
const DECISIONS: [(&str, &str, &str); 9] = [
    (
        "projects",
        "22222222-2222-4222-8222-000000000003",
        "user_id '99999999-9999-4999-8999-999999999999' is not in users",
    ),
    (
        "shots",
        "55555555-5555-4555-8555-000000000003",
        "project_id is NULL",
    ),
    (
        "tasks",
        "33333333-3333-4333-8333-000000000004",
        "project_id is NULL",
    ),
    (
        "tasks",
        "33333333-3333-4333-8333-000000000005",
        "project_id '22222222-2222-4222-8222-000000000003' is a projects row that needs a decision",
    ),
    (
        "generations",
        "44444444-4444-4444-8444-000000000003",
        "project_id is NULL",
    ),
    (
        "shot_generations",
        "66666666-6666-4666-8666-000000000004",
        "shot_id is NULL",
    ),
    (
        "shot_generations",
        "66666666-6666-4666-8666-000000000005",
        "shot_id '55555555-5555-4555-8555-000000000003' is a shots row that needs a decision",
    ),
    (
        "shot_generations",
        "66666666-6666-4666-8666-000000000006",
        "generation_id '44444444-4444-4444-8444-000000000003' is a generations row that needs a decision",
    ),
    (
        "shot_generations",
        "66666666-6666-4666-8666-000000000008",
        "generation_id is NULL",
    ),
];

fn decisions(plan: &Plan) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = plan
        .decisions
        .iter()
        .map(|d| (d.table.clone(), d.row_id.clone(), d.reasons.join("; ")))
        .collect();
    out.sort();
    out
}

fn expected(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = list
        .iter()
        .map(|(t, id, r)| (t.to_string(), id.to_string(), r.to_string()))
        .collect();
    out.sort();
    out
}

fn counts(list: &[(String, u64)]) -> Vec<(String, u64)> {
    let mut out = list.to_vec();
    out.sort();
    out
}

fn named(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    counts(
        &list
            .iter()
            .map(|(t, n)| (t.to_string(), *n))
            .collect::<Vec<_>>(),
    )
}

/// `adopt`, and through PgBouncer the proof that it left nothing on the server sessions
/// (whatever it ends with: a plan, a refusal, an applied adoption): a named prepared
/// statement there would collide with the next client's, a temporary table or a session
/// setting would be that client's to find.
async fn adopt_on(t: &TestDb, options: AdoptOptions) -> Result<Outcome, AdoptError> {
    let outcome = adopt(&t.config, options).await;
    t.assert_server_sessions_clean(&format!(
        "adopt {options:?} ({})",
        match &outcome {
            Ok(Outcome::Current) => "current",
            Ok(Outcome::Planned(_)) => "planned",
            Ok(Outcome::Applied(_)) => "applied",
            Err(_) => "refused",
        }
    ))
    .await;
    outcome
}

const PLAN: AdoptOptions = AdoptOptions {
    apply: false,
    quarantine: false,
    add_missing_users: false,
};
const APPLY: AdoptOptions = AdoptOptions {
    apply: true,
    quarantine: false,
    add_missing_users: false,
};
const QUARANTINE: AdoptOptions = AdoptOptions {
    apply: true,
    quarantine: true,
    add_missing_users: false,
};

fn id(text: &str) -> Id {
    text.parse().unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

parity_test!(empty async fn adopts_the_draft_with_dirty_data(t) {
    load_draft(&t).await;
    // What adoption is for: the history cannot be applied over the draft.
    let up = cli::execute(&t.config, MigrateCommand::Up { num: None }, false).await;
    assert!(up.is_err(), "`migration up` over the draft must fail");
    let before = snapshot(&t).await;

    // The plan: every statement and every row that needs a decision; nothing changes.
    let Outcome::Planned(plan) = adopt_on(&t, PLAN).await.unwrap() else {
        panic!("a draft database gets a plan");
    };
    assert_eq!(decisions(&plan), expected(&DECISIONS));
    assert_eq!(
        counts(&plan.rows),
        named(&[("users", 2), ("projects", 3), ("tasks", 6), ("generations", 4), ("shots", 3), ("shot_generations", 8)])
    );
    let moves = &plan.statements[..plan.quarantine_statements];
    for table in ["projects", "tasks", "generations", "shots", "shot_generations"] {
        assert!(
            moves.iter().any(|s| s.starts_with("INSERT INTO dal_adopt_quarantine") && s.contains(&format!("'{table}'"))),
            "{table} rows are moved to the quarantine: {moves:#?}"
        );
    }
    let has = |needle: &str| plan.statements.iter().any(|s| s.contains(needle));
    match t.backend() {
        Backend::Postgres => {
            assert!(has("ALTER TABLE \"tasks\" DROP CONSTRAINT \"tasks_project_id_fkey\", ADD CONSTRAINT \"tasks_project_id_fkey\" FOREIGN KEY (project_id) REFERENCES projects(id) ON DELETE CASCADE"));
            assert!(has("ALTER TABLE \"projects\" ADD CONSTRAINT \"projects_user_id_fkey\" FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE"));
            assert!(has("ALTER TABLE \"users\" ADD COLUMN \"created_at\" timestamp with time zone DEFAULT now() NOT NULL"));
            assert!(has("\"status\" = coalesce(t.\"status\", 'Pending'::text)"));
            assert!(has("\"created_at\" = coalesce(t.\"created_at\", t.\"updated_at\", now())"));
            assert!(has("ALTER TABLE \"shot_generations\" ALTER COLUMN \"position\" SET NOT NULL"));
            assert!(has("CREATE INDEX tasks_project_id_idx ON tasks USING btree (project_id)"));
            assert!(moves.iter().any(|s| s.starts_with("DELETE FROM \"tasks\"")));
        }
        Backend::Sqlite => {
            assert!(has("CREATE TABLE \"adopt_new_tasks\""));
            assert!(has("DROP TABLE \"tasks\""));
            assert!(has("ALTER TABLE \"adopt_new_tasks\" RENAME TO \"tasks\""));
            assert!(has("CREATE INDEX \"tasks_project_id_idx\" ON \"tasks\" (\"project_id\")"));
            let tasks = plan.conversions.iter().find(|s| s.contains("\"adopt_conv_tasks\" AS SELECT")).unwrap();
            assert!(tasks.contains("'unixepoch'") && tasks.contains("lower(t.\"id\")"), "{tasks}");
        }
    }
    let names: Vec<String> = Migrator::migrations().iter().map(|m| m.name().to_owned()).collect();
    assert_eq!(plan.first_migration, names[0]);
    assert_eq!(plan.later_migrations, names[1..].to_vec());
    let text = plan.to_string();
    assert!(text.contains("Rows that need a decision: 9"), "{text}");
    for (_, row, _) in DECISIONS {
        assert!(text.contains(row), "{row} is listed:\n{text}");
    }
    assert_eq!(snapshot(&t).await, before, "the plan changes nothing");

    // --apply without --quarantine refuses, lists the rows, and changes nothing.
    match adopt_on(&t, APPLY).await {
        Err(e @ AdoptError::NeedsDecision(_)) => {
            let AdoptError::NeedsDecision(ref plan) = e else { unreachable!() };
            assert_eq!(decisions(plan), expected(&DECISIONS));
            let message = e.to_string();
            assert!(message.contains("--quarantine") && message.contains("33333333-3333-4333-8333-000000000004"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(snapshot(&t).await, before, "a refused adoption changes nothing");

    // --apply --quarantine: everything in one go; counts add up.
    let started = Utc::now() - chrono::Duration::seconds(1);
    let Outcome::Applied(applied) = adopt_on(&t, QUARANTINE).await.unwrap() else {
        panic!("adoption applies");
    };
    assert_eq!(
        counts(&applied.rows_after),
        named(&[("users", 2), ("projects", 2), ("tasks", 4), ("generations", 3), ("shots", 2), ("shot_generations", 4)])
    );
    assert_eq!(
        counts(&applied.quarantined),
        named(&[("users", 0), ("projects", 1), ("tasks", 2), ("generations", 1), ("shots", 1), ("shot_generations", 4)])
    );
    assert!(applied.to_string().contains("9 rows moved to dal_adopt_quarantine"), "{applied}");
    assert!(!applied.to_string().contains("added"), "no users are added without --add-missing-users: {applied}");

    // The ordinary tools agree.
    assert_eq!(cli::check(&t.config).await.unwrap(), Vec::<String>::new());
    let status = cli::execute(&t.config, MigrateCommand::Status, false).await.unwrap();
    assert!(status.iter().all(|m| m.applied), "{status:?}");
    assert_eq!(status.len(), Migrator::migrations().len());

    // The quarantine holds each row as it was, with its reason.
    let quarantined: Vec<(String, String, String)> = rows(&t, "SELECT table_name, row_id, reason FROM dal_adopt_quarantine ORDER BY 1, 2")
        .await
        .iter()
        .map(|r| (r.try_get("", "table_name").unwrap(), r.try_get("", "row_id").unwrap(), r.try_get("", "reason").unwrap()))
        .collect();
    assert_eq!(quarantined, expected(&DECISIONS));
    let orphan: String = rows(&t, "SELECT CAST(row_data AS TEXT) AS d FROM dal_adopt_quarantine WHERE row_id = '33333333-3333-4333-8333-000000000004'")
        .await[0]
        .try_get("", "d")
        .unwrap();
    let orphan: serde_json::Value = serde_json::from_str(&orphan).unwrap();
    assert_eq!(orphan["task_type"], json!("orphan"));
    assert_eq!(orphan["project_id"], json!(null));

    // The values: converted, backfilled as documented, readable by the library.
    let db = Database::connect(&t.config).await.unwrap();
    let t1 = db.tasks().get(id("33333333-3333-4333-8333-000000000001")).await.unwrap();
    assert_eq!((t1.created_at, t1.updated_at), (at("2024-06-01T12:00:01Z"), at("2024-06-01T12:30:00Z")));
    let t2 = db.tasks().get(id("33333333-3333-4333-8333-000000000002")).await.unwrap();
    assert_eq!(t2.status, TaskStatus::Pending);
    assert!(t2.dependant_on.is_empty());
    assert_eq!(t2.created_at, t2.updated_at, "both NULL: both the adoption's time");
    assert!(t2.created_at >= started && t2.created_at <= Utc::now(), "{}", t2.created_at);
    let t3 = db.tasks().get(id("33333333-3333-4333-8333-00000000000c")).await.unwrap();
    assert_eq!((t3.created_at, t3.updated_at), (at("2024-06-01T13:00:00Z"), at("2024-06-01T13:00:00Z")));
    assert_eq!(t3.dependant_on.to_vec(), vec![*t1.id]);
    let t6 = db.tasks().get(id("33333333-3333-4333-8333-000000000006")).await.unwrap();
    assert_eq!((t6.created_at, t6.updated_at), (at("2024-06-03T08:00:00.5Z"), at("2024-06-03T08:00:00.5Z")));
    assert_eq!(t6.params, json!([1, "two"]));
    let p1 = db.projects().get(id("22222222-2222-4222-8222-000000000001")).await.unwrap();
    assert_eq!(p1.created_at, at("2024-06-01T12:00:00.123Z"));
    let p2 = db.projects().get(id("22222222-2222-4222-8222-00000000000b")).await.unwrap();
    assert_eq!(p2.user_id, id("11111111-1111-4111-8111-11111111111a"));
    assert!(p2.created_at >= started);
    let g1 = db.generations().get(id("44444444-4444-4444-8444-000000000001")).await.unwrap();
    assert_eq!(g1.tasks.to_vec(), vec![*t3.id]);
    let u2 = db.users().get(id("11111111-1111-4111-8111-11111111111a")).await.unwrap();
    assert_eq!((u2.email, u2.display_name), (None, None));
    let timeline = |shot: &'static str| {
        let db = db.clone();
        async move {
            db.shots()
                .timeline(id(shot))
                .await
                .unwrap()
                .iter()
                .map(|e| (e.link.id.to_string(), e.link.position))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        timeline("55555555-5555-4555-8555-000000000001").await,
        vec![
            ("66666666-6666-4666-8666-000000000003".to_owned(), 0),
            ("66666666-6666-4666-8666-000000000001".to_owned(), 1),
            ("66666666-6666-4666-8666-000000000002".to_owned(), 2),
        ],
        "current order (position, NULLs last), renumbered 0..n"
    );
    assert_eq!(
        timeline("55555555-5555-4555-8555-000000000002").await,
        vec![("66666666-6666-4666-8666-000000000007".to_owned(), 0)]
    );

    // The repositories work on the adopted database.
    let user = db.users().create(NewUser::default()).await.unwrap();
    let project = db.projects().create(NewProject::new(user.id, "After")).await.unwrap();
    let task = db.tasks().create(NewTask::queued(project.id, "render", json!({}))).await.unwrap();
    assert_eq!(db.tasks().get(task.id).await.unwrap(), task);
    let listed = db.tasks().list_for_project(p1.id, &TaskFilter::default(), PageRequest::first(100)).await.unwrap().items;
    assert_eq!(listed.len(), 3);
    let page = db.projects().list_for_user(id("00000000-0000-4000-8000-000000000001"), PageRequest::first(10)).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let claimed = db.tasks().claim("upscale").await.unwrap().expect("the upscale task is ready");
    assert_eq!(claimed.id, t3.id);
    db.shots()
        .add_to_timeline(id("55555555-5555-4555-8555-000000000002"), g1.id, Some(0))
        .await
        .unwrap();
    assert_eq!(timeline("55555555-5555-4555-8555-000000000002").await.len(), 2);
    db.close().await.unwrap();

    // Again: nothing to do, nothing changes.
    let adopted = snapshot(&t).await;
    assert!(matches!(adopt_on(&t, QUARANTINE).await.unwrap(), Outcome::Current));
    assert!(matches!(adopt_on(&t, PLAN).await.unwrap(), Outcome::Current));
    assert_eq!(snapshot(&t).await, adopted);
});

parity_test!(empty async fn a_draft_without_orphans_is_adopted_without_a_quarantine(t) {
    load_draft(&t).await;
    // Resolve the fixture's orphans by hand, as a user told so by the plan would.
    run_script(&t, "DELETE FROM shot_generations WHERE shot_id IS NULL OR generation_id IS NULL \
                    OR CAST(shot_id AS TEXT) = '55555555-5555-4555-8555-000000000003' \
                    OR CAST(generation_id AS TEXT) = '44444444-4444-4444-8444-000000000003'; \
                    DELETE FROM shots WHERE project_id IS NULL; \
                    DELETE FROM generations WHERE project_id IS NULL; \
                    DELETE FROM tasks WHERE project_id IS NULL OR CAST(project_id AS TEXT) = '22222222-2222-4222-8222-000000000003'; \
                    DELETE FROM projects WHERE CAST(user_id AS TEXT) = '99999999-9999-4999-8999-999999999999';").await;
    let Outcome::Planned(plan) = adopt_on(&t, PLAN).await.unwrap() else {
        panic!("a plan");
    };
    assert!(plan.decisions.is_empty());
    assert_eq!(plan.quarantine_statements, 0);
    assert!(plan.to_string().contains("Rows that need a decision: none"));
    let Outcome::Applied(applied) = adopt_on(&t, APPLY).await.unwrap() else {
        panic!("adoption applies without --quarantine");
    };
    assert_eq!(counts(&applied.rows_after), counts(&plan.rows));
    assert!(applied.quarantined.iter().all(|(_, n)| *n == 0));
    assert_eq!(cli::check(&t.config).await.unwrap(), Vec::<String>::new());
    let tables = rows(&t, match t.backend() {
        Backend::Postgres => "SELECT count(*) AS n FROM pg_tables WHERE tablename = 'dal_adopt_quarantine'",
        Backend::Sqlite => "SELECT count(*) AS n FROM sqlite_master WHERE name = 'dal_adopt_quarantine'",
    })
    .await;
    assert_eq!(tables[0].try_get::<i64>("", "n").unwrap(), 0, "no quarantine table when nothing is quarantined");
});

parity_test!(empty async fn what_is_neither_draft_nor_history_is_refused_unchanged(t) {
    // An empty database.
    match adopt_on(&t, QUARANTINE).await {
        Err(AdoptError::NotDraft(d)) => assert!(d.iter().any(|p| p.contains("none of the draft's tables")), "{d:?}"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    // A draft someone changed: a column neither the draft nor the history has, and one
    // of the draft's columns gone.
    load_draft(&t).await;
    run_script(&t, "ALTER TABLE tasks ADD COLUMN priority integer").await;
    run_script(&t, "ALTER TABLE shots DROP COLUMN updated_at").await;
    let before = snapshot(&t).await;
    for options in [PLAN, QUARANTINE] {
        match adopt_on(&t, options).await {
            Err(e @ AdoptError::NotDraft(_)) => {
                let AdoptError::NotDraft(ref d) = e else { unreachable!() };
                assert!(d.iter().any(|p| p.contains("tasks.priority") && p.contains("neither")), "{d:?}");
                assert!(d.iter().any(|p| p.contains("shots.updated_at is missing")), "{d:?}");
                assert!(e.to_string().contains("nothing was changed"));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(snapshot(&t).await, before);
});

parity_test!(async fn a_current_database_says_so_and_one_behind_is_sent_to_up(t) {
    let before = snapshot(&t).await;
    assert!(matches!(adopt_on(&t, PLAN).await.unwrap(), Outcome::Current));
    assert!(matches!(adopt_on(&t, QUARANTINE).await.unwrap(), Outcome::Current));
    assert_eq!(snapshot(&t).await, before);
    assert_eq!(Outcome::Current.to_string().lines().count(), 1);

    // Managed by the history but behind it: adoption is not the tool.
    cli::execute(&t.config, MigrateCommand::Down { num: 1 }, true).await.unwrap();
    let behind = snapshot(&t).await;
    match adopt_on(&t, QUARANTINE).await {
        Err(e @ AdoptError::Managed(_)) => {
            let AdoptError::Managed(ref problems) = e else { unreachable!() };
            let last = Migrator::migrations().last().unwrap().name().to_owned();
            assert!(problems.iter().any(|p| p.contains(&last) && p.contains("not applied")), "{problems:?}");
            assert!(e.to_string().contains("migration up"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(snapshot(&t).await, behind);
});

/// Values only SQLite's draft can hold: converted exactly, or reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drizzle_values_are_converted_or_reported() {
    parity_tests::run(Backend::Sqlite, Setup::Empty, |t| async move {
        load_draft(&t).await;
        run_script(&t, &fixture("drizzle_sqlite_values.sql")).await;
        let Outcome::Planned(plan) = adopt_on(&t, PLAN).await.unwrap() else {
            panic!("a plan");
        };
        let mut want = DECISIONS.to_vec();
        want.extend([
            ("users", "77777777-7777-4777-8777-77777777777A", "id '77777777-7777-4777-8777-77777777777a' is not unique"),
            ("users", "77777777-7777-4777-8777-77777777777a", "id '77777777-7777-4777-8777-77777777777a' is not unique"),
            ("tasks", "33333333-3333-4333-8333-00000000000D", "params 'not json' fails tasks_params_check"),
            ("tasks", "33333333-3333-4333-8333-00000000000e", "status 'Done' fails tasks_status_check"),
            ("tasks", "33333333-3333-4333-8333-00000000000f", "dependant_on holds a value that is not a uuid"),
            ("tasks", "33333333-3333-4333-8333-000000000010", "dependant_on '{\"a\":1}' fails tasks_dependant_on_check"),
            (
                "tasks",
                "33333333-3333-4333-8333-000000000011",
                // updated_at was NULL, so it takes created_at, which does not convert.
                "created_at 'yesterday' fails tasks_created_at_check; updated_at 'yesterday' fails tasks_updated_at_check",
            ),
            ("generations", "not-a-uuid", "id 'not-a-uuid' fails generations_id_check"),
        ]);
        assert_eq!(decisions(&plan), expected(&want));

        let Outcome::Applied(applied) = adopt_on(&t, QUARANTINE).await.unwrap() else {
            panic!("adoption applies");
        };
        assert_eq!(applied.quarantined.iter().map(|(_, n)| n).sum::<u64>(), want.len() as u64);
        assert_eq!(cli::check(&t.config).await.unwrap(), Vec::<String>::new());

        // The stored text, exactly.
        let stored = |sql: &'static str| {
            let t = &t;
            async move { rows(t, sql).await[0].try_get::<String>("", "v").unwrap() }
        };
        assert_eq!(stored("SELECT created_at AS v FROM projects WHERE id = '22222222-2222-4222-8222-000000000001'").await, "2024-06-01T12:00:00.123000Z");
        assert_eq!(stored("SELECT id AS v FROM projects WHERE name = 'No date'").await, "22222222-2222-4222-8222-00000000000b");
        assert_eq!(stored("SELECT created_at AS v FROM tasks WHERE task_type = 'before 1970'").await, "1969-12-31T23:59:58.500000Z");
        assert_eq!(stored("SELECT updated_at AS v FROM tasks WHERE task_type = 'before 1970'").await, "1970-01-01T00:00:00.000000Z");
        assert_eq!(stored("SELECT created_at AS v FROM tasks WHERE task_type = 'already text'").await, "2024-06-05T10:00:00.000000Z");
        assert_eq!(
            stored("SELECT dependant_on AS v FROM tasks WHERE task_type = 'already text'").await,
            r#"["33333333-3333-4333-8333-00000000000c","33333333-3333-4333-8333-000000000001"]"#
        );
        // Quarantined rows keep their values as they were, even invalid JSON.
        let bad: serde_json::Value = serde_json::from_str(
            &stored("SELECT row_data AS v FROM dal_adopt_quarantine WHERE row_id = '33333333-3333-4333-8333-00000000000D'").await,
        )
        .unwrap();
        assert_eq!((bad["params"].clone(), bad["created_at"].clone()), (json!("not json"), json!(1717243200000_i64)));
        // __drizzle_migrations is drizzle-kit's journal: left as it was.
        assert_eq!(stored("SELECT hash AS v FROM __drizzle_migrations").await.len(), 64);

        let db = Database::connect(&t.config).await.unwrap();
        let deep = db.tasks().list_for_project(id("22222222-2222-4222-8222-000000000001"), &TaskFilter::default().status(TaskStatus::Cancelled), PageRequest::first(100)).await.unwrap().items;
        assert_eq!(deep.len(), 1);
        assert_eq!(deep[0].params, json!({"deep": {"list": [1, 2, {"x": null}]}}));
        assert_eq!(deep[0].created_at, at("1969-12-31T23:59:58.5Z"));
        db.close().await.unwrap();
    })
    .await;
}

/// `CREATE TABLE` text for a table of the product's own, outside the schema.
fn outside_table(t: &TestDb, sql: &str) -> String {
    let uuid = match t.backend() {
        Backend::Postgres => "uuid",
        Backend::Sqlite => "text",
    };
    sql.replace("UUID", uuid)
}

parity_test!(empty async fn tables_outside_the_schema_are_left_alone(t) {
    load_draft(&t).await;
    run_script(&t, "CREATE TABLE notes (id integer PRIMARY KEY, body text NOT NULL); \
                    INSERT INTO notes (id, body) VALUES (1, 'keep me')").await;
    let Outcome::Planned(plan) = adopt_on(&t, PLAN).await.unwrap() else {
        panic!("a plan");
    };
    assert_eq!(plan.left_alone, vec!["notes".to_owned()]);
    assert!(plan.to_string().contains("Left alone"));
    let Outcome::Applied(applied) = adopt_on(&t, QUARANTINE).await.unwrap() else {
        panic!("adoption applies");
    };
    assert_eq!(applied.plan.left_alone, vec!["notes".to_owned()]);
    assert_eq!(
        cli::check(&t.config).await.unwrap(),
        vec!["table notes is not in the migrations".to_owned()],
        "only the table left alone differs"
    );
    let body: String = rows(&t, "SELECT body FROM notes WHERE id = 1").await[0].try_get("", "body").unwrap();
    assert_eq!(body, "keep me");
});

parity_test!(empty async fn rows_referenced_from_outside_are_not_quarantined(t) {
    load_draft(&t).await;
    run_script(&t, &outside_table(&t, "CREATE TABLE comments (id integer PRIMARY KEY, task_id UUID REFERENCES tasks(id)); \
                    INSERT INTO comments (id, task_id) VALUES (1, '33333333-3333-4333-8333-000000000004')")).await;
    let before = snapshot(&t).await;
    match adopt_on(&t, QUARANTINE).await {
        Err(e @ AdoptError::ReferencedFromOutside(_)) => {
            let AdoptError::ReferencedFromOutside(ref list) = e else { unreachable!() };
            assert!(list.len() == 1 && list[0].starts_with("comments.") && list[0].ends_with("-> tasks"), "{list:?}");
            assert!(e.to_string().contains("nothing was changed"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(snapshot(&t).await, before);
});

/// Adoption takes the lock `Database::migrate` takes (Postgres: an advisory lock), so it
/// waits for a migration in progress instead of altering tables under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adoption_waits_for_a_migration_in_progress() {
    use sqlx::Connection;
    parity_tests::run(Backend::Postgres, Setup::Empty, |t| async move {
        load_draft(&t).await;
        let dal::Config { target: dal_config::DatabaseTarget::Postgres { url }, .. } = &t.config else {
            unreachable!("a Postgres test");
        };
        let mut holder = sqlx::PgConnection::connect(url.expose_secret()).await.unwrap();
        sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
        let lock = migration::locked::preamble(
            sea_orm::DbBackend::Postgres,
            migration::locked::Route::Session,
        );
        sqlx::query(sqlx::AssertSqlSafe(lock)).execute(&mut holder).await.unwrap();

        let config = t.config.clone();
        let adoption = tokio::spawn(async move { adopt(&config, QUARANTINE).await });
        let mut watcher = sqlx::PgConnection::connect(url.expose_secret()).await.unwrap();
        let mut waiting = false;
        for _ in 0..1200 {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .fetch_one(&mut watcher)
            .await
            .unwrap();
            if n == 1 {
                waiting = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(waiting, "adoption queues behind the migration lock");
        assert!(!adoption.is_finished());
        let untouched: i64 = sqlx::query_scalar("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users'")
            .fetch_one(&mut watcher)
            .await
            .unwrap();
        assert_eq!(untouched, 1, "users still has only its id while adoption waits");

        sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
        assert!(matches!(adoption.await.unwrap().unwrap(), Outcome::Applied(_)));
        holder.close().await.unwrap();
        watcher.close().await.unwrap();
    })
    .await;
}

// --add-missing-users: the draft's users held only ids and projects.user_id had no
// foreign key, so projects may name users that have no row.

const ADD_USERS_PLAN: AdoptOptions = AdoptOptions {
    apply: false,
    quarantine: false,
    add_missing_users: true,
};
const ADD_USERS_APPLY: AdoptOptions = AdoptOptions {
    apply: true,
    quarantine: false,
    add_missing_users: true,
};
const ADD_USERS_QUARANTINE: AdoptOptions = AdoptOptions {
    apply: true,
    quarantine: true,
    add_missing_users: true,
};

/// The fixture's project whose user has no row, and its user and task.
const LOST_PROJECT: &str = "22222222-2222-4222-8222-000000000003";
const LOST_USER: &str = "99999999-9999-4999-8999-999999999999";
const LOST_TASK: &str = "33333333-3333-4333-8333-000000000005";

fn added(plan: &Plan) -> Vec<(String, String)> {
    plan.missing_users
        .as_ref()
        .expect("--add-missing-users was given")
        .added
        .iter()
        .map(|u| (u.id.clone(), u.created_at.clone()))
        .collect()
}

parity_test!(empty async fn add_missing_users_keeps_the_projects_that_name_them(t) {
    load_draft(&t).await;
    let before = snapshot(&t).await;
    // The decisions without the lost project and its task.
    let kept: Vec<_> = DECISIONS
        .iter()
        .filter(|(_, row, _)| ![LOST_PROJECT, LOST_TASK].contains(row))
        .copied()
        .collect();
    assert_eq!(kept.len(), DECISIONS.len() - 2);

    // Without the option: as before, no users are added.
    let Outcome::Planned(plain) = adopt_on(&t, PLAN).await.unwrap() else {
        panic!("a plan");
    };
    assert!(plain.missing_users.is_none());
    assert_eq!(decisions(&plain), expected(&DECISIONS));
    assert!(!plain.to_string().contains("--add-missing-users"));

    // The plan: the user, its created_at (its one project's), and the INSERT.
    let Outcome::Planned(plan) = adopt_on(&t, ADD_USERS_PLAN).await.unwrap() else {
        panic!("a plan");
    };
    assert_eq!(added(&plan), vec![(LOST_USER.to_owned(), "2024-06-02T00:00:00.000000Z".to_owned())]);
    let missing = plan.missing_users.as_ref().unwrap();
    assert!(!missing.auth_users && missing.not_in_auth.is_empty());
    assert_eq!(decisions(&plan), expected(&kept));
    assert_eq!(counts(&plan.rows), counts(&plain.rows), "rows now are the same");
    let position = |needle: &str| {
        plan.statements
            .iter()
            .position(|s| s.contains(needle))
            .unwrap_or_else(|| panic!("no statement has {needle}: {:#?}", plan.statements))
    };
    match t.backend() {
        Backend::Postgres => {
            // After users gained created_at, before projects gained the foreign key.
            let insert = position("INSERT INTO \"users\" (\"id\", \"email\", \"display_name\", \"created_at\")");
            assert_eq!(plan.statements[insert], missing.insert);
            assert!(insert > position("ALTER TABLE \"users\" ADD COLUMN \"created_at\""));
            assert!(insert < position("ADD CONSTRAINT \"projects_user_id_fkey\""));
        }
        Backend::Sqlite => {
            // Staged with the converted users; the rebuild copies them.
            assert!(missing.insert.starts_with("INSERT INTO temp.\"adopt_conv_users\""), "{}", missing.insert);
            assert!(!plan.statements.contains(&missing.insert));
        }
    }
    let text = plan.to_string();
    assert!(text.contains("Users to add (--add-missing-users): 1,"), "{text}");
    assert!(text.contains(&format!("{LOST_USER}  created_at 2024-06-02T00:00:00.000000Z")), "{text}");
    assert!(text.contains(&missing.insert) && text.contains(&missing.find), "{text}");
    assert!(text.contains(&format!("Rows that need a decision: {}", kept.len())), "{text}");
    assert_eq!(snapshot(&t).await, before, "the plan changes nothing");

    // Applied with --quarantine for the other orphans.
    let Outcome::Applied(applied) = adopt_on(&t, ADD_USERS_QUARANTINE).await.unwrap() else {
        panic!("adoption applies");
    };
    assert_eq!(
        counts(&applied.rows_after),
        named(&[("users", 3), ("projects", 3), ("tasks", 5), ("generations", 3), ("shots", 2), ("shot_generations", 4)])
    );
    assert_eq!(
        counts(&applied.quarantined),
        named(&[("users", 0), ("projects", 0), ("tasks", 1), ("generations", 1), ("shots", 1), ("shot_generations", 4)])
    );
    assert_eq!(
        counts(&applied.added),
        named(&[("users", 1), ("projects", 0), ("tasks", 0), ("generations", 0), ("shots", 0), ("shot_generations", 0)])
    );
    let report = applied.to_string();
    assert!(report.contains("users: 2 before, 3 after, 1 added"), "{report}");
    assert!(report.contains("7 rows moved to dal_adopt_quarantine"), "{report}");
    let columns = |table: &str| {
        report
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|words| words.first() == Some(&table))
            .unwrap_or_else(|| panic!("no {table} line: {report}"))
    };
    assert_eq!(columns("table"), ["table", "before", "after", "quarantined", "added"]);
    assert_eq!(columns("users"), ["users", "2", "3", "0", "1"]);
    assert_eq!(columns("tasks"), ["tasks", "6", "5", "1", "0"]);
    assert_eq!(cli::check(&t.config).await.unwrap(), Vec::<String>::new());
    let status = cli::execute(&t.config, MigrateCommand::Status, false).await.unwrap();
    assert!(status.iter().all(|m| m.applied), "{status:?}");

    // The project, its task and the user it names are there; the quarantine has neither.
    let db = Database::connect(&t.config).await.unwrap();
    let user = db.users().get(id(LOST_USER)).await.unwrap();
    assert_eq!((user.email, user.display_name, user.created_at), (None, None, at("2024-06-02T00:00:00Z")));
    let project = db.projects().get(id(LOST_PROJECT)).await.unwrap();
    assert_eq!((project.name.as_str(), project.user_id), ("Lost user", user.id));
    let page = db.projects().list_for_user(user.id, PageRequest::first(10)).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let task = db.tasks().get(id(LOST_TASK)).await.unwrap();
    assert_eq!((task.task_type.as_str(), task.project_id), ("lost", project.id));
    db.close().await.unwrap();
    let quarantined: Vec<String> = rows(&t, "SELECT row_id FROM dal_adopt_quarantine ORDER BY 1")
        .await
        .iter()
        .map(|r| r.try_get("", "row_id").unwrap())
        .collect();
    let mut want: Vec<String> = kept.iter().map(|(_, row, _)| row.to_string()).collect();
    want.sort();
    assert_eq!(quarantined, want);

    assert!(matches!(adopt_on(&t, ADD_USERS_QUARANTINE).await.unwrap(), Outcome::Current));
});

parity_test!(empty async fn add_missing_users_takes_each_id_once_and_leaves_the_rest_to_decisions(t) {
    load_draft(&t).await;
    // Resolve the fixture's other orphans by hand; keep the lost project and its task.
    run_script(&t, "DELETE FROM shot_generations WHERE shot_id IS NULL OR generation_id IS NULL \
                    OR CAST(shot_id AS TEXT) = '55555555-5555-4555-8555-000000000003' \
                    OR CAST(generation_id AS TEXT) = '44444444-4444-4444-8444-000000000003'; \
                    DELETE FROM shots WHERE project_id IS NULL; \
                    DELETE FROM generations WHERE project_id IS NULL; \
                    DELETE FROM tasks WHERE project_id IS NULL;").await;
    // One missing user named twice (in two cases on SQLite), one whose only project has no
    // created_at, and a project naming no user (Postgres: NULL; SQLite: not a uuid).
    let (older, newer, nobody) = match t.backend() {
        Backend::Postgres => {
            run_script(&t, "ALTER TABLE projects ALTER COLUMN user_id DROP NOT NULL").await;
            ("'2024-04-01T10:00:00.25Z'", "'2024-05-01T00:00:00Z'", "NULL")
        }
        Backend::Sqlite => ("1711965600250", "1714521600000", "'not-a-uuid'"),
    };
    run_script(&t, &format!(
        "INSERT INTO projects (id, name, user_id, created_at) VALUES \
         ('22222222-2222-4222-8222-0000000000a1', 'Newer', '88888888-8888-4888-8888-88888888888A', {newer}), \
         ('22222222-2222-4222-8222-0000000000a2', 'Older', '88888888-8888-4888-8888-88888888888a', {older}), \
         ('22222222-2222-4222-8222-0000000000a3', 'Undated', '77777777-7777-4777-8777-000000000001', NULL), \
         ('22222222-2222-4222-8222-0000000000a4', 'Nobody', {nobody}, '2024-01-01T00:00:00Z')"
    )).await;

    let started = Utc::now() - chrono::Duration::seconds(1);
    let Outcome::Planned(plan) = adopt_on(&t, ADD_USERS_PLAN).await.unwrap() else {
        panic!("a plan");
    };
    let users = added(&plan);
    let ids: Vec<&str> = users.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["77777777-7777-4777-8777-000000000001", "88888888-8888-4888-8888-88888888888a", LOST_USER]);
    let undated: DateTime<Utc> = users[0].1.parse().unwrap();
    assert!(undated >= started && undated <= Utc::now(), "the adoption's time: {undated}");
    assert_eq!(users[1].1, "2024-04-01T10:00:00.250000Z", "the earliest of its projects'");
    assert_eq!(users[2].1, "2024-06-02T00:00:00.000000Z");
    let left = decisions(&plan);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!((left[0].0.as_str(), left[0].1.as_str()), ("projects", "22222222-2222-4222-8222-0000000000a4"));
    let reason = match t.backend() {
        Backend::Postgres => "user_id is NULL",
        Backend::Sqlite => "user_id 'not-a-uuid' is not in users",
    };
    assert!(left[0].2.contains(reason), "{left:?}");

    // Without --quarantine, the project naming no user is still refused.
    let before = snapshot(&t).await;
    match adopt_on(&t, ADD_USERS_APPLY).await {
        Err(AdoptError::NeedsDecision(plan)) => assert_eq!(decisions(&plan), left),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(snapshot(&t).await, before, "a refused adoption changes nothing");

    // Resolved by hand, the rest needs no quarantine.
    run_script(&t, "DELETE FROM projects WHERE name = 'Nobody'").await;
    let Outcome::Applied(applied) = adopt_on(&t, ADD_USERS_APPLY).await.unwrap() else {
        panic!("adoption applies without --quarantine");
    };
    assert_eq!(
        counts(&applied.rows_after),
        named(&[("users", 5), ("projects", 6), ("tasks", 5), ("generations", 3), ("shots", 2), ("shot_generations", 4)])
    );
    assert!(applied.quarantined.iter().all(|(_, n)| *n == 0));
    assert!(applied.to_string().contains("users: 2 before, 5 after, 3 added"), "{applied}");
    assert_eq!(cli::check(&t.config).await.unwrap(), Vec::<String>::new());

    let db = Database::connect(&t.config).await.unwrap();
    let eights = db.users().get(id("88888888-8888-4888-8888-88888888888a")).await.unwrap();
    assert_eq!(eights.created_at, at("2024-04-01T10:00:00.25Z"));
    let page = db.projects().list_for_user(eights.id, PageRequest::first(10)).await.unwrap();
    assert_eq!(page.items.len(), 2, "both projects name the one user");
    let sevens = db.users().get(id("77777777-7777-4777-8777-000000000001")).await.unwrap();
    let undated = db.projects().get(id("22222222-2222-4222-8222-0000000000a3")).await.unwrap();
    assert_eq!(sevens.created_at, undated.created_at, "both the adoption's time");
    db.close().await.unwrap();
});

/// On Supabase the users live in `auth.users`: only ids found there are added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_missing_users_on_supabase_adds_only_users_in_auth_users() {
    parity_tests::run(Backend::Postgres, Setup::Empty, |t| async move {
        load_draft(&t).await;
        run_script(&t, &format!(
            "CREATE SCHEMA auth; \
             CREATE TABLE auth.users (id uuid PRIMARY KEY, email text); \
             INSERT INTO auth.users (id, email) VALUES ('00000000-0000-4000-8000-000000000001', 'a@example.com'), ('{LOST_USER}', 'lost@example.com'); \
             INSERT INTO projects (id, name, user_id, created_at) VALUES ('22222222-2222-4222-8222-0000000000a5', 'Unknown', '88888888-8888-4888-8888-888888888888', '2024-06-03T00:00:00Z'); \
             INSERT INTO tasks (id, task_type, params, project_id) VALUES ('33333333-3333-4333-8333-0000000000a5', 'unknown', '{{}}', '22222222-2222-4222-8222-0000000000a5')"
        )).await;

        let Outcome::Planned(plan) = adopt_on(&t, ADD_USERS_PLAN).await.unwrap() else {
            panic!("a plan");
        };
        assert_eq!(added(&plan), vec![(LOST_USER.to_owned(), "2024-06-02T00:00:00.000000Z".to_owned())]);
        let missing = plan.missing_users.as_ref().unwrap();
        assert!(missing.auth_users);
        assert_eq!(missing.not_in_auth, vec!["88888888-8888-4888-8888-888888888888".to_owned()]);
        assert!(missing.find.contains("auth.users"), "{}", missing.find);
        let mut want: Vec<_> = DECISIONS
            .iter()
            .filter(|(_, row, _)| ![LOST_PROJECT, LOST_TASK].contains(row))
            .copied()
            .collect();
        want.push(("projects", "22222222-2222-4222-8222-0000000000a5", "user_id '88888888-8888-4888-8888-888888888888' is not in users"));
        want.push(("tasks", "33333333-3333-4333-8333-0000000000a5", "project_id '22222222-2222-4222-8222-0000000000a5' is a projects row that needs a decision"));
        assert_eq!(decisions(&plan), expected(&want));
        let text = plan.to_string();
        assert!(text.contains("auth.users exists: only user ids found there are added."), "{text}");
        assert!(text.contains("1 user id named by projects is not in auth.users either, so its projects stay rows that need a decision: 88888888-8888-4888-8888-888888888888"), "{text}");

        let Outcome::Applied(applied) = adopt_on(&t, ADD_USERS_QUARANTINE).await.unwrap() else {
            panic!("adoption applies");
        };
        assert!(applied.to_string().contains("users: 2 before, 3 after, 1 added"), "{applied}");
        assert!(applied.to_string().contains("Not added (not in auth.users): 88888888-8888-4888-8888-888888888888."), "{applied}");
        assert_eq!(cli::check(&t.config).await.unwrap(), Vec::<String>::new());
        let reason: String = rows(&t, "SELECT reason FROM dal_adopt_quarantine WHERE row_id = '22222222-2222-4222-8222-0000000000a5'")
            .await[0]
            .try_get("", "reason")
            .unwrap();
        assert_eq!(reason, "user_id '88888888-8888-4888-8888-888888888888' is not in users");
        let db = Database::connect(&t.config).await.unwrap();
        assert!(db.users().get(id(LOST_USER)).await.is_ok());
        assert!(db.projects().get(id(LOST_PROJECT)).await.is_ok());
        db.close().await.unwrap();
        let auth: i64 = rows(&t, "SELECT count(*) AS n FROM auth.users").await[0].try_get("", "n").unwrap();
        assert_eq!(auth, 2, "auth.users is only read");
    })
    .await;
}
