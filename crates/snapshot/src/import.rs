//! Checking a snapshot, and putting one in place as the local database.
//!
//! [`check`] reads a file without writing to it. [`import`] works on a copy: the copy is
//! checked, migrated forward if it is older than this build, stripped of its metadata,
//! checked again, and only then renamed over the local database in one step, so the
//! local name always holds a whole database and a failed import leaves it as it was.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use dal::{Config, Database};
use sea_orm::{ConnectionTrait, Statement};
use sqlx::sqlite::{SqliteConnectOptions, SqliteLockingMode};

use crate::content;
use crate::error::{Result, SnapshotError, io};
use crate::file;
use crate::meta::{self, META_TABLE, Meta};

/// Checks the snapshot at `path` and returns its metadata: an SQLite database, whole (not
/// truncated, passing `PRAGMA integrity_check`), with this library's metadata, content
/// that matches its checksum, and a schema version of this build's history (newer is
/// [`SnapshotError::Newer`]). The file is opened read-only.
pub async fn check(path: &Path) -> Result<Meta> {
    file::check_header(path)?;
    let pool = file::open(path, false).await?;
    let checked = async {
        let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&pool)
            .await
            .map_err(|e| meta::damaged(path, e))?;
        if problems != ["ok"] {
            return Err(SnapshotError::Damaged {
                path: path.to_owned(),
                why: format!("integrity check: {}", problems.join("; ")),
            });
        }
        let meta = meta::read(&pool, path).await?;
        let content = content::measure(&pool)
            .await
            .map_err(|e| meta::damaged(path, e))?;
        if !meta.matches(&content) {
            return Err(SnapshotError::Damaged {
                path: path.to_owned(),
                why: format!(
                    "its content does not match its metadata (checksum {} recorded, {} found)",
                    meta.checksum, content.checksum
                ),
            });
        }
        known_version(path, &meta.schema_version)?;
        Ok(meta)
    }
    .await;
    pool.close().await;
    checked
}

/// Refuses a schema version this build's history does not have.
fn known_version(path: &Path, version: &str) -> Result<()> {
    let build = Database::latest_schema_version();
    if migration_history::sources()
        .iter()
        .any(|(name, _)| *name == version)
    {
        return Ok(());
    }
    if version > build {
        Err(SnapshotError::Newer {
            path: path.to_owned(),
            snapshot: version.to_owned(),
            build: build.to_owned(),
        })
    } else {
        Err(SnapshotError::UnknownVersion {
            path: path.to_owned(),
            snapshot: version.to_owned(),
        })
    }
}

/// What [`import`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The snapshot's metadata.
    pub meta: Meta,
    /// The schema version the snapshot was migrated forward from, if it was older.
    pub migrated_from: Option<String>,
    /// Where the previous local database was kept, when asked to keep it.
    pub previous: Option<PathBuf>,
}

/// Replaces the local SQLite database at `local` with the snapshot at `snapshot`, which
/// is left as it is. The snapshot is checked ([`check`]), prepared on a copy beside
/// `local` and the copy checked again; then the local database is taken exclusively
/// (refused while any other connection has it open), its write-ahead log folded in, kept
/// under `<local>.before-import-<time>` if asked (`keep_previous`), and the copy renamed
/// over it in one step: whatever happens, even a process killed midway, the name `local`
/// holds a whole database, the previous one or the new one, and a failed import leaves
/// the previous one as it was.
///
/// Run it while no process has `local` open. One that holds it open in write-ahead-log
/// mode (the library's) is noticed and the import refused; one in rollback-journal mode
/// that is idle holds no lock and cannot be noticed. An imported replica still carries the
/// sync identity of the one it was taken from: its engine moves it to a new client id the
/// first time the server refuses its push as `Diverged` (`sync::SyncClient::reidentify`),
/// or at once with `SyncEngine::reidentify`.
pub async fn import(snapshot: &Path, local: &Path, keep_previous: bool) -> Result<Imported> {
    let meta = check(snapshot).await?;
    import_checked(meta, snapshot, local, keep_previous).await
}

/// [`import`] of a snapshot [`check`] has just passed (`meta` is what it returned).
pub(crate) async fn import_checked(
    meta: Meta,
    snapshot: &Path,
    local: &Path,
    keep_previous: bool,
) -> Result<Imported> {
    // Absolute: SQLite reads a relative name beginning with `file:` as a URI.
    let local = &std::path::absolute(local).map_err(io(local))?;
    let staging = file::beside(local, ".importing");
    if same_file(snapshot, &staging) {
        return Err(SnapshotError::Source(format!(
            "{} is the name import prepares its copy under; rename the snapshot first",
            snapshot.display()
        )));
    }
    file::remove_with_journals(&staging);
    // Removed however this ends, a cancellation included (once renamed in place, it has
    // no temporary name left to remove).
    let _staging = file::Temporary(&staging);
    let migrated_from = prepare(snapshot, &staging, &meta).await?;
    verify(&staging).await?;
    let previous = if local.exists() {
        take_whole(local).await?;
        if keep_previous {
            Some(keep(local)?)
        } else {
            None
        }
    } else {
        None
    };
    // One rename over the old file: atomic, so `local` never names nothing.
    if let Err(e) = std::fs::rename(&staging, local) {
        if let Some(previous) = &previous {
            let _ = std::fs::remove_file(previous);
        }
        return Err(io(local)(e));
    }
    file::sync_dir(local);
    Ok(Imported {
        meta,
        migrated_from,
        previous,
    })
}

/// Whether `a` and `b` name one file (both existing).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// A copy of the database at `local` under `<local>.before-import-<time>` (a second name
/// for the same file where the file system allows it, else a copy): where it is.
fn keep(local: &Path) -> Result<PathBuf> {
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
    let previous = file::beside(local, &format!(".before-import-{stamp}"));
    if std::fs::hard_link(local, &previous).is_err() {
        std::fs::copy(local, &previous).map_err(io(&previous))?;
    }
    file::sync_dir(&previous);
    Ok(previous)
}

/// Copies the snapshot to `staging`, migrates the copy forward if it is older than this
/// build, and drops its metadata (the local database's content moves on from here):
/// the version migrated from, if it was older.
async fn prepare(snapshot: &Path, staging: &Path, meta: &Meta) -> Result<Option<String>> {
    std::fs::copy(snapshot, staging).map_err(io(staging))?;
    let db = Database::connect(&Config::sqlite(staging)).await?;
    let prepared = async {
        let older = meta.schema_version.as_str() != Database::latest_schema_version();
        if older {
            db.migrate().await?;
        }
        db.execute_unprepared(&format!("DROP TABLE {META_TABLE}"))
            .await?;
        Ok(older.then(|| meta.schema_version.clone()))
    }
    .await;
    db.close().await?;
    prepared
}

/// Makes sure no other connection has the database at `local` open and that the main
/// file alone is the database: takes it exclusively (a connection in exclusive locking
/// mode, which in write-ahead-log mode needs every other connection gone, idle ones
/// included), which also rolls back a hot journal, then closes, which folds the log into
/// the main file and removes it.
async fn take_whole(local: &Path) -> Result<()> {
    let options = SqliteConnectOptions::new()
        .filename(local)
        .busy_timeout(Duration::from_millis(500))
        .locking_mode(SqliteLockingMode::Exclusive);
    let in_use = || {
        SnapshotError::Source(format!(
            "{} is in use by another connection; close the application before importing",
            local.display()
        ))
    };
    // Busy or locked, as SQLite's primary result code says: another connection has it.
    let classify = |e: sqlx::Error| match &e {
        sqlx::Error::Database(db)
            if db
                .code()
                .and_then(|code| code.parse::<i64>().ok())
                .is_some_and(|code| matches!(code & 0xff, 5 | 6)) =>
        {
            in_use()
        }
        _ => meta::damaged(local, e),
    };
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
        .await
        .map_err(classify)?;
    let taken = async {
        sqlx::query("BEGIN EXCLUSIVE").execute(&mut conn).await?;
        sqlx::query("SELECT count(*) FROM sqlite_master")
            .execute(&mut conn)
            .await?;
        sqlx::query("COMMIT").execute(&mut conn).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    let closed = sqlx::Connection::close(conn).await;
    taken.map_err(classify)?;
    closed.map_err(classify)
}

/// The database at `local` (the prepared copy) opens, passes a quick check and is at
/// this build's schema version.
async fn verify(local: &Path) -> Result<()> {
    let db = Database::connect(&Config::sqlite(local)).await?;
    let verified = async {
        let quick = db
            .query_one_raw(Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "PRAGMA quick_check",
            ))
            .await?
            .map(|row| row.try_get_by_index::<String>(0))
            .transpose()?;
        if quick.as_deref() != Some("ok") {
            return Err(SnapshotError::Damaged {
                path: local.to_owned(),
                why: format!("the prepared copy, quick check: {quick:?}"),
            });
        }
        let version = db.schema_version().await?;
        if version.as_deref() != Some(Database::latest_schema_version()) {
            return Err(SnapshotError::Damaged {
                path: local.to_owned(),
                why: format!("the prepared copy, schema version {version:?}"),
            });
        }
        Ok(())
    }
    .await;
    db.close().await?;
    verified
}
