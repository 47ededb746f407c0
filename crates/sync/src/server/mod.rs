//! The server side, run against the Postgres database: applying pushed batches exactly
//! once with the conflict rule, and serving pulls in commit order.
//!
//! ## The conflict rule
//!
//! The server decides, in the order entries reach it; client clocks are never consulted.
//! The last write to reach the server wins each column it changes (the values it
//! overwrites that another writer set since its base are recorded in `sync_conflicts`),
//! a delete wins over a concurrent update, a tombstoned row comes back only through an
//! explicit insert of its id, and nothing is written under a tombstoned parent. The rule
//! in full is in `server/conflict.rs`, next to the pure function that decides it.
//!
//! ## Commit order for pulls
//!
//! A pull reads the changes of the transactions between the previous pull's bound and the
//! oldest transaction of this database still open when it starts, so no change can later
//! appear in a window already read: a change committed late is delayed, never lost, and
//! writers never wait for one another (see `server/pull.rs`).
//!
//! The parts: `push.rs` keeps the bookkeeping of pushes (settled sequence numbers, the
//! log of entries), `history.rs` reads that log for the conflict rule and records
//! conflicts, `answer.rs` gathers the rows sent back, `conflict.rs` decides what an entry
//! does, `write.rs` carries that out on the rows, `bulk.rs` applies runs of plain
//! entries with a few set statements instead of one entry at a time, `acting.rs` switches
//! between the user a push acts for and the server, `pull.rs` pages through changes,
//! `export.rs` copies a consistent snapshot of the rows into a new replica, and
//! `settled.rs` tells a replica taking a new client id which of its entries are here.

mod acting;
mod answer;
mod bulk;
mod columns;
mod conflict;
mod export;
mod history;
mod pull;
mod push;
mod removals;
mod settled;
mod write;

use async_trait::async_trait;
use dal::prelude::*;
use dal::{DalError, Isolation};
use sea_orm::{ConnectionTrait, Statement, Value};
use uuid::Uuid;

use crate::protocol::{PullPage, PullRequest, PushAck, PushBatch, SettledQuery, SettledReply};
use crate::transport::{Transport, TransportError};
use acting::Actor;
pub use export::Exported;
pub(crate) use export::SERVER_MADE;
use push::Settled;

/// The server's sync operations on a Postgres [`Database`].
#[derive(Clone)]
pub struct Server {
    db: Database,
}

/// What became of one entry.
enum Outcome {
    Applied,
    Noop(&'static str),
    Rejected(String),
}

impl Outcome {
    fn label(&self) -> String {
        match self {
            Outcome::Applied => "applied".into(),
            Outcome::Noop(why) => format!("noop: {why}"),
            Outcome::Rejected(why) => format!("rejected: {why}"),
        }
    }
}

fn transient(e: DalError) -> TransportError {
    TransportError::Transient(e.to_string())
}

fn statement(uow: &UnitOfWork, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(uow.get_database_backend(), sql, values)
}

impl Server {
    /// The server on `db`, which must be a Postgres database with the migrations applied.
    pub fn new(db: Database) -> Server {
        Server { db }
    }

    /// Applies a batch: each entry once, in order, in one transaction that also records
    /// the client's last applied sequence number. The rows are written as the server,
    /// whatever user they belong to (the direct transport, run by a trusted client).
    pub async fn push(&self, batch: PushBatch) -> Result<PushAck, TransportError> {
        self.push_acting(Actor::Server, batch).await
    }

    /// Applies a batch as [`Server::push`] does, on behalf of the authenticated `user`:
    /// its rows are read and written under the row-level security policies as that user,
    /// so an entry writing outside the user's rows is refused alone (an update of another
    /// user's row is refused as one of a row that does not exist, a delete of it does
    /// nothing, as for a row already gone), and the rows sent back are only the user's.
    pub async fn push_as(&self, user: Uuid, batch: PushBatch) -> Result<PushAck, TransportError> {
        self.push_acting(Actor::User(user), batch).await
    }

    async fn push_acting(&self, actor: Actor, batch: PushBatch) -> Result<PushAck, TransportError> {
        let policy = RetryPolicy::default();
        // Shared, not copied, by each attempt: a batch of 1000 entries took 1 ms to clone.
        let batch = std::sync::Arc::new(batch);
        let outcome = self
            .db
            .transaction_with_retry(&policy, |uow| {
                let batch = std::sync::Arc::clone(&batch);
                Box::pin(async move { push::apply_batch(uow, actor, &batch).await })
            })
            .await
            .map_err(transient)?;
        match outcome {
            Settled::Ack(ack) => Ok(ack),
            Settled::Gap(last_seq) => Err(TransportError::Gap { last_seq }),
            Settled::Diverged(seq) => Err(TransportError::Diverged { seq }),
        }
    }

    /// Which of a client's entries the server has settled as exactly these writes (see
    /// [`SettledQuery`]), with the server's version of the rows they wrote: for a trusted
    /// client (the direct transport), about any client id.
    pub async fn settled(&self, query: SettledQuery) -> Result<SettledReply, TransportError> {
        self.settled_acting(Actor::Server, query).await
    }

    /// [`Server::settled`] on behalf of the authenticated `user`: only a client id bound to
    /// `user` gets an answer; any other (another user's, or unknown) gets the same empty
    /// one, and the rows sent back are only those the user may read.
    pub async fn settled_as(
        &self,
        user: Uuid,
        query: SettledQuery,
    ) -> Result<SettledReply, TransportError> {
        self.settled_acting(Actor::User(user), query).await
    }

    async fn settled_acting(
        &self,
        actor: Actor,
        query: SettledQuery,
    ) -> Result<SettledReply, TransportError> {
        let policy = RetryPolicy::default();
        self.db
            .transaction_with_retry(&policy, |uow| {
                let query = query.clone();
                Box::pin(async move { settled::settled(uow, actor, &query).await })
            })
            .await
            .map_err(transient)
    }

    /// Reads one page of changes (see [`PullRequest`]), of every user: for a replica of
    /// the whole database (the direct transport, which connects as the tables' owner).
    pub async fn pull(&self, request: PullRequest) -> Result<PullPage, TransportError> {
        self.read(request, None).await
    }

    /// Reads one page of changes as `user` sees them: the page's reads (changed rows, the
    /// parents added for them, removals) run under the row-level security policies as
    /// that user, so no row of another user can be in it; removals are the user's own,
    /// moves of a row to another user included. For a server that authenticates its
    /// clients: each replica holds its user's rows only.
    pub async fn pull_as(
        &self,
        user: Uuid,
        request: PullRequest,
    ) -> Result<PullPage, TransportError> {
        self.read(request, Some(user)).await
    }

    async fn read(
        &self,
        request: PullRequest,
        user: Option<Uuid>,
    ) -> Result<PullPage, TransportError> {
        // The bound is fixed before the page's snapshot: every transaction of this
        // database below it had committed then, so the later snapshot sees all its rows.
        let to = match request.to_txid {
            Some(to) => to,
            None => pull::horizon(&self.db).await.map_err(transient)?,
        };
        let uow = self
            .db
            .begin_with(Isolation::RepeatableRead)
            .await
            .map_err(transient)?;
        // A page is the next rows in (sync_txid, id) order, which the index gives as a
        // short range scan. Before statistics exist (a table just bulk-loaded, not yet
        // analyzed) the planner guesses few rows and would sort every row past the cursor
        // instead, once per page; measured: 1 ms against 99 ms a page at 200k rows.
        uow.execute_unprepared("SET LOCAL enable_sort = off")
            .await
            .map_err(|e| transient(e.into()))?;
        if let Some(user) = user {
            uow.act_as_user(Id(user)).await.map_err(transient)?;
        }
        let page = pull::read_page(&uow, &request, to, user)
            .await
            .map_err(transient);
        let _ = uow.rollback().await;
        page
    }
}

/// The direct Postgres transport: the client runs the server's side itself over a
/// connection to the server database (as with Supabase's direct or session-pooler
/// connection; the transaction pooler does not support the prepared statements sqlx uses).
#[derive(Clone)]
pub struct PostgresTransport {
    server: Server,
}

impl PostgresTransport {
    /// A transport on the server database `db`.
    pub fn new(db: Database) -> PostgresTransport {
        PostgresTransport {
            server: Server::new(db),
        }
    }
}

#[async_trait]
impl Transport for PostgresTransport {
    async fn push(&self, batch: PushBatch) -> Result<PushAck, TransportError> {
        self.server.push(batch).await
    }

    async fn pull(&self, request: PullRequest) -> Result<PullPage, TransportError> {
        self.server.pull(request).await
    }

    async fn settled(&self, query: SettledQuery) -> Result<SettledReply, TransportError> {
        self.server.settled(query).await
    }
}
