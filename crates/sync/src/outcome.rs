//! The engine's last sync outcome, kept in the replica (`sync_state`, key `last_sync`)
//! as well as in memory, so another program on the same file (Studio, a support tool)
//! can tell when the replica last synced and why it last failed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::client::{SyncClient, set_state, state};

/// The `sync_state` key the outcome is stored under.
const KEY: &str = "last_sync";

/// What the engine's last sync attempt came to (see [`SyncClient::last_sync`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSync {
    /// When the attempt ended.
    pub at: DateTime<Utc>,
    /// When a full push and pull last succeeded, if one ever did.
    pub last_success: Option<DateTime<Utc>>,
    /// Why the attempt failed; `None` when it succeeded.
    pub error: Option<String>,
    /// The server refused the credentials: the engine waits for a new token.
    pub unauthorized: bool,
}

impl SyncClient {
    /// The outcome of the last sync a [`SyncEngine`](crate::SyncEngine) ran on this
    /// replica, in any process; `None` before the first.
    ///
    /// ```no_run
    /// # async fn run(client: sync::SyncClient) -> dal::Result<()> {
    /// if let Some(last) = client.last_sync().await? {
    ///     println!("last sync at {}: {}", last.at, last.error.as_deref().unwrap_or("ok"));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn last_sync(&self) -> dal::Result<Option<LastSync>> {
        Ok(state(self.database(), KEY)
            .await?
            .and_then(|text| serde_json::from_str(&text).ok()))
    }

    /// Stores `outcome` as the last sync's, keeping the stored last success when this
    /// engine has seen none (it started since). Informational: a failure to store it is
    /// logged, not returned, so it never turns a sync that worked into one that failed.
    pub(crate) async fn record_last_sync(&self, outcome: LastSync) {
        let mut outcome = outcome;
        if outcome.last_success.is_none() {
            outcome.last_success = self
                .last_sync()
                .await
                .ok()
                .flatten()
                .and_then(|before| before.last_success);
        }
        let text = serde_json::to_string(&outcome).unwrap_or_default();
        if let Err(e) = set_state(self.database(), KEY, &text).await {
            tracing::debug!(error = %e, "could not store the last sync's outcome");
        }
    }
}
