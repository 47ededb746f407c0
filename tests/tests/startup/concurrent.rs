//! Several processes start at once on a database that does not exist yet (a dev server,
//! the seeder, a test run): every one of them must connect, migrate and write, and every
//! migration must be recorded once.
//!
//! Each round starts 8 `startup_racer` processes, waits until each has started and says
//! `ready`, then releases them all at once (one line on each one's standard input).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use dal::{Config, Database};

use crate::count;

const RACERS: usize = 8;
/// Rounds on SQLite, each on a new file. Without the retry in `connect`, about one round
/// in 25 failed here (8 racers); `connect_waits_for_a_writer_...` below hits the same hole
/// every time.
const ROUNDS: usize = 20;
/// Rounds on Postgres, each on a new database, as many as on SQLite.
const POSTGRES_ROUNDS: usize = ROUNDS;

/// Runs one round: `RACERS` processes on the database `url` names, released together.
/// Returns each racer's output after the start signal.
fn race(app_env: &str, url: &str) -> Vec<(bool, String)> {
    let mut children: Vec<_> = (0..RACERS)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_startup_racer"))
                .env("APP_ENV", app_env)
                .env("DATABASE_URL", url)
                .env("DB_MIGRATE_ON_CONNECT", "false")
                .env("RUST_LOG", "off")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a racer")
        })
        .collect();
    let mut outputs: Vec<_> = children
        .iter_mut()
        .map(|child| BufReader::new(child.stdout.take().expect("piped stdout")))
        .collect();
    for output in &mut outputs {
        let mut line = String::new();
        output.read_line(&mut line).expect("racer output");
        assert_eq!(line, "ready\n", "a racer did not start");
    }
    // Every racer is now blocked on its standard input: release them all at once.
    let mut signals: Vec<_> = children
        .iter_mut()
        .map(|child| child.stdin.take().expect("piped stdin"))
        .collect();
    for signal in &mut signals {
        signal.write_all(b"go\n").expect("start signal");
    }
    drop(signals);
    children
        .into_iter()
        .zip(outputs)
        .map(|(mut child, mut output)| {
            let mut rest = String::new();
            output.read_to_string(&mut rest).expect("racer output");
            let status = child.wait().expect("racer exits");
            (status.success() && rest == "ok\n", rest)
        })
        .collect()
}

/// Every racer succeeded, every migration is recorded exactly once (with its checksum),
/// and every racer's write is there.
async fn assert_round(round: usize, outcomes: &[(bool, String)], config: &Config) {
    let failed: Vec<_> = outcomes.iter().filter(|(ok, _)| !ok).collect();
    assert!(
        failed.is_empty(),
        "round {round}: {} of {RACERS} racers failed: {failed:?}",
        failed.len()
    );
    let db = Database::connect(config).await.expect("connect afterwards");
    let history: Vec<String> = migration_history::sources()
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(
        db.applied_migrations().await.unwrap(),
        history,
        "round {round}"
    );
    let n = history.len() as i64;
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM seaql_migrations").await,
        n
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(DISTINCT version) AS n FROM seaql_migrations"
        )
        .await,
        n
    );
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM dal_migration_checksums").await,
        n
    );
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM users").await,
        RACERS as i64,
        "round {round}: one user per racer"
    );
    assert!(
        migration_history::checksum::verify(&db)
            .await
            .unwrap()
            .is_empty(),
        "round {round}"
    );
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_creating_the_same_new_sqlite_file_all_succeed() {
    if !parity_tests::selected(dal::Backend::Sqlite) {
        eprintln!("SKIPPED on sqlite");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for round in 0..ROUNDS {
        let path = dir.path().join(format!("round-{round}.db"));
        assert!(!path.exists());
        // The form every SeaORM and sqlx guide writes.
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let outcomes = tokio::task::spawn_blocking(move || race("local", &url))
            .await
            .unwrap();
        assert_round(round, &outcomes, &Config::sqlite(&path)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_migrating_the_same_new_postgres_database_all_succeed() {
    if !parity_tests::selected(dal::Backend::Postgres) {
        eprintln!("SKIPPED on postgres");
        return;
    }
    for round in 0..POSTGRES_ROUNDS {
        let (url, name) = crate::create_database().await;
        let config = Config::postgres(&url).unwrap();
        let outcomes = tokio::task::spawn_blocking(move || race("web", &url))
            .await
            .unwrap();
        let result = tokio::spawn({
            let outcomes = outcomes.clone();
            async move { assert_round(round, &outcomes, &config).await }
        })
        .await;
        crate::drop_database(&name).await;
        if let Err(panic) = result {
            std::panic::resume_unwind(panic.into_panic());
        }
    }
}

/// The hole the retry closes, made certain instead of waited for: a new file that another
/// process is writing in its first (rollback-journal) transaction. Switching the file to
/// WAL needs an exclusive lock; SQLite sees that waiting for it could deadlock (this
/// connection holds a shared lock, the other a reserved one) and answers "busy" at once
/// without calling the busy handler. `connect` itself must wait, within the busy timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_waits_for_a_writer_of_a_new_file_within_the_busy_timeout() {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};

    if !parity_tests::selected(dal::Backend::Sqlite) {
        eprintln!("SKIPPED on sqlite");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    // The other process's first connection, in SQLite's default rollback-journal mode,
    // in a write transaction.
    let mut writer = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    for sql in [
        "CREATE TABLE t (x)",
        "BEGIN IMMEDIATE",
        "INSERT INTO t VALUES (1)",
    ] {
        sqlx::query(sql).execute(&mut writer).await.unwrap();
    }

    // Held past the busy timeout: a typed, retryable Busy.
    let short = Config::sqlite(&path).with_busy_timeout(std::time::Duration::from_millis(300));
    let err = Database::connect(&short).await.unwrap_err();
    assert!(
        matches!(err, dal::DalError::Busy { .. }) && err.is_retryable(),
        "{err:?}"
    );

    // Committed while `connect` is trying: it succeeds, and the file is in WAL mode.
    let connecting = tokio::spawn({
        let config = Config::sqlite(&path);
        async move { Database::connect(&config).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    sqlx::query("COMMIT").execute(&mut writer).await.unwrap();
    let db = connecting
        .await
        .unwrap()
        .expect("connect once the writer is done");
    let row = sea_orm::ConnectionTrait::query_one_raw(
        &db,
        sea_orm::Statement::from_string(sea_orm::DbBackend::Sqlite, "PRAGMA journal_mode"),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(row.try_get::<String>("", "journal_mode").unwrap(), "wal");
    db.close().await.unwrap();
    writer.close().await.unwrap();
}
