//! Findings of a hostile review of issue 14 (the schema registry and task leases), each a
//! test that failed before its fix, and probes of the edges found sound.

use std::time::Duration;

use dal::prelude::*;
use parity_tests::{TestDb, parity_test};
use serde_json::json;

type Task = entities::task::Model;

/// A user with a project holding one queued task of `task_type`.
async fn queued(t: &TestDb, task_type: &str) -> (Id, Task) {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    let project =
        t.db.projects()
            .create(NewProject::new(user.id, "review"))
            .await
            .unwrap();
    let task =
        t.db.tasks()
            .create(NewTask::queued(project.id, task_type, json!({})))
            .await
            .unwrap();
    (user.id, task)
}

const LEASE: Duration = Duration::from_secs(60);

// `attempts` may hold any value up to i32::MAX (the column's range; a full update or a
// synced client writes it). A queued task at i32::MAX made every claim of its type fail
// (`attempts + 1` overflowed: Postgres "integer out of range", SQLite the range CHECK), so
// one user's task stopped the queue of that type for every user.
parity_test!(async fn a_task_at_the_largest_attempt_count_does_not_stop_the_queue(t) {
    let (_, poisoned) = queued(&t, "render").await;
    let (_, other) = queued(&t, "render").await;
    let mut row = poisoned.clone();
    row.attempts = i32::MAX;
    t.db.tasks().update(row).await.unwrap();

    let first = t.db.tasks().claim_as("render", "w1", LEASE).await.unwrap().expect("a task");
    let second = t.db.tasks().claim_as("render", "w2", LEASE).await.unwrap().expect("a task");
    let mut ids = [first.id, second.id];
    ids.sort();
    let mut expected = [poisoned.id, other.id];
    expected.sort();
    assert_eq!(ids, expected);
    let claimed = t.db.tasks().get(poisoned.id).await.unwrap();
    assert_eq!(claimed.status, TaskStatus::InProgress);
    assert_eq!(claimed.attempts, i32::MAX);
    // Past its last attempt: a failure ends it.
    let holder = claimed.claimed_by.clone().unwrap();
    let failed = t.db.tasks().fail(poisoned.id, &holder, "no").await.unwrap();
    assert_eq!(failed.status, TaskStatus::Failed);
});

// Worker names and failure reasons are text like any other: NUL is refused as
// `InvalidValue` on every backend, a huge name is stored, a blank one refused.
parity_test!(async fn hostile_worker_names_and_reasons_are_refused_or_kept_alike(t) {
    let (_, task) = queued(&t, "probe").await;
    for bad in ["", "   ", "a\0b"] {
        let err = t.db.tasks().claim_as("probe", bad, LEASE).await.expect_err(bad);
        assert_eq!(err.kind(), dal::ErrorKind::InvalidValue, "{bad:?}: {err:?}");
    }
    assert_eq!(t.db.tasks().get(task.id).await.unwrap().status, TaskStatus::Queued);
    let huge = "w".repeat(1 << 20);
    let held = t.db.tasks().claim_as("probe", &huge, LEASE).await.unwrap().unwrap();
    assert_eq!(held.claimed_by.as_deref(), Some(huge.as_str()));
    let err = t.db.tasks().fail(task.id, &huge, "bad\0reason").await.expect_err("NUL");
    assert_eq!(err.kind(), dal::ErrorKind::InvalidValue, "{err:?}");
    let err = t.db.tasks().heartbeat(task.id, "a\0b", LEASE).await.expect_err("NUL");
    assert_eq!(err.kind(), dal::ErrorKind::InvalidValue, "{err:?}");
    let still = t.db.tasks().get(task.id).await.unwrap();
    assert_eq!(still, held);
});

// Leases that end before they start or after the year 9999 are refused before anything is
// written; the shortest lease is accepted.
parity_test!(async fn zero_huge_and_tiny_leases(t) {
    let (_, task) = queued(&t, "lease").await;
    for lease in [
        Duration::ZERO,
        Duration::MAX,
        Duration::from_secs(u64::MAX / 2),
        Duration::from_secs(8000 * 366 * 24 * 3600),
    ] {
        let err = t.db.tasks().claim_as("lease", "w", lease).await.expect_err("refused");
        assert_eq!(err.kind(), dal::ErrorKind::InvalidValue, "{lease:?}: {err:?}");
    }
    assert_eq!(t.db.tasks().get(task.id).await.unwrap().status, TaskStatus::Queued);
    let held = t.db.tasks().claim_as("lease", "w", Duration::from_nanos(1)).await.unwrap().unwrap();
    for lease in [Duration::ZERO, Duration::MAX] {
        let err = t.db.tasks().heartbeat(task.id, "w", lease).await.expect_err("refused");
        assert_eq!(err.kind(), dal::ErrorKind::InvalidValue, "{lease:?}: {err:?}");
    }
    assert_eq!(t.db.tasks().get(task.id).await.unwrap(), held);
});

// A user's scope never claims, heartbeats, completes or fails another user's task, and
// cannot tell it from a missing one.
parity_test!(async fn a_scope_cannot_touch_another_users_leases(t) {
    let (alice, _) = queued(&t, "mine").await;
    let (_, theirs) = queued(&t, "theirs").await;
    let held = t.db.tasks().claim_as("theirs", "bob-worker", LEASE).await.unwrap().unwrap();
    let scope = t.db.for_user(alice);
    assert!(scope.tasks().claim_as("theirs", "bob-worker", LEASE).await.unwrap().is_none());
    let err = scope.tasks().try_claim_in_project_as(theirs.project_id, "theirs", "x", LEASE).await.expect_err("theirs");
    assert_eq!(err.kind(), dal::ErrorKind::NotFound, "{err:?}");
    for result in [
        scope.tasks().heartbeat(theirs.id, "bob-worker", LEASE).await,
        scope.tasks().complete(theirs.id, "bob-worker", None).await,
        scope.tasks().fail(theirs.id, "bob-worker", "x").await,
        scope.tasks().set_status(theirs.id, TaskStatus::Queued).await,
    ] {
        let err = result.expect_err("another user's task");
        assert_eq!(err.kind(), dal::ErrorKind::NotFound, "{err:?}");
    }
    assert_eq!(t.db.tasks().get(theirs.id).await.unwrap(), held);
});

// `create`, `update` and `patch` refuse a task type past `MAX_TASK_TYPE_BYTES` on every
// backend (the claim's index holds it, and Postgres's b-tree refuses ~2.7 kB), but
// `insert_many` checked only for blank text: SQLite stored a 4 kB type that Postgres
// refused with an index-size error.
parity_test!(async fn insert_many_refuses_the_task_types_create_refuses(t) {
    let (_, task) = queued(&t, "ok").await;
    for len in [dal::repo::MAX_TASK_TYPE_BYTES + 1, 4096] {
        let long = "t".repeat(len);
        let err = t.db.tasks().create(NewTask::queued(task.project_id, &long, json!({}))).await.expect_err("create");
        assert_eq!(err.kind(), dal::ErrorKind::InvalidValue, "{err:?}");
        let err = t.db.tasks()
            .insert_many(vec![NewTask::queued(task.project_id, &long, json!({}))])
            .await
            .expect_err("insert_many");
        assert_eq!(err.kind(), dal::ErrorKind::InvalidValue, "{err:?}");
        assert!(err.to_string().contains("bytes"), "refused up front: {err}");
    }
    let listed = t.db.tasks().count_for_project(task.project_id, &TaskFilter::default()).await.unwrap();
    assert_eq!(listed, 1);
});

/// A push of one entry per hostile write on task `task` of the server, returning the
/// rejected sequence numbers (or the transport error).
async fn push_hostile(
    server: &sync::Server,
    task: Id,
    entries: &[(&str, serde_json::Value)],
) -> Result<Vec<i64>, sync::TransportError> {
    use sync::protocol::{Entry, Op, PushBatch};
    let entries = entries
        .iter()
        .enumerate()
        .map(|(i, (table, changes))| Entry {
            seq: i as i64 + 1,
            table: (*table).to_owned(),
            row_id: task.uuid(),
            op: Op::Update,
            changes: serde_json::from_value(changes.clone()).unwrap(),
            base_version: 0,
            client_time: "2026-12-01T00:00:00.000000Z".into(),
        })
        .collect();
    let ack = server
        .push(PushBatch {
            client_id: uuid::Uuid::new_v4(),
            entries,
        })
        .await?;
    Ok(ack.rejected.into_iter().map(|(seq, _)| seq).collect())
}

// What a client pushes reaches SQL only through the registry's kinds and the database's
// checks: each hostile entry is refused for good (dead-lettered), the rest of the batch
// goes through, and the row is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sync_entries_on_the_lease_columns_are_refused_one_by_one() {
    crate::sync::run_postgres(|t| async move {
        let (_, task) = queued(&t, "render").await;
        let server = sync::Server::new(t.db.clone());
        let hostile: Vec<(&str, serde_json::Value)> = vec![
            ("sync_log", json!({"outcome": "x"})),
            ("tasks", json!({"row_version": 99})),
            ("tasks", json!({"sync_txid": "1"})),
            ("tasks", json!({"sync_version": 99})),
            ("tasks", json!({"attempts": "three"})),
            ("tasks", json!({"attempts": 1_i64 << 40})),
            ("tasks", json!({"attempts": -1})),
            ("tasks", json!({"max_attempts": 0})),
            ("tasks", json!({"claimed_by": "a\u{0}b"})),
            ("tasks", json!({"last_error": 5})),
            (
                "tasks",
                json!({"lease_expires_at": "10000-01-01T00:00:00.000000Z"}),
            ),
            ("tasks", json!({"lease_expires_at": "soon"})),
            ("tasks", json!({"status": "Stolen"})),
        ];
        let rejected = push_hostile(&server, task.id, &hostile).await.unwrap();
        assert_eq!(rejected, (1..=hostile.len() as i64).collect::<Vec<_>>());
        assert_eq!(t.db.tasks().get(task.id).await.unwrap(), task);
    })
    .await;
}

// A NUL in a table or column name is refused like any other unknown name: it must not
// make the bookkeeping of the refusal fail (Postgres text refuses NUL), which would
// refuse the whole batch as trouble and have the client retry it for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_a_pushed_table_or_column_name_is_a_refusal_not_a_stuck_batch() {
    crate::sync::run_postgres(|t| async move {
        let (_, task) = queued(&t, "render").await;
        let server = sync::Server::new(t.db.clone());
        let hostile: Vec<(&str, serde_json::Value)> = vec![
            ("tasks\u{0}", json!({"status": "Queued"})),
            ("tasks", json!({"status\u{0}": "Queued"})),
        ];
        let rejected = push_hostile(&server, task.id, &hostile).await.unwrap();
        assert_eq!(rejected, vec![1, 2]);
        assert_eq!(t.db.tasks().get(task.id).await.unwrap(), task);
    })
    .await;
}

/// Runs `statement` on a connection of its own (see `schema_tools::sql`).
async fn by_hand(t: &TestDb, statement: &str) {
    use sea_orm::ConnectionTrait;
    let db = t.connect(&t.config.clone().with_max_connections(1)).await;
    db.execute_unprepared(statement)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    db.close().await.unwrap();
}

async fn check_after(t: &TestDb, statement: &str) -> Vec<String> {
    by_hand(t, statement).await;
    let problems = migration::cli::check(&t.config).await.expect("check runs");
    migration::cli::execute(&t.config, migration::cli::MigrateCommand::Fresh, true)
        .await
        .unwrap();
    problems
}

// Whatever a hand adds beside the history's own objects and changes how rows are written is
// a difference `check` reports: an extra trigger, and on Postgres an extra (permissive,
// so widening) policy, a rule, forced row-level security, a disabled trigger.
parity_test!(async fn check_reports_what_a_hand_added_beside_the_history(t) {
    let mut probes = vec![(
        "an extra trigger",
        "CREATE TRIGGER tasks_evil AFTER INSERT ON tasks BEGIN DELETE FROM tasks WHERE id = NEW.id; END",
        "tasks_evil",
    )];
    if t.backend() == dal::Backend::Postgres {
        probes = vec![
            (
                "an extra trigger",
                "CREATE TRIGGER tasks_evil BEFORE UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION dal_row_version()",
                "tasks_evil",
            ),
            ("an extra policy", "CREATE POLICY tasks_open ON tasks USING (true)", "tasks_open"),
            ("a rule", "CREATE RULE tasks_keep AS ON UPDATE TO tasks DO INSTEAD NOTHING", "tasks_keep"),
            ("forced row-level security", "ALTER TABLE tasks FORCE ROW LEVEL SECURITY", "tasks"),
            ("a disabled trigger", "ALTER TABLE tasks DISABLE TRIGGER tasks_sync_stamp", "tasks_sync_stamp"),
        ];
    }
    for (what, statement, named) in probes {
        let problems = check_after(&t, statement).await;
        assert!(problems.iter().any(|p| p.contains(named)), "{what} is not reported: {problems:#?}");
    }
});

// `max_attempts` below 1 is refused alike by every write path (the CHECK on both backends,
// through `COPY` and multi-row inserts too).
parity_test!(async fn max_attempts_below_one_is_refused_by_every_write_path(t) {
    let (_, task) = queued(&t, "ok").await;
    for bad in [0, -5, i32::MIN] {
        let new = || NewTask::queued(task.project_id, "ok", json!({})).with_max_attempts(bad);
        let err = t.db.tasks().create(new()).await.expect_err("create");
        assert_eq!(err.kind(), dal::ErrorKind::InvalidValue, "{err:?}");
        let err = t.db.tasks().insert_many(vec![new(), new()]).await.expect_err("insert_many");
        assert_eq!(err.kind(), dal::ErrorKind::InvalidValue, "{err:?}");
        let uow = t.db.begin().await.unwrap();
        let err = uow.tasks().insert_many(vec![new()]).await.expect_err("insert_many in a unit");
        assert_eq!(err.kind(), dal::ErrorKind::InvalidValue, "{err:?}");
        drop(uow);
        let mut row = task.clone();
        row.max_attempts = bad;
        let err = t.db.tasks().update(row).await.expect_err("update");
        assert_eq!(err.kind(), dal::ErrorKind::InvalidValue, "{err:?}");
    }
    let listed = t.db.tasks().count_for_project(task.project_id, &TaskFilter::default()).await.unwrap();
    assert_eq!(listed, 1);
});

// The holder finishing just as its lapsed lease is taken over: exactly one of them wins,
// on every backend, and the task's final row says which.
parity_test!(async fn a_late_holder_and_rescuers_racing_for_a_lapsed_lease_have_one_winner(t) {
    let short = Duration::from_millis(1);
    for round in 0..8 {
        let task_type = format!("race-{round}");
        let (_, task) = queued(&t, &task_type).await;
        let held = t.db.tasks().claim_as(&task_type, "holder", short).await.unwrap().unwrap();
        assert_eq!(held.id, task.id);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let finish = {
            let db = t.db.clone();
            async move {
                if round % 2 == 0 {
                    db.tasks().complete(task.id, "holder", None).await
                } else {
                    db.tasks().heartbeat(task.id, "holder", LEASE).await
                }
            }
        };
        let rescues = futures::future::join_all((0..3).map(|i| {
            let db = t.db.clone();
            let task_type = task_type.clone();
            async move { db.tasks().claim_as(&task_type, &format!("rescuer-{i}"), LEASE).await.unwrap() }
        }));
        let (finished, rescued) = tokio::join!(finish, rescues);
        let rescued: Vec<Task> = rescued.into_iter().flatten().collect();
        let now = t.db.tasks().get(task.id).await.unwrap();
        match finished {
            Ok(row) => {
                assert!(rescued.is_empty(), "round {round}: the holder won, yet {rescued:?}");
                assert_eq!(now, row);
                assert_eq!(now.attempts, 1);
            }
            Err(e) => {
                assert_eq!(e.kind(), dal::ErrorKind::LeaseLost, "round {round}: {e:?}");
                assert_eq!(rescued.len(), 1, "round {round}: {rescued:?}");
                assert_eq!(now, rescued[0]);
                assert_eq!(now.attempts, 2);
            }
        }
    }
});

/// libfaketime, preloaded into a worker to move its clock (Debian's `faketime` package).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Runs the `lease_holder` worker (see `leases.rs`) with its clock moved by `offset`
/// seconds (libfaketime's form, e.g. `+600`), claiming a task of `task_type` as `worker`
/// for `lease`; returns what it said and the process, to be killed.
fn skewed_holder(
    t: &TestDb,
    offset: &str,
    task_type: &str,
    worker: &str,
    lease: Duration,
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is needed to run a worker with a skewed clock: `apt-get install faketime` (.ci/run does)"
    );
    let url = match &t.config.target {
        dal_config::DatabaseTarget::Postgres { url } => url.expose_secret().to_owned(),
        dal_config::DatabaseTarget::Sqlite { .. } => unreachable!("a Postgres test"),
    };
    let mut args = vec![
        "postgres".to_owned(),
        url,
        task_type.to_owned(),
        worker.to_owned(),
        lease.as_millis().to_string(),
    ];
    if t.target == parity_tests::Target::PgBouncer {
        args.push("transaction".into());
    }
    // Preloaded into the worker itself (not through the `faketime` wrapper, which would
    // be the process killed), with only the wall clock moved.
    let mut child = Command::new(env!("CARGO_BIN_EXE_lease_holder"))
        .args(&args)
        .env("LD_PRELOAD", LIBFAKETIME)
        .env("FAKETIME", offset)
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_owned())
}

// Several application servers share one Postgres, and their clocks disagree. Leases were
// written and judged with the calling process's clock, so a server ten minutes ahead took
// over every live lease at once, and a server ten minutes behind wrote leases the others
// saw as lapsed already. On Postgres the database's clock is one clock for all of them:
// leases are measured with it (SQLite has no such split: every process using the file runs
// on its host's clock, which is also the database's).
parity_tests::postgres_test!(async fn a_server_with_a_skewed_clock_neither_steals_nor_writes_lapsed_leases(t) {
    // Ahead: the honest worker's lease has a minute to run.
    let (_, task) = queued(&t, "skew-ahead").await;
    let held = t.db.tasks().claim_as("skew-ahead", "honest", LEASE).await.unwrap().unwrap();
    let (mut ahead, said) = skewed_holder(&t, "+600", "skew-ahead", "ahead", LEASE);
    ahead.kill().unwrap();
    ahead.wait().unwrap();
    assert_eq!(said, "nothing", "a server ten minutes ahead took over a live lease");
    assert_eq!(t.db.tasks().get(task.id).await.unwrap(), held);

    // Behind: its lease must still have about a minute to run for everyone else.
    let (_, task) = queued(&t, "skew-behind").await;
    let (mut behind, said) = skewed_holder(&t, "-600", "skew-behind", "behind", LEASE);
    behind.kill().unwrap();
    behind.wait().unwrap();
    assert_eq!(said, format!("claimed {}", task.id));
    assert!(
        t.db.tasks().claim_as("skew-behind", "honest", LEASE).await.unwrap().is_none(),
        "a lease written by a server ten minutes behind was lapsed at once"
    );
    let lease = t.db.tasks().get(task.id).await.unwrap().lease_expires_at.unwrap();
    let left = lease - dal::clock::now();
    assert!(left > chrono::Duration::seconds(50) && left <= chrono::Duration::seconds(60), "{left}");
});

/// Pushes one entry from a new client and returns the rejected sequence numbers.
async fn push_one(
    server: &sync::Server,
    table: &str,
    row: Id,
    op: sync::protocol::Op,
    changes: serde_json::Value,
) -> Vec<i64> {
    use sync::protocol::{Entry, PushBatch};
    let ack = server
        .push(PushBatch {
            client_id: uuid::Uuid::new_v4(),
            entries: vec![Entry {
                seq: 1,
                table: table.to_owned(),
                row_id: row.uuid(),
                op,
                changes: serde_json::from_value(changes).unwrap(),
                base_version: 0,
                client_time: "2026-12-01T00:00:00.000000Z".into(),
            }],
        })
        .await
        .unwrap();
    ack.rejected.into_iter().map(|(seq, _)| seq).collect()
}

// A timeline entry whose shot was deleted (the delete cascaded to it) must not come back
// live under the tombstoned shot: not by an insert naming the row again without its shot,
// nor by a `deleted: false` update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeline_entry_of_a_deleted_shot_is_not_revived_by_a_push() {
    crate::sync::run_postgres(|t| async move {
        use sync::protocol::Op;
        let (_, task) = queued(&t, "render").await;
        let shot =
            t.db.shots()
                .create(NewShot::new(task.project_id, "s"))
                .await
                .unwrap();
        let generation =
            t.db.generations()
                .create(NewGeneration::new(task.project_id))
                .await
                .unwrap();
        let link =
            t.db.shots()
                .add_to_timeline(shot.id, generation.id, None)
                .await
                .unwrap();
        t.db.shots().delete(shot.id).await.unwrap();
        let server = sync::Server::new(t.db.clone());
        for (op, changes) in [
            (Op::Update, json!({"deleted": false})),
            (Op::Update, json!({"deleted": 0, "position": 3})),
            (Op::Insert, json!({"position": 0})),
            (Op::Insert, json!({"position": 0, "deleted": false})),
        ] {
            let _ = push_one(&server, "shot_generations", link.id, op, changes.clone()).await;
            use sea_orm::ConnectionTrait;
            let row =
                t.db.query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DatabaseBackend::Postgres,
                    format!(
                        "SELECT deleted FROM shot_generations WHERE id = '{}'",
                        link.id
                    ),
                ))
                .await
                .unwrap()
                .unwrap();
            let deleted: bool = row.try_get("", "deleted").unwrap();
            assert!(
                deleted,
                "{op:?} {changes}: the entry of a deleted shot is live again"
            );
        }
    })
    .await;
}
