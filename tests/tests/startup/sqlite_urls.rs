//! Every sqlite URL form the library accepts, really opened: files created or not as the
//! `mode` says, read-only databases refusing writes with the same typed error as a
//! read-only Postgres database, and in-memory databases shared by the whole pool.

use std::path::{Path, PathBuf};

use dal::prelude::*;
use dal::{ConfigError, SqliteMode};
use dal_config::DatabaseTarget;
use parity_tests::parity_test;
use sea_orm::{ConnectionTrait, Statement};

use crate::count;

/// `path` (absolute) written relative to the working directory, so the relative URL
/// forms are tested on a temporary file too.
fn relative_to_cwd(path: &Path) -> PathBuf {
    let cwd = std::env::current_dir().unwrap();
    let ups = cwd.components().count() - 1;
    let mut relative: PathBuf = std::iter::repeat_n("..", ups).collect();
    relative.push(path.strip_prefix("/").unwrap());
    relative
}

async fn open(url: &str) -> dal::Result<Database> {
    Database::connect(&Config::sqlite_url(url)?).await
}

#[tokio::test]
async fn every_url_form_opens_the_file_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let abs = |name: &str| dir.path().join(name);
    let rel = |name: &str| relative_to_cwd(&abs(name)).display().to_string();
    let cases = [
        (format!("sqlite://{}?mode=rwc", rel("a.db")), abs("a.db")),
        (format!("sqlite:{}", rel("b.db")), abs("b.db")),
        (format!("sqlite://{}", rel("c.db")), abs("c.db")),
        (format!("sqlite://{}", abs("d.db").display()), abs("d.db")),
        (
            format!("sqlite:{}?mode=rwc&cache=private", abs("e.db").display()),
            abs("e.db"),
        ),
        (
            format!("sqlite:{}", abs("my%20data.db").display()),
            abs("my data.db"),
        ),
    ];
    for (url, file) in cases {
        assert!(url.starts_with("sqlite:"));
        assert!(!file.exists(), "{url}");
        let db = open(&url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
        db.migrate().await.unwrap();
        db.users().create(NewUser::default()).await.unwrap();
        db.close().await.unwrap();
        assert!(file.exists(), "{url} created {}", file.display());
        // The same file, opened by plain path, holds the write.
        let again = Database::connect(&Config::sqlite(&file)).await.unwrap();
        assert_eq!(
            count(&again, "SELECT count(*) AS n FROM users").await,
            1,
            "{url}"
        );
        again.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    for url in [
        format!("sqlite:{}", path.display()),
        format!("sqlite:{}?mode=rw", path.display()),
        format!("sqlite:{}?mode=ro", path.display()),
    ] {
        let err = open(&url)
            .await
            .err()
            .unwrap_or_else(|| panic!("{url} opened"));
        assert!(
            matches!(&err, DalError::Config(ConfigError::SqliteNotADatabase { path: p, .. }) if *p == path),
            "{url}: {err:?}"
        );
        assert!(!err.is_retryable(), "{url}");
        assert!(err.to_string().contains("notes.db"), "{err}");
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        vec![b'x'; 4096],
        "left as it was"
    );
}

#[tokio::test]
async fn a_file_in_a_missing_directory_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("app.db");
    let err = open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DalError::Config(ConfigError::SqliteCannotOpen { path: p, .. }) if *p == path),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(!path.parent().unwrap().exists(), "no directory created");
}

#[tokio::test]
async fn modes_that_open_existing_files_never_create_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    for (parameter, url) in [
        ("mode=rw", format!("sqlite:{}?mode=rw", path.display())),
        ("mode=ro", format!("sqlite:{}?mode=ro", path.display())),
        (
            "immutable=1",
            format!("sqlite:{}?immutable=1", path.display()),
        ),
    ] {
        let err = open(&url).await.unwrap_err();
        assert_eq!(
            err,
            DalError::Config(ConfigError::SqliteFileMissing {
                path: path.clone(),
                parameter
            }),
            "{url}"
        );
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("missing.db"), "{err}");
        assert!(!path.exists(), "{url} created the file");
    }
    // Once it exists, `mode=rw` opens it for writing, in WAL mode.
    let created = open(&format!("sqlite:{}", path.display())).await.unwrap();
    created.migrate().await.unwrap();
    created.close().await.unwrap();
    let rw = open(&format!("sqlite:{}?mode=rw", path.display()))
        .await
        .unwrap();
    rw.users().create(NewUser::default()).await.unwrap();
    let row = rw
        .query_one_raw(Statement::from_string(
            rw.get_database_backend(),
            "PRAGMA journal_mode",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<String>("", "journal_mode").unwrap(), "wal");
    rw.close().await.unwrap();
}

/// Read-only pools on the test's database: `mode=ro` and `immutable=1` on SQLite, a
/// database whose transactions are read-only on Postgres.
async fn read_only_pools(t: &parity_tests::TestDb) -> Vec<(String, Database)> {
    match &t.config.target {
        DatabaseTarget::Sqlite { path, .. } => {
            // `immutable` promises nobody changes the file while it is open: move what the
            // WAL holds into the file first.
            t.db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
                .await
                .unwrap();
            let mut pools = Vec::new();
            for parameter in ["mode=ro", "immutable=1"] {
                let url = format!("sqlite:{}?{parameter}", path.display());
                let config = Config::sqlite_url(&url).unwrap();
                match &config.target {
                    DatabaseTarget::Sqlite { mode, .. } => assert!(mode.is_read_only()),
                    other => panic!("{other:?}"),
                }
                pools.push((parameter.to_owned(), t.connect(&config).await));
            }
            pools
        }
        DatabaseTarget::Postgres { .. } => {
            t.db.execute_unprepared(
                "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = on', current_database()); END $$",
            )
            .await
            .unwrap();
            vec![(
                "default_transaction_read_only".to_owned(),
                t.connect(&t.config).await,
            )]
        }
    }
}

parity_test!(session_only("makes Postgres read-only with ALTER DATABASE … SET, which only new server sessions see; PgBouncer keeps its sessions") async fn a_read_only_database_refuses_writes_with_a_typed_error(t) {
    let user = t.db.users().create(NewUser::default()).await.unwrap();
    for (how, db) in read_only_pools(&t).await {
        assert_eq!(db.users().get(user.id).await.unwrap(), user, "{how}: reads work");
        let refused = [
            db.users().create(NewUser::default()).await.map(|_| ()),
            db.users().delete(user.id).await.map(|_| ()),
            async {
                let uow = db.begin().await?;
                uow.users().create(NewUser::default()).await?;
                uow.commit().await
            }
            .await,
            db.migrate().await,
        ];
        for (i, outcome) in refused.into_iter().enumerate() {
            let err = outcome.expect_err(&format!("{how}: write {i} is refused"));
            assert!(
                matches!(err, DalError::ReadOnly { .. }) && !err.is_retryable(),
                "{how}, write {i}: {err:?}"
            );
        }
        assert_eq!(db.users().get(user.id).await.unwrap(), user, "{how}: nothing changed");
        db.close().await.unwrap();
    }
});

#[tokio::test]
async fn migrations_are_refused_on_a_read_only_url() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let writable = Database::connect(&Config::sqlite(&path)).await.unwrap();
    writable.migrate().await.unwrap();
    writable.close().await.unwrap();
    let config = Config::sqlite_url(&format!("sqlite:{}?mode=ro", path.display()))
        .unwrap()
        .with_migrate_on_connect(true);
    let err = Database::connect(&config).await.unwrap_err();
    assert_eq!(
        err,
        DalError::Config(ConfigError::MigrateReadOnly {
            parameter: "mode=ro"
        })
    );
    // The migration CLI: status reads, every command that changes the schema is refused.
    use migration::cli::{self, CliError, MigrateCommand};
    let read_only = config.with_migrate_on_connect(false);
    let states = cli::execute(&read_only, MigrateCommand::Status, false)
        .await
        .unwrap();
    assert!(states.iter().all(|s| s.applied));
    for command in [
        MigrateCommand::Up { num: None },
        MigrateCommand::Down { num: 1 },
        MigrateCommand::Fresh,
        MigrateCommand::Reset,
    ] {
        let err = cli::execute(&read_only, command, true).await.unwrap_err();
        assert!(matches!(err, CliError::ReadOnly { .. }), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_memory_database_is_one_database_for_the_whole_pool() {
    let config = Config::sqlite_url("sqlite::memory:")
        .unwrap()
        .with_max_connections(4)
        .with_busy_timeout(std::time::Duration::from_secs(1));
    match config.target {
        DatabaseTarget::Sqlite { mode, .. } => assert_eq!(mode, SqliteMode::Memory),
        ref other => panic!("{other:?}"),
    }
    let db = Database::connect(&config).await.unwrap();
    db.migrate().await.unwrap();
    let user = db.users().create(NewUser::default()).await.unwrap();

    // Every connection of the pool sees the same database.
    let reads = futures::future::join_all((0..4).map(|_| {
        let db = db.clone();
        async move {
            // Each unit of work holds a connection of its own while it reads.
            let uow = db.begin().await?;
            let seen = uow.users().get(user.id).await;
            uow.rollback().await?;
            seen
        }
    }))
    .await;
    for seen in reads {
        assert_eq!(seen.unwrap(), user);
    }

    // No WAL in memory: while a unit of work writes, a read on another connection waits
    // for it, up to the busy timeout, then is a retryable Busy (never a hang).
    let uow = db.begin().await.unwrap();
    let pending = uow.users().create(NewUser::default()).await.unwrap();
    let err = db.users().get(user.id).await.unwrap_err();
    assert!(
        matches!(err, DalError::Busy { .. }) && err.is_retryable(),
        "{err:?}"
    );
    // A second writer waits for the first, then goes ahead.
    let second = tokio::spawn({
        let db = db.clone();
        async move { db.users().create(NewUser::default()).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    uow.commit().await.unwrap();
    second.await.unwrap().unwrap();
    assert_eq!(db.users().get(pending.id).await.unwrap(), pending);
    assert_eq!(count(&db, "SELECT count(*) AS n FROM users").await, 3);

    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "PRAGMA journal_mode",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(row.try_get::<String>("", "journal_mode").unwrap(), "wal");

    // `sqlite::memory:` is a new database for every connect (as sqlx's is per options).
    let other = Database::connect(&config).await.unwrap();
    assert_eq!(other.schema_version().await.unwrap(), None);
    other.close().await.unwrap();
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_named_in_memory_database_is_shared_by_every_pool_of_the_process() {
    let url = format!(
        "sqlite:dal-test-{}?mode=memory&cache=shared",
        uuid::Uuid::new_v4().simple()
    );
    let first = open(&url).await.unwrap();
    first.migrate().await.unwrap();
    let user = first.users().create(NewUser::default()).await.unwrap();
    let second = open(&url).await.unwrap();
    assert_eq!(second.users().get(user.id).await.unwrap(), user);
    second.close().await.unwrap();
    first.close().await.unwrap();
    // Gone once its last connection closed.
    let third = open(&url).await.unwrap();
    assert_eq!(third.schema_version().await.unwrap(), None);
    third.close().await.unwrap();
}
