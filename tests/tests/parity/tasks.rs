//! Tasks: filters, dependencies, readiness, claiming and status transitions.

use dal::DalError;
use dal::prelude::*;
use parity_tests::{TestDb, parity_test};
use serde_json::json;

async fn project(t: &TestDb) -> entities::project::Model {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    t.db.projects()
        .create(NewProject::new(user.id, "P"))
        .await
        .unwrap()
}

fn ids(tasks: &[entities::task::Model]) -> Vec<Id> {
    tasks.iter().map(|t| t.id).collect()
}

parity_test!(async fn tasks_crud_and_dependency_validation(t) {
    let p = project(&t).await;
    let other = project(&t).await;
    let tasks = t.db.tasks();
    let a = tasks.create(NewTask::queued(p.id, "render", json!({"frames": 24}))).await.unwrap();
    assert_eq!(tasks.get(a.id).await.unwrap(), a);
    assert_eq!(a.created_at, a.updated_at);

    let b = tasks.create(NewTask::queued(p.id, "encode", json!({})).dependant_on([a.id])).await.unwrap();
    assert_eq!(b.dependant_on.0, vec![a.id.uuid()]);

    let unknown = tasks.create(NewTask::queued(p.id, "x", json!({})).dependant_on([Id::new()])).await.unwrap_err();
    assert!(matches!(unknown, DalError::NotFound { entity: "task", .. }), "{unknown:?}");
    let foreign = tasks.create(NewTask::queued(other.id, "x", json!({})).dependant_on([a.id])).await.unwrap_err();
    assert!(matches!(foreign, DalError::InvalidValue { .. }), "{foreign:?}");
    let blank = tasks.create(NewTask::queued(p.id, "", json!({}))).await.unwrap_err();
    assert!(matches!(blank, DalError::InvalidValue { .. }), "{blank:?}");
    let orphan = tasks.create(NewTask::queued(Id::new(), "x", json!({}))).await.unwrap_err();
    assert!(matches!(orphan, DalError::MissingParent { .. }), "{orphan:?}");

    let mut changed = b.clone();
    changed.output_location = Some("s3://out/b.mp4".into());
    changed.params = json!({"codec": "av1"});
    let changed = tasks.update(changed).await.unwrap();
    assert_eq!(changed.output_location.as_deref(), Some("s3://out/b.mp4"));
    assert!(changed.updated_at >= b.updated_at);
    assert_eq!(changed.created_at, b.created_at);

    tasks.delete(b.id).await.unwrap();
    assert!(matches!(tasks.get(b.id).await, Err(DalError::NotFound { .. })));
    assert!(matches!(tasks.delete(b.id).await, Err(DalError::NotFound { .. })));
    assert!(matches!(tasks.set_status(b.id, TaskStatus::Failed).await, Err(DalError::NotFound { .. })));
});

parity_test!(async fn tasks_filter_by_status_set_and_type(t) {
    let p = project(&t).await;
    let other = project(&t).await;
    let tasks = t.db.tasks();
    let mut made = Vec::new();
    for (kind, status) in [
        ("render", TaskStatus::Queued),
        ("render", TaskStatus::Complete),
        ("encode", TaskStatus::Queued),
        ("encode", TaskStatus::Failed),
        ("render", TaskStatus::InProgress),
    ] {
        let mut new = NewTask::queued(p.id, kind, json!({}));
        new.status = status;
        made.push(tasks.create(new).await.unwrap());
    }
    tasks.create(NewTask::queued(other.id, "render", json!({}))).await.unwrap();

    let all = tasks.list_for_project(p.id, &TaskFilter::default(), PageRequest::first(100)).await.unwrap().items;
    assert_eq!(ids(&all), ids(&made), "all of the project's tasks, oldest first");

    let queued_or_failed = TaskFilter::default().status(TaskStatus::Queued).status(TaskStatus::Failed);
    let got = tasks.list_for_project(p.id, &queued_or_failed, PageRequest::first(100)).await.unwrap().items;
    assert_eq!(ids(&got), vec![made[0].id, made[2].id, made[3].id]);

    let renders = TaskFilter::default().task_type("render");
    assert_eq!(ids(&tasks.list_for_project(p.id, &renders, PageRequest::first(100)).await.unwrap().items), vec![made[0].id, made[1].id, made[4].id]);

    let both = TaskFilter::default().status(TaskStatus::Queued).task_type("encode");
    assert_eq!(ids(&tasks.list_for_project(p.id, &both, PageRequest::first(100)).await.unwrap().items), vec![made[2].id]);
});

parity_test!(async fn dependants_ready_tasks_and_claims(t) {
    let p = project(&t).await;
    let tasks = t.db.tasks();
    let a = tasks.create(NewTask::queued(p.id, "render", json!({}))).await.unwrap();
    let b = tasks.create(NewTask::queued(p.id, "render", json!({}))).await.unwrap();
    let c = tasks.create(NewTask::queued(p.id, "encode", json!({})).dependant_on([a.id, b.id])).await.unwrap();
    let d = tasks.create(NewTask::queued(p.id, "encode", json!({})).dependant_on([a.id])).await.unwrap();

    assert_eq!(ids(&tasks.dependants_of(a.id).await.unwrap()), vec![c.id, d.id]);
    assert_eq!(ids(&tasks.dependants_of(b.id).await.unwrap()), vec![c.id]);
    assert!(tasks.dependants_of(c.id).await.unwrap().is_empty());

    assert_eq!(ids(&tasks.ready(None, PageRequest::first(100)).await.unwrap().items), vec![a.id, b.id], "no dependencies: ready");
    assert!(tasks.ready(Some("encode"), PageRequest::first(100)).await.unwrap().items.is_empty());
    assert!(tasks.claim("encode").await.unwrap().is_none(), "nothing ready to claim");

    let claimed = tasks.claim("render").await.unwrap().expect("a is ready");
    assert_eq!(claimed.id, a.id, "the oldest ready task");
    assert_eq!(claimed.status, TaskStatus::InProgress);
    assert!(claimed.updated_at >= a.updated_at);
    assert_eq!(tasks.get(a.id).await.unwrap(), claimed);
    tasks.set_status(a.id, TaskStatus::Complete).await.unwrap();

    assert_eq!(ids(&tasks.ready(Some("encode"), PageRequest::first(100)).await.unwrap().items), vec![d.id], "c still waits for b");
    tasks.claim("render").await.unwrap().expect("b");
    tasks.set_status(b.id, TaskStatus::Complete).await.unwrap();
    assert_eq!(ids(&tasks.ready(Some("encode"), PageRequest::first(100)).await.unwrap().items), vec![c.id, d.id]);
    assert_eq!(tasks.claim("encode").await.unwrap().unwrap().id, c.id);
    assert_eq!(tasks.claim("encode").await.unwrap().unwrap().id, d.id);
    assert!(tasks.claim("encode").await.unwrap().is_none());
    assert!(tasks.claim("render").await.unwrap().is_none());
});

parity_test!(async fn claims_can_be_scoped_to_a_project(t) {
    let p = project(&t).await;
    let q = project(&t).await;
    let tasks = t.db.tasks();
    let in_p = tasks.create(NewTask::queued(p.id, "render", json!({}))).await.unwrap();
    let in_q = tasks.create(NewTask::queued(q.id, "render", json!({}))).await.unwrap();
    assert_eq!(tasks.claim_in_project(q.id, "render").await.unwrap().unwrap().id, in_q.id);
    assert!(tasks.claim_in_project(q.id, "render").await.unwrap().is_none());
    assert_eq!(tasks.claim("render").await.unwrap().unwrap().id, in_p.id);
});

parity_test!(async fn a_dangling_or_unfinished_dependency_is_not_ready(t) {
    let p = project(&t).await;
    let tasks = t.db.tasks();
    let dep = tasks.create(NewTask::queued(p.id, "render", json!({}))).await.unwrap();
    let waiting = tasks.create(NewTask::queued(p.id, "encode", json!({})).dependant_on([dep.id])).await.unwrap();
    for status in [TaskStatus::Pending, TaskStatus::InProgress, TaskStatus::Failed, TaskStatus::Cancelled, TaskStatus::Queued] {
        tasks.set_status(dep.id, status).await.unwrap();
        assert!(tasks.ready(Some("encode"), PageRequest::first(100)).await.unwrap().items.is_empty(), "dependency {status}");
    }
    tasks.set_status(dep.id, TaskStatus::Complete).await.unwrap();
    assert_eq!(ids(&tasks.ready(Some("encode"), PageRequest::first(100)).await.unwrap().items), vec![waiting.id]);
    // A dependency that was deleted never completes.
    tasks.delete(dep.id).await.unwrap();
    assert!(tasks.ready(Some("encode"), PageRequest::first(100)).await.unwrap().items.is_empty());
    // Only Queued tasks are ready.
    tasks.set_status(waiting.id, TaskStatus::Pending).await.unwrap();
    assert!(tasks.ready(None, PageRequest::first(100)).await.unwrap().items.is_empty());
});

parity_test!(async fn status_transitions_set_updated_at_and_bad_statuses_are_invalid(t) {
    let p = project(&t).await;
    let tasks = t.db.tasks();
    let task = tasks.create(NewTask::queued(p.id, "render", json!({}))).await.unwrap();
    let mut last = task.updated_at;
    for status in TaskStatus::ALL {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let changed = tasks.set_status(task.id, status).await.unwrap();
        assert_eq!(changed.status, status);
        assert!(changed.updated_at > last, "{status}: updated_at moves on");
        assert_eq!(changed.created_at, task.created_at);
        last = changed.updated_at;
    }
    // A status string from outside fails before the database with the variant the
    // database's CHECK gives (see constraints::a_bad_status_is_rejected_by_the_database).
    let err = DalError::from("Done".parse::<TaskStatus>().unwrap_err());
    assert!(matches!(err, DalError::InvalidValue { .. }), "{err:?}");
    assert!(err.to_string().contains("In Progress"), "names the allowed values: {err}");
});
