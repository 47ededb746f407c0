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

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use migration_history::synced::NOTIFY_CHANNEL;
use tokio::sync::watch;
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

/// Changes seen, as counters the online clients' streams watch: one per user with a
/// stream open, bumped by that user's changes (so a change touches only its owners'
/// streams, however many others are open), and one for changes that concern everyone.
pub struct Events {
    users: Mutex<HashMap<Uuid, watch::Sender<u64>>>,
    everyone: watch::Sender<u64>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            users: Mutex::new(HashMap::new()),
            everyone: watch::channel(0).0,
        }
    }
}

impl Events {
    /// Something changed for everyone.
    pub fn changed(&self) {
        self.everyone.send_modify(|n| *n += 1);
    }

    /// `change` happened: the streams it concerns hear of it (once, however many changes
    /// came since they last looked).
    pub fn changed_for(&self, change: Change) {
        match change {
            Change::Everyone => self.changed(),
            Change::Users(users) => {
                let open = self.users.lock().unwrap_or_else(|e| e.into_inner());
                for user in users {
                    if let Some(counter) = open.get(&user) {
                        counter.send_modify(|n| *n += 1);
                    }
                }
            }
        }
    }

    /// What a stream of `user`'s watches; the user's counter goes when its last watcher
    /// does.
    pub fn watch(self: &Arc<Self>, user: Uuid) -> Watch {
        let mut open = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let counter = open.entry(user).or_insert_with(|| watch::channel(0).0);
        Watch {
            user,
            mine: counter.subscribe(),
            everyone: self.everyone.subscribe(),
            events: Arc::clone(self),
        }
    }

    /// How many users have a stream open here.
    pub fn users_watching(&self) -> usize {
        self.users.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One stream's view of [`Events`]: its user's changes and everyone's.
pub struct Watch {
    user: Uuid,
    mine: watch::Receiver<u64>,
    everyone: watch::Receiver<u64>,
    events: Arc<Events>,
}

impl Watch {
    /// Waits for a change concerning the user since the last call (or since the watch
    /// began); `None` once the server shuts the counters down.
    pub async fn changed(&mut self) -> Option<()> {
        tokio::select! {
            changed = self.mine.changed() => changed.ok()?,
            changed = self.everyone.changed() => changed.ok()?,
        }
        // One event covers whatever else came meanwhile.
        self.mine.borrow_and_update();
        self.everyone.borrow_and_update();
        Some(())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut open = self.events.users.lock().unwrap_or_else(|e| e.into_inner());
        // This watch's receiver is still alive here: it is the last one when it is one.
        if open
            .get(&self.user)
            .is_some_and(|counter| counter.receiver_count() <= 1)
        {
            open.remove(&self.user);
        }
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
    let watch = app.events.watch(session.user);
    Sse::new(changes(watch).take_until(tokio::time::sleep(left)))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// One event now, then one per change concerning the watch's user, those that came while
/// the last event was on its way folded into it.
fn changes(watch: Watch) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold((watch, true), |(mut watch, first)| async move {
        if !first {
            watch.changed().await?;
        }
        Some((
            Ok(Event::default().event("change").data("{}")),
            (watch, false),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_reaches_its_users_streams_and_a_closed_stream_leaves_nothing() {
        let events = Arc::new(Events::default());
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (mut a_phone, mut a_laptop, mut b_phone) =
            (events.watch(a), events.watch(a), events.watch(b));
        assert_eq!(events.users_watching(), 2);

        events.changed_for(Change::Users([a].into()));
        events.changed_for(Change::Users([a].into()));
        assert!(woken(&mut a_phone).await);
        assert!(!woken(&mut a_phone).await, "two changes, one event");
        assert!(woken(&mut a_laptop).await);
        assert!(!woken(&mut b_phone).await);
        events.changed();
        for watch in [&mut a_phone, &mut a_laptop, &mut b_phone] {
            assert!(woken(watch).await);
        }

        drop(a_phone);
        assert_eq!(events.users_watching(), 2, "a still has a stream open");
        drop(a_laptop);
        drop(b_phone);
        assert_eq!(events.users_watching(), 0);
        // A change for a user with no stream open is nobody's.
        events.changed_for(Change::Users([a].into()));
        assert_eq!(events.users_watching(), 0);
    }

    /// Whether `watch` hears of a change within 50 ms.
    async fn woken(watch: &mut Watch) -> bool {
        tokio::time::timeout(std::time::Duration::from_millis(50), watch.changed())
            .await
            .is_ok()
    }
}
