//! Reliability under load, faults and cancellation. Sizes are CI-friendly; set
//! `DAL_RELIABILITY_SCALE=10` (or more) for the large runs.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dal::prelude::*;
use dal::{ConfigError, DalError, TimeoutKind};
use parity_tests::{TestDb, parity_test, postgres_test, wait_until};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

fn scale() -> usize {
    std::env::var("DAL_RELIABILITY_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

async fn project(t: &TestDb) -> entities::project::Model {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    t.db.projects()
        .create(NewProject::new(user.id, "reliability"))
        .await
        .unwrap()
}

async fn count(db: &Database, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index(0).unwrap()
}

parity_test!(async fn sixteen_concurrent_writers_never_see_busy(t) {
    let p = project(&t).await;
    let per_writer = 1000 * scale();
    let started = Instant::now();
    let writers = (0..16).map(|w| {
        let db = t.db.clone();
        tokio::spawn(async move {
            for i in 0..per_writer {
                let task = NewTask::queued(p.id, format!("w{w}"), json!({ "i": i }));
                if i % 20 == 0 {
                    // Read, then write, in one unit of work: on SQLite it takes the write
                    // lock up front, so the read never has to upgrade.
                    let uow = db.begin().await.unwrap_or_else(|e| panic!("writer {w} begin: {e}"));
                    uow.projects().get(p.id).await.unwrap();
                    uow.tasks().create(task).await.unwrap_or_else(|e| panic!("writer {w} row {i}: {e}"));
                    uow.commit().await.unwrap_or_else(|e| panic!("writer {w} commit: {e}"));
                } else {
                    db.tasks().create(task).await.unwrap_or_else(|e| panic!("writer {w} row {i}: {e}"));
                }
            }
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer.unwrap();
    }
    assert_eq!(count(&t.db, "SELECT count(*) FROM tasks").await, 16 * per_writer as i64);
    eprintln!("{}: 16 x {per_writer} writes in {:?}", t.backend(), started.elapsed());
});

parity_test!(async fn every_pooled_connection_has_the_session_settings(t) {
    let size = 4;
    let config = t.config.clone().with_max_connections(size).with_busy_timeout(Duration::from_millis(1234));
    let db = t.connect(&config).await;
    match t.backend() {
        Backend::Sqlite => {
            let pool = db.sea_orm_connection().get_sqlite_connection_pool();
            let mut held = Vec::new();
            for _ in 0..size {
                held.push(pool.acquire().await.unwrap());
            }
            for conn in held.iter_mut() {
                let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(&mut **conn).await.unwrap();
                let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut **conn).await.unwrap();
                let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout").fetch_one(&mut **conn).await.unwrap();
                assert_eq!((fk, mode.as_str(), busy), (1, "wal", 1234));
            }
        }
        Backend::Postgres if t.through_pgbouncer() => {
            // Behind a transaction pooler a connection has no session of its own: every
            // unit of work gets the settings, whichever server session it lands on.
            let mut held = Vec::new();
            for _ in 0..size {
                held.push(db.begin().await.unwrap());
            }
            for uow in &held {
                let row = uow
                    .query_one_raw(Statement::from_string(
                        db.get_database_backend(),
                        "SELECT current_setting('statement_timeout') AS timeout, current_setting('application_name') AS name",
                    ))
                    .await
                    .unwrap()
                    .unwrap();
                let timeout: String = row.try_get("", "timeout").unwrap();
                let name: String = row.try_get("", "name").unwrap();
                assert_eq!((timeout.as_str(), name.as_str()), ("30s", "dal"));
            }
        }
        Backend::Postgres => {
            let pool = db.sea_orm_connection().get_postgres_connection_pool();
            let mut held = Vec::new();
            for _ in 0..size {
                held.push(pool.acquire().await.unwrap());
            }
            for conn in held.iter_mut() {
                let timeout: String = sqlx::query_scalar("SHOW statement_timeout").fetch_one(&mut **conn).await.unwrap();
                let name: String = sqlx::query_scalar("SELECT current_setting('application_name')").fetch_one(&mut **conn).await.unwrap();
                assert_eq!((timeout.as_str(), name.as_str()), ("30s", "dal"));
            }
        }
    }
});

parity_test!(async fn a_retrying_unit_of_work_gets_past_a_deadlock(t) {
    let p = project(&t).await;
    let a = t.db.tasks().create(NewTask::queued(p.id, "counter", json!({ "n": 0 }))).await.unwrap().id;
    let b = t.db.tasks().create(NewTask::queued(p.id, "counter", json!({ "n": 0 }))).await.unwrap().id;
    // Two units lock the same two rows in opposite orders, meeting at a barrier on their
    // first attempt: a deadlock on Postgres (one is failed with 40P01 and retried); on
    // SQLite the second waits for the first's write lock.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    // Repeatable read: each unit reads a row and then writes it. At read committed, a unit
    // that reads a row another unit has written but not yet committed, and then waits for
    // that unit's lock, would overwrite its increment (a lost update, seen under load when
    // the barrier times out). At repeatable read that write fails with 40001 and is retried.
    let policy = RetryPolicy { attempts: 10, isolation: Isolation::RepeatableRead, ..RetryPolicy::default() };
    let increment = |first: Id, second: Id| {
        let db = t.db.clone();
        let barrier = barrier.clone();
        let policy = policy.clone();
        let first_attempt = Arc::new(AtomicBool::new(true));
        tokio::spawn(async move {
            db.transaction_with_retry(&policy, move |uow| {
                let barrier = barrier.clone();
                let first_attempt = first_attempt.clone();
                Box::pin(async move {
                    bump(uow, first).await?;
                    if first_attempt.swap(false, Ordering::SeqCst) {
                        let _ = tokio::time::timeout(Duration::from_millis(500), barrier.wait()).await;
                    }
                    bump(uow, second).await
                })
            })
            .await
        })
    };
    let (x, y) = (increment(a, b), increment(b, a));
    x.await.unwrap().expect("first unit commits, retried if needed");
    y.await.unwrap().expect("second unit commits, retried if needed");
    for id in [a, b] {
        assert_eq!(t.db.tasks().get(id).await.unwrap().params, json!({ "n": 2 }), "as if run one after the other");
    }
});

async fn bump(uow: &UnitOfWork, id: Id) -> dal::Result<()> {
    let mut task = uow.tasks().get(id).await?;
    let n = task.params["n"].as_i64().unwrap_or(0);
    task.params = json!({ "n": n + 1 });
    uow.tasks().update(task).await?;
    Ok(())
}

parity_test!(async fn serializable_retries_end_in_a_serial_outcome(t) {
    let p = project(&t).await;
    let a = t.db.tasks().create(NewTask::queued(p.id, "cell", json!({ "n": 0 }))).await.unwrap().id;
    let b = t.db.tasks().create(NewTask::queued(p.id, "cell", json!({ "n": 0 }))).await.unwrap().id;
    // Each unit reads both cells and writes its own as their sum plus one: a write skew
    // unless the units are serialised. Run one after the other, the outcome is (1, 2) or (2, 1).
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let policy = RetryPolicy { attempts: 10, isolation: Isolation::Serializable, ..RetryPolicy::default() };
    let unit = |mine: Id| {
        let db = t.db.clone();
        let barrier = barrier.clone();
        let policy = policy.clone();
        let first_attempt = Arc::new(AtomicBool::new(true));
        tokio::spawn(async move {
            db.transaction_with_retry(&policy, move |uow| {
                let barrier = barrier.clone();
                let first_attempt = first_attempt.clone();
                Box::pin(async move {
                    let mut sum = 0;
                    for id in [a, b] {
                        sum += uow.tasks().get(id).await?.params["n"].as_i64().unwrap();
                    }
                    if first_attempt.swap(false, Ordering::SeqCst) {
                        let _ = tokio::time::timeout(Duration::from_millis(500), barrier.wait()).await;
                    }
                    let mut task = uow.tasks().get(mine).await?;
                    task.params = json!({ "n": sum + 1 });
                    uow.tasks().update(task).await?;
                    Ok(())
                })
            })
            .await
        })
    };
    let (x, y) = (unit(a), unit(b));
    x.await.unwrap().unwrap();
    y.await.unwrap().unwrap();
    let outcome = (
        t.db.tasks().get(a).await.unwrap().params["n"].as_i64().unwrap(),
        t.db.tasks().get(b).await.unwrap().params["n"].as_i64().unwrap(),
    );
    assert!(outcome == (1, 2) || outcome == (2, 1), "not a serial outcome: {outcome:?}");
});

parity_test!(async fn cancelled_units_of_work_leave_nothing_behind(t) {
    let p = project(&t).await;
    // Per unit: whether it was cancelled, and whether it had reached its commit by then
    // (a unit cut off inside `commit` may or may not have committed; any earlier cut
    // must leave nothing).
    let mut units = Vec::new();
    for i in 0..40 * scale() {
        let db = t.db.clone();
        let marker = format!("cancel-{i}");
        let committing = Arc::new(AtomicBool::new(false));
        let reached_commit = committing.clone();
        let work = async move {
            let uow = db.begin().await?;
            uow.tasks().create(NewTask::queued(p.id, marker.clone(), json!({}))).await?;
            tokio::time::sleep(Duration::from_millis(1)).await;
            uow.tasks().create(NewTask::queued(p.id, marker, json!({}))).await?;
            tokio::time::sleep(Duration::from_millis(1)).await;
            reached_commit.store(true, Ordering::SeqCst);
            uow.commit().await
        };
        // Cut the future off at a varying point: before, between or after its statements.
        let deadline = Duration::from_micros(((i * 7919) % 4000) as u64);
        let cancelled = match tokio::time::timeout(deadline, work).await {
            Ok(finished) => {
                finished.unwrap_or_else(|e| panic!("unit {i} failed: {e:?}"));
                false
            }
            Err(_) => true,
        };
        units.push((cancelled, committing.load(Ordering::SeqCst)));
    }
    assert!(units.iter().any(|(cancelled, _)| *cancelled), "some units were cancelled");
    // Every unit is all or nothing, and the pool serves clean connections afterwards.
    let uow = t.db.begin().await.unwrap();
    let after = uow.tasks().create(NewTask::queued(p.id, "after", json!({}))).await.unwrap();
    uow.commit().await.unwrap();
    assert_eq!(t.db.tasks().get(after.id).await.unwrap().task_type, "after");
    let mut rows = Vec::new();
    let mut page = PageRequest::first(MAX_PAGE_SIZE);
    loop {
        let got = t.db.tasks().list_for_project(p.id, &TaskFilter::default(), page).await.unwrap();
        rows.extend(got.items);
        match got.next {
            Some(cursor) => page = PageRequest::after(cursor, MAX_PAGE_SIZE),
            None => break,
        }
    }
    let mut per_marker: HashMap<String, usize> = HashMap::new();
    for task in rows {
        *per_marker.entry(task.task_type).or_default() += 1;
    }
    for (i, (cancelled, committing)) in units.iter().enumerate() {
        let n = per_marker.get(&format!("cancel-{i}")).copied().unwrap_or(0);
        match (cancelled, committing) {
            (false, _) => assert_eq!(n, 2, "unit {i} finished but its rows are not all there"),
            (true, false) => assert_eq!(n, 0, "unit {i} was cancelled before its commit yet left rows"),
            (true, true) => assert!(n == 0 || n == 2, "unit {i} half-committed: {n} rows"),
        }
    }
    if t.backend() == Backend::Postgres {
        // No pooled connection is left holding a transaction (and its locks): a dropped
        // unit's rollback runs in the background, so wait for it to land.
        wait_until("no connection is idle in transaction", || async {
            count(
                &t.db,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
            )
            .await
                == 0
        })
        .await;
    }
});

// The Postgres half only: what these tests provoke does not exist on SQLite. They run on
// the server directly and through PgBouncer (where the killed backend is the server
// session PgBouncer lent to the unit of work).
postgres_test!(async fn postgres_backend_killed_mid_transaction(t) {
    let p = project(&t).await;
    let admin = t.connect(&t.config.clone().with_max_connections(1)).await;
    for round in 0..10 * scale() {
        let uow = t.db.begin().await.unwrap();
        let killed = uow.tasks().create(NewTask::queued(p.id, format!("killed-{round}"), json!({}))).await.unwrap();
        let pid: i32 = uow
            .query_one_raw(Statement::from_string(uow.get_database_backend(), "SELECT pg_backend_pid()"))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index(0)
            .unwrap();
        admin.execute_unprepared(&format!("SELECT pg_terminate_backend({pid})")).await.unwrap();
        let err = uow.tasks().create(NewTask::queued(p.id, format!("killed-{round}"), json!({}))).await.unwrap_err();
        assert!(err.is_retryable(), "round {round}: {err:?}");
        drop(uow);
        // The pool recovers: the next units of work run on healthy connections.
        let policy = RetryPolicy::default();
        let recovered = t.db.transaction_with_retry(&policy, |uow| Box::pin(async move {
            uow.tasks().create(NewTask::queued(p.id, "after-kill", json!({}))).await
        }))
        .await
        .unwrap();
        assert_eq!(t.db.tasks().get(recovered.id).await.unwrap().task_type, "after-kill");
        let lost = t.db.tasks().get(killed.id).await;
        assert!(
            matches!(lost, Err(DalError::NotFound { .. })),
            "round {round}: the killed transaction's task: {lost:?}"
        );
    }
    let survivors = count(&t.db, "SELECT count(*) FROM tasks WHERE task_type LIKE 'killed-%'").await;
    assert_eq!(survivors, 0, "no partial writes from killed transactions");
    for _ in 0..20 {
        t.db.users().create(NewUser::default()).await.expect("plain calls succeed after the kills");
    }
});

postgres_test!(async fn postgres_statement_timeout_is_a_typed_timeout(t) {
    let db = t.connect(&t.config.clone().with_statement_timeout(Duration::from_millis(300))).await;
    let started = Instant::now();
    let err = DalError::from(db.execute_unprepared("SELECT pg_sleep(5)").await.unwrap_err());
    let took = started.elapsed();
    assert!(matches!(err, DalError::Timeout { what: TimeoutKind::Statement, .. }), "{err:?}");
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(3), "{took:?}");
    db.users().create(NewUser::default()).await.expect("the connection is usable afterwards");
});

fn crash_writer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crash_writer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_sigkill_mid_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let db = Database::connect(&Config::sqlite(&path)).await.unwrap();
    db.migrate().await.unwrap();
    let user = db.users().create(NewUser::default()).await.unwrap();
    let project = db
        .projects()
        .create(NewProject::new(user.id, "crash"))
        .await
        .unwrap();
    db.close().await.unwrap();

    const ROWS: usize = 200;
    let mut next_batch = 0u64;
    let mut committed: Vec<u64> = Vec::new();
    let kills = 20 * scale();
    for kill in 0..kills {
        let mut child = crash_writer()
            .args([
                "write",
                path.to_str().unwrap(),
                &next_batch.to_string(),
                &ROWS.to_string(),
            ])
            .env("DAL_CRASH_PROJECT", project.id.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| {
                    l.strip_prefix("committed ")
                        .and_then(|n| n.parse::<u64>().ok())
                })
                .collect::<Vec<u64>>()
        });
        // Kill at a different moment each time, mid-batch more often than not.
        tokio::time::sleep(Duration::from_millis(30 + (kill as u64 * 37) % 200)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let reported = reader.join().unwrap();
        next_batch = reported.last().map_or(next_batch, |b| b + 1) + 1;
        committed.extend(reported);

        let db = Database::connect(&Config::sqlite(&path)).await.unwrap();
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "PRAGMA integrity_check",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row.try_get_by_index::<String>(0).unwrap(),
            "ok",
            "after kill {kill}"
        );
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT task_type, count(*) AS n FROM tasks GROUP BY task_type",
            ))
            .await
            .unwrap();
        let counts: HashMap<String, i64> = rows
            .iter()
            .map(|r| {
                (
                    r.try_get("", "task_type").unwrap(),
                    r.try_get("", "n").unwrap(),
                )
            })
            .collect();
        for (batch, n) in &counts {
            assert_eq!(*n, ROWS as i64, "{batch} is partial after kill {kill}");
        }
        for batch in &committed {
            assert!(
                counts.contains_key(&format!("batch-{batch}")),
                "batch {batch} was reported committed but is gone"
            );
        }
        db.close().await.unwrap();
    }
    assert!(
        committed.len() > kills / 2,
        "the writer got work done between kills: {committed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_disk_and_file_trouble_are_typed_errors() {
    let bounded = |what: &'static str| {
        move |elapsed: Duration| {
            assert!(elapsed < Duration::from_secs(5), "{what} took {elapsed:?}")
        }
    };
    // A directory that does not exist.
    let started = Instant::now();
    let err = Database::connect(&Config::sqlite("/nonexistent-dal-dir/sub/x.db"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DalError::Config(ConfigError::SqliteCannotOpen { .. }))
            && !err.is_retryable(),
        "missing directory: {err:?}"
    );
    bounded("missing directory")(started.elapsed());

    // A place no file can be created (read-only even for root).
    let err = Database::connect(&Config::sqlite("/proc/dal-reliability.db"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DalError::Config(ConfigError::SqliteCannotOpen { .. }))
            && !err.is_retryable(),
        "read-only location: {err:?}"
    );

    // A file that is not a SQLite database.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x42u8; 8192]).unwrap();
    let err = Database::connect(&Config::sqlite(&junk)).await.unwrap_err();
    assert!(
        matches!(
            err,
            DalError::Config(ConfigError::SqliteNotADatabase { .. })
        ) && !err.is_retryable(),
        "not a database: {err:?}"
    );

    // Locked by another process for longer than the busy timeout.
    let path = dir.path().join("locked.db");
    let db =
        Database::connect(&Config::sqlite(&path).with_busy_timeout(Duration::from_millis(200)))
            .await
            .unwrap();
    db.migrate().await.unwrap();
    let mut holder = crash_writer()
        .args(["hold", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    let started = Instant::now();
    let err = db.users().create(NewUser::default()).await.unwrap_err();
    assert!(
        matches!(err, DalError::Busy { .. }) && err.is_retryable(),
        "locked: {err:?}"
    );
    bounded("a locked database")(started.elapsed());
    // Reads still work under WAL while another process writes.
    let read = db.users().get(Id::new()).await;
    assert!(
        matches!(read, Err(DalError::NotFound { .. })),
        "a read under the lock: {read:?}"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    db.users()
        .create(NewUser::default())
        .await
        .expect("writes resume once the lock is gone");
}
