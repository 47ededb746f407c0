//! [`SnapshotError`]: why a snapshot could not be made, checked or imported.

use std::path::PathBuf;

use dal::DalError;

/// Result alias for this crate.
pub type Result<T, E = SnapshotError> = std::result::Result<T, E>;

/// Why a snapshot could not be made, checked or imported. Whatever the variant, nothing
/// of the database being exported or replaced was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The file is not a snapshot: not an SQLite database, or one without the snapshot
    /// metadata table, or of a format this build does not know.
    #[error("{} is not a snapshot: {why}", path.display())]
    NotASnapshot {
        /// The file.
        path: PathBuf,
        /// What is missing.
        why: String,
    },
    /// The file is a snapshot but damaged: truncated, failing SQLite's integrity check,
    /// or its content no longer matching its checksum.
    #[error("{} is damaged: {why}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What the check found.
        why: String,
    },
    /// The snapshot was made by a newer build: its schema has migrations this build does
    /// not know, so it cannot be read safely.
    #[error(
        "{} has schema version {snapshot}, newer than this build's {build}: open it with a newer build",
        path.display()
    )]
    Newer {
        /// The file.
        path: PathBuf,
        /// The snapshot's newest migration.
        snapshot: String,
        /// This build's newest migration.
        build: String,
    },
    /// The snapshot's schema version is no migration of this build's history (nor newer
    /// than all of them): it comes from another branch of the history.
    #[error(
        "{} has schema version {snapshot}, which this build's migration history does not have",
        path.display()
    )]
    UnknownVersion {
        /// The file.
        path: PathBuf,
        /// The snapshot's newest migration.
        snapshot: String,
    },
    /// The export's target exists already; a snapshot never overwrites a file.
    #[error("{} exists already; a snapshot is never written over a file", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The source cannot be snapshotted as asked (no migrations applied, a Postgres
    /// schema of another version than this build's, a scope on a local database).
    #[error("cannot snapshot: {0}")]
    Source(String),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The sync server could not be asked, or refused (`bootstrap`).
    #[error("the sync server: {0}")]
    Transport(#[source] sync::TransportError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DalError),
}

impl From<sea_orm::DbErr> for SnapshotError {
    fn from(e: sea_orm::DbErr) -> Self {
        SnapshotError::Database(e.into())
    }
}

/// `Io` for `path`.
pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    }
}
