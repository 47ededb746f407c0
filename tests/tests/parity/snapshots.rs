//! Snapshots (`crates/snapshot`): exporting every backend's rows into a checked SQLite
//! file, consistent while writers go on; one user's rows only; and every way a file is
//! refused, on real files. Import is in `snapshot_import.rs`.

use std::path::{Path, PathBuf};

use dal::prelude::*;
use dal::{Backend, Config};
use parity_tests::parity_test;
use sea_orm::ConnectionTrait;
use snapshot::{ExportOptions, Scope, SnapshotError};

/// A directory for the test's files.
pub(crate) fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// The snapshot at `path`, opened read-only as a library database (opening it writable
/// would turn it into a WAL database).
pub(crate) async fn open_read_only(path: &Path) -> Database {
    let url = format!("sqlite://{}?mode=ro", path.display());
    Database::connect(&Config::sqlite_url(&url).unwrap())
        .await
        .expect("the snapshot opens")
}

/// Exports `db` whole to `dir/name`.
pub(crate) async fn export_all(db: &Database, dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    snapshot::export(db, &out, &ExportOptions::new("the test"), |_| {})
        .await
        .expect("the export succeeds");
    out
}

/// A user with a project, a shot and a generation.
pub(crate) async fn user_with_work(db: &Database, name: &str) -> (Id, Id) {
    let user = db
        .users()
        .create(NewUser::new().display_name(name))
        .await
        .unwrap();
    let project = db
        .projects()
        .create(NewProject::new(user.id, format!("{name}'s project")))
        .await
        .unwrap();
    db.shots()
        .create(NewShot::new(project.id, format!("{name}'s shot")))
        .await
        .unwrap();
    (user.id, project.id)
}

parity_test!(async fn an_export_holds_every_row_of_the_source(t) {
    seed::seed(&t.db).await.unwrap();
    seed::scale::scale(&t.db, 30, |_, _| {}).await.unwrap();
    let dir = scratch();
    let out = export_all(&t.db, dir.path(), "all.db").await;
    let meta = snapshot::check(&out).await.expect("the export checks out");
    assert_eq!(meta.schema_version, Database::latest_schema_version());
    assert_eq!(meta.scope, Scope::All);
    assert_eq!(meta.made_from, "the test");
    let source = sync::snapshot::snapshot(&t.db).await.unwrap();
    assert!(source.len() > 100, "the source has rows: {}", source.len());
    let copy = open_read_only(&out).await;
    assert_eq!(sync::snapshot::snapshot(&copy).await.unwrap(), source);
    for table in entities::schema::tables() {
        let rows = source.keys().filter(|(name, _)| name == table.name).count() as u64;
        assert_eq!(meta.row_counts.get(table.name), Some(&rows), "{}", table.name);
    }
    // One file, no journal beside it: a browser's SQLite can open it.
    copy.close().await.unwrap();
    let header = std::fs::read(&out).unwrap();
    assert_eq!(&header[18..20], &[1, 1], "rollback-journal mode, not WAL");
    assert!(!dir.path().join("all.db-wal").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "all.db")
        .collect();
    assert!(leftovers.is_empty(), "nothing but the snapshot: {leftovers:?}");
});

parity_test!(async fn an_export_never_writes_over_a_file(t) {
    seed::seed(&t.db).await.unwrap();
    let dir = scratch();
    let out = dir.path().join("taken.db");
    std::fs::write(&out, b"someone's file").unwrap();
    let refused = snapshot::export(&t.db, &out, &ExportOptions::new("the test"), |_| {}).await;
    assert!(
        matches!(refused, Err(SnapshotError::Exists { .. })),
        "{refused:?}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"someone's file");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
});

parity_test!(async fn an_export_while_the_application_writes_is_one_consistent_moment(t) {
    seed::seed(&t.db).await.unwrap();
    seed::scale::scale(&t.db, 50, |_, _| {}).await.unwrap();
    let user = user_with_work(&t.db, "writer").await.0;
    // Each unit of work adds a project and its shot: a consistent snapshot holds both or
    // neither of every pair.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (db, stop) = (t.db.clone(), stop.clone());
        tokio::spawn(async move {
            let mut written = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                db.transaction(|uow| {
                    Box::pin(async move {
                        let project = uow
                            .projects()
                            .create(NewProject::new(user, "paired"))
                            .await?;
                        uow.shots().create(NewShot::new(project.id, "pair")).await?;
                        Ok(())
                    })
                })
                .await
                .unwrap();
                written += 1;
            }
            written
        })
    };
    let dir = scratch();
    let mut exports = Vec::new();
    for round in 0..3 {
        exports.push(export_all(&t.db, dir.path(), &format!("during-{round}.db")).await);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.await.unwrap();
    assert!(written > 0, "the writer wrote while the exports ran");
    for out in exports {
        snapshot::check(&out).await.expect("a snapshot taken during writes checks out");
        let copy = open_read_only(&out).await;
        let projects = copy
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT (SELECT count(*) FROM projects WHERE name = 'paired') AS p, \
                 (SELECT count(*) FROM shots WHERE name = 'pair') AS s",
            ))
            .await
            .unwrap()
            .unwrap();
        let (p, s): (i64, i64) = (projects.try_get("", "p").unwrap(), projects.try_get("", "s").unwrap());
        assert_eq!(p, s, "{}: every project with its shot", out.display());
        copy.close().await.unwrap();
    }
});

parity_test!(async fn one_users_export_holds_nothing_of_another_user(t) {
    let (alice, alice_project) = user_with_work(&t.db, "Alice").await;
    let (_bob, _) = user_with_work(&t.db, "Bob-the-other-user").await;
    let dir = scratch();
    let out = dir.path().join("alice.db");
    let options = ExportOptions {
        scope: Scope::User(alice.0),
        ..ExportOptions::new("the test")
    };
    let made = snapshot::export(&t.db, &out, &options, |_| {}).await;
    if t.backend() == Backend::Sqlite {
        // A local database is one replica already: it is exported whole.
        assert!(matches!(made, Err(SnapshotError::Source(_))), "{made:?}");
        assert!(!out.exists());
        return;
    }
    let meta = made.expect("a user's export");
    assert_eq!(meta.scope, Scope::User(alice.0));
    assert!(meta.pull_from.is_some(), "a server-made replica has a pull cursor");
    assert_eq!(meta.row_counts.get("users"), Some(&1));
    assert_eq!(meta.row_counts.get("projects"), Some(&1));
    assert_eq!(meta.row_counts.get("shots"), Some(&1));
    let copy = open_read_only(&out).await;
    assert_eq!(copy.projects().get(alice_project).await.unwrap().name, "Alice's project");
    copy.close().await.unwrap();
    // Not a byte of the other user, whatever table or free page it could hide in.
    let bytes = std::fs::read(&out).unwrap();
    assert!(
        !bytes.windows(b"Bob-the-other-user".len()).any(|w| w == b"Bob-the-other-user"),
        "the other user's name is in the file"
    );
});

parity_test!(async fn a_postgres_export_is_refused_at_another_schema_version(t) {
    if t.backend() == Backend::Sqlite {
        return;
    }
    t.db.execute_unprepared(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m29990101_000000_from_the_future', 0)",
    )
    .await
    .unwrap();
    let dir = scratch();
    let out = dir.path().join("never.db");
    let made = snapshot::export(&t.db, &out, &ExportOptions::new("the test"), |_| {}).await;
    let Err(SnapshotError::Source(why)) = made else {
        panic!("expected a refusal, got {made:?}");
    };
    assert!(why.contains("m29990101_000000_from_the_future"), "{why}");
    assert!(why.contains(Database::latest_schema_version()), "{why}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
});

/// The Node packages the JavaScript check needs (`better-sqlite3` 12, `typescript`,
/// `@types/better-sqlite3`, `@types/node`), as `.ci/run` installs them; `None` when they
/// are not there (the check is then reported as not run), except where
/// `DAL_REQUIRE_NODE` is set (`.ci/run`): there a missing install fails the test.
fn node_modules() -> Option<PathBuf> {
    match std::env::var_os("DAL_NODE_MODULES") {
        Some(dir) => Some(PathBuf::from(dir)),
        None if std::env::var_os("DAL_REQUIRE_NODE").is_some() => panic!(
            "DAL_NODE_MODULES is not set: .ci/run installs better-sqlite3@12, typescript and their types and points it at their node_modules"
        ),
        None => None,
    }
}

parity_test!(async fn a_snapshot_opens_in_node_with_rows_shaped_as_schema_ts_declares(t) {
    let Some(modules) = node_modules() else {
        eprintln!("NOTE: DAL_NODE_MODULES is not set; the snapshot was not opened in Node");
        return;
    };
    seed::seed(&t.db).await.unwrap();
    seed::scale::scale(&t.db, 5, |_, _| {}).await.unwrap();
    let dir = scratch();
    let out = export_all(&t.db, dir.path(), "for-node.db").await;
    let meta = snapshot::check(&out).await.unwrap();
    // Compiled against the committed schema.ts, with strict checks.
    let work = dir.path().join("js");
    std::fs::create_dir(&work).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::copy(repo.join("tests/js/snapshot_rows.ts"), work.join("snapshot_rows.ts")).unwrap();
    std::fs::copy(repo.join("schema/schema.ts"), work.join("schema.ts")).unwrap();
    std::os::unix::fs::symlink(&modules, work.join("node_modules")).unwrap();
    let run = |program: PathBuf, args: &[&str]| {
        let output = std::process::Command::new(&program)
            .args(args)
            .current_dir(&work)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{} failed:\n{said}", program.display());
        said
    };
    run(
        modules.join(".bin/tsc"),
        &[
            "--strict", "--target", "es2020", "--module", "commonjs", "--esModuleInterop",
            "--skipLibCheck", "--outDir", "out", "snapshot_rows.ts",
        ],
    );
    let said = run(
        PathBuf::from("node"),
        &["out/snapshot_rows.js", out.to_str().unwrap()],
    );
    let read: serde_json::Value = serde_json::from_str(said.trim()).expect(&said);
    assert_eq!(read["schema_version"], meta.schema_version.as_str());
    for table in entities::schema::tables() {
        assert_eq!(
            read["counts"][table.name].as_u64(),
            meta.row_counts.get(table.name).copied(),
            "{}: {said}",
            table.name
        );
    }
});
