//! Rows other programs write: the web app through Supabase, a DBA with psql, a script with
//! the sqlite3 CLI. Each value is written with raw SQL as such a program would, then read
//! with every repository operation that touches it. Every value both databases accept is
//! read, equal on both; everything else is refused when written, as `InvalidValue` on both.

use dal::prelude::*;
use dal::{Backend, DalError};
use parity_tests::{TestDb, parity_test};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

/// Runs raw SQL as another program would, mapping a refusal to the library's error.
pub(crate) async fn exec(t: &TestDb, sql: &str) -> Result<(), DalError> {
    t.db.execute_unprepared(sql)
        .await
        .map(|_| ())
        .map_err(DalError::from)
}

/// The text of the single value (aliased `v`) `sql` selects.
pub(crate) async fn scalar(t: &TestDb, sql: &str) -> Option<String> {
    let row =
        t.db.query_one_raw(Statement::from_string(t.db.get_database_backend(), sql))
            .await
            .unwrap()?;
    row.try_get::<Option<String>>("", "v").unwrap()
}

/// `text` as an SQL string literal.
pub(crate) fn lit(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A uuid list as each backend's program writes it: a Postgres array, or JSON text.
pub(crate) fn list(t: &TestDb, elements: &[&str]) -> String {
    match t.backend() {
        Backend::Postgres => {
            let items: Vec<String> = elements.iter().map(|e| lit(e)).collect();
            format!("ARRAY[{}]::uuid[]", items.join(", "))
        }
        Backend::Sqlite => lit(&serde_json::to_string(elements).unwrap()),
    }
}

/// Inserts a `Queued` task of type `render` with the given SQL literals, as a foreign
/// program would (no library in between).
pub(crate) async fn insert_task(
    t: &TestDb,
    project: Id,
    id: &str,
    params: &str,
    dependant_on: &str,
    created_at: &str,
) -> Result<(), DalError> {
    exec(
        t,
        &format!(
            "INSERT INTO tasks (id, task_type, params, status, dependant_on, created_at, updated_at, project_id) \
             VALUES ({id}, 'render', {params}, 'Queued', {dependant_on}, {created_at}, {created_at}, '{project}')"
        ),
    )
    .await
}

pub(crate) const T0: &str = "'2026-01-02T03:04:05.123456Z'";

async fn project(t: &TestDb) -> Id {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    t.db.projects()
        .create(NewProject::new(user.id, "foreign"))
        .await
        .unwrap()
        .id
}

fn assert_invalid(result: Result<(), DalError>, what: &str) {
    match result {
        Err(DalError::InvalidValue { .. }) => {}
        other => panic!("{what}: expected InvalidValue, got {other:?}"),
    }
}

parity_test!(async fn json_numbers_of_any_size_read_exactly_and_alike(t) {
    let project = project(&t).await;
    let written = r#"{"big": 1e400, "neg": -1E+400, "u": 18446744073709551617,
        "huge": 123456789012345678901234567890, "long": 0.1000000000000000000001,
        "tiny": 1e-400, "negzero": -0.0, "zero": -0, "hundred": 1e2, "fifteen": 1.50e1,
        "tenth": 0.1, "seven": 1e-7, "b": 1, "a": 2, "a": 3, "text": "\u00e9\ud83c\udfac"}"#;
    // One value on both backends, whatever each stored: Postgres keeps 1 and 400 zeros
    // for 1e400 and has no -0; SQLite keeps the text as written.
    let expected: Value = serde_json::from_str(
        r#"{"big": 1e400, "neg": -1e400, "u": 18446744073709551617,
        "huge": 123456789012345678901234567890, "long": 0.1000000000000000000001,
        "tiny": 1e-400, "negzero": 0.0, "zero": 0, "hundred": 100, "fifteen": 15.0,
        "tenth": 0.1, "seven": 1e-7, "b": 1, "a": 3, "text": "é🎬"}"#,
    )
    .unwrap();
    let expected = entities::json::canonical(expected);
    assert_eq!(expected["big"].to_string(), "1e+400");
    assert_eq!(expected["u"].to_string(), "18446744073709551617");
    let dependency = t.db.tasks().create(NewTask::queued(project, "prep", json!({}))).await.unwrap();
    let id = Id::new();
    insert_task(&t, project, &lit(&id.to_string()), &lit(written), &list(&t, &[&dependency.id.to_string()]), T0)
        .await
        .unwrap();

    let task = t.db.tasks().get(id).await.unwrap();
    assert_eq!(task.params, expected);
    let listed = t.db.tasks().list_for_project(project, &TaskFilter::default(), PageRequest::first(100)).await.unwrap().items;
    assert_eq!(listed.iter().find(|x| x.id == id).unwrap(), &task);
    assert_eq!(t.db.tasks().dependants_of(dependency.id).await.unwrap(), vec![task.clone()]);
    assert!(t.db.tasks().ready(Some("render"), PageRequest::first(100)).await.unwrap().items.is_empty());
    t.db.tasks().set_status(dependency.id, TaskStatus::Complete).await.unwrap();
    assert_eq!(t.db.tasks().ready(Some("render"), PageRequest::first(100)).await.unwrap().items, vec![task.clone()]);

    let claimed = t.db.tasks().claim("render").await.unwrap().expect("the task is claimable");
    assert_eq!((claimed.id, claimed.status, &claimed.params), (id, TaskStatus::InProgress, &expected));
    let done = t.db.tasks().set_status(id, TaskStatus::Complete).await.unwrap();
    assert_eq!(done.params, expected);
    // Written back by the library and read again: still exact.
    let mut edited = done.clone();
    edited.output_location = Some("s3://out".into());
    let updated = t.db.tasks().update(edited).await.unwrap();
    assert_eq!(updated.params, expected);
    assert_eq!(t.db.tasks().get(id).await.unwrap(), updated);
    let stored_u = match t.backend() {
        Backend::Postgres => format!("SELECT (params -> 'u')::text AS v FROM tasks WHERE id = '{id}'"),
        Backend::Sqlite => format!("SELECT params -> '$.u' AS v FROM tasks WHERE id = '{id}'"),
    };
    assert_eq!(scalar(&t, &stored_u).await.as_deref(), Some("18446744073709551617"));
});

parity_test!(async fn json_that_jsonb_refuses_is_refused_and_deep_json_is_read(t) {
    let project = project(&t).await;
    for (what, params) in [
        ("NUL in a string", r#"{"a": "x\u0000y"}"#),
        ("NUL in a key", r#"{"a\u0000": 1}"#),
        ("unpaired high surrogate", r#"{"a": "\ud800"}"#),
        ("unpaired low surrogate in a key", r#"{"\udc00x": 1}"#),
        ("surrogates in the wrong order", r#"["\udc00\ud800"]"#),
        ("not JSON", "{'a': 1}"),
        ("JSON5", "{a: 1}"),
    ] {
        let id = lit(&Id::new().to_string());
        assert_invalid(insert_task(&t, project, &id, &lit(params), &list(&t, &[]), T0).await, what);
    }
    // An escaped backslash before `ud800` is no escape, and a proper pair is fine.
    let id = Id::new();
    insert_task(&t, project, &lit(&id.to_string()), &lit(r#"{"a": "\\ud800 \ud83c\udfac"}"#), &list(&t, &[]), T0)
        .await
        .unwrap();
    assert_eq!(t.db.tasks().get(id).await.unwrap().params, json!({"a": "\\ud800 🎬"}));

    // Nesting: 1000 levels are read by every operation; 1001 are refused by both schemas.
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert_invalid(
        insert_task(&t, project, &lit(&Id::new().to_string()), &lit(&deep(1001)), &list(&t, &[]), T0).await,
        "1001 levels",
    );
    let id = Id::new();
    insert_task(&t, project, &lit(&id.to_string()), &lit(&deep(1000)), &list(&t, &[]), T0)
        .await
        .unwrap();
    let expected: Value = entities::json::parse(deep(1000).as_bytes()).unwrap();
    let task = t.db.tasks().get(id).await.unwrap();
    assert_eq!(task.params, expected);
    assert_eq!(t.db.tasks().list_for_project(project, &TaskFilter::default(), PageRequest::first(100)).await.unwrap().items.len(), 2);
    let first = t.db.tasks().claim_in_project(project, "render").await.unwrap().unwrap();
    let second = t.db.tasks().claim_in_project(project, "render").await.unwrap().unwrap();
    let claimed = [first, second].into_iter().find(|x| x.id == id).expect("claimed");
    assert_eq!(claimed.params, expected);
    let updated = t.db.tasks().update(claimed).await.unwrap();
    assert_eq!(updated.params, expected);
    // The library refuses to write what neither schema stores, before the database does.
    let mut too_deep = updated;
    too_deep.params = entities::json::parse(deep(1000).as_bytes()).unwrap();
    too_deep.params = json!([too_deep.params]);
    assert!(matches!(t.db.tasks().update(too_deep).await, Err(DalError::InvalidValue { .. })));
});

parity_test!(async fn uuid_lists_hold_uuids_in_one_form(t) {
    let project = project(&t).await;
    let dep = t.db.tasks().create(NewTask::queued(project, "prep", json!({}))).await.unwrap();
    let canonical = dep.id.to_string();
    let upper = canonical.to_uppercase();
    let braced = format!("{{{canonical}}}");
    let simple = canonical.replace('-', "");
    let grouped = simple
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("-");

    // The canonical form another program writes works everywhere, alike.
    let id = Id::new();
    insert_task(&t, project, &lit(&id.to_string()), &lit("{}"), &list(&t, &[&canonical]), T0)
        .await
        .unwrap();
    assert_eq!(t.db.tasks().get(id).await.unwrap().dependant_on.0, vec![dep.id.uuid()]);
    assert_eq!(t.db.tasks().dependants_of(dep.id).await.unwrap().len(), 1);

    // Other spellings: Postgres's uuid type reads them and stores the canonical form, so
    // the list reads and matches like any other; SQLite has no uuid type, and its
    // schema refuses them, as it does in id columns.
    for spelling in [&upper, &braced, &simple, &grouped] {
        let other = Id::new();
        let written = insert_task(&t, project, &lit(&other.to_string()), &lit("{}"), &list(&t, &[spelling]), T0).await;
        match t.backend() {
            Backend::Postgres => {
                written.unwrap();
                assert_eq!(t.db.tasks().get(other).await.unwrap().dependant_on.0, vec![dep.id.uuid()]);
            }
            Backend::Sqlite => assert_invalid(written, spelling),
        }
    }
    let dependents = t.db.tasks().dependants_of(dep.id).await.unwrap().len();
    assert_eq!(dependents, if t.backend() == Backend::Postgres { 5 } else { 1 });
    assert!(t.db.tasks().ready(Some("render"), PageRequest::first(100)).await.unwrap().items.is_empty());
    t.db.tasks().set_status(dep.id, TaskStatus::Complete).await.unwrap();
    assert_eq!(t.db.tasks().ready(Some("render"), PageRequest::first(100)).await.unwrap().items.len(), dependents);
    assert!(t.db.tasks().claim("render").await.unwrap().is_some());

    // Not uuids, not strings, not a list: refused by both, the same way.
    let lists: Vec<(&str, String)> = match t.backend() {
        Backend::Postgres => vec![
            ("a malformed element", list(&t, &["not-a-uuid"])),
            ("a number", "'{1}'".to_owned()),
            ("a NULL element", format!("ARRAY[{}, NULL]::uuid[]", lit(&canonical))),
            ("two dimensions", format!("ARRAY[ARRAY[{}]]::uuid[]", lit(&canonical))),
            ("not an array", lit(&canonical)),
            ("NULL", "NULL".to_owned()),
        ],
        Backend::Sqlite => vec![
            ("a malformed element", list(&t, &["not-a-uuid"])),
            ("a number", lit("[1]")),
            ("a null element", lit(&format!("[\"{canonical}\", null]"))),
            ("a nested list", lit(&format!("[[\"{canonical}\"]]"))),
            ("not an array", lit(&format!("\"{canonical}\""))),
            ("NULL", "NULL".to_owned()),
        ],
    };
    for (what, value) in lists {
        assert_invalid(insert_task(&t, project, &lit(&Id::new().to_string()), &lit("{}"), &value, T0).await, what);
        // Nor can an update of an existing row bring one in.
        assert_invalid(exec(&t, &format!("UPDATE tasks SET dependant_on = {value} WHERE id = '{id}'")).await, what);
    }
    if t.backend() == Backend::Postgres {
        // An array with another lower bound is the same list to Postgres and to the library.
        let other = Id::new();
        insert_task(&t, project, &lit(&other.to_string()), &lit("{}"), &format!("'[0:0]={{{canonical}}}'::uuid[]"), T0)
            .await
            .unwrap();
        assert_eq!(t.db.tasks().get(other).await.unwrap().dependant_on.0, vec![dep.id.uuid()]);
    }
});

parity_test!(async fn uuid_spellings_in_id_columns(t) {
    let project = project(&t).await;
    let id = Id::new();
    let upper = lit(&id.to_string().to_uppercase());
    let written = insert_task(&t, project, &upper, &lit("{}"), &list(&t, &[]), T0).await;
    match t.backend() {
        Backend::Postgres => {
            written.unwrap();
            assert_eq!(t.db.tasks().get(id).await.unwrap().id, id);
        }
        Backend::Sqlite => assert_invalid(written, "an upper-case id"),
    }
    let braced = lit(&format!("{{{}}}", Id::new()));
    let written = insert_task(&t, project, &braced, &lit("{}"), &list(&t, &[]), T0).await;
    assert_eq!(written.is_ok(), t.backend() == Backend::Postgres, "{written:?}");
    assert_invalid(insert_task(&t, project, &lit("not-a-uuid"), &lit("{}"), &list(&t, &[]), T0).await, "not a uuid");
});

parity_test!(async fn timestamps_read_alike_and_impossible_ones_are_refused(t) {
    let project = project(&t).await;
    let expected = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456Z").unwrap();
    let id = Id::new();
    insert_task(&t, project, &lit(&id.to_string()), &lit("{}"), &list(&t, &[]), T0).await.unwrap();
    assert_eq!(t.db.tasks().get(id).await.unwrap().created_at, expected);

    // Other ISO forms: Postgres reads and normalises them (the library then reads the
    // instant); SQLite's schema takes only the one sortable form.
    for (written, instant) in [
        ("2026-01-02 03:04:05.123456", "2026-01-02T03:04:05.123456Z"),
        ("2026-01-02T05:04:05.123456+02:00", "2026-01-02T03:04:05.123456Z"),
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"),
        ("2026-01-02T03:04:05.1Z", "2026-01-02T03:04:05.100Z"),
        ("2026-12-31T23:59:60.000000Z", "2027-01-01T00:00:00Z"),
        ("2026-01-01T24:00:00.000000Z", "2026-01-02T00:00:00Z"),
    ] {
        let id = Id::new();
        let result = insert_task(&t, project, &lit(&id.to_string()), &lit("{}"), &list(&t, &[]), &lit(written)).await;
        match t.backend() {
            Backend::Postgres => {
                result.unwrap();
                let read = t.db.tasks().get(id).await.unwrap().created_at;
                assert_eq!(read, chrono::DateTime::parse_from_rfc3339(instant).unwrap(), "{written}");
            }
            Backend::Sqlite => assert_invalid(result, written),
        }
    }
    // Instants that do not exist, or lie outside the years both store: refused by both.
    for written in [
        "2026-02-30T00:00:00.000000Z",
        "2026-13-01T00:00:00.000000Z",
        "2026-01-01T23:61:00.000000Z",
        "0000-01-01T00:00:00.000000Z",
        "infinity",
        "-infinity",
        "10000-01-01T00:00:00.000000Z",
        "not a time",
    ] {
        let id = lit(&Id::new().to_string());
        assert_invalid(insert_task(&t, project, &id, &lit("{}"), &list(&t, &[]), &lit(written)).await, written);
    }
    // An update cannot bring one in either.
    assert_invalid(
        exec(&t, &format!("UPDATE tasks SET updated_at = '2026-02-29T00:00:00.000000Z' WHERE id = '{id}'")).await,
        "29 February 2026",
    );
    exec(&t, &format!("UPDATE tasks SET updated_at = '2024-02-29T00:00:00.000000Z' WHERE id = '{id}'"))
        .await
        .unwrap();
});

parity_test!(async fn text_and_integers_hold_only_what_both_store(t) {
    let project = project(&t).await;
    let id = Id::new();
    insert_task(&t, project, &lit(&id.to_string()), &lit("{}"), &list(&t, &[]), T0).await.unwrap();
    let nul = match t.backend() {
        Backend::Postgres => r"E'a\000b'",
        Backend::Sqlite => "'a' || char(0) || 'b'",
    };
    let mut refused = vec![
        ("NUL in task_type", format!("task_type = {nul}")),
        ("NUL in output_location", format!("output_location = {nul}")),
    ];
    if t.backend() == Backend::Sqlite {
        // A BLOB in a TEXT column would never equal the text it spells. (Postgres turns
        // `bytea` assigned to `text` into its text form, `\x41`.)
        refused.push(("bytes in task_type", "task_type = x'41'".to_owned()));
        refused.push(("bytes in an id", format!("project_id = CAST('{project}' AS BLOB)")));
    }
    for (what, set) in refused {
        assert_invalid(exec(&t, &format!("UPDATE tasks SET {set} WHERE id = '{id}'")).await, what);
    }
    let tree = crate::fixtures::tree(&t.db).await;
    // (A fraction is no such case: Postgres rounds it to an integer, SQLite refuses it.)
    for (what, position) in [("past i32", "4294967296"), ("text", "'first'")] {
        assert_invalid(
            exec(&t, &format!("UPDATE shot_generations SET position = {position} WHERE id = '{}'", tree.link.id)).await,
            what,
        );
    }
    assert_eq!(t.db.shots().timeline(tree.shot.id).await.unwrap()[0].link, tree.link);
    assert_eq!(t.db.tasks().get(id).await.unwrap().task_type, "render");
});
