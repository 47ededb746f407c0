//! Live updates: the server `LISTEN`s on the database's change channel and tells the
//! online clients of the users a change concerns, over Server-Sent Events, that there is
//! something to pull. Each notification names the owners of the rows a statement wrote
//! (migration `m20261207_234000_sync_notify_owners`), or `*` (or nothing, from a database
//! before it) for everyone. The event itself carries nothing: the client's next pull
//! (scoped to its user, as always) is what reads the change, so an event never leaks a
//! row, and a client never learns of another user's changes even by their timing.
//!
//! `LISTEN` needs a session connection: through a transaction pooler (Supabase's port
//! 6543) notifications are not delivered, so give the server a direct or session-pooler
//! URL in `SYNC_LISTEN_DATABASE_URL`. Without live updates clients still poll.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use migration_history::synced::NOTIFY_CHANNEL;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use uuid::Uuid;

use crate::App;
use crate::api::session;

/// Whose online clients a change concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Everyone's (a notification naming no one, or too many to name, or one that may
    /// have been missed).
    Everyone,
    /// These users'.
    Users(HashSet<Uuid>),
}

impl Change {
    /// The change a notification's payload describes: the owners' ids joined by commas,
    /// or anything else (`*`, empty, unreadable) for everyone.
    ///
    /// ```
    /// use sync_server::events::Change;
    /// let id = uuid::Uuid::from_u128(7);
    /// assert_eq!(Change::from_payload(&id.to_string()), Change::Users([id].into()));
    /// assert_eq!(Change::from_payload("*"), Change::Everyone);
    /// assert_eq!(Change::from_payload(""), Change::Everyone);
    /// ```
    pub fn from_payload(payload: &str) -> Change {
        payload
            .split(',')
            .map(Uuid::parse_str)
            .collect::<Result<HashSet<_>, _>>()
            .map_or(Change::Everyone, Change::Users)
    }

    /// Whether `user`'s clients should pull.
    pub fn concerns(&self, user: Uuid) -> bool {
        match self {
            Change::Everyone => true,
            Change::Users(users) => users.contains(&user),
        }
    }
}

/// Changes seen, handed to every online client's stream, which keeps those of its user.
pub struct Events {
    changes: broadcast::Sender<Arc<Change>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            changes: broadcast::channel(1024).0,
        }
    }
}

impl Events {
    /// Something changed for everyone.
    pub fn changed(&self) {
        self.changed_for(Change::Everyone);
    }

    /// `change` happened: the clients it concerns hear of it (once, however many changes
    /// came since they last looked).
    pub fn changed_for(&self, change: Change) {
        // No receiver (no client online) is not an error.
        let _ = self.changes.send(Arc::new(change));
    }

    /// A receiver of changes.
    pub fn watch(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }
}

/// Listens on the database's change channel for as long as the server runs, reconnecting
/// after a lost connection (and then telling everyone to pull, since notifications may
/// have been missed meanwhile).
pub async fn listen(url: String, events: Arc<Events>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match sqlx::postgres::PgListener::connect(&url).await {
            Ok(mut listener) => match listener.listen(NOTIFY_CHANNEL).await {
                Ok(()) => {
                    backoff = Duration::from_millis(200);
                    events.changed();
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(notification)) => {
                                events.changed_for(Change::from_payload(notification.payload()))
                            }
                            // Reconnected by sqlx: notifications may have been lost.
                            Ok(None) => events.changed(),
                            Err(e) => {
                                tracing::warn!(error = %e, "the change listener lost its connection");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "LISTEN failed"),
            },
            Err(e) => tracing::warn!(error = %e, "the change listener cannot connect"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// `GET /v1/events`: a `change` event whenever something of the token's user has changed,
/// after a first one on connecting (whatever happened while the client was away). The
/// stream ends when the token that opened it expires: the client opens it again with its
/// new token.
pub async fn stream(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let session = match session(&app, &headers).await {
        Ok(session) => session,
        Err(failure) => return failure.into_response(),
    };
    let left = session
        .until
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    let receiver = app.events.watch();
    Sse::new(changes(session.user, receiver).take_until(tokio::time::sleep(left)))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// One event now, then one per change concerning `user`, those that came while the last
/// event was on its way folded into it. A client that fell behind (the channel dropped
/// changes it had not read) gets an event, as one of them may have been its user's.
fn changes(
    user: Uuid,
    receiver: broadcast::Receiver<Arc<Change>>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold((receiver, true), move |(mut receiver, first)| async move {
        if !first {
            loop {
                match receiver.recv().await {
                    Ok(change) if change.concerns(user) => break,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return None,
                }
            }
            // The pull this event starts reads whatever else is waiting.
            while matches!(receiver.try_recv(), Ok(_) | Err(TryRecvError::Lagged(_))) {}
        }
        Some((
            Ok(Event::default().event("change").data("{}")),
            (receiver, false),
        ))
    })
}
