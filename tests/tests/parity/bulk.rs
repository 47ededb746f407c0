//! The bulk path: all rows or none, typed errors for bad rows, and few statements.

use std::collections::HashSet;

use dal::DalError;
use dal::prelude::*;
use parity_tests::{TestDb, parity_test};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;

async fn project(t: &TestDb) -> entities::project::Model {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    t.db.projects()
        .create(NewProject::new(user.id, "bulk"))
        .await
        .unwrap()
}

async fn task_count(t: &TestDb) -> u64 {
    entities::task::Entity::find().count(&t.db).await.unwrap()
}

parity_test!(async fn insert_many_writes_every_row_in_few_statements(t) {
    let p = project(&t).await;
    let existing = t.db.tasks().create(NewTask::queued(p.id, "render", json!({}))).await.unwrap();
    const N: usize = 25_000;
    let mut batch: Vec<NewTask> = (0..N)
        .map(|i| {
            let mut task = NewTask::queued(p.id, if i % 2 == 0 { "render" } else { "encode" }, json!({"i": i, "name": format!("frame \"{i}\" \\ ü")}));
            task.status = TaskStatus::ALL[i % 6];
            task
        })
        .collect();
    batch[1] = batch[1].clone().dependant_on([existing.id]);
    let before = t.db.statements_executed();
    let ids = t.db.tasks().insert_many(batch.clone()).await.unwrap();
    let statements = t.db.statements_executed() - before;
    // Validation reads, the savepoint or transaction, and the inserts: a handful, never
    // one per row (SQLite fits ~3600 task rows per statement, Postgres 20 000).
    assert!(statements <= 15, "{statements} statements for {N} rows");
    assert_eq!(ids.len(), N);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), N);
    assert_eq!(task_count(&t).await, N as u64 + 1);

    for i in [0, 1, 7, N / 2, N - 1] {
        let task = t.db.tasks().get(ids[i]).await.unwrap();
        assert_eq!(task.params, batch[i].params, "row {i}");
        assert_eq!(task.status, batch[i].status, "row {i}");
        assert_eq!(task.task_type, batch[i].task_type, "row {i}");
        assert_eq!(task.project_id, p.id);
    }
    assert_eq!(t.db.tasks().get(ids[1]).await.unwrap().dependant_on.0, vec![existing.id.uuid()]);
    // The batch keeps its order in listings (one created_at, ids in input order).
    let listed = t.db.tasks().list_for_project(p.id, &TaskFilter::default().task_type("encode"), PageRequest::first(100)).await.unwrap().items;
    assert_eq!(listed.first().map(|t| t.id), Some(ids[1]));
});

parity_test!(async fn a_bad_row_fails_the_whole_batch_with_a_typed_error(t) {
    let p = project(&t).await;
    let good = |i: usize| NewTask::queued(p.id, "render", json!({"i": i}));
    type Case = (&'static str, Vec<NewTask>, fn(&DalError) -> bool);
    let cases: Vec<Case> = vec![
        ("blank task type", (0..500).map(|i| if i == 321 { NewTask::queued(p.id, " ", json!({})) } else { good(i) }).collect(),
            |e| matches!(e, DalError::InvalidValue { detail, .. } if detail.contains("row 321"))),
        ("NUL in params", (0..500).map(|i| if i == 400 { NewTask::queued(p.id, "x", json!({"k": "a\u{0}"})) } else { good(i) }).collect(),
            |e| matches!(e, DalError::InvalidValue { .. })),
        ("NUL in task type", (0..500).map(|i| if i == 2 { NewTask::queued(p.id, "a\0", json!({})) } else { good(i) }).collect(),
            |e| matches!(e, DalError::InvalidValue { .. })),
        ("missing project", (0..500).map(|i| if i == 499 { NewTask::queued(Id::new(), "x", json!({})) } else { good(i) }).collect(),
            |e| matches!(e, DalError::MissingParent { .. })),
        ("unknown dependency", (0..500).map(|i| if i == 10 { good(i).dependant_on([Id::new()]) } else { good(i) }).collect(),
            |e| matches!(e, DalError::NotFound { .. })),
    ];
    for (what, batch, expected) in cases {
        let err = t.db.tasks().insert_many(batch).await.unwrap_err();
        assert!(expected(&err), "{what}: {err:?}");
        assert_eq!(task_count(&t).await, 0, "{what}: nothing written");
    }

    // Inside a unit of work that rolls back, a successful bulk insert goes too.
    let uow = t.db.begin().await.unwrap();
    uow.tasks().insert_many((0..100).map(good).collect()).await.unwrap();
    uow.rollback().await.unwrap();
    assert_eq!(task_count(&t).await, 0);
});

parity_test!(async fn a_duplicate_key_in_a_bulk_insert_is_a_conflict_and_nothing_lands(t) {
    let existing = t.db.users().create(NewUser::default()).await.unwrap();
    let rows: Vec<entities::user::ActiveModel> = (0..300)
        .map(|i| {
            let id = if i == 250 { existing.id } else { Id::new() };
            sea_orm::IntoActiveModel::into_active_model(entities::user::Model {
                row_version: 1,
                id,
                email: None,
                display_name: Some(format!("u{i}")),
                created_at: dal::clock::now(),
            })
        })
        .collect();
    let uow = t.db.begin().await.unwrap();
    let err = dal::bulk::insert_all(&uow, rows.clone()).await.unwrap_err();
    assert!(matches!(err, DalError::Conflict { .. }), "{err:?}");
    drop(uow);
    assert_eq!(entities::user::Entity::find().count(&t.db).await.unwrap(), 1);
    // The same rows with conflicts skipped: all but the existing one go in.
    let uow = t.db.begin().await.unwrap();
    assert_eq!(dal::bulk::insert_missing(&uow, rows).await.unwrap(), 299);
    uow.commit().await.unwrap();
});

parity_test!(async fn a_timeline_loads_in_a_fixed_number_of_statements(t) {
    let p = project(&t).await;
    let shot = t.db.shots().create(NewShot::new(p.id, "S")).await.unwrap();
    let g = t.db.generations().create(NewGeneration::new(p.id)).await.unwrap();
    let mut counts = Vec::new();
    for len in [1usize, 30] {
        while t.db.shots().timeline(shot.id).await.unwrap().len() < len {
            t.db.shots().add_to_timeline(shot.id, g.id, None).await.unwrap();
        }
        let before = t.db.statements_executed();
        assert_eq!(t.db.shots().timeline(shot.id).await.unwrap().len(), len);
        counts.push(t.db.statements_executed() - before);
    }
    assert_eq!(counts, vec![1, 1], "the shot, its entries and their generations in one join");
});

parity_test!(async fn a_batch_can_depend_on_its_own_tasks_by_caller_made_ids(t) {
    let p = project(&t).await;
    let render = Id::new();
    let encode = Id::new();
    let batch = vec![
        NewTask::queued(p.id, "publish", json!({})).dependant_on([encode]),
        NewTask::queued(p.id, "encode", json!({})).with_id(encode).dependant_on([render]),
        NewTask::queued(p.id, "render", json!({})).with_id(render),
    ];
    let ids = t.db.tasks().insert_many(batch).await.unwrap();
    assert_eq!(ids[1], encode);
    assert_eq!(ids[2], render);
    assert_eq!(t.db.tasks().get(ids[0]).await.unwrap().dependant_on.0, vec![encode.uuid()]);
    assert_eq!(t.db.tasks().ready(None, PageRequest::first(100)).await.unwrap().items.iter().map(|t| t.id).collect::<Vec<_>>(), vec![render]);

    // A dependency in the batch but of another project is refused, naming the row.
    let q = project(&t).await;
    let other = Id::new();
    let err = t
        .db
        .tasks()
        .insert_many(vec![
            NewTask::queued(q.id, "x", json!({})).with_id(other),
            NewTask::queued(p.id, "y", json!({})).dependant_on([other]),
        ])
        .await
        .unwrap_err();
    assert!(matches!(&err, DalError::InvalidValue { detail, .. } if detail.contains("row 1")), "{err:?}");
});

parity_test!(async fn a_refused_bulk_row_leaves_the_connection_usable(t) {
    // One connection, so the next calls get the very connection the failed load used.
    let db = t.connect(&t.config.clone().with_max_connections(1)).await;
    let p = project(&t).await;
    for round in 0..3 {
        let mut batch: Vec<NewTask> = (0..3000).map(|i| NewTask::queued(p.id, "render", json!({"i": i}))).collect();
        batch[2500].params = json!({"bad": "nul\u{0}"});
        let err = db.tasks().insert_many(batch).await.unwrap_err();
        assert!(matches!(err, DalError::InvalidValue { .. }), "round {round}: {err:?}");
        let good: Vec<NewTask> = (0..10).map(|i| NewTask::queued(p.id, "render", json!({"i": i}))).collect();
        let ids = tokio::time::timeout(std::time::Duration::from_secs(10), db.tasks().insert_many(good))
            .await
            .expect("the connection answers after a refused load")
            .unwrap();
        assert_eq!(db.tasks().get(ids[0]).await.unwrap().id, ids[0]);
    }
});
