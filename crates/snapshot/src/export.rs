//! Making a snapshot: of a live local SQLite database (`VACUUM INTO`, which reads one
//! consistent snapshot while the application goes on writing, and writes a compact copy),
//! or of a Postgres database's rows (one user's or all, from one repeatable-read
//! snapshot, into a new SQLite file in the library's form). Either way the file is
//! written under a temporary name beside the target, stamped with its metadata, and
//! only then given its name: a failed export leaves nothing behind, and a file under the
//! target's name is always complete.

use std::path::Path;

use chrono::{DateTime, SubsecRound, Utc};
use dal::{Backend, Config, Database};
use sea_orm::{ConnectionTrait, Statement};

use crate::content;
use crate::error::{Result, SnapshotError};
use crate::file;
use crate::meta::{self, FORMAT, Meta, Scope};

/// How far an export is, for a progress line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// Rows of `table` copied so far (a Postgres export, page by page).
    Copying {
        /// The table.
        table: &'a str,
        /// Its rows copied so far.
        rows: u64,
    },
    /// The copy is made; its rows are being counted and checksummed.
    Measuring,
}

/// What to record about an export, besides what it measures.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// Whose rows (Postgres only; a local database is exported whole).
    pub scope: Scope,
    /// What the snapshot is made from, as the metadata shows it (a path, a host and
    /// database; never a password).
    pub made_from: String,
    /// Fixes the snapshot's time instead of now, and stamps the file's migrations as
    /// applied then: with the same rows, the same time gives a byte-identical file
    /// (see `seed --out`).
    pub reproducible_at: Option<DateTime<Utc>>,
}

impl ExportOptions {
    /// The whole database, made from `made_from`, now.
    pub fn new(made_from: impl Into<String>) -> ExportOptions {
        ExportOptions {
            scope: Scope::All,
            made_from: made_from.into(),
            reproducible_at: None,
        }
    }
}

/// Writes a snapshot of `db` to `out`, which must not exist: of a SQLite database its
/// every table, consistent while other connections keep writing; of a Postgres database
/// the rows of `options.scope`, as a replica that can go on syncing from the snapshot's
/// point (see [`sync::Server::export`]). Returns the snapshot's metadata.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use snapshot::{ExportOptions, export};
/// let db = dal::Database::from_env().await?;
/// let meta = export(&db, "backup.db".as_ref(), &ExportOptions::new("./local.db"), |_| {}).await?;
/// println!("{} rows, {}", meta.total_rows(), meta.checksum);
/// # Ok(()) }
/// ```
pub async fn export(
    db: &Database,
    out: &Path,
    options: &ExportOptions,
    mut progress: impl FnMut(Progress<'_>) + Send,
) -> Result<Meta> {
    file::refuse_existing(out)?;
    // Absolute: SQLite reads a name beginning with `file:` as a URI (a relative
    // `file:backup.db` would be written as `backup.db`), never one beginning with `/`.
    let absolute = std::path::absolute(out).map_err(crate::error::io(out))?;
    let partial = file::beside(
        &absolute,
        &format!(".partial-{}", uuid::Uuid::new_v4().simple()),
    );
    // Removed however this ends, a cancellation included (once in place, it has no
    // temporary name left to remove).
    let _partial = file::Temporary(&partial);
    async {
        let pull_from = match db.backend() {
            Backend::Sqlite => {
                if options.scope != Scope::All {
                    return Err(SnapshotError::Source(
                        "a local database is exported whole; a scope applies to Postgres".into(),
                    ));
                }
                vacuum_into(db, &partial).await?;
                None
            }
            Backend::Postgres => Some(from_postgres(db, &partial, options, &mut progress).await?),
        };
        progress(Progress::Measuring);
        let meta = stamp(&partial, options, pull_from).await?;
        file::place(&partial, out)?;
        Ok(meta)
    }
    .await
}

/// A consistent, compact copy of the SQLite database `db` at `to`.
async fn vacuum_into(db: &Database, to: &Path) -> Result<()> {
    db.execute_raw(Statement::from_sql_and_values(
        sea_orm::DbBackend::Sqlite,
        "VACUUM INTO ?",
        [to.to_string_lossy().into_owned().into()],
    ))
    .await?;
    Ok(())
}

/// The rows of `options.scope` on the Postgres `db`, in a new migrated SQLite file at
/// `to`: the pull cursor the copy continues from.
async fn from_postgres(
    db: &Database,
    to: &Path,
    options: &ExportOptions,
    progress: &mut (impl FnMut(Progress<'_>) + Send),
) -> Result<u64> {
    let build = Database::latest_schema_version();
    match db.schema_version().await? {
        Some(version) if version == build => {}
        other => {
            return Err(SnapshotError::Source(format!(
                "the Postgres database's schema version is {}, this build's is {build}: migrate one to the other first",
                other.as_deref().unwrap_or("none")
            )));
        }
    }
    let replica = Database::connect(&Config::sqlite(to)).await?;
    let copied = async {
        replica.migrate().await?;
        let user = match options.scope {
            Scope::All => None,
            Scope::User(user) => Some(user),
        };
        sync::Server::new(db.clone())
            .export(user, &replica, |table, rows| {
                progress(Progress::Copying { table, rows })
            })
            .await
    }
    .await;
    replica.close().await?;
    Ok(copied?.horizon)
}

/// Measures the copy at `path` and writes its metadata table, in rollback-journal mode so
/// the file stands alone; the copy of a Postgres export is vacuumed first if migrating it
/// left more than a twentieth of its pages free.
async fn stamp(path: &Path, options: &ExportOptions, pull_from: Option<u64>) -> Result<Meta> {
    let pool = file::open(path, true).await?;
    let stamped = async {
        let failed = |e| meta::damaged(path, e);
        if pull_from.is_some() {
            // Rewriting the whole file costs as much as a tenth of the export; it is
            // worth it only when the migrations left a fair share of free pages.
            let (free, pages): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT freelist_count FROM pragma_freelist_count), \
                        (SELECT page_count FROM pragma_page_count)",
            )
            .fetch_one(&pool)
            .await
            .map_err(failed)?;
            if free * 20 > pages {
                sqlx::query("VACUUM").execute(&pool).await.map_err(failed)?;
            }
        }
        if let Some(at) = options.reproducible_at {
            sqlx::query("UPDATE seaql_migrations SET applied_at = ?")
                .bind(at.timestamp())
                .execute(&pool)
                .await
                .map_err(failed)?;
        }
        let schema_version: Option<String> =
            sqlx::query_scalar("SELECT max(version) FROM seaql_migrations")
                .fetch_one(&pool)
                .await
                .map_err(|_| no_history())?;
        let schema_version = schema_version.ok_or_else(no_history)?;
        let measured = content::measure(&pool).await.map_err(failed)?;
        let meta = Meta {
            format: FORMAT,
            schema_version,
            made_at: options
                .reproducible_at
                .unwrap_or_else(|| Utc::now().trunc_subsecs(6)),
            made_from: options.made_from.clone(),
            scope: options.scope,
            row_counts: measured.row_counts,
            checksum: measured.checksum,
            pull_from,
        };
        meta::write(&pool, &meta).await.map_err(failed)?;
        Ok(meta)
    }
    .await;
    pool.close().await;
    stamped
}

fn no_history() -> SnapshotError {
    SnapshotError::Source("the database has no migrations applied: nothing to snapshot".into())
}
