//! One user's view: never another user's rows, by the library on both backends and by
//! row-level security on Postgres.

use dal::DalError;
use dal::prelude::*;
use parity_tests::{TestDb, parity_test, postgres_test};
use serde_json::json;

struct World {
    user: entities::user::Model,
    project: entities::project::Model,
    task: entities::task::Model,
    generation: entities::generation::Model,
    shot: entities::shot::Model,
    link: entities::shot_generation::Model,
}

async fn world(t: &TestDb, name: &str) -> World {
    let user =
        t.db.users()
            .create(
                NewUser::new()
                    .email(format!("{name}@example.com"))
                    .display_name(name),
            )
            .await
            .unwrap();
    let project =
        t.db.projects()
            .create(NewProject::new(user.id, name))
            .await
            .unwrap();
    let task =
        t.db.tasks()
            .create(NewTask::queued(project.id, "render", json!({})))
            .await
            .unwrap();
    let generation =
        t.db.generations()
            .create(NewGeneration::new(project.id).tasks(vec![task.id]))
            .await
            .unwrap();
    let shot =
        t.db.shots()
            .create(NewShot::new(project.id, name))
            .await
            .unwrap();
    let link =
        t.db.shots()
            .add_to_timeline(shot.id, generation.id, None)
            .await
            .unwrap();
    World {
        user,
        project,
        task,
        generation,
        shot,
        link,
    }
}

fn not_found<T: std::fmt::Debug>(what: &str, r: dal::Result<T>) {
    assert!(matches!(r, Err(DalError::NotFound { .. })), "{what}: {r:?}");
}

parity_test!(async fn a_user_scope_never_reaches_another_users_rows(t) {
    let a = world(&t, "alice").await;
    let b = world(&t, "bob").await;
    let scope = t.db.for_user(a.user.id);

    // Alice's own rows work as usual.
    assert_eq!(scope.projects().get(a.project.id).await.unwrap(), a.project);
    assert_eq!(scope.tasks().get(a.task.id).await.unwrap(), a.task);
    assert_eq!(scope.shots().timeline(a.shot.id).await.unwrap().len(), 1);
    let mine = scope.tasks().create(NewTask::queued(a.project.id, "encode", json!({}))).await.unwrap();
    assert_eq!(scope.projects().list_for_user(a.user.id, PageRequest::first(10)).await.unwrap().items, vec![a.project.clone()]);

    // Bob's are missing, whichever way they are asked for.
    not_found("project", scope.projects().get(b.project.id).await);
    not_found("rename project", scope.projects().update(b.project.clone()).await);
    not_found("delete project", scope.projects().delete(b.project.id).await);
    not_found("project for bob", scope.projects().create(NewProject::new(b.user.id, "x")).await);
    assert!(scope.projects().list_for_user(b.user.id, PageRequest::first(10)).await.unwrap().items.is_empty());
    not_found("task", scope.tasks().get(b.task.id).await);
    not_found("task update", scope.tasks().update(b.task.clone()).await);
    let mut moved = mine.clone();
    moved.project_id = b.project.id;
    not_found("task moved into bob's project", scope.tasks().update(moved).await);
    not_found("task status", scope.tasks().set_status(b.task.id, TaskStatus::Cancelled).await);
    not_found("task delete", scope.tasks().delete(b.task.id).await);
    not_found("task in bob's project", scope.tasks().create(NewTask::queued(b.project.id, "x", json!({}))).await);
    not_found("bulk into bob's project", scope.tasks().insert_many(vec![NewTask::queued(b.project.id, "x", json!({}))]).await);
    not_found("bob's list", scope.tasks().list_for_project(b.project.id, &TaskFilter::default(), PageRequest::first(100)).await);
    not_found("dependents", scope.tasks().dependants_of(b.task.id).await);
    not_found("claim in bob's project", scope.tasks().claim_in_project(b.project.id, "render").await);
    not_found("generation", scope.generations().get(b.generation.id).await);
    not_found("generation delete", scope.generations().delete(b.generation.id).await);
    not_found("generations of bob's task", scope.generations().containing_task(b.task.id).await);
    not_found("shot", scope.shots().get(b.shot.id).await);
    not_found("timeline", scope.shots().timeline(b.shot.id).await);
    not_found("add to bob's shot", scope.shots().add_to_timeline(b.shot.id, b.generation.id, None).await);
    not_found("add bob's generation", scope.shots().add_to_timeline(a.shot.id, b.generation.id, None).await);
    not_found("move bob's entry", scope.shots().move_in_timeline(b.link.id, 0).await);
    not_found("remove bob's entry", scope.shots().remove_from_timeline(b.link.id).await);

    // Queue-wide reads and claims only range over Alice's projects.
    assert!(scope.tasks().ready(Some("render"), PageRequest::first(100)).await.unwrap().items.iter().all(|t| t.project_id == a.project.id));
    assert_eq!(scope.tasks().claim("render").await.unwrap().map(|t| t.id), Some(a.task.id));
    assert_eq!(scope.tasks().claim("render").await.unwrap(), None, "bob's render task is not alice's to claim");

    // Nothing of Bob's changed.
    assert_eq!(t.db.projects().get(b.project.id).await.unwrap(), b.project);
    assert_eq!(t.db.tasks().get(b.task.id).await.unwrap(), b.task);
    assert_eq!(t.db.shots().timeline(b.shot.id).await.unwrap()[0].link, b.link);
    assert_eq!(t.db.generations().get(b.generation.id).await.unwrap(), b.generation);
});

postgres_test!(async fn postgres_row_level_security_alone_keeps_users_apart(t) {
    let a = world(&t, "alice").await;
    let b = world(&t, "bob").await;
    // The plain, unscoped repositories inside a unit of work acting as Alice: only the
    // database's policies stand between them and Bob's rows.
    let uow = t.db.begin_as_user(a.user.id).await.unwrap();
    assert_eq!(uow.projects().get(a.project.id).await.unwrap(), a.project);
    assert_eq!(uow.tasks().get(a.task.id).await.unwrap(), a.task);
    assert_eq!(uow.shots().timeline(a.shot.id).await.unwrap().len(), 1);
    not_found("bob", uow.users().get(b.user.id).await);
    not_found("bob's project", uow.projects().get(b.project.id).await);
    assert!(
        uow.projects()
            .list_for_user(b.user.id, PageRequest::first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        uow.tasks()
            .list_for_project(b.project.id, &TaskFilter::default(), PageRequest::first(100))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    not_found("bob's task", uow.tasks().get(b.task.id).await);
    not_found(
        "update bob's task",
        uow.tasks().update(b.task.clone()).await,
    );
    not_found("bob's shot", uow.shots().timeline(b.shot.id).await);
    assert!(
        uow.tasks()
            .ready(None, PageRequest::first(100))
            .await
            .unwrap()
            .items
            .iter()
            .all(|t| t.project_id == a.project.id)
    );
    uow.commit().await.unwrap();

    // Writing into Bob's project is refused by the policy's WITH CHECK.
    let uow = t.db.begin_as_user(a.user.id).await.unwrap();
    let err = uow
        .projects()
        .create(NewProject::new(b.user.id, "sneaky"))
        .await
        .unwrap_err();
    assert!(matches!(err, DalError::PermissionDenied { .. }), "{err:?}");
    drop(uow);

    // Acting as nobody sees nothing; the role and claims end with the unit of work.
    let uow = t.db.begin_as_user(Id::new()).await.unwrap();
    not_found("as a stranger", uow.projects().get(a.project.id).await);
    uow.rollback().await.unwrap();
    assert_eq!(
        t.db.projects().get(b.project.id).await.unwrap(),
        b.project,
        "the pool is not left acting as anyone"
    );
});
