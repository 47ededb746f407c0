//! Live updates: the server `LISTEN`s on the database's change channel and tells every
//! online client, over Server-Sent Events, that there is something to pull. The event
//! carries nothing: the client's next pull (scoped to its user, as always) is what reads
//! the change, so an event can never leak a row.
//!
//! `LISTEN` needs a session connection: through a transaction pooler (Supabase's port
//! 6543) notifications are not delivered, so give the server a direct or session-pooler
//! URL in `SYNC_LISTEN_DATABASE_URL`. Without live updates clients still poll.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use migration_history::synced::NOTIFY_CHANNEL;
use tokio::sync::watch;

use crate::App;
use crate::api::session;

/// Changes seen, as a counter online clients watch.
pub struct Events {
    counter: watch::Sender<u64>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            counter: watch::channel(0).0,
        }
    }
}

impl Events {
    /// Something changed: every watcher hears it (once, however many changes came since
    /// it last looked).
    pub fn changed(&self) {
        self.counter.send_modify(|n| *n += 1);
    }

    /// A receiver of changes.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.counter.subscribe()
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
                            Ok(Some(_)) => events.changed(),
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

/// `GET /v1/events`: a `change` event whenever the database has changed, after a first
/// one on connecting (whatever happened while the client was away). The stream ends when
/// the token that opened it expires: the client opens it again with its new token.
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
    Sse::new(changes(receiver).take_until(tokio::time::sleep(left)))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn changes(receiver: watch::Receiver<u64>) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold((receiver, true), |(mut receiver, first)| async move {
        if !first {
            receiver.changed().await.ok()?;
        }
        receiver.borrow_and_update();
        Some((
            Ok(Event::default().event("change").data("{}")),
            (receiver, false),
        ))
    })
}
