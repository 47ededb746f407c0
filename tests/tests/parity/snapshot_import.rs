//! Checking and importing snapshots on real files: every refusal leaves the current local
//! database exactly as it was (its bytes), an older snapshot is migrated forward, a newer
//! one is refused naming both versions. These are local-database operations; the file
//! they start from is made by the backend under test.

use std::path::{Path, PathBuf};

use dal::Config;
use dal::prelude::*;
use parity_tests::parity_test;
use sea_orm::ConnectionTrait;
use snapshot::SnapshotError;

use crate::snapshots::{export_all, open_read_only, scratch, user_with_work};

/// A local database at `dir/local.db` with a user of its own, closed: its bytes.
async fn local_database(dir: &Path) -> (PathBuf, Vec<u8>) {
    let path = dir.join("local.db");
    let db = Database::connect(&Config::sqlite(&path)).await.unwrap();
    db.migrate().await.unwrap();
    user_with_work(&db, "the local user").await;
    db.close().await.unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

/// A copy of the good snapshot `good`, changed by `change` (run on a raw connection).
pub(crate) async fn altered(good: &Path, name: &str, change: &str) -> PathBuf {
    let path = good.with_file_name(name);
    std::fs::copy(good, &path).unwrap();
    let url = format!("sqlite://{}", path.display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(change.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::Connection::close(conn).await.unwrap();
    path
}

/// Imports `snapshot` over the local database and asserts it is refused with an error
/// `expected` accepts, the local database left byte for byte, nothing else in `dir`.
async fn assert_refused(
    snapshot: &Path,
    local: &Path,
    before: &[u8],
    expected: impl Fn(&SnapshotError) -> bool,
) -> String {
    let checked = snapshot::check(snapshot).await;
    let Err(e) = checked else {
        panic!("{} passed the check", snapshot.display());
    };
    assert!(expected(&e), "check: {e:?}");
    let imported = snapshot::import(snapshot, local, false).await;
    let Err(e) = imported else {
        panic!("{} was imported", snapshot.display());
    };
    assert!(expected(&e), "import: {e:?}");
    assert_eq!(
        std::fs::read(local).unwrap(),
        before,
        "the local database is untouched"
    );
    let dir = local.parent().unwrap();
    let strays: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("importing") || n.contains("before-import"))
        .collect();
    assert!(
        strays.is_empty(),
        "a failed import leaves nothing: {strays:?}"
    );
    e.to_string()
}

parity_test!(async fn importing_a_snapshot_replaces_the_local_database(t) {
    seed::seed(&t.db).await.unwrap();
    let dir = scratch();
    let good = export_all(&t.db, dir.path(), "good.db").await;
    let expected = sync::snapshot::snapshot(&t.db).await.unwrap();
    let (local, _) = local_database(dir.path()).await;
    let imported = snapshot::import(&good, &local, false).await.unwrap();
    assert_eq!(imported.migrated_from, None);
    assert_eq!(imported.previous, None);
    let db = Database::connect(&Config::sqlite(&local)).await.unwrap();
    assert_eq!(sync::snapshot::snapshot(&db).await.unwrap(), expected);
    // The local database is in the library's own form again: no snapshot metadata.
    let meta = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "SELECT count(*) AS n FROM sqlite_master WHERE name = 'dal_snapshot'",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(meta.try_get::<i64>("", "n").unwrap(), 0);
    db.users().create(NewUser::default()).await.expect("it takes writes");
    db.close().await.unwrap();
    // The snapshot itself is left as it was.
    snapshot::check(&good).await.unwrap();

    // Kept on request: the previous database, whole, beside it.
    let (other, before) = {
        let dir2 = dir.path().join("second");
        std::fs::create_dir(&dir2).unwrap();
        local_database(&dir2).await
    };
    let imported = snapshot::import(&good, &other, true).await.unwrap();
    let previous = imported.previous.expect("kept");
    assert_eq!(std::fs::read(&previous).unwrap(), before);
});

parity_test!(async fn a_file_that_is_not_a_good_snapshot_is_refused_and_nothing_is_touched(t) {
    seed::seed(&t.db).await.unwrap();
    let dir = scratch();
    let good = export_all(&t.db, dir.path(), "good.db").await;
    let (local, before) = local_database(dir.path()).await;
    let not_a_snapshot = |e: &SnapshotError| matches!(e, SnapshotError::NotASnapshot { .. });
    let damaged = |e: &SnapshotError| matches!(e, SnapshotError::Damaged { .. });

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database at all, but long enough to have a header ".repeat(4)).unwrap();
    let why = assert_refused(&text, &local, &before, not_a_snapshot).await;
    assert!(why.contains("not an SQLite database"), "{why}");

    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    assert_refused(&empty, &local, &before, not_a_snapshot).await;

    // A plain library database, not made as a snapshot.
    let plain = dir.path().join("plain.db");
    std::fs::copy(&local, &plain).unwrap();
    let why = assert_refused(&plain, &local, &before, not_a_snapshot).await;
    assert!(why.contains("dal_snapshot"), "{why}");

    // Cut short, as a copy that stopped halfway.
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let why = assert_refused(&truncated, &local, &before, damaged).await;
    assert!(why.contains("truncated"), "{why}");

    // Garbage over a page in the middle: SQLite's integrity check finds it.
    let mut scribbled = bytes.clone();
    let page = 4096 * 3;
    for b in &mut scribbled[page..page + 4096] {
        *b = 0x5a;
    }
    let scribbled_path = dir.path().join("scribbled.db");
    std::fs::write(&scribbled_path, &scribbled).unwrap();
    assert_refused(&scribbled_path, &local, &before, |e| {
        matches!(e, SnapshotError::Damaged { .. } | SnapshotError::NotASnapshot { .. })
    })
    .await;

    // A row changed after the export: the content no longer matches its checksum.
    let edited = altered(&good, "edited.db", "UPDATE users SET display_name = 'tampered'").await;
    let why = assert_refused(&edited, &local, &before, damaged).await;
    assert!(why.contains("checksum"), "{why}");

    // Metadata of a later layout.
    let future_format = altered(&good, "format.db", "UPDATE dal_snapshot SET value = '99' WHERE key = 'format'").await;
    assert_refused(&future_format, &local, &before, not_a_snapshot).await;
});

parity_test!(async fn a_snapshot_from_a_newer_build_is_refused_naming_both_versions(t) {
    seed::seed(&t.db).await.unwrap();
    let dir = scratch();
    let good = export_all(&t.db, dir.path(), "good.db").await;
    let (local, before) = local_database(dir.path()).await;
    let newer = altered(
        &good,
        "newer.db",
        "UPDATE dal_snapshot SET value = 'm29990101_000000_from_the_future' WHERE key = 'schema_version'",
    )
    .await;
    let why = assert_refused(&newer, &local, &before, |e| matches!(e, SnapshotError::Newer { .. })).await;
    assert!(why.contains("m29990101_000000_from_the_future"), "{why}");
    assert!(why.contains(Database::latest_schema_version()), "{why}");

    let unknown = altered(
        &good,
        "unknown.db",
        "UPDATE dal_snapshot SET value = 'm20000101_000000_another_branch' WHERE key = 'schema_version'",
    )
    .await;
    assert_refused(&unknown, &local, &before, |e| {
        matches!(e, SnapshotError::UnknownVersion { .. })
    })
    .await;
});

/// Local files only: no backend is involved.
#[tokio::test]
async fn an_older_snapshot_is_migrated_forward_on_import() {
    // The source is a database one migration behind this build, as an older release of
    // the application left it.
    let dir = scratch();
    let old = dir.path().join("old-release.db");
    {
        let conn = sea_orm::Database::connect(format!("sqlite://{}?mode=rwc", old.display()))
            .await
            .unwrap();
        let all = migration_history::sources().len() as u32;
        <migration_history::Migrator as migration_history::MigratorTrait>::up(&conn, Some(all - 1))
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let db = Database::connect(&Config::sqlite(&old)).await.unwrap();
    let behind = db.schema_version().await.unwrap().unwrap();
    assert_ne!(behind, Database::latest_schema_version());
    let snap = export_all(&db, dir.path(), "old.db").await;
    db.close().await.unwrap();
    assert_eq!(snapshot::check(&snap).await.unwrap().schema_version, behind);
    let (local, _) = local_database(dir.path()).await;
    let imported = snapshot::import(&snap, &local, false).await.unwrap();
    assert_eq!(imported.migrated_from.as_deref(), Some(behind.as_str()));
    let opened = open_read_only(&local).await;
    assert_eq!(
        opened.schema_version().await.unwrap().as_deref(),
        Some(Database::latest_schema_version())
    );
    opened.close().await.unwrap();
}
