//! Upgrading a database that other programs wrote to before the value checks existed
//! (migration `m20261130_203628_values_every_reader_reads`).

use dal::prelude::*;
use dal::{Backend, DalError};
use migration::cli::{MigrateCommand as Command, execute};
use parity_tests::parity_test;

use crate::foreign_writes::{T0, exec, insert_task, list, lit};

parity_test!(empty async fn upgrading_keeps_foreign_rows_readable_or_says_which_are_not(t) {
    let history = migration_history::sources();
    let previous = history
        .iter()
        .position(|(name, _)| *name == "m20261130_203628_values_every_reader_reads")
        .unwrap();
    execute(&t.config, Command::Up { num: Some(previous as u32) }, false).await.unwrap();

    let (user, project, dep, task, bad) = (Id::new(), Id::new(), Id::new(), Id::new(), Id::new());
    exec(&t, &format!("INSERT INTO users (id, created_at) VALUES ('{user}', {T0})")).await.unwrap();
    exec(&t, &format!("INSERT INTO projects (id, name, user_id, created_at) VALUES ('{project}', 'p', '{user}', {T0})"))
        .await
        .unwrap();
    insert_task(&t, project, &lit(&dep.to_string()), &lit("{}"), &list(&t, &[]), T0).await.unwrap();
    // Spellings the previous reader accepted in a list (Postgres stores them canonically
    // anyway; on SQLite the migration rewrites them).
    let canonical = dep.to_string();
    let mut spellings = vec![
        canonical.to_uppercase(),
        format!("{{{canonical}}}"),
        canonical.replace('-', ""),
    ];
    if t.backend() == Backend::Sqlite {
        spellings.push(format!("urn:uuid:{canonical}"));
    }
    let spelled: Vec<&str> = spellings.iter().map(String::as_str).collect();
    insert_task(&t, project, &lit(&task.to_string()), &lit("{}"), &list(&t, &spelled), T0).await.unwrap();
    // And a row the library cannot read: a timestamp each backend accepted then.
    let unreadable = match t.backend() {
        Backend::Postgres => "'infinity'",
        Backend::Sqlite => "'2026-02-30T00:00:00.000000Z'",
    };
    insert_task(&t, project, &lit(&bad.to_string()), &lit("{}"), &list(&t, &[]), unreadable).await.unwrap();

    match t.backend() {
        Backend::Postgres => {
            // The new constraints are validated: the migration stops, naming the one the
            // row violates, and applies nothing.
            let err = t.db.migrate().await.expect_err("a row violates the new constraints");
            assert!(err.to_string().contains("tasks_created_at_check"), "{err}");
            assert_eq!(t.db.applied_migrations().await.unwrap().len(), previous);
            exec(&t, &format!("DELETE FROM tasks WHERE id = '{bad}'")).await.unwrap();
            t.db.migrate().await.unwrap();
        }
        Backend::Sqlite => {
            // Triggers check rows as they are written: the old row stays, and is named.
            t.db.migrate().await.unwrap();
            match t.db.tasks().get(bad).await {
                Err(DalError::Undecodable { column: "created_at", .. }) => {}
                other => panic!("{other:?}"),
            }
            t.db.tasks().delete(bad).await.unwrap();
        }
    }
    assert_eq!(t.db.applied_migrations().await.unwrap().len(), history.len());
    let read = t.db.tasks().get(task).await.unwrap();
    assert_eq!(read.dependant_on.0, vec![dep.uuid(); spellings.len()]);
    assert_eq!(t.db.tasks().dependants_of(dep).await.unwrap(), vec![read]);
    t.db.tasks().set_status(dep, TaskStatus::Complete).await.unwrap();
    assert_eq!(t.db.tasks().ready(Some("render"), PageRequest::first(100)).await.unwrap().items.len(), 1);
});
