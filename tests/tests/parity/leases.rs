//! Task leases: a task whose worker died is taken over by exactly one other worker once
//! its lease lapses; a task that keeps failing or lapsing ends `Failed` with its reason; a
//! heartbeating worker keeps its task; a worker that lost its lease can change nothing.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use dal::prelude::*;
use dal::repo::{DEFAULT_LEASE, default_worker};
use dal_config::DatabaseTarget;
use parity_tests::{Target, TestDb, parity_test, wait_until};
use serde_json::json;

type Task = entities::task::Model;

/// A project with one queued task of `task_type` allowed `max_attempts` claims.
async fn queued(t: &TestDb, task_type: &str, max_attempts: i32) -> Task {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    let project =
        t.db.projects()
            .create(NewProject::new(user.id, "leases"))
            .await
            .unwrap();
    t.db.tasks()
        .create(NewTask::queued(project.id, task_type, json!({})).with_max_attempts(max_attempts))
        .await
        .unwrap()
}

/// Waits until the lease `task` was read with has lapsed by the library's clock.
async fn until_lapsed(task: &Task) {
    let end = task.lease_expires_at.expect("the task is leased");
    wait_until(
        "the lease lapses",
        || async move { dal::clock::now() > end },
    )
    .await;
}

/// Asserts `result` is `LeaseLost` for `task` and `worker`, naming `holder` and `status`.
fn assert_lease_lost(
    result: dal::Result<Task>,
    task: Id,
    worker: &str,
    holder: Option<&str>,
    status: TaskStatus,
) {
    let err = result.expect_err("a worker without the lease is refused");
    assert_eq!(err.kind(), dal::ErrorKind::LeaseLost, "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(
        err,
        DalError::lease_lost(task, worker, holder.map(str::to_owned), status)
    );
}

/// Starts the `lease_holder` worker process on the test's database: it claims a task of
/// `task_type` as `worker` for `lease`, and returns once it has said which.
fn spawn_holder(
    t: &TestDb,
    task_type: &str,
    worker: &str,
    lease: Duration,
) -> (std::process::Child, String) {
    let mut args: Vec<String> = match &t.config.target {
        DatabaseTarget::Sqlite { path, .. } => vec!["sqlite".into(), path.display().to_string()],
        DatabaseTarget::Postgres { url } => vec!["postgres".into(), url.expose_secret().to_owned()],
    };
    args.extend([
        task_type.to_owned(),
        worker.to_owned(),
        lease.as_millis().to_string(),
    ]);
    if t.target == Target::PgBouncer {
        args.push("transaction".into());
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_lease_holder"))
        .args(&args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_owned())
}

parity_test!(async fn a_killed_workers_task_is_taken_over_by_exactly_one_claim_after_its_lease(t) {
    let task = queued(&t, "render", 3).await;
    let (mut child, said) = spawn_holder(&t, "render", "doomed", Duration::from_secs(2));
    assert_eq!(said, format!("claimed {}", task.id));
    child.kill().unwrap(); // SIGKILL, while it holds the task
    child.wait().unwrap();

    let held = t.db.tasks().get(task.id).await.unwrap();
    assert_eq!(held.status, TaskStatus::InProgress);
    assert_eq!(held.claimed_by.as_deref(), Some("doomed"));
    assert_eq!(held.attempts, 1);
    assert!(
        t.db.tasks().claim_as("render", "early", Duration::from_secs(60)).await.unwrap().is_none(),
        "nobody takes a task over while its lease runs"
    );

    until_lapsed(&held).await;
    let claims = futures::future::join_all((0..6).map(|i| {
        let db = t.db.clone();
        async move {
            let worker = format!("rescuer-{i}");
            let claim = db.tasks().claim_as("render", &worker, Duration::from_secs(60)).await;
            (worker, claim.unwrap())
        }
    }))
    .await;
    let winners: Vec<(String, Task)> =
        claims.into_iter().filter_map(|(w, c)| c.map(|task| (w, task))).collect();
    assert_eq!(winners.len(), 1, "exactly one claim takes the task over: {winners:?}");
    let (winner, taken) = &winners[0];
    assert_eq!(taken.id, task.id);
    assert_eq!(taken.status, TaskStatus::InProgress);
    assert_eq!(taken.claimed_by.as_deref(), Some(winner.as_str()));
    assert_eq!(taken.attempts, 2);
    assert!(taken.lease_expires_at > held.lease_expires_at);
    assert_eq!(&t.db.tasks().get(task.id).await.unwrap(), taken);

    let done = t.db.tasks().complete(task.id, winner, Some("s3://out".into())).await.unwrap();
    assert_eq!(done.status, TaskStatus::Complete);
    assert_eq!(done.lease_expires_at, None);
    assert_eq!(done.output_location.as_deref(), Some("s3://out"));
});

parity_test!(async fn a_task_that_keeps_failing_or_lapsing_ends_failed_after_max_attempts(t) {
    let short = Duration::from_millis(200);
    let task = queued(&t, "encode", 3).await;
    let tasks = t.db.tasks();

    let first = tasks.claim_as("encode", "w1", short).await.unwrap().unwrap();
    assert_eq!((first.id, first.attempts, first.max_attempts), (task.id, 1, 3));
    until_lapsed(&first).await;

    let second = tasks.claim_as("encode", "w2", short).await.unwrap().unwrap();
    assert_eq!((second.id, second.attempts), (task.id, 2));
    let requeued = tasks.fail(task.id, "w2", "out of memory").await.unwrap();
    assert_eq!(requeued.status, TaskStatus::Queued, "attempts are left");
    assert_eq!(requeued.last_error.as_deref(), Some("out of memory"));
    assert_eq!(requeued.lease_expires_at, None);

    let third = tasks.claim_as("encode", "w3", short).await.unwrap().unwrap();
    assert_eq!((third.id, third.attempts), (task.id, 3));
    until_lapsed(&third).await;

    assert_eq!(tasks.try_claim_as("encode", "w4", short).await.unwrap(), Claim::Empty);
    let failed = tasks.get(task.id).await.unwrap();
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.attempts, 3);
    assert_eq!(failed.last_error.as_deref(), Some("lease expired after 3 attempts"));
    assert_eq!(failed.lease_expires_at, None);
    assert_lease_lost(tasks.complete(task.id, "w3", None).await, task.id, "w3", None, TaskStatus::Failed);

    // A failure on the last attempt ends it at once, with the worker's reason.
    let once = queued(&t, "once", 1).await;
    tasks.claim_as("once", "w", short).await.unwrap().unwrap();
    let failed = tasks.fail(once.id, "w", "corrupt input").await.unwrap();
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("corrupt input"));
    assert!(tasks.claim_as("once", "w", short).await.unwrap().is_none());

    // The database refuses a task with no attempt at all.
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    let project = t.db.projects().create(NewProject::new(user.id, "p")).await.unwrap();
    let err = tasks
        .create(NewTask::queued(project.id, "x", json!({})).with_max_attempts(0))
        .await
        .unwrap_err();
    assert_eq!(err.constraint(), Some("tasks_max_attempts_check"), "{err:?}");
});

parity_test!(async fn a_heartbeating_worker_keeps_its_task_past_its_first_lease(t) {
    let lease = Duration::from_millis(1500);
    let task = queued(&t, "render", 3).await;
    let tasks = t.db.tasks();
    let first = tasks.claim_as("render", "keeper", lease).await.unwrap().unwrap();
    let mut last = first.clone();
    while dal::clock::now() <= first.lease_expires_at.unwrap() + chrono::Duration::milliseconds(300) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let beat = tasks.heartbeat(task.id, "keeper", lease).await.unwrap();
        assert!(beat.lease_expires_at > last.lease_expires_at);
        assert_eq!((beat.status, beat.attempts), (TaskStatus::InProgress, 1));
        assert_eq!(
            tasks.try_claim_as("render", "thief", lease).await.unwrap(),
            Claim::Empty,
            "a held lease is not taken over"
        );
        last = beat;
    }
    let done = tasks.complete(task.id, "keeper", None).await.unwrap();
    assert_eq!((done.status, done.attempts), (TaskStatus::Complete, 1));
    assert_eq!(done.claimed_by.as_deref(), Some("keeper"));
});

parity_test!(async fn a_worker_that_lost_its_lease_changes_nothing(t) {
    let task = queued(&t, "render", 3).await;
    let tasks = t.db.tasks();
    let old = tasks.claim_as("render", "old", Duration::from_millis(200)).await.unwrap().unwrap();
    until_lapsed(&old).await;
    let new = tasks.claim_as("render", "new", Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!((new.id, new.attempts), (task.id, 2));

    for who in ["old", "stranger"] {
        let held = Some("new");
        let status = TaskStatus::InProgress;
        assert_lease_lost(tasks.heartbeat(task.id, who, Duration::from_secs(60)).await, task.id, who, held, status);
        assert_lease_lost(tasks.complete(task.id, who, Some("s3://x".into())).await, task.id, who, held, status);
        assert_lease_lost(tasks.fail(task.id, who, "gave up").await, task.id, who, held, status);
    }
    assert_eq!(tasks.get(task.id).await.unwrap(), new, "nothing was written");
    let missing = Id::new();
    assert!(matches!(
        tasks.heartbeat(missing, "new", Duration::from_secs(1)).await,
        Err(DalError::NotFound { .. })
    ));
    assert_eq!(tasks.heartbeat(task.id, "new", Duration::ZERO).await.unwrap_err().kind(), dal::ErrorKind::InvalidValue);

    // Once the task is finished nobody holds it, its last worker included.
    tasks.complete(task.id, "new", None).await.unwrap();
    assert_lease_lost(tasks.heartbeat(task.id, "new", Duration::from_secs(1)).await, task.id, "new", None, TaskStatus::Complete);
});

parity_test!(async fn a_claim_without_a_name_holds_the_task_for_the_process_for_the_default_lease(t) {
    let task = queued(&t, "render", 3).await;
    let before = dal::clock::now();
    let claimed = t.db.tasks().claim("render").await.unwrap().unwrap();
    assert_eq!(claimed.id, task.id);
    assert_eq!(claimed.claimed_by.as_deref(), Some(default_worker()));
    let lease = claimed.lease_expires_at.unwrap() - before;
    assert!(lease >= chrono::Duration::from_std(DEFAULT_LEASE).unwrap(), "{lease:?}");
    let done = t.db.tasks().complete(task.id, default_worker(), None).await.unwrap();
    assert_eq!(done.status, TaskStatus::Complete);
});
