//! Checking a snapshot, and putting one in place as the local database.
//!
//! [`check`] reads a file without writing to it. [`import`] works on a copy: the copy is
//! checked, migrated forward if it is older than this build, stripped of its metadata,
//! and only then swapped in; the previous database is moved aside first and put back if
//! anything fails after, so a failed import leaves the local database as it was.

use std::path::{Path, PathBuf};

use chrono::Utc;
use dal::{Config, Database};
use sea_orm::{ConnectionTrait, Statement};

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
/// is left as it is. The snapshot is checked ([`check`]) and prepared on a copy beside
/// `local`; the previous database (if any) is moved aside, the copy renamed into place
/// and checked again, and the previous one removed, or kept (`keep_previous`) under
/// `<local>.before-import-<time>`. If any step fails, the previous database is back in
/// place and nothing else remains.
///
/// Run it while no process has `local` open: a connection left open would go on writing
/// to the file moved aside. An imported replica still carries the sync identity of the
/// one it was taken from: its engine moves it to a new client id the first time the
/// server refuses its push as `Diverged` (`sync::SyncClient::reidentify`), or at once
/// with `SyncEngine::reidentify`.
pub async fn import(snapshot: &Path, local: &Path, keep_previous: bool) -> Result<Imported> {
    let meta = check(snapshot).await?;
    let staging = file::beside(local, ".importing");
    file::remove_with_journals(&staging);
    let prepared = prepare(snapshot, &staging, &meta).await;
    let migrated_from = match prepared {
        Ok(migrated_from) => migrated_from,
        Err(e) => {
            file::remove_with_journals(&staging);
            return Err(e);
        }
    };
    let previous = match set_aside(local).await {
        Ok(previous) => previous,
        Err(e) => {
            file::remove_with_journals(&staging);
            return Err(e);
        }
    };
    let placed = async {
        std::fs::rename(&staging, local).map_err(io(local))?;
        file::sync_dir(local);
        verify(local).await
    }
    .await;
    if let Err(e) = placed {
        file::remove_with_journals(&staging);
        file::remove_with_journals(local);
        if let Some(previous) = &previous {
            move_with_journals(previous, local)?;
        }
        return Err(e);
    }
    let previous = match previous {
        Some(previous) if !keep_previous => {
            file::remove_with_journals(&previous);
            None
        }
        kept => kept,
    };
    Ok(Imported {
        meta,
        migrated_from,
        previous,
    })
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

/// Moves the database at `local` (and its journal files) aside, after folding its
/// write-ahead log into the main file: where it went, or `None` if there was none.
async fn set_aside(local: &Path) -> Result<Option<PathBuf>> {
    if !local.exists() {
        return Ok(None);
    }
    checkpoint(local).await?;
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
    let previous = file::beside(local, &format!(".before-import-{stamp}"));
    move_with_journals(local, &previous)?;
    Ok(Some(previous))
}

/// Folds `local`'s write-ahead log into the main file, so the main file alone is the
/// database; refused while another connection holds the log (the application is open).
async fn checkpoint(local: &Path) -> Result<()> {
    if !file::beside(local, "-wal").exists() {
        return Ok(());
    }
    let db = Database::connect(&Config::sqlite(local)).await?;
    let result = db
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "PRAGMA wal_checkpoint(TRUNCATE)",
        ))
        .await;
    db.close().await?;
    let busy = result?
        .map(|row| row.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(1);
    if busy != 0 {
        return Err(SnapshotError::Source(format!(
            "{} is in use by another connection; close the application before importing",
            local.display()
        )));
    }
    Ok(())
}

fn move_with_journals(from: &Path, to: &Path) -> Result<()> {
    for suffix in ["-wal", "-shm", "-journal"] {
        let journal = file::beside(from, suffix);
        if journal.exists() {
            std::fs::rename(&journal, file::beside(to, suffix)).map_err(io(&journal))?;
        }
    }
    std::fs::rename(from, to).map_err(io(from))?;
    file::sync_dir(to);
    Ok(())
}

/// The database now at `local` opens, passes a quick check and is at this build's
/// schema version.
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
                why: format!("after the import, quick check: {quick:?}"),
            });
        }
        let version = db.schema_version().await?;
        if version.as_deref() != Some(Database::latest_schema_version()) {
            return Err(SnapshotError::Damaged {
                path: local.to_owned(),
                why: format!("after the import, schema version {version:?}"),
            });
        }
        Ok(())
    }
    .await;
    db.close().await?;
    verified
}
