//! Security: hostile input changes nothing it should not, on both backends. (That no
//! secret reaches a log line is checked in `tests/secrets.rs`, a process of its own, since
//! it installs a global TRACE subscriber.)

use dal::DalError;
use dal::prelude::*;
use parity_tests::parity_test;
use serde_json::json;

/// Strings that break naive SQL, JSON or text handling.
fn corpus() -> Vec<String> {
    let mut corpus: Vec<String> = [
        "'; DROP TABLE users; --",
        "\" OR 1=1 --",
        "') ; DELETE FROM projects WHERE ('1'='1",
        "$1 $$ ? ?1 :name @p",
        "\\\\'; ATTACH DATABASE '/tmp/x.db' AS x; --",
        "Robert'); DROP TABLE tasks;--",
        "{\"json\": [\"inside\", \"text\"]}",
        "𝕳𝖔𝖘𝖙𝖎𝖑𝖊 ü 中文 العربية \u{202e} 👩‍👩‍👧",
        "line\nbreak\r\n\ttab",
        "%s%n%x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    corpus.push("x".repeat(1 << 20)); // 1 MiB
    corpus
}

/// The live schema, read in a transaction (as it must be behind a transaction pooler).
async fn inspect(t: &parity_tests::TestDb) -> migration::inspect::Schema {
    let route = migration::locked::Route::of(&t.config);
    migration::locked::in_locked_transaction(t.db.sea_orm_connection(), route, |tx| {
        Box::pin(migration::inspect::inspect(tx))
    })
    .await
    .unwrap()
}

parity_test!(async fn hostile_input_changes_no_schema_and_nothing_out_of_scope(t) {
    let schema_before = inspect(&t).await;
    // Someone else's data, which nothing below may touch.
    let other = t.db.users().create(NewUser::default()).await.unwrap();
    let theirs = t.db.projects().create(NewProject::new(other.id, "theirs")).await.unwrap();
    let their_task = t.db.tasks().create(NewTask::queued(theirs.id, "render", json!({}))).await.unwrap();

    let me = t.db.users().create(NewUser::default()).await.unwrap();
    let mine = t.db.projects().create(NewProject::new(me.id, "mine")).await.unwrap();
    for (i, s) in corpus().into_iter().enumerate() {
        let email = format!("{i}{s}");
        let created = t.db.users().create(NewUser::new().email(email.clone()).display_name(s.clone())).await;
        if email.len() > dal::repo::MAX_EMAIL_BYTES {
            assert!(matches!(created, Err(DalError::InvalidValue { .. })), "{:?}", created.map(|u| u.id));
        } else {
            let user = created.unwrap();
            assert_eq!(t.db.users().find_by_email(&email).await.unwrap().map(|u| u.id), Some(user.id));
        }
        let p = t.db.projects().create(NewProject::new(me.id, s.clone())).await.unwrap();
        assert_eq!(t.db.projects().get(p.id).await.unwrap().name, s);
        let created = t.db.tasks().create(NewTask::queued(mine.id, s.clone(), json!({ s.clone(): s.clone() }))).await;
        if s.len() > dal::repo::MAX_TASK_TYPE_BYTES {
            // Beyond what the claim's index can hold on Postgres: refused alike on both.
            assert!(matches!(created, Err(DalError::InvalidValue { .. })), "{:?}", created.map(|t| t.id));
        } else {
            let task = created.unwrap();
            let mut task = t.db.tasks().get(task.id).await.unwrap();
            assert_eq!(task.params, json!({ s.clone(): s.clone() }));
            task.output_location = Some(s.clone());
            assert_eq!(t.db.tasks().update(task).await.unwrap().output_location.as_deref(), Some(s.as_str()));
        }
        let g = t.db.generations().create(NewGeneration::new(mine.id).tasks(vec![]).location(s.clone()).generation_type(s.clone())).await.unwrap();
        assert_eq!(t.db.generations().list_for_project(mine.id, Some(&s), PageRequest::first(100)).await.unwrap().items.iter().map(|g| g.id).collect::<Vec<_>>(), vec![g.id]);
        let shot = t.db.shots().create(NewShot::new(mine.id, s.clone())).await.unwrap();
        assert_eq!(t.db.shots().get(shot.id).await.unwrap().name, s);
        assert!(t.db.tasks().ready(Some(&s), PageRequest::first(100)).await.unwrap().items.iter().all(|t| t.project_id == mine.id));
    }
    // What neither backend can store fails the same way on both, and writes nothing.
    let rows_before = t.db.tasks().list_for_project(mine.id, &TaskFilter::default(), PageRequest::first(100)).await.unwrap().items.len();
    for bad in ["nul\0inside", "\0"] {
        for err in [
            t.db.projects().create(NewProject::new(me.id, bad)).await.unwrap_err(),
            t.db.tasks().create(NewTask::queued(mine.id, bad, json!({}))).await.unwrap_err(),
            t.db.tasks().create(NewTask::queued(mine.id, "ok", json!({ "k": bad }))).await.unwrap_err(),
            t.db.tasks().create(NewTask::queued(mine.id, "ok", json!({ bad: 1 }))).await.unwrap_err(),
            t.db.shots().create(NewShot::new(mine.id, bad)).await.unwrap_err(),
            t.db.users().create(NewUser::new().display_name(bad)).await.unwrap_err(),
        ] {
            assert!(matches!(err, DalError::InvalidValue { .. }), "{err:?}");
        }
    }
    assert_eq!(t.db.tasks().list_for_project(mine.id, &TaskFilter::default(), PageRequest::first(100)).await.unwrap().items.len(), rows_before);
    // A lone UTF-16 surrogate cannot even become a JSON value to send.
    assert!(serde_json::from_str::<serde_json::Value>(r#"{"k": "\ud800"}"#).is_err());

    let schema_after = inspect(&t).await;
    assert_eq!(schema_after, schema_before, "no input changed the schema");
    assert_eq!(t.db.projects().get(theirs.id).await.unwrap(), theirs);
    assert_eq!(t.db.tasks().get(their_task.id).await.unwrap(), their_task);
    assert_eq!(t.db.projects().list_for_user(other.id, PageRequest::first(10)).await.unwrap().items, vec![theirs]);
});
