//! Review of snapshots (issue 16): each test is a finding, failing on the code as it was
//! reviewed. These work on local files only (no backend is involved).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dal::Config;
use dal::prelude::*;
use snapshot::{ExportOptions, Progress, SnapshotError};

use crate::snapshot_import::altered;
use crate::snapshots::{export_all, scratch, user_with_work};

/// A migrated local database at `dir/name` with a user of its own, open.
async fn local_open(dir: &Path, name: &str) -> (PathBuf, Database) {
    let path = dir.join(name);
    let db = Database::connect(&Config::sqlite(&path)).await.unwrap();
    db.migrate().await.unwrap();
    user_with_work(&db, "the local user").await;
    (path, db)
}

/// A good snapshot `dir/good.db` of a database of its own.
async fn good_snapshot(dir: &Path) -> PathBuf {
    let (_, source) = local_open(dir, "source.db").await;
    user_with_work(&source, "the snapshot's user").await;
    let good = export_all(&source, dir, "good.db").await;
    source.close().await.unwrap();
    good
}

async fn names(path: &Path, kind: &str) -> Vec<String> {
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = ? ORDER BY name")
            .bind(kind)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    sqlx::Connection::close(conn).await.unwrap();
    names
}

/// Finding: the checksum covered the rows of every table but not the schema, so a
/// snapshot whose DDL was changed without touching a row passed `check` and was
/// imported: a trigger added (here one that empties the outbox as soon as a change is
/// queued, so no local write would ever be synced), a sync-capture trigger dropped, an
/// index dropped or a view added. The checksum now covers every schema object.
#[tokio::test]
async fn a_snapshot_whose_schema_was_changed_without_its_rows_fails_the_check() {
    let dir = scratch();
    let good = good_snapshot(dir.path()).await;
    snapshot::check(&good).await.expect("the good one passes");
    let triggers = names(&good, "trigger").await;
    let indexes: Vec<String> = names(&good, "index")
        .await
        .into_iter()
        .filter(|n| !n.starts_with("sqlite_"))
        .collect();
    assert!(!triggers.is_empty() && !indexes.is_empty());
    let changes = [
        (
            "trigger-added.db",
            "CREATE TRIGGER review_swallow AFTER INSERT ON sync_outbox \
             BEGIN DELETE FROM sync_outbox; END;"
                .to_owned(),
        ),
        (
            "trigger-dropped.db",
            format!("DROP TRIGGER \"{}\"", triggers[0]),
        ),
        ("index-dropped.db", format!("DROP INDEX \"{}\"", indexes[0])),
        (
            "view-added.db",
            "CREATE VIEW review_view AS SELECT 1 AS one".to_owned(),
        ),
    ];
    for (name, change) in changes {
        let tampered = altered(&good, name, &change).await;
        let checked = snapshot::check(&tampered).await;
        assert!(
            matches!(checked, Err(SnapshotError::Damaged { .. })),
            "{name} ({change}) passed the check: {checked:?}"
        );
    }
}

/// Finding: import's only guard against an application that still has the database
/// open was `wal_checkpoint(TRUNCATE)` reporting busy, which it does only while another
/// connection is in the middle of a read. An application with the database open but
/// idle (a pool's idle connections: the usual case) was not noticed: the import moved
/// the file from under it and removed it, and every write the application made after
/// that went into the removed file and was lost. An import now takes the database
/// exclusively first and is refused while any other connection has it open.
#[tokio::test]
async fn an_import_is_refused_while_the_application_has_the_database_open() {
    let dir = scratch();
    let good = good_snapshot(dir.path()).await;
    let (local, app) = local_open(dir.path(), "local.db").await;
    let imported = snapshot::import(&good, &local, false).await;
    assert!(
        imported.is_err(),
        "imported under an open application: {imported:?}"
    );
    let why = imported.unwrap_err().to_string();
    assert!(why.contains("in use"), "{why}");
    // The application goes on, and what it writes is in the local database.
    let later = app
        .users()
        .create(NewUser::new().display_name("written after the import"))
        .await
        .unwrap();
    app.close().await.unwrap();
    let reopened = Database::connect(&Config::sqlite(&local)).await.unwrap();
    let found = reopened.users().get(later.id).await;
    assert!(found.is_ok(), "the application's write is lost: {found:?}");
    reopened.close().await.unwrap();
    // Closed, it imports.
    snapshot::import(&good, &local, false).await.unwrap();
}

/// Finding: import moved the local database aside and then renamed the prepared copy
/// in: between the two (and for the fsync of the directory) no database had the local
/// name, so a process killed there left the application to start on a new, empty
/// database, the user's data under a `.before-import-` name nothing looks for. Now the
/// copy is renamed over the old database in one step: the name always holds a whole
/// database, the old one or the new one.
#[tokio::test]
async fn the_local_database_never_goes_missing_during_an_import() {
    let dir = scratch();
    let good = good_snapshot(dir.path()).await;
    let (local, app) = local_open(dir.path(), "local.db").await;
    app.close().await.unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (local, done) = (local.clone(), done.clone());
        std::thread::spawn(move || {
            let mut missing = 0u64;
            while !done.load(Ordering::Relaxed) {
                if std::fs::metadata(&local).is_err() {
                    missing += 1;
                }
            }
            missing
        })
    };
    for keep_previous in [false, true, false, true, false, true, false, true] {
        snapshot::import(&good, &local, keep_previous)
            .await
            .unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let missing = watcher.join().unwrap();
    assert_eq!(missing, 0, "the local database was missing {missing} times");
}

/// Finding: a cancelled export (the future dropped: a request timeout, a client gone
/// from `GET /v1/snapshot`) left its `.partial-` file behind for good: the clean-up ran
/// only when the export returned an error. On the sync server those pile up in the
/// temporary directory, one user's rows each.
#[tokio::test]
async fn a_cancelled_export_leaves_no_partial_file() {
    let dir = scratch();
    let (_, db) = local_open(dir.path(), "source.db").await;
    let out = dir.path().join("cancelled.db");
    let (measuring, measured) = tokio::sync::oneshot::channel::<()>();
    let mut measuring = Some(measuring);
    let options = ExportOptions::new("the test");
    let export = snapshot::export(&db, &out, &options, |step| {
        if matches!(step, Progress::Measuring)
            && let Some(tx) = measuring.take()
        {
            let _ = tx.send(());
        }
    });
    tokio::select! {
        biased;
        _ = measured => {}
        made = export => panic!("the export ended before it was cancelled: {made:?}"),
    }
    db.close().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let strays: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("cancelled"))
        .collect();
    assert!(strays.is_empty(), "left behind: {strays:?}");
}

/// Finding: the SQLite build opens names beginning with `file:` as URIs, and `VACUUM INTO`
/// was given the export's temporary name as the caller spelled it: a relative `--out
/// file:backup.db` had SQLite write the copy to `backup.db.partial-…` instead, the export
/// then failed ("No such file or directory") and left that full copy of the database
/// behind under a name nothing removes. The temporary name is now made absolute.
#[tokio::test]
async fn an_export_to_a_relative_name_that_looks_like_a_uri_is_written_under_that_name() {
    let dir = scratch();
    let (_, db) = local_open(dir.path(), "source.db").await;
    // Relative to the test's directory: an absolute path is never read as a URI.
    let stem = format!("review16-{}.db", uuid::Uuid::new_v4().simple());
    let out = PathBuf::from(format!("file:{stem}"));
    let made = snapshot::export(&db, &out, &ExportOptions::new("the test"), |_| {}).await;
    db.close().await.unwrap();
    let strays: Vec<PathBuf> = std::fs::read_dir(".")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(&stem))
        .collect();
    for stray in &strays {
        let _ = std::fs::remove_file(stray);
    }
    made.expect("the export succeeds");
    assert_eq!(
        strays,
        vec![PathBuf::from(".").join(&out)],
        "only the snapshot"
    );
}
