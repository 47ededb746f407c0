//! Rows the library cannot read (written while a DBA had dropped the check that guards a
//! column, or text that is not UTF-8 on SQLite, which no SQLite schema can refuse): every
//! operation that meets one fails with `Undecodable` naming table, row and column, on both
//! backends, and no write reports that failure after committing: the row is unchanged.

use dal::prelude::*;
use dal::{Backend, DalError};
use parity_tests::{TestDb, parity_test};
use serde_json::json;

use crate::foreign_writes::{T0, exec, insert_task, list, lit, scalar};

/// Every column of the row as stored, as text (on Postgres with its change stamp, which
/// any committed update moves; on SQLite each value's type and bytes, as it may not be
/// UTF-8): equal before and after means nothing was written.
async fn row_text(t: &TestDb, table: &str, id: Id) -> String {
    let sql = match t.backend() {
        Backend::Postgres => {
            format!("SELECT row_to_json(x)::text AS v FROM \"{table}\" x WHERE id = '{id}'")
        }
        Backend::Sqlite => {
            let columns = scalar(
                t,
                &format!(
                    "SELECT group_concat('typeof(\"' || name || '\") || hex(\"' || name || '\")', ' || ''|'' || ') AS v \
                     FROM pragma_table_info('{table}')"
                ),
            )
            .await
            .unwrap();
            format!("SELECT {columns} AS v FROM \"{table}\" WHERE id = '{id}'")
        }
    };
    scalar(t, &sql).await.expect("the row exists")
}

/// What a DBA might do: drop the check guarding `table.column` and write a value the
/// library cannot read (Postgres: `infinity`; SQLite: a day that does not exist).
async fn break_timestamp(t: &TestDb, table: &str, column: &str, id: Id) {
    match t.backend() {
        Backend::Postgres => {
            exec(
                t,
                &format!("ALTER TABLE \"{table}\" DROP CONSTRAINT \"{table}_{column}_check\""),
            )
            .await
            .unwrap();
            exec(
                t,
                &format!("UPDATE \"{table}\" SET \"{column}\" = 'infinity' WHERE id = '{id}'"),
            )
            .await
            .unwrap();
        }
        Backend::Sqlite => {
            exec(t, &format!("DROP TRIGGER \"{table}_values_update\""))
                .await
                .unwrap();
            exec(
                t,
                &format!(
                    "UPDATE \"{table}\" SET \"{column}\" = '2026-02-30T00:00:00.000000Z' WHERE id = '{id}'"
                ),
            )
            .await
            .unwrap();
        }
    }
}

#[track_caller]
fn assert_undecodable<T: std::fmt::Debug>(
    result: Result<T, DalError>,
    table: &str,
    id: Id,
    column: &str,
) {
    match result {
        Err(e @ DalError::Undecodable { .. }) => {
            assert!(!e.is_retryable());
            let DalError::Undecodable {
                table: t,
                id: i,
                column: c,
                reason,
                ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!(
                (t, i.as_str(), c),
                (table, id.to_string().as_str(), column),
                "{reason}"
            );
        }
        other => panic!("expected Undecodable for {table} {id} {column}, got {other:?}"),
    }
}

parity_test!(async fn an_unreadable_task_is_named_and_no_write_on_it_commits(t) {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    let project = t.db.projects().create(NewProject::new(user.id, "P")).await.unwrap().id;
    let dep = t.db.tasks().create(NewTask::queued(project, "prep", json!({}))).await.unwrap();
    t.db.tasks().set_status(dep.id, TaskStatus::Complete).await.unwrap();
    let bad = t
        .db
        .tasks()
        .create(NewTask::queued(project, "render", json!({"n": 1})).dependant_on([dep.id]))
        .await
        .unwrap();
    break_timestamp(&t, "tasks", "created_at", bad.id).await;
    let before = row_text(&t, "tasks", bad.id).await;
    let unchanged = || async { assert_eq!(row_text(&t, "tasks", bad.id).await, before) };

    // Reads name the row; lists fail rather than leave it out.
    let tasks = t.db.tasks();
    assert_undecodable(tasks.get(bad.id).await, "tasks", bad.id, "created_at");
    assert_undecodable(tasks.list_for_project(project, &TaskFilter::default(), PageRequest::first(100)).await, "tasks", bad.id, "created_at");
    assert_undecodable(tasks.ready(Some("render"), PageRequest::first(100)).await, "tasks", bad.id, "created_at");
    assert_undecodable(tasks.dependants_of(dep.id).await, "tasks", bad.id, "created_at");
    // Writes that return the row: the error, and nothing committed.
    assert_undecodable(tasks.claim("render").await, "tasks", bad.id, "created_at");
    unchanged().await;
    assert_undecodable(tasks.claim_in_project(project, "render").await, "tasks", bad.id, "created_at");
    unchanged().await;
    assert_undecodable(tasks.set_status(bad.id, TaskStatus::Failed).await, "tasks", bad.id, "created_at");
    unchanged().await;
    // Based on the current version (breaking the row wrote it once), so that only the
    // unreadable value can stop the write.
    let rewrite = entities::task::Model { output_location: Some("s3://x".into()), row_version: bad.row_version + 1, ..bad.clone() };
    assert_undecodable(tasks.update(rewrite.clone()).await, "tasks", bad.id, "created_at");
    unchanged().await;
    // Inside a unit of work: the unit can then only roll back.
    let uow = t.db.begin().await.unwrap();
    assert_undecodable(uow.tasks().set_status(bad.id, TaskStatus::Failed).await, "tasks", bad.id, "created_at");
    assert!(matches!(uow.commit().await, Err(DalError::TransactionAborted { .. })));
    unchanged().await;
    let uow = t.db.begin().await.unwrap();
    assert_undecodable(uow.tasks().update(rewrite).await, "tasks", bad.id, "created_at");
    assert!(matches!(uow.commit().await, Err(DalError::TransactionAborted { .. })));
    unchanged().await;
    // The per-user view, and a retrying unit of work (not retried: not retryable).
    let scoped = t.db.for_user(user.id);
    assert_undecodable(scoped.tasks().set_status(bad.id, TaskStatus::Failed).await, "tasks", bad.id, "created_at");
    assert_undecodable(scoped.tasks().claim("render").await, "tasks", bad.id, "created_at");
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let retried = t
        .db
        .transaction_with_retry(&RetryPolicy::default(), |uow| {
            attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move { uow.tasks().claim("render").await })
        })
        .await;
    assert_undecodable(retried, "tasks", bad.id, "created_at");
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 1);
    unchanged().await;

    // Everything else still works, and deleting the row through the library lets the
    // lists through again.
    assert_eq!(tasks.get(dep.id).await.unwrap().status, TaskStatus::Complete);
    tasks.delete(bad.id).await.unwrap();
    assert_eq!(tasks.list_for_project(project, &TaskFilter::default(), PageRequest::first(100)).await.unwrap().items.len(), 1);
    assert_eq!(tasks.claim("render").await.unwrap(), None);
});

parity_test!(async fn every_table_names_its_unreadable_row(t) {
    let tree = crate::fixtures::tree(&t.db).await;
    let (user, project) = (tree.user.id, tree.project.id);
    for (table, id) in [
        ("users", user),
        ("projects", project),
        ("generations", tree.generation.id),
        ("shots", tree.shot.id),
    ] {
        break_timestamp(&t, table, "created_at", id).await;
    }
    let stored = |table: &'static str, id: Id| {
        let t = &t;
        async move { row_text(t, table, id).await }
    };
    let before = [
        stored("users", user).await,
        stored("projects", project).await,
        stored("generations", tree.generation.id).await,
        stored("shots", tree.shot.id).await,
        stored("shot_generations", tree.link.id).await,
    ];

    assert_undecodable(t.db.users().get(user).await, "users", user, "created_at");
    let email = tree.user.email.clone().unwrap();
    assert_undecodable(t.db.users().find_by_email(&email).await, "users", user, "created_at");
    let renamed = entities::user::Model { display_name: Some("new".into()), row_version: tree.user.row_version + 1, ..tree.user.clone() };
    assert_undecodable(t.db.users().update(renamed).await, "users", user, "created_at");

    assert_undecodable(t.db.projects().get(project).await, "projects", project, "created_at");
    assert_undecodable(t.db.projects().list_for_user(user, PageRequest::first(10)).await, "projects", project, "created_at");
    let renamed = entities::project::Model { name: "new".into(), row_version: tree.project.row_version + 1, ..tree.project.clone() };
    assert_undecodable(t.db.projects().update(renamed).await, "projects", project, "created_at");
    assert_undecodable(t.db.for_user(user).tasks().get(tree.task.id).await, "projects", project, "created_at");

    let generation = tree.generation.id;
    assert_undecodable(t.db.generations().get(generation).await, "generations", generation, "created_at");
    assert_undecodable(t.db.generations().list_for_project(project, None, PageRequest::first(100)).await, "generations", generation, "created_at");
    assert_undecodable(t.db.generations().containing_task(tree.task.id).await, "generations", generation, "created_at");
    let moved = entities::generation::Model { location: Some("elsewhere".into()), row_version: tree.generation.row_version + 1, ..tree.generation.clone() };
    assert_undecodable(t.db.generations().update(moved).await, "generations", generation, "created_at");
    assert_undecodable(t.db.shots().timeline(tree.shot.id).await, "generations", generation, "created_at");

    let shot = tree.shot.id;
    assert_undecodable(t.db.shots().get(shot).await, "shots", shot, "created_at");
    assert_undecodable(t.db.shots().list_for_project(project).await, "shots", shot, "created_at");
    let renamed = entities::shot::Model { name: "new".into(), row_version: tree.shot.row_version + 1, ..tree.shot.clone() };
    assert_undecodable(t.db.shots().update(renamed).await, "shots", shot, "created_at");
    assert_undecodable(t.db.shots().add_to_timeline(shot, generation, None).await, "shots", shot, "created_at");
    assert_undecodable(t.db.shots().move_in_timeline(tree.link.id, 0).await, "shots", shot, "created_at");

    let after = [
        stored("users", user).await,
        stored("projects", project).await,
        stored("generations", generation).await,
        stored("shots", shot).await,
        stored("shot_generations", tree.link.id).await,
    ];
    assert_eq!(after, before, "a failed call changed a row");
});

parity_test!(async fn an_unreadable_timeline_entry_is_named(t) {
    let tree = crate::fixtures::tree(&t.db).await;
    let second = t.db.generations().create(NewGeneration::new(tree.project.id)).await.unwrap();
    t.db.shots().add_to_timeline(tree.shot.id, second.id, None).await.unwrap();
    let link = tree.link.id;
    // Postgres's `integer` holds nothing the library cannot read, so the DBA drops the
    // NOT NULL; on SQLite the check that keeps positions in 32 bits.
    match t.backend() {
        Backend::Postgres => {
            exec(&t, "ALTER TABLE shot_generations ALTER COLUMN position DROP NOT NULL").await.unwrap();
            exec(&t, &format!("UPDATE shot_generations SET position = NULL WHERE id = '{link}'")).await.unwrap();
        }
        Backend::Sqlite => {
            exec(&t, "DROP TRIGGER shot_generations_values_update").await.unwrap();
            exec(&t, &format!("UPDATE shot_generations SET position = 4294967296 WHERE id = '{link}'")).await.unwrap();
        }
    }
    let before = row_text(&t, "shot_generations", link).await;
    let shot_before = row_text(&t, "shots", tree.shot.id).await;
    assert_undecodable(t.db.shots().timeline(tree.shot.id).await, "shot_generations", link, "position");
    assert_undecodable(t.db.shots().move_in_timeline(link, 1).await, "shot_generations", link, "position");
    assert_undecodable(t.db.for_user(tree.user.id).shots().move_in_timeline(link, 1).await, "shot_generations", link, "position");
    // Renumbering reads every entry first: it writes nothing.
    assert_undecodable(t.db.shots().renumber_timeline(tree.shot.id).await, "shot_generations", link, "position");
    assert_eq!(row_text(&t, "shot_generations", link).await, before);
    assert_eq!(row_text(&t, "shots", tree.shot.id).await, shot_before);
});

parity_test!(async fn text_that_is_not_utf8_is_refused_or_named(t) {
    let tree = crate::fixtures::tree(&t.db).await;
    let id = Id::new();
    // `{"a":"<0xFF>"}`: Postgres refuses the bytes; SQLite cannot check them and keeps them.
    let params = match t.backend() {
        Backend::Postgres => "convert_from('\\x7b2261223a22ff227d'::bytea, 'UTF8')",
        Backend::Sqlite => "CAST(x'7b2261223a22ff227d' AS TEXT)",
    };
    let written = insert_task(&t, tree.project.id, &lit(&id.to_string()), params, &list(&t, &[]), T0).await;
    match t.backend() {
        Backend::Postgres => {
            assert!(matches!(written, Err(DalError::InvalidValue { .. })), "{written:?}");
            return;
        }
        Backend::Sqlite => written.unwrap(),
    }
    let before = row_text(&t, "tasks", id).await;
    assert_undecodable(t.db.tasks().get(id).await, "tasks", id, "params");
    assert_undecodable(t.db.tasks().claim_in_project(tree.project.id, "render").await, "tasks", id, "params");
    assert_undecodable(t.db.tasks().set_status(id, TaskStatus::Cancelled).await, "tasks", id, "params");
    assert_eq!(row_text(&t, "tasks", id).await, before);
});
