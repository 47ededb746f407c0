//! [`Transport`]: how a client reaches the server: over HTTP to a sync server
//! ([`crate::http::HttpTransport`], for devices) or a direct Postgres connection
//! ([`crate::server::PostgresTransport`], for trusted services); tests wrap them to inject
//! faults.

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::protocol::{PullPage, PullRequest, PushAck, PushBatch, SettledQuery, SettledReply};

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
    /// The request is over the server's size limits (a batch with too many entries, or
    /// too many bytes). The engine halves its batch and tries again; a single entry over
    /// the limit stays in the outbox, and `last_error` says why.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The server does not accept the credentials (a missing, expired or forged token).
    /// Retrying with the same token cannot help: the engine stops syncing until the
    /// application calls [`SyncEngine::sync_now`](crate::SyncEngine::sync_now), after it
    /// has a new token.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
}

/// A way to the server.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Applies a batch of outbox entries, exactly once each.
    async fn push(&self, batch: PushBatch) -> Result<PushAck, TransportError>;
    /// Reads one page of changes.
    async fn pull(&self, request: PullRequest) -> Result<PullPage, TransportError>;

    /// Which of a client's entries the server has settled as exactly these writes (see
    /// [`SettledQuery`]): what a replica taking a new client id asks, so that it sends
    /// again only the writes the server does not have. Read-only on the server.
    ///
    /// The default answers [`TransportError::Refused`]: a replica behind such a transport
    /// cannot take a new client id (a `Diverged` push stays refused).
    async fn settled(&self, query: SettledQuery) -> Result<SettledReply, TransportError> {
        let _ = query;
        Err(TransportError::Refused(
            "this transport cannot tell which entries the server has settled".into(),
        ))
    }

    /// Live updates: a stream that yields whenever the server may have something new to
    /// pull, and ends when the connection is lost (the engine opens it again). `None`
    /// when the transport has none: the engine then relies on its pull interval alone.
    async fn changes(&self) -> Option<BoxStream<'static, ()>> {
        None
    }
}
