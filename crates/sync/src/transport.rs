//! [`Transport`]: how a client reaches the server. The real one is a direct Postgres
//! connection ([`crate::server::PostgresTransport`]); tests wrap it to inject faults.

use async_trait::async_trait;

use crate::protocol::{PullPage, PullRequest, PushAck, PushBatch};

/// Why a call did not go through.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The outcome is unknown or the server was unreachable: try again later, the same
    /// batch (the server applies each entry at most once).
    #[error("transient: {0}")]
    Transient(String),
    /// The batch does not start where the server expects: it has settled everything up
    /// to `last_seq`, and the next entry it accepts is `last_seq + 1`.
    #[error("sequence gap: the server has settled up to {last_seq}")]
    Gap {
        /// The client's last settled sequence number on the server.
        last_seq: i64,
    },
    /// The server already applied sequence number `seq` of this client to a different
    /// write: this outbox does not continue the history the server has for its client id
    /// (the database was restored from a backup, or copied to a second device). Nothing
    /// of the batch is applied.
    #[error(
        "sequence number {seq} was already applied to a different write: this replica does not continue its client's history (restored or copied database)"
    )]
    Diverged {
        /// The first reused sequence number.
        seq: i64,
    },
    /// The server will not accept this request, now or later.
    #[error("refused: {0}")]
    Refused(String),
}

/// A way to the server.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Applies a batch of outbox entries, exactly once each.
    async fn push(&self, batch: PushBatch) -> Result<PushAck, TransportError>;
    /// Reads one page of changes.
    async fn pull(&self, request: PullRequest) -> Result<PullPage, TransportError>;
}
