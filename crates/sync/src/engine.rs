//! [`SyncEngine`]: pushing and pulling in the background, with retries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{SyncClient, SyncError};
use crate::transport::Transport;

/// How often and how much to sync.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// Time between pushes when all is well.
    pub push_interval: Duration,
    /// Time between pulls when all is well.
    pub pull_interval: Duration,
    /// Outbox entries per push.
    pub batch: usize,
    /// Changed rows per pulled page (memory stays bounded whatever a table's size).
    pub page: usize,
    /// The longest wait between attempts after transient failures.
    pub max_backoff: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            push_interval: Duration::from_secs(5),
            pull_interval: Duration::from_secs(15),
            batch: 200,
            page: 500,
            max_backoff: Duration::from_secs(60),
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
}

/// Pushes every pending entry, then pulls until the server has nothing newer.
pub async fn sync_once(
    client: &SyncClient,
    transport: &dyn Transport,
    options: &SyncOptions,
) -> Result<(), SyncError> {
    push_all(client, transport, options).await?;
    pull_all(client, transport, options).await
}

async fn push_all(
    client: &SyncClient,
    transport: &dyn Transport,
    options: &SyncOptions,
) -> Result<(), SyncError> {
    loop {
        if client.push_once(transport, options.batch).await? == 0 {
            return Ok(());
        }
    }
}

async fn pull_all(
    client: &SyncClient,
    transport: &dyn Transport,
    options: &SyncOptions,
) -> Result<(), SyncError> {
    loop {
        let (_, done) = client.pull_once(transport, options.page).await?;
        if done {
            return Ok(());
        }
    }
}

enum Command {
    SyncNow(oneshot::Sender<Result<(), String>>),
    Shutdown(oneshot::Sender<()>),
}

/// A running sync: push and pull on their intervals, `sync_now` on demand, backoff with
/// jitter after transient failures, a status for the UI, and a graceful shutdown that
/// lets the current step finish. Local reads and writes never wait for it: while the
/// server is unreachable the outbox grows, and it drains when the server is back.
pub struct SyncEngine {
    client: SyncClient,
    commands: mpsc::Sender<Command>,
    shared: Arc<Mutex<SyncStatus>>,
    task: JoinHandle<()>,
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
        let task = {
            let client = client.clone();
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut next_push = Instant::now();
                let mut next_pull = Instant::now();
                let mut backoff = Duration::ZERO;
                loop {
                    let due = next_push.min(next_pull);
                    let (push, pull, reply) = tokio::select! {
                        command = inbox.recv() => match command {
                            Some(Command::SyncNow(reply)) => (true, true, Some(reply)),
                            Some(Command::Shutdown(ack)) => {
                                let _ = ack.send(());
                                return;
                            }
                            None => return,
                        },
                        _ = tokio::time::sleep_until(due) => {
                            let now = Instant::now();
                            (now >= next_push, now >= next_pull, None)
                        }
                    };
                    let mut result = Ok(());
                    if push {
                        result = push_all(&client, transport.as_ref(), &options).await;
                    }
                    if pull && result.is_ok() {
                        result = pull_all(&client, transport.as_ref(), &options).await;
                    }
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
                            }
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
            task,
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
        status
    }

    /// Stops after the current step; nothing local is lost (the outbox is in the database).
    pub async fn shutdown(self) {
        let (ack, done) = oneshot::channel();
        if self.commands.send(Command::Shutdown(ack)).await.is_ok() {
            let _ = done.await;
        }
        let _ = self.task.await;
    }
}
