//! [`SyncRefusal`]: why the sync protocol refused a change, as a value.

use uuid::Uuid;

/// Why the sync server (or client) refused a change for good, rather than failed to
/// apply it: carried by [`DalError::SyncRefused`](super::DalError::SyncRefused). A
/// refused entry is dead-lettered with this reason's text; it is never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncRefusal {
    /// The change names a table that does not sync.
    #[error("{table} is not a synced table")]
    UnsyncedTable {
        /// The table named.
        table: String,
    },
    /// The change writes a column clients may not write (a server-kept column, or one
    /// the table does not have).
    #[error("{table}.{column} cannot be written by a client")]
    ColumnNotWritable {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// A value that does not fit its column's type.
    #[error("{table}.{column}: {reason}")]
    BadValue {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// What is wrong with the value (never the value of a text or JSON column).
        reason: String,
    },
    /// The change writes under a parent row that was deleted (tombstoned): a delete wins
    /// over a concurrent insert or update below it.
    #[error("{table} {id} was deleted")]
    ParentDeleted {
        /// The parent's table.
        table: String,
        /// The parent's id.
        id: Uuid,
    },
    /// An update of a row the server does not have.
    #[error("{table} {id} does not exist on the server")]
    RowMissing {
        /// The table.
        table: String,
        /// The row's id.
        id: Uuid,
    },
}
