//! Deletes leave tombstones that the repositories hide, cascading as the foreign keys would.

use dal::DalError;
use dal::prelude::*;
use parity_tests::{TestDb, parity_test};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

async fn tombstoned(t: &TestDb, table: &str) -> (i64, i64) {
    let sql = format!(
        "SELECT count(*) AS n, coalesce(sum(CASE WHEN deleted THEN 1 ELSE 0 END), 0) AS d FROM {table}"
    );
    let row =
        t.db.query_one_raw(Statement::from_string(t.db.get_database_backend(), sql))
            .await
            .unwrap()
            .unwrap();
    (row.try_get("", "n").unwrap(), row.try_get("", "d").unwrap())
}

parity_test!(async fn deleting_leaves_hidden_tombstones_that_cascade(t) {
    let user = t.db.users().create(NewUser::new().email("gone@example.com")).await.unwrap();
    let p = t.db.projects().create(NewProject::new(user.id, "P")).await.unwrap();
    let task = t.db.tasks().create(NewTask::queued(p.id, "render", json!({}))).await.unwrap();
    let g = t.db.generations().create(NewGeneration::new(p.id).tasks(vec![task.id])).await.unwrap();
    let shot = t.db.shots().create(NewShot::new(p.id, "S")).await.unwrap();
    t.db.shots().add_to_timeline(shot.id, g.id, None).await.unwrap();

    t.db.projects().delete(p.id).await.unwrap();
    assert!(matches!(t.db.projects().get(p.id).await, Err(DalError::NotFound { .. })));
    assert!(matches!(t.db.tasks().get(task.id).await, Err(DalError::NotFound { .. })));
    assert!(matches!(t.db.generations().get(g.id).await, Err(DalError::NotFound { .. })));
    assert!(matches!(t.db.shots().timeline(shot.id).await, Err(DalError::NotFound { .. })));
    assert!(t.db.tasks().ready(None, PageRequest::first(100)).await.unwrap().items.is_empty(), "a deleted project's tasks are not claimable");
    assert!(t.db.projects().list_for_user(user.id, PageRequest::first(10)).await.unwrap().items.is_empty());
    for table in ["projects", "tasks", "generations", "shots", "shot_generations"] {
        assert_eq!(tombstoned(&t, table).await, (1, 1), "{table}: the row stays, as a tombstone");
    }
    // Updating a tombstone finds nothing; it stays deleted.
    assert!(matches!(t.db.tasks().update(task.clone()).await, Err(DalError::NotFound { .. })));
    assert!(matches!(t.db.tasks().set_status(task.id, TaskStatus::Complete).await, Err(DalError::NotFound { .. })));

    // A deleted user releases their email and takes their projects with them.
    let second = t.db.projects().create(NewProject::new(user.id, "Q")).await.unwrap();
    t.db.users().delete(user.id).await.unwrap();
    assert!(matches!(t.db.projects().get(second.id).await, Err(DalError::NotFound { .. })));
    let again = t.db.users().create(NewUser::new().email("gone@example.com")).await.unwrap();
    assert_ne!(again.id, user.id);
    assert!(matches!(t.db.users().delete(user.id).await, Err(DalError::NotFound { .. })));
});

parity_test!(async fn a_tombstoned_dependency_never_completes(t) {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    let p = t.db.projects().create(NewProject::new(user.id, "P")).await.unwrap();
    let dep = t.db.tasks().create(NewTask::queued(p.id, "render", json!({}))).await.unwrap();
    let waiting = t.db.tasks().create(NewTask::queued(p.id, "encode", json!({})).dependant_on([dep.id])).await.unwrap();
    t.db.tasks().set_status(dep.id, TaskStatus::Complete).await.unwrap();
    assert_eq!(t.db.tasks().ready(Some("encode"), PageRequest::first(100)).await.unwrap().items[0].id, waiting.id);
    t.db.tasks().delete(dep.id).await.unwrap();
    assert!(t.db.tasks().ready(Some("encode"), PageRequest::first(100)).await.unwrap().items.is_empty());
    let err = t.db.tasks().create(NewTask::queued(p.id, "x", json!({})).dependant_on([dep.id])).await.unwrap_err();
    assert!(matches!(err, DalError::NotFound { .. }), "a tombstone is not a dependency: {err:?}");
});
