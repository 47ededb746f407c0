//! A snapshot file on disk: opening it on one connection of its own (never the
//! application's pool), the header checks that need no SQL, and the temporary names an
//! export or import writes under before the one rename that puts a file in place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

use crate::error::{Result, SnapshotError, io};

/// The first 16 bytes of every SQLite database file.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// One connection to the file at `path`: read-only, or read-write in rollback-journal
/// mode, so the file is complete in itself when closed (no `-wal` beside it, which a
/// browser's SQLite could not read).
pub(crate) async fn open(path: &Path, writable: bool) -> Result<SqlitePool> {
    // Absolute: SQLite reads a relative name beginning with `file:` as a URI.
    let absolute = std::path::absolute(path).map_err(io(path))?;
    let options = SqliteConnectOptions::new()
        .filename(&absolute)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let options = if writable {
        options.journal_mode(SqliteJournalMode::Delete)
    } else {
        options.read_only(true)
    };
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| SnapshotError::Damaged {
            path: path.to_owned(),
            why: format!("SQLite cannot open it ({e})"),
        })
}

/// Checks what the file's header says against its size, without SQLite: a file that is
/// not an SQLite database at all, and one cut short (a copy that stopped halfway), are
/// refused here with a precise reason.
pub(crate) fn check_header(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let actual = file.metadata().map_err(io(path))?.len();
    let mut bytes = [0u8; 100];
    let header = file.read_exact(&mut bytes).is_ok();
    if !header || &bytes[..16] != MAGIC {
        return Err(SnapshotError::NotASnapshot {
            path: path.to_owned(),
            why: "not an SQLite database".into(),
        });
    }
    // Bytes 16-17: the page size (1 means 65536); 28-31: the size in pages.
    let page_size = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65_536,
        n => u64::from(n),
    };
    let pages = u64::from(u32::from_be_bytes([
        bytes[28], bytes[29], bytes[30], bytes[31],
    ]));
    let expected = page_size * pages;
    if pages > 0 && actual < expected {
        return Err(SnapshotError::Damaged {
            path: path.to_owned(),
            why: format!("truncated: {actual} bytes, its header says {expected}"),
        });
    }
    Ok(())
}

/// `path` with `suffix` added to its file name: a name in the same directory, so the
/// final rename stays on one file system and is atomic.
pub(crate) fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(suffix);
    path.with_file_name(name)
}

/// Removes `path` and the journal files SQLite may have left beside it.
pub(crate) fn remove_with_journals(path: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(beside(path, suffix));
    }
}

/// A temporary file, removed with its journals when this is dropped: whatever becomes of
/// the work that writes it (an error, or its future dropped midway: a request timed out,
/// a client gone), nothing is left behind under the temporary name.
pub(crate) struct Temporary<'a>(pub(crate) &'a Path);

impl Drop for Temporary<'_> {
    fn drop(&mut self) {
        remove_with_journals(self.0);
    }
}

/// Refuses an existing `path`.
pub(crate) fn refuse_existing(path: &Path) -> Result<()> {
    if path.exists() {
        return Err(SnapshotError::Exists {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// Renames `from` to `to` only if `to` does not exist (a hard link, then the old name
/// removed): two exports racing for one name cannot overwrite each other.
pub(crate) fn place(from: &Path, to: &Path) -> Result<()> {
    std::fs::hard_link(from, to).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => SnapshotError::Exists {
            path: to.to_owned(),
        },
        _ => SnapshotError::Io {
            path: to.to_owned(),
            source: e,
        },
    })?;
    std::fs::remove_file(from).map_err(io(from))?;
    sync_dir(to);
    Ok(())
}

/// Makes a rename in `path`'s directory durable (best effort: not every file system
/// lets a directory be opened for it).
pub(crate) fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
}
