//! [`SyncEngine`]: pushing and pulling in the background, with retries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{SyncClient, SyncError};
use crate::outcome::LastSync;
use crate::reidentify::Reidentified;
use crate::transport::{Transport, TransportError};

/// How often and how much to sync.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// Time between pushes when all is well.
    pub push_interval: Duration,
    /// Time between pulls when all is well.
    pub pull_interval: Duration,
    /// Outbox entries per push, at most (a push of large rows stops at about 8 MiB of
    /// changes). Each push costs a fixed handful of statements and round trips, so a long
    /// outbox (a replica back from a long offline spell) drains faster in large batches
    /// (see BENCHMARKS.md, `sync-bench`); a short one goes in one push whatever this is.
    /// Each batch goes to the server while the replica settles the answer to the one
    /// before ([`SyncClient::push_pending`]).
    pub batch: usize,
    /// Changed rows per pulled page (memory stays bounded whatever a table's size). Each
    /// page costs a fixed dozen statements on each side, so a first pull of a large
    /// replica goes faster with larger pages (see BENCHMARKS.md, `sync-bench`).
    pub page: usize,
    /// The longest wait between attempts after transient failures.
    pub max_backoff: Duration,
    /// The longest one batch or page may take (a dead connection that never answers
    /// counts as a transient failure after this).
    pub step_timeout: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            push_interval: Duration::from_secs(5),
            pull_interval: Duration::from_secs(15),
            batch: 1_000,
            page: 2_000,
            max_backoff: Duration::from_secs(60),
            step_timeout: Duration::from_secs(60),
        }
    }
}

/// What a UI can show about sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStatus {
    /// Local changes not yet confirmed by the server.
    pub pending: u64,
    /// Local changes the server refused for good.
    pub dead_lettered: u64,
    /// When a full push and pull last succeeded.
    pub last_success: Option<DateTime<Utc>>,
    /// The last failure, until the next success.
    pub last_error: Option<String>,
    /// The server refused the credentials (an expired or revoked token): syncing waits
    /// for [`SyncEngine::sync_now`], called once the application has a new token,
    /// instead of retrying a request that cannot succeed.
    pub unauthorized: bool,
    /// The last time the replica took a new client id (a restored or copied database
    /// whose pushes the server refused as `Diverged`, or [`SyncEngine::reidentify`]):
    /// from which id to which, and what became of its waiting entries.
    pub reidentified: Option<Reidentified>,
}

/// Pushes every pending entry, then pulls until the server has nothing newer.
pub async fn sync_once(
    client: &SyncClient,
    transport: &dyn Transport,
    options: &SyncOptions,
) -> Result<(), SyncError> {
    let never = AtomicBool::new(false);
    push_all(client, transport, options, &never).await?;
    pull_all(client, transport, options, &never).await?;
    Ok(())
}

/// One batch or page, bounded by `step_timeout`.
pub(crate) async fn step<T>(
    options: &SyncOptions,
    work: impl std::future::Future<Output = Result<T, SyncError>>,
) -> Result<T, SyncError> {
    tokio::time::timeout(options.step_timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(SyncError::Transport(TransportError::Transient(format!(
                "no answer within {:?}",
                options.step_timeout
            ))))
        })
}

/// Pushes batch after batch ([`SyncClient::push_pending`]) until the outbox is empty
/// (`true`) or `stop` is set (`false`; each batch is settled on its own, so stopping
/// between two loses nothing). A push
/// refused as `Diverged` (a restored or copied replica) makes the replica take a new
/// client id ([`SyncClient::reidentify`]) and go on; once per call, so a second refusal
/// right after is reported instead.
async fn push_all(
    client: &SyncClient,
    transport: &dyn Transport,
    options: &SyncOptions,
    stop: &AtomicBool,
) -> Result<bool, SyncError> {
    // A batch over the server's limits is sent again in halves, down to one entry.
    let mut batch = options.batch.max(1);
    let mut reidentified = false;
    while !stop.load(Ordering::SeqCst) {
        match client.push_pending(transport, batch, options, stop).await {
            Ok(drained) => return Ok(drained),
            Err(SyncError::Transport(e @ TransportError::Diverged { .. })) if !reidentified => {
                tracing::warn!(error = %e, "this replica does not continue its client's history; taking a new client id");
                client
                    .reidentify_because(transport, &e.to_string(), options.step_timeout)
                    .await?;
                reidentified = true;
            }
            Err(SyncError::Transport(TransportError::TooLarge(why))) if batch > 1 => {
                tracing::debug!(batch, reason = %why, "the batch is over the server's limit; halving it");
                batch /= 2;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Pulls page after page until the window is exhausted (`true`) or `stop` is set
/// (`false`; each page is stored with its cursor, so the next pull resumes there).
async fn pull_all(
    client: &SyncClient,
    transport: &dyn Transport,
    options: &SyncOptions,
    stop: &AtomicBool,
) -> Result<bool, SyncError> {
    client
        .pull_pages(transport, options.page, stop, options.step_timeout)
        .await
}

enum Command {
    SyncNow(oneshot::Sender<Result<(), String>>),
    /// Take a new client id, answer, then sync.
    Reidentify(oneshot::Sender<Result<Reidentified, String>>),
    /// The server announced a change (live updates): pull now.
    PullNow,
    Shutdown(oneshot::Sender<()>),
}

/// Forwards the transport's live updates to the engine as pulls, opening the stream
/// again (after a pause that grows while it keeps failing) whenever it ends.
async fn watch_changes(transport: Arc<dyn Transport>, commands: mpsc::Sender<Command>) {
    use futures::StreamExt;
    let mut pause = Duration::from_millis(500);
    loop {
        let Some(mut changes) = transport.changes().await else {
            return;
        };
        let opened = Instant::now();
        while changes.next().await.is_some() {
            // A full queue already holds a pull or a sync: this change is covered.
            if let Err(mpsc::error::TrySendError::Closed(_)) = commands.try_send(Command::PullNow) {
                return;
            }
        }
        if opened.elapsed() > Duration::from_secs(30) {
            pause = Duration::from_millis(500);
        }
        tokio::time::sleep(pause.mul_f64(0.5 + rand::random::<f64>() / 2.0)).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// A running sync: push and pull on their intervals, `sync_now` on demand, backoff with
/// jitter after transient failures, a status for the UI, and a graceful shutdown that
/// lets the current step finish. Local reads and writes never wait for it: while the
/// server is unreachable the outbox grows, and it drains when the server is back.
pub struct SyncEngine {
    client: SyncClient,
    commands: mpsc::Sender<Command>,
    shared: Arc<Mutex<SyncStatus>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
    watcher: JoinHandle<()>,
}

impl SyncEngine {
    /// Starts syncing `client` through `transport` in a background task.
    pub fn start(
        client: SyncClient,
        transport: Arc<dyn Transport>,
        options: SyncOptions,
    ) -> SyncEngine {
        let (commands, mut inbox) = mpsc::channel::<Command>(16);
        let shared = Arc::new(Mutex::new(SyncStatus::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = tokio::spawn(watch_changes(transport.clone(), commands.clone()));
        let task = {
            let client = client.clone();
            let shared = shared.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut next_push = Instant::now();
                let mut next_pull = Instant::now();
                let mut backoff = Duration::ZERO;
                // Set by an unauthorized answer: nothing runs until `sync_now`.
                let mut unauthorized = false;
                loop {
                    let due = next_push.min(next_pull);
                    let (push, pull, reply) = tokio::select! {
                        command = inbox.recv() => match command {
                            Some(Command::SyncNow(reply)) => (true, true, Some(reply)),
                            Some(Command::Reidentify(reply)) => {
                                let done = client
                                    .reidentify_because(
                                        transport.as_ref(),
                                        "asked by the application",
                                        options.step_timeout,
                                    )
                                    .await
                                    .map_err(|e| e.to_string());
                                let _ = reply.send(done);
                                (true, true, None)
                            }
                            Some(Command::PullNow) if unauthorized => continue,
                            Some(Command::PullNow) => (false, true, None),
                            Some(Command::Shutdown(ack)) => {
                                let _ = ack.send(());
                                return;
                            }
                            None => return,
                        },
                        _ = tokio::time::sleep_until(due), if !unauthorized => {
                            let now = Instant::now();
                            (now >= next_push, now >= next_pull, None)
                        }
                    };
                    let mut result = Ok(true);
                    if push {
                        result = push_all(&client, transport.as_ref(), &options, &stop).await;
                    }
                    // A push refused for good (a hole in the outbox) must not stop the
                    // replica from receiving changes; an unreachable server would fail
                    // the pull as well.
                    let pull_anyway = result.as_ref().is_err_and(|e| !e.is_transient());
                    if pull && (result.is_ok() || pull_anyway) {
                        let pulled = pull_all(&client, transport.as_ref(), &options, &stop).await;
                        result = result.and_then(|pushed| Ok(pushed && pulled?));
                    }
                    if stop.load(Ordering::SeqCst) {
                        if let Some(reply) = reply {
                            let _ = reply.send(match result {
                                Ok(true) => Ok(()),
                                Ok(false) => Err("the sync engine stopped midway".to_owned()),
                                Err(e) => Err(e.to_string()),
                            });
                        }
                        return;
                    }
                    let result = result.map(|_| ());
                    let now = Instant::now();
                    match &result {
                        Ok(()) => {
                            backoff = Duration::ZERO;
                            if push {
                                next_push = now + options.push_interval;
                            }
                            if pull {
                                next_pull = now + options.pull_interval;
                            }
                            if push && pull {
                                let mut status = shared.lock().expect("status lock");
                                status.last_success = Some(Utc::now());
                                status.last_error = None;
                                status.unauthorized = false;
                                unauthorized = false;
                            }
                        }
                        Err(SyncError::Transport(TransportError::Unauthorized(why))) => {
                            tracing::warn!(reason = %why, "the sync server refused the credentials; syncing waits for sync_now");
                            unauthorized = true;
                            let mut status = shared.lock().expect("status lock");
                            status.unauthorized = true;
                            status.last_error = Some(format!(
                                "unauthorized: {why} (syncing stopped until sync_now, after the token is renewed)"
                            ));
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "sync failed; will retry");
                            backoff = (backoff * 2)
                                .max(Duration::from_millis(100))
                                .min(options.max_backoff);
                            let wait = backoff.mul_f64(0.5 + rand::random::<f64>() / 2.0);
                            next_push = now + wait;
                            next_pull = next_pull.max(now + wait);
                            shared.lock().expect("status lock").last_error = Some(e.to_string());
                        }
                    }
                    if (push && pull) || result.is_err() {
                        let outcome = {
                            let status = shared.lock().expect("status lock");
                            LastSync {
                                at: Utc::now(),
                                last_success: status.last_success,
                                error: result.as_ref().err().and(status.last_error.clone()),
                                unauthorized: status.unauthorized,
                            }
                        };
                        client.record_last_sync(outcome).await;
                    }
                    if let Some(reply) = reply {
                        let _ = reply.send(result.map_err(|e| e.to_string()));
                    }
                }
            })
        };
        SyncEngine {
            client,
            commands,
            shared,
            stop,
            task,
            watcher,
        }
    }

    /// Pushes and pulls now, and returns when done (or failed).
    pub async fn sync_now(&self) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::SyncNow(reply))
            .await
            .map_err(|_| "the sync engine has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the sync engine has stopped".to_owned())?
    }

    /// Takes a new client id now ([`SyncClient::reidentify`]: entries the server already
    /// has are dropped, the rest queued again under the new id), then pushes and pulls.
    /// For an application that has just restored its database from a backup; the engine
    /// does the same by itself when the server refuses a push as `Diverged`. Answers once
    /// the new id is in place (the sync that follows is reported in
    /// [`SyncEngine::status`]); fails, changing nothing, when the server cannot be asked.
    pub async fn reidentify(&self) -> Result<Reidentified, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Reidentify(reply))
            .await
            .map_err(|_| "the sync engine has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the sync engine has stopped".to_owned())?
    }

    /// The status: pending and dead-lettered counts from the database, and the last
    /// success and failure of the background task.
    pub async fn status(&self) -> SyncStatus {
        let mut status = self.shared.lock().expect("status lock").clone();
        status.pending = self.client.pending().await.unwrap_or(status.pending);
        status.dead_lettered = self
            .client
            .dead_letters()
            .await
            .map(|d| d.len() as u64)
            .unwrap_or(status.dead_lettered);
        status.reidentified = self.client.last_reidentified().await.unwrap_or_default();
        status
    }

    /// Stops after the current batch or page (not after a whole drain); nothing local is
    /// lost (the outbox and the pull cursor are in the database).
    pub async fn shutdown(self) {
        self.watcher.abort();
        self.stop.store(true, Ordering::SeqCst);
        let (ack, done) = oneshot::channel();
        if self.commands.send(Command::Shutdown(ack)).await.is_ok() {
            let _ = done.await;
        }
        let _ = self.task.await;
    }
}
