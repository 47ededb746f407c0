//! Many workers claiming from one queue: every task claimed exactly once, none lost.

use std::collections::HashSet;

use dal::prelude::*;
use parity_tests::{TestDb, parity_test};
use serde_json::json;

const TASKS: usize = 500;
const WORKERS: usize = 8;

async fn fill_queue(t: &TestDb) -> HashSet<Id> {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    let project =
        t.db.projects()
            .create(NewProject::new(user.id, "queue"))
            .await
            .unwrap();
    let uow = t.db.begin().await.unwrap();
    let mut ids = HashSet::new();
    for i in 0..TASKS {
        let task = uow
            .tasks()
            .create(NewTask::queued(project.id, "render", json!({"i": i})))
            .await
            .unwrap();
        ids.insert(task.id);
    }
    uow.commit().await.unwrap();
    ids
}

async fn assert_all_claimed_once(t: &TestDb, queued: &HashSet<Id>, claims: Vec<Vec<Id>>) {
    let all: Vec<Id> = claims.into_iter().flatten().collect();
    let unique: HashSet<Id> = all.iter().copied().collect();
    assert_eq!(all.len(), unique.len(), "no task claimed twice");
    assert_eq!(&unique, queued, "every task claimed");
    assert!(
        t.db.tasks()
            .ready(None, PageRequest::first(100))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

parity_test!(async fn eight_workers_claim_five_hundred_tasks_exactly_once(t) {
    let queued = fill_queue(&t).await;
    let workers = (0..WORKERS).map(|_| {
        let db = t.db.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(task) = db.tasks().claim("render").await.unwrap() {
                assert_eq!(task.status, TaskStatus::InProgress);
                mine.push(task.id);
            }
            mine
        })
    });
    let claims: Vec<Vec<Id>> = futures::future::join_all(workers).await.into_iter().map(Result::unwrap).collect();
    assert!(claims.iter().filter(|c| !c.is_empty()).count() > 1, "the work was shared");
    assert_all_claimed_once(&t, &queued, claims).await;
});

parity_test!(async fn claims_in_units_of_work_that_roll_back_are_claimed_again(t) {
    let queued = fill_queue(&t).await;
    let workers = (0..WORKERS).map(|w| {
        let db = t.db.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut attempt = 0usize;
            loop {
                attempt += 1;
                let uow = db.begin().await.unwrap();
                let Some(task) = uow.tasks().claim("render").await.unwrap() else {
                    uow.rollback().await.unwrap();
                    // Another worker may still roll a claim back: stop only when no task
                    // is left queued.
                    if db.tasks().ready(Some("render"), PageRequest::first(100)).await.unwrap().items.is_empty() {
                        break;
                    }
                    continue;
                };
                // Every third unit of work fails midway after claiming: its claim is undone.
                if (attempt + w).is_multiple_of(3) {
                    uow.rollback().await.unwrap();
                    continue;
                }
                uow.tasks().set_status(task.id, TaskStatus::Complete).await.unwrap();
                uow.commit().await.unwrap();
                mine.push(task.id);
            }
            mine
        })
    });
    let claims: Vec<Vec<Id>> = futures::future::join_all(workers).await.into_iter().map(Result::unwrap).collect();
    assert_all_claimed_once(&t, &queued, claims).await;
});
