//! Everything that differs between SQLite and Postgres, in one place.
//!
//! The rest of the crate builds one statement for both backends and asks this module for
//! the few pieces that cannot be shared: how values are stored ([`values`]), how a uuid
//! list is searched, how rows are locked, how a write transaction begins and how the
//! migration history is serialised between processes.

pub(crate) mod values;

use dal_config::Backend;
use sea_orm::{SqliteTransactionMode, TransactionOptions};

/// The SQL dialect of one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dialect(pub Backend);

impl Dialect {
    /// Options for a transaction that will write. SQLite: `BEGIN IMMEDIATE`, so the write
    /// lock is taken (waiting up to the busy timeout) before anything is read; a deferred
    /// transaction that upgrades later fails at once with SQLITE_BUSY.
    pub(crate) fn write_transaction(self) -> TransactionOptions {
        TransactionOptions {
            sqlite_transaction_mode: match self.0 {
                Backend::Sqlite => Some(SqliteTransactionMode::Immediate),
                Backend::Postgres => None,
            },
            ..TransactionOptions::default()
        }
    }

    /// A statement that serialises migrations between processes for the rest of the
    /// current transaction. SQLite needs none: `BEGIN IMMEDIATE` already holds the lock.
    pub(crate) fn migration_lock(self) -> Option<&'static str> {
        match self.0 {
            // An arbitrary constant key; the lock is released at commit or rollback.
            Backend::Postgres => Some("SELECT pg_advisory_xact_lock(7316052144200925)"),
            Backend::Sqlite => None,
        }
    }
}
