//! `migration up` processes (this crate's binary) and applications calling
//! `Database::migrate`, all at once on a new database: each must take the same migration
//! lock, so every one succeeds and every migration is applied exactly once.
//!
//! The test holds that lock first, the way a migrator does, starts four of each, and on
//! Postgres waits until all eight queue on it (`pg_locks`) before letting go: a migrator
//! that bypassed the lock would never be seen waiting there, and would race the others.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dal::{Database, PoolMode};
use dal_config::DatabaseTarget;
use migration_history::locked::{self, ADVISORY_LOCK_KEY, Route};
use parity_tests::{TestDb, parity_test, wait_until};
use sea_orm::{ConnectionTrait, Statement};

const CLI_MIGRATORS: usize = 4;
const LIBRARY_MIGRATORS: usize = 4;
/// SQLite migrators queue on the write lock within the busy timeout: long enough for all
/// of them on a machine busy with the rest of the suite.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// What a `migration up` process did: whether it exited with success, and its output.
struct CliRun {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Starts `migration up` on the test's database, and a thread that counts it in
/// `started` once it has read its configuration (its first line on standard error),
/// then collects its output.
fn start_cli(t: &TestDb, started: Arc<AtomicUsize>) -> std::thread::JoinHandle<CliRun> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_migration"));
    command
        .arg("up")
        .env("RUST_LOG", "off")
        .env("DB_BUSY_TIMEOUT_MS", BUSY_TIMEOUT.as_millis().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match &t.config.target {
        DatabaseTarget::Sqlite { path, .. } => command
            .env("APP_ENV", "local")
            .env("DATABASE_URL", format!("sqlite:{}", path.display())),
        DatabaseTarget::Postgres { url } => command
            .env("APP_ENV", "web")
            .env("DATABASE_URL", url.expose_secret()),
    };
    if t.config.pool_mode == PoolMode::Transaction {
        command.env("DB_POOL_MODE", "transaction");
    }
    let mut child = command.spawn().expect("start `migration up`");
    std::thread::spawn(move || {
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut first = String::new();
        stderr.read_line(&mut first).expect("stderr");
        started.fetch_add(1, Ordering::SeqCst);
        let mut rest = String::new();
        stderr.read_to_string(&mut rest).expect("stderr");
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .expect("piped stdout")
            .read_to_string(&mut stdout)
            .expect("stdout");
        let status = child.wait().expect("`migration up` exits");
        CliRun {
            success: status.success(),
            stdout,
            stderr: first + &rest,
        }
    })
}

/// Sessions of this database waiting for the migration lock (Postgres).
async fn waiting_for_the_lock(direct: &Database) -> i64 {
    let sql = format!(
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
         AND classid::bigint = {} AND objid::bigint = {} AND objsubid = 1 \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        ADVISORY_LOCK_KEY >> 32,
        ADVISORY_LOCK_KEY & 0xffff_ffff
    );
    count(direct, &sql).await
}

async fn count(db: &impl ConnectionTrait, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("one row")
        .try_get("", "n")
        .expect("a count named n")
}

parity_test!(empty async fn cli_and_library_migrators_at_once_apply_each_migration_once(t) {
    // Hold the migration lock as a migrator does, so every migrator below queues on it.
    let (held, is_held) = tokio::sync::oneshot::channel();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let holder = tokio::spawn({
        let db = t.db.sea_orm_connection().clone();
        let route = Route::of(&t.config);
        async move {
            locked::in_locked_transaction(&db, route, move |_tx| {
                Box::pin(async move {
                    let _ = held.send(());
                    let _ = released.await;
                    Ok(())
                })
            })
            .await
        }
    });
    is_held.await.expect("the lock is taken");

    let started = Arc::new(AtomicUsize::new(0));
    let cli: Vec<_> = (0..CLI_MIGRATORS).map(|_| start_cli(&t, started.clone())).collect();
    let config = t.config.clone().with_busy_timeout(BUSY_TIMEOUT);
    let library: Vec<_> = (0..LIBRARY_MIGRATORS)
        .map(|_| {
            let (config, started) = (config.clone(), started.clone());
            tokio::spawn(async move {
                let db = Database::connect(&config).await?;
                started.fetch_add(1, Ordering::SeqCst);
                let migrated = db.migrate().await;
                db.close().await?;
                migrated
            })
        })
        .collect();

    let everyone = CLI_MIGRATORS + LIBRARY_MIGRATORS;
    wait_until("every migrator has started", || async {
        started.load(Ordering::SeqCst) == everyone
    })
    .await;
    if let Some(direct) = t.direct_config() {
        let direct = Database::connect(&direct).await.unwrap();
        wait_until(
            "4 `migration up` and 4 `Database::migrate` wait for the migration lock",
            || async { waiting_for_the_lock(&direct).await == everyone as i64 },
        )
        .await;
        direct.close().await.unwrap();
    }
    release.send(()).expect("the holder waits");
    holder.await.unwrap().expect("the holder's transaction ends");

    let history = migration_history::sources();
    let n = history.len();
    for run in cli {
        let run = tokio::task::spawn_blocking(move || run.join().expect("reader thread"))
            .await
            .unwrap();
        assert!(
            run.success && run.stdout.ends_with(&format!("\n{n} of {n} migrations applied\n")),
            "`migration up` failed:\n{}{}",
            run.stdout,
            run.stderr
        );
    }
    for migrator in library {
        migrator.await.unwrap().expect("Database::migrate succeeds");
    }

    let names: Vec<String> = history.iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(t.db.applied_migrations().await.unwrap(), names);
    let n = n as i64;
    assert_eq!(count(&t.db, "SELECT count(*) AS n FROM seaql_migrations").await, n);
    assert_eq!(
        count(&t.db, "SELECT count(DISTINCT version) AS n FROM seaql_migrations").await,
        n
    );
    assert_eq!(count(&t.db, "SELECT count(*) AS n FROM dal_migration_checksums").await, n);
    // The schema is the history's, table by table, and every checksum is recorded.
    assert_eq!(
        migration::cli::check(&t.config).await.unwrap(),
        Vec::<String>::new()
    );
});
