//! Who a push's statements run as. A push on behalf of an authenticated user
//! ([`super::Server::push_as`]) does its row work (the reads the conflict rule makes of
//! the rows, and the writes) as that user under the row-level security policies, and its
//! bookkeeping (`sync_clients`, `sync_log`, `sync_conflicts`, which the `authenticated`
//! role has no grant on) as the server's own role. A push for no user runs everything as
//! the server.
//!
//! The switches are transaction-local settings: one made in a savepoint that rolls back
//! is undone with it. So a savepoint is only ever begun acting as the server, and work
//! that switches to the user switches back before it commits.

use dal::prelude::*;
use uuid::Uuid;

/// On whose behalf the rows are read and written.
#[derive(Clone, Copy, Debug)]
pub(super) enum Actor {
    /// The server itself: no row-level security.
    Server,
    /// An authenticated user: only their rows are visible or writable.
    User(Uuid),
}

impl Actor {
    /// From here on, statements touch the rows as this actor.
    pub(super) async fn rows(self, uow: &UnitOfWork) -> dal::Result<()> {
        match self {
            Actor::Server => Ok(()),
            Actor::User(user) => uow.act_as_user(Id(user)).await,
        }
    }

    /// From here on, statements do the bookkeeping as the server.
    pub(super) async fn books(self, uow: &UnitOfWork) -> dal::Result<()> {
        match self {
            Actor::Server => Ok(()),
            Actor::User(_) => uow.act_as_session_user().await,
        }
    }
}
