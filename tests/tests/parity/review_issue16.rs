//! Review of snapshots (issue 16): each test is a finding, failing on the code as it was
//! reviewed. These work on local files only (no backend is involved).

use std::path::{Path, PathBuf};

use dal::Config;
use dal::prelude::*;
use snapshot::SnapshotError;

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

/// A copy of `good` named `name`, changed by `change` on a raw connection.
async fn altered(good: &Path, name: &str, change: &str) -> PathBuf {
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
