//! Database snapshots: consistent, self-describing SQLite files for backups, for
//! preloaded databases shipped to new devices and browsers, and for restoring.
//!
//! A snapshot is an ordinary SQLite database in the library's form (the migrations'
//! schema, rollback-journal mode, so it is one file that any SQLite can open, a browser's
//! included) with one more table, `dal_snapshot(key, value)`: the format, the schema
//! version (newest applied migration), when and from what it was made, whose rows, the
//! row count of every table and a checksum of the content ([`Meta`]).
//!
//! - [`export`]: of a live local database (`VACUUM INTO`: one consistent read while the
//!   application goes on writing; never a copy of the file, which could catch a WAL
//!   database mid-write), or of a Postgres database's rows, one user's or all, from one
//!   repeatable-read snapshot, as a replica that can go on syncing from that point.
//! - [`check`]: integrity, metadata, checksum and schema version, without writing.
//! - [`import`]: replaces the local database atomically with a checked, migrated copy;
//!   the previous one stays in place until the new one is in place and checked.
//! - [`bootstrap`]: a new device's first sync as one download of the server's snapshot
//!   of its user's rows, then incremental pulls from the snapshot's point.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use snapshot::{ExportOptions, check, export, import};
//! let db = dal::Database::from_env().await?; // ./local.db by default
//! export(&db, "backup.db".as_ref(), &ExportOptions::new("./local.db"), |_| {}).await?;
//! db.close().await?;
//! let meta = check("backup.db".as_ref()).await?;
//! println!("{} rows at schema {}", meta.total_rows(), meta.schema_version);
//! import("backup.db".as_ref(), "local.db".as_ref(), false).await?; // with the app closed
//! # Ok(()) }
//! ```
//!
//! The command-line tool does the same: `cargo run -p snapshot -- export --out FILE`,
//! `check FILE`, `import FILE`.

mod bootstrap;
mod content;
mod error;
mod export;
mod file;
mod import;
mod meta;

pub use bootstrap::bootstrap;
pub use error::{Result, SnapshotError};
pub use export::{ExportOptions, Progress, export};
pub use import::{Imported, check, import};
pub use meta::{FORMAT, META_TABLE, Meta, Scope};
