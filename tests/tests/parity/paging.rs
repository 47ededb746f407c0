//! Keyset pages and counts of tasks and generations, bounded readiness, and what a claim
//! that takes nothing found.

use std::collections::{HashMap, HashSet};

use dal::DalError;
use dal::prelude::*;
use entities::task;
use parity_tests::{TestDb, parity_test, postgres_test};
use serde_json::json;

async fn project(t: &TestDb) -> entities::project::Model {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    t.db.projects()
        .create(NewProject::new(user.id, "P"))
        .await
        .unwrap()
}

/// `n` queued tasks of `kind` in one batch: they share one `created_at`, so only the id
/// orders them.
async fn queue(t: &TestDb, project: Id, kind: &str, n: usize) -> Vec<Id> {
    let batch = (0..n)
        .map(|i| NewTask::queued(project, kind, json!({ "i": i })))
        .collect();
    t.db.tasks().insert_many(batch).await.unwrap()
}

fn assert_listing_order(rows: &[task::Model]) {
    let keys: Vec<_> = rows.iter().map(|r| (r.created_at, r.id)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "oldest first by (created_at, id)");
}

parity_test!(async fn task_pages_return_every_row_once_while_rows_are_added(t) {
    let p = project(&t).await;
    let other = project(&t).await;
    let mut expected: Vec<Id> = queue(&t, p.id, "render", 250).await;
    queue(&t, other.id, "render", 5).await;

    let tasks = t.db.tasks();
    let filter = TaskFilter::default();
    let mut seen: Vec<task::Model> = Vec::new();
    let mut sizes = Vec::new();
    let mut page = PageRequest::first(100);
    loop {
        let got = tasks.list_for_project(p.id, &filter, page).await.unwrap();
        sizes.push(got.items.len());
        seen.extend(got.items);
        let Some(cursor) = got.next else { break };
        // Rows added between pages come later in the order: they appear, nothing repeats.
        expected.push(tasks.create(NewTask::queued(p.id, "late", json!({}))).await.unwrap().id);
        // The cursor survives its string form (it may travel through an HTTP API).
        page = PageRequest::after(cursor.to_string().parse().unwrap(), 100);
    }
    assert_eq!(sizes, vec![100, 100, 52], "250 rows, and one added after each full page");
    assert_listing_order(&seen);
    let ids: Vec<Id> = seen.iter().map(|r| r.id).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "no row twice");
    assert_eq!(ids, expected, "every row, in creation order");
    assert!(seen.iter().all(|r| r.project_id == p.id));

    // A page that ends exactly at the last row says so: no cursor to an empty page.
    let exact = tasks.list_for_project(other.id, &filter, PageRequest::first(5)).await.unwrap();
    assert_eq!((exact.items.len(), exact.next), (5, None));
    let empty = tasks.list_for_project(Id::new(), &filter, PageRequest::first(10)).await.unwrap();
    assert_eq!(empty, Page { items: vec![], next: None });
});

parity_test!(async fn task_counts_equal_the_listings_they_count(t) {
    let p = project(&t).await;
    let other = project(&t).await;
    let tasks = t.db.tasks();
    let made = queue(&t, p.id, "render", 130).await;
    queue(&t, p.id, "encode", 20).await;
    queue(&t, other.id, "render", 7).await;
    for id in &made[..15] {
        tasks.set_status(*id, TaskStatus::Complete).await.unwrap();
    }
    for id in &made[15..18] {
        tasks.set_status(*id, TaskStatus::Failed).await.unwrap();
    }
    tasks.delete(made[20]).await.unwrap();

    let filters = [
        TaskFilter::default(),
        TaskFilter::default().status(TaskStatus::Queued),
        TaskFilter::default().status(TaskStatus::Complete).status(TaskStatus::Failed),
        TaskFilter::default().task_type("encode"),
        TaskFilter::default().status(TaskStatus::Queued).task_type("render"),
        TaskFilter::default().status(TaskStatus::Cancelled),
    ];
    let expected = [149, 131, 18, 20, 111, 0];
    for (filter, expected) in filters.iter().zip(expected) {
        let mut listed = 0;
        let mut page = PageRequest::first(MAX_PAGE_SIZE);
        loop {
            let got = tasks.list_for_project(p.id, filter, page).await.unwrap();
            listed += got.items.len() as u64;
            match got.next {
                Some(cursor) => page = PageRequest::after(cursor, MAX_PAGE_SIZE),
                None => break,
            }
        }
        assert_eq!(listed, expected, "{filter:?}");
        assert_eq!(tasks.count_for_project(p.id, filter).await.unwrap(), expected, "{filter:?}");
    }

    let by_status = tasks.count_by_status(p.id, &TaskFilter::default()).await.unwrap();
    let want: HashMap<TaskStatus, u64> = TaskStatus::ALL
        .into_iter()
        .map(|s| (s, match s {
            TaskStatus::Queued => 131,
            TaskStatus::Complete => 15,
            TaskStatus::Failed => 3,
            _ => 0,
        }))
        .collect();
    assert_eq!(by_status, want, "every status a key, deleted rows and other projects left out");
    let renders = TaskFilter::default().status(TaskStatus::Queued).status(TaskStatus::Pending).task_type("render");
    assert_eq!(
        tasks.count_by_status(p.id, &renders).await.unwrap(),
        HashMap::from([(TaskStatus::Queued, 111), (TaskStatus::Pending, 0)]),
        "only the statuses the filter admits"
    );
    assert_eq!(tasks.count_for_project(Id::new(), &TaskFilter::default()).await.unwrap(), 0);
});

parity_test!(async fn generation_pages_and_counts(t) {
    let p = project(&t).await;
    let gens = t.db.generations();
    let mut made = Vec::new();
    for i in 0..90 {
        let kind = if i % 3 == 0 { "video" } else { "image" };
        let new = NewGeneration::new(p.id).generation_type(kind);
        made.push(gens.create(new).await.unwrap());
    }
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut page = PageRequest::first(40);
    loop {
        let got = gens.list_for_project(p.id, None, page).await.unwrap();
        sizes.push(got.items.len());
        seen.extend(got.items);
        match got.next {
            Some(cursor) => page = PageRequest::after(cursor, 40),
            None => break,
        }
    }
    assert_eq!(sizes, vec![40, 40, 10]);
    assert_eq!(seen, made, "oldest first, each once");
    let videos = gens.list_for_project(p.id, Some("video"), PageRequest::first(100)).await.unwrap();
    assert_eq!(videos.items.len(), 30);
    assert_eq!(gens.count_for_project(p.id, Some("video")).await.unwrap(), 30);
    assert_eq!(gens.count_for_project(p.id, Some("image")).await.unwrap(), 60);
    gens.delete(made[0].id).await.unwrap();
    assert_eq!(gens.count_for_project(p.id, None).await.unwrap(), 89);
});

parity_test!(async fn a_cursor_only_continues_the_listing_that_gave_it(t) {
    let p = project(&t).await;
    let user = p.user_id;
    t.db.projects().create(NewProject::new(user, "second")).await.unwrap();
    queue(&t, p.id, "render", 3).await;
    for _ in 0..3 {
        t.db.generations().create(NewGeneration::new(p.id)).await.unwrap();
    }
    let projects = t.db.projects().list_for_user(user, PageRequest::first(1)).await.unwrap();
    let tasks = t.db.tasks().list_for_project(p.id, &TaskFilter::default(), PageRequest::first(1)).await.unwrap();
    let ready = t.db.tasks().ready(None, PageRequest::first(1)).await.unwrap();
    let generations = t.db.generations().list_for_project(p.id, None, PageRequest::first(1)).await.unwrap();
    let (projects, tasks, ready, generations) =
        (projects.next.unwrap(), tasks.next.unwrap(), ready.next.unwrap(), generations.next.unwrap());

    let refused = |result: dal::Result<Page<task::Model>>, what: &str| match result {
        Err(DalError::InvalidValue { detail, .. }) => assert!(detail.contains("cannot continue"), "{what}: {detail}"),
        other => panic!("{what}: {other:?}"),
    };
    // Newest first vs oldest first: the same (created_at, id) would page the wrong way.
    refused(t.db.tasks().list_for_project(p.id, &TaskFilter::default(), PageRequest::after(projects, 10)).await, "project cursor on tasks");
    refused(t.db.tasks().list_for_project(p.id, &TaskFilter::default(), PageRequest::after(generations, 10)).await, "generation cursor on tasks");
    refused(t.db.tasks().ready(None, PageRequest::after(tasks, 10)).await, "task cursor on ready");
    refused(t.db.tasks().list_for_project(p.id, &TaskFilter::default(), PageRequest::after(ready, 10)).await, "ready cursor on tasks");
    let on_projects = t.db.projects().list_for_user(user, PageRequest::after(tasks, 10)).await;
    assert!(matches!(on_projects, Err(DalError::InvalidValue { .. })), "{on_projects:?}");
    let on_generations = t.db.generations().list_for_project(p.id, None, PageRequest::after(tasks, 10)).await;
    assert!(matches!(on_generations, Err(DalError::InvalidValue { .. })), "{on_generations:?}");

    // Each continues its own listing, also after a trip through its string form.
    let rest = t.db.tasks().list_for_project(p.id, &TaskFilter::default(), PageRequest::after(tasks.to_string().parse().unwrap(), 10)).await.unwrap();
    assert_eq!(rest.items.len(), 2);
    assert_eq!(t.db.projects().list_for_user(user, PageRequest::after(projects, 10)).await.unwrap().items.len(), 1);
});

parity_test!(async fn ready_is_bounded_and_continues_by_cursor(t) {
    let p = project(&t).await;
    let ready_ids = queue(&t, p.id, "render", 230).await;
    let dep = t.db.tasks().create(NewTask::queued(p.id, "render", json!({}))).await.unwrap();
    t.db.tasks().create(NewTask::queued(p.id, "encode", json!({})).dependant_on([dep.id])).await.unwrap();
    let mut expected = ready_ids.clone();
    expected.push(dep.id);

    let tasks = t.db.tasks();
    let first = tasks.ready(Some("render"), PageRequest::first(10_000)).await.unwrap();
    assert_eq!(first.items.len(), MAX_PAGE_SIZE as usize, "a worker never loads more than a page");
    let mut seen = first.items;
    let mut next = first.next;
    while let Some(cursor) = next {
        let got = tasks.ready(Some("render"), PageRequest::after(cursor, MAX_PAGE_SIZE)).await.unwrap();
        seen.extend(got.items);
        next = got.next;
    }
    assert_listing_order(&seen);
    assert_eq!(seen.iter().map(|r| r.id).collect::<Vec<_>>(), expected);
    assert!(tasks.ready(Some("encode"), PageRequest::first(10)).await.unwrap().items.is_empty(), "encode waits for dep");
    let all = tasks.ready(None, PageRequest::first(MAX_PAGE_SIZE)).await.unwrap();
    assert_eq!((all.items.len(), all.next.is_some()), (100, true));
});

parity_test!(async fn claim_outcomes_tell_an_empty_queue_from_a_claim(t) {
    let p = project(&t).await;
    let tasks = t.db.tasks();
    assert_eq!(tasks.try_claim("render").await.unwrap(), Claim::Empty, "no tasks at all");
    let first = tasks.create(NewTask::queued(p.id, "render", json!({}))).await.unwrap();
    tasks.create(NewTask::queued(p.id, "encode", json!({})).dependant_on([first.id])).await.unwrap();
    assert_eq!(tasks.try_claim("encode").await.unwrap(), Claim::Empty, "waiting on a dependency is not busy");

    let Claim::Claimed(claimed) = tasks.try_claim("render").await.unwrap() else { panic!("first is ready") };
    assert_eq!((claimed.id, claimed.status), (first.id, TaskStatus::InProgress));
    assert_eq!(tasks.try_claim("render").await.unwrap(), Claim::Empty, "claimed, nothing left");
    assert_eq!(tasks.claim("render").await.unwrap(), None);
    assert_eq!(tasks.try_claim_in_project(p.id, "render").await.unwrap(), Claim::Empty);

    tasks.set_status(first.id, TaskStatus::Complete).await.unwrap();
    let other = project(&t).await;
    assert_eq!(tasks.try_claim_in_project(other.id, "encode").await.unwrap(), Claim::Empty, "another project's task");
    match tasks.try_claim_in_project(p.id, "encode").await.unwrap() {
        Claim::Claimed(task) => assert_eq!(task.dependant_on.0, vec![first.id.uuid()]),
        other => panic!("the encode is ready now: {other:?}"),
    }

    // Inside a unit of work that rolls back, the claim is undone.
    let again = tasks.create(NewTask::queued(p.id, "render", json!({}))).await.unwrap();
    let uow = t.db.begin().await.unwrap();
    assert!(matches!(uow.tasks().try_claim("render").await.unwrap(), Claim::Claimed(c) if c.id == again.id));
    uow.rollback().await.unwrap();
    assert_eq!(tasks.claim("render").await.unwrap().map(|c| c.id), Some(again.id));
});

parity_test!(async fn the_dependency_relation_has_one_spelling_and_the_old_one_forwards(t) {
    let p = project(&t).await;
    let tasks = t.db.tasks();
    let a = tasks.create(NewTask::queued(p.id, "render", json!({}))).await.unwrap();
    let b = tasks.create(NewTask::queued(p.id, "encode", json!({})).dependant_on([a.id])).await.unwrap();
    #[allow(deprecated)]
    let c = tasks.create(NewTask::queued(p.id, "encode", json!({})).depending_on([a.id])).await.unwrap();
    assert_eq!(c.dependant_on, b.dependant_on);
    let dependants: Vec<Id> = tasks.dependants_of(a.id).await.unwrap().iter().map(|t| t.id).collect();
    assert_eq!(dependants, vec![b.id, c.id]);
    #[allow(deprecated)]
    let old = tasks.dependents_of(a.id).await.unwrap();
    assert_eq!(old.iter().map(|t| t.id).collect::<Vec<_>>(), dependants);
});

parity_test!(async fn scoped_pages_counts_and_claims_stay_in_the_users_projects(t) {
    let mine = project(&t).await;
    let theirs = project(&t).await;
    queue(&t, mine.id, "render", 3).await;
    queue(&t, theirs.id, "render", 4).await;
    queue(&t, theirs.id, "upscale", 2).await;
    t.db.generations().create(NewGeneration::new(theirs.id)).await.unwrap();
    let scope = t.db.for_user(mine.user_id);
    let all = TaskFilter::default();

    assert_eq!(scope.tasks().count_for_project(mine.id, &all).await.unwrap(), 3);
    assert_eq!(scope.tasks().list_for_project(mine.id, &all, PageRequest::first(10)).await.unwrap().items.len(), 3);
    assert_eq!(scope.tasks().count_by_status(mine.id, &all).await.unwrap()[&TaskStatus::Queued], 3);
    let not_found = |what: &str, err: DalError| {
        assert!(matches!(&err, DalError::NotFound { entity: "project", key, .. } if *key == theirs.id.to_string()), "{what}: {err:?}");
    };
    not_found("list", scope.tasks().list_for_project(theirs.id, &all, PageRequest::first(10)).await.unwrap_err());
    not_found("count", scope.tasks().count_for_project(theirs.id, &all).await.unwrap_err());
    not_found("by status", scope.tasks().count_by_status(theirs.id, &all).await.unwrap_err());
    not_found("generations", scope.generations().list_for_project(theirs.id, None, PageRequest::first(10)).await.unwrap_err());
    not_found("generation count", scope.generations().count_for_project(theirs.id, None).await.unwrap_err());
    not_found("claim in project", scope.tasks().try_claim_in_project(theirs.id, "upscale").await.unwrap_err());

    let ready = scope.tasks().ready(Some("render"), PageRequest::first(2)).await.unwrap();
    let rest = scope.tasks().ready(Some("render"), PageRequest::after(ready.next.unwrap(), 2)).await.unwrap();
    assert_eq!((ready.items.len(), rest.items.len(), rest.next), (2, 1, None), "only mine, over two pages");
    assert!(ready.items.iter().chain(&rest.items).all(|t| t.project_id == mine.id));
    assert_eq!(scope.tasks().try_claim("upscale").await.unwrap(), Claim::Empty, "their ready task is not mine, nor busy");
    assert_eq!(t.db.tasks().count_for_project(theirs.id, &TaskFilter::default().status(TaskStatus::Queued)).await.unwrap(), 6);
});

postgres_test!(async fn a_claim_skipping_locked_rows_is_busy_not_empty(t) {
    let p = project(&t).await;
    let only = t.db.tasks().create(NewTask::queued(p.id, "render", json!({}))).await.unwrap();

    // Another worker claims it inside a unit of work it has not committed: the row is
    // locked, and still `Queued` to everyone else.
    let holder = t.db.begin().await.unwrap();
    assert_eq!(holder.tasks().claim("render").await.unwrap().map(|c| c.id), Some(only.id));
    assert_eq!(t.db.tasks().try_claim("render").await.unwrap(), Claim::Busy);
    assert_eq!(t.db.tasks().try_claim_in_project(p.id, "render").await.unwrap(), Claim::Busy);
    assert_eq!(t.db.tasks().claim("render").await.unwrap(), None, "claim folds Busy into None");
    assert_eq!(t.db.tasks().try_claim("encode").await.unwrap(), Claim::Empty, "other types are not busy");
    let scoped = t.db.for_user(p.user_id);
    assert_eq!(scoped.tasks().try_claim("render").await.unwrap(), Claim::Busy);

    // A ready row nobody holds is taken past the held one.
    let free = t.db.tasks().create(NewTask::queued(p.id, "render", json!({}))).await.unwrap();
    assert!(matches!(t.db.tasks().try_claim("render").await.unwrap(), Claim::Claimed(c) if c.id == free.id));
    assert_eq!(t.db.tasks().try_claim("render").await.unwrap(), Claim::Busy);

    // The holder gives up: the task is free again. Once it is claimed and committed,
    // the queue is empty, not busy.
    holder.rollback().await.unwrap();
    let holder = t.db.begin().await.unwrap();
    assert_eq!(holder.tasks().claim("render").await.unwrap().map(|c| c.id), Some(only.id));
    holder.commit().await.unwrap();
    assert_eq!(t.db.tasks().try_claim("render").await.unwrap(), Claim::Empty);
});
