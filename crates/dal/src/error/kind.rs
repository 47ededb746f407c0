//! [`ErrorKind`]: a [`DalError`](super::DalError)'s variant as a plain, stable value.

use std::fmt;

/// Which kind of [`DalError`](super::DalError) an error is: one per variant, `Copy`, for
/// logs, metrics and code that only needs the kind.
///
/// [`ErrorKind::as_str`] gives a stable `snake_case` name: a name, once released, never
/// changes meaning or spelling; new kinds may be added.
///
/// Compared with sqlx's `ErrorKind` (unique, foreign key, not null, check, other) and
/// Diesel's `DatabaseErrorKind`, every database fault has a kind here, the same on both
/// backends (a SQLite busy timeout and a Postgres deadlock are both [`ErrorKind::Busy`]),
/// and a NOT NULL or CHECK failure ([`ErrorKind::InvalidValue`]) is told apart by
/// [`DalError::column`](super::DalError::column) and
/// [`DalError::constraint`](super::DalError::constraint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`DalError::NotFound`](super::DalError::NotFound).
    NotFound,
    /// [`DalError::Stale`](super::DalError::Stale).
    Stale,
    /// [`DalError::Conflict`](super::DalError::Conflict).
    Conflict,
    /// [`DalError::MissingParent`](super::DalError::MissingParent).
    MissingParent,
    /// [`DalError::InvalidValue`](super::DalError::InvalidValue).
    InvalidValue,
    /// [`DalError::PermissionDenied`](super::DalError::PermissionDenied).
    PermissionDenied,
    /// [`DalError::ReadOnly`](super::DalError::ReadOnly).
    ReadOnly,
    /// [`DalError::Busy`](super::DalError::Busy).
    Busy,
    /// [`DalError::Timeout`](super::DalError::Timeout).
    Timeout,
    /// [`DalError::Connection`](super::DalError::Connection).
    Connection,
    /// [`DalError::Config`](super::DalError::Config).
    Config,
    /// [`DalError::TransactionAborted`](super::DalError::TransactionAborted).
    TransactionAborted,
    /// [`DalError::Migration`](super::DalError::Migration).
    Migration,
    /// [`DalError::Undecodable`](super::DalError::Undecodable).
    Undecodable,
    /// [`DalError::SyncRefused`](super::DalError::SyncRefused).
    SyncRefused,
    /// [`DalError::Database`](super::DalError::Database).
    Database,
    /// [`DalError::LeaseLost`](super::DalError::LeaseLost).
    LeaseLost,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 17] = [
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::MissingParent,
        ErrorKind::InvalidValue,
        ErrorKind::PermissionDenied,
        ErrorKind::ReadOnly,
        ErrorKind::Busy,
        ErrorKind::Timeout,
        ErrorKind::Connection,
        ErrorKind::Config,
        ErrorKind::TransactionAborted,
        ErrorKind::Migration,
        ErrorKind::Undecodable,
        ErrorKind::SyncRefused,
        ErrorKind::Database,
        ErrorKind::Stale,
        ErrorKind::LeaseLost,
    ];

    /// The kind's stable name, e.g. `"not_found"`, `"conflict"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::MissingParent => "missing_parent",
            ErrorKind::InvalidValue => "invalid_value",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::ReadOnly => "read_only",
            ErrorKind::Busy => "busy",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::Config => "config",
            ErrorKind::TransactionAborted => "transaction_aborted",
            ErrorKind::Migration => "migration",
            ErrorKind::Undecodable => "undecodable",
            ErrorKind::SyncRefused => "sync_refused",
            ErrorKind::Database => "database",
            ErrorKind::Stale => "stale",
            ErrorKind::LeaseLost => "lease_lost",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are API (dashboards and alerts key on them): this list changes only by
    /// growing.
    #[test]
    fn names_are_stable_and_distinct() {
        let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "not_found",
                "conflict",
                "missing_parent",
                "invalid_value",
                "permission_denied",
                "read_only",
                "busy",
                "timeout",
                "connection",
                "config",
                "transaction_aborted",
                "migration",
                "undecodable",
                "sync_refused",
                "database",
                "stale",
                "lease_lost",
            ]
        );
        let distinct: std::collections::HashSet<&str> = names.iter().copied().collect();
        assert_eq!(distinct.len(), names.len());
        for kind in ErrorKind::ALL {
            assert_eq!(kind.to_string(), kind.as_str());
            assert!(
                kind.as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
            );
        }
    }
}
