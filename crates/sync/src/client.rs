//! The client side, on the local SQLite database: the replica's sync identity and state,
//! and pulling changes into it (pushing the outbox is `push.rs`).

use std::sync::Arc;

use chrono::{Duration, Utc};
use dal::prelude::*;
use dal::{Backend, DalError};
use sea_orm::{ConnectionTrait, Statement, Value};
use serde::Serialize;
use uuid::Uuid;

use crate::apply;
use crate::protocol::{PullPage, PullRequest};
use crate::store::{apply_removals, pending_among, row_id};
use crate::tables::tables;
use crate::transport::{Transport, TransportError};
use crate::wire;

/// Why a sync step failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The server could not be reached, or answered something to retry later.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The local database failed.
    #[error(transparent)]
    Local(#[from] DalError),
}

impl From<sea_orm::DbErr> for SyncError {
    fn from(e: sea_orm::DbErr) -> Self {
        SyncError::Local(e.into())
    }
}

impl SyncError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Transport(TransportError::Transient(_)) => true,
            SyncError::Transport(_) => false,
            SyncError::Local(e) => e.is_retryable(),
        }
    }
}

/// An entry the server refused for good, kept for the application to show.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeadLetter {
    /// Its sequence number; the dead letters of earlier client ids (see
    /// [`SyncClient::reidentify`]) keep their order below the current ones, at 0 or less.
    pub seq: i64,
    /// The table written.
    pub table: String,
    /// The row.
    pub row_id: String,
    /// What the write was.
    pub op: String,
    /// The changes it carried (JSON text).
    pub changes: String,
    /// Why the server refused it.
    pub reason: String,
}

/// The local replica's sync state: its outbox and its pull cursor.
#[derive(Clone)]
pub struct SyncClient {
    pub(crate) db: Database,
    /// The persisted client id as last read or written (the database has the last word:
    /// a push reads it there).
    pub(crate) client_id: Arc<std::sync::Mutex<Uuid>>,
    pub(crate) clock_offset: Duration,
    /// Held for a whole push (request and settling), pull page or change of client id, so
    /// a push's answer and a pull are never stored out of the order the server produced
    /// them in, and no push runs under a client id being replaced. One per replica file in
    /// the process, shared by every handle on it ([`exchange_of`]): a change of client id
    /// asks the server what it settled under the old id, and a batch of another handle
    /// still on its way then would be applied after the answer and sent again under the
    /// new id.
    pub(crate) exchange: Arc<tokio::sync::Mutex<()>>,
}

/// The exchange lock of the replica file `db` is on: the same for every handle on that
/// file in this process (by its canonical path), a lock of its own for a database
/// without a file (in memory).
async fn exchange_of(db: &Database) -> dal::Result<Arc<tokio::sync::Mutex<()>>> {
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::{LazyLock, Mutex, Weak};
    type Exchanges = Mutex<HashMap<PathBuf, Weak<tokio::sync::Mutex<()>>>>;
    static EXCHANGES: LazyLock<Exchanges> = LazyLock::new(Default::default);

    let file = db
        .query_one_raw(sql(
            "SELECT file FROM pragma_database_list WHERE name = 'main'",
            vec![],
        ))
        .await?
        .map(|row| row.try_get::<String>("", "file"))
        .transpose()?
        .unwrap_or_default();
    if file.is_empty() {
        return Ok(Arc::new(tokio::sync::Mutex::new(())));
    }
    let key = tokio::fs::canonicalize(&file)
        .await
        .unwrap_or_else(|_| PathBuf::from(&file));
    let mut exchanges = EXCHANGES.lock().expect("exchanges lock");
    exchanges.retain(|_, lock| lock.strong_count() > 0);
    if let Some(lock) = exchanges.get(&key).and_then(Weak::upgrade) {
        return Ok(lock);
    }
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    exchanges.insert(key, Arc::downgrade(&lock));
    Ok(lock)
}

pub(crate) fn sql(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(sea_orm::DbBackend::Sqlite, sql, values)
}

pub(crate) async fn state<E: ConnectionTrait>(db: &E, key: &str) -> dal::Result<Option<String>> {
    let row = db
        .query_one_raw(sql(
            "SELECT value FROM sync_state WHERE key = ?",
            vec![key.into()],
        ))
        .await?;
    Ok(row.map(|r| r.try_get::<String>("", "value")).transpose()?)
}

pub(crate) async fn set_state<E: ConnectionTrait>(
    db: &E,
    key: &str,
    value: &str,
) -> dal::Result<()> {
    db.execute_raw(sql(
        "INSERT INTO sync_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        vec![key.into(), value.into()],
    ))
    .await?;
    Ok(())
}

impl SyncClient {
    /// Turns sync on for the local SQLite database `db`: from now on every write is
    /// recorded in its outbox, in the same transaction. The client id is made once and
    /// kept in the database, so it survives restarts.
    pub async fn open(db: Database) -> dal::Result<SyncClient> {
        if db.backend() != Backend::Sqlite {
            return Err(DalError::invalid(
                "a sync client keeps its replica in SQLite; the server is Postgres",
            ));
        }
        db.migrate().await?;
        let uow = db.begin().await?;
        let client_id = match state(&uow, "client_id").await? {
            Some(id) => Uuid::parse_str(&id).map_err(|_| {
                DalError::undecodable("sync_state", "client_id", "value", "not a uuid")
            })?,
            None => {
                let id = Uuid::new_v4();
                // A replica the server made (`Server::export`) holds the server's rows
                // already: they are not local writes to push.
                if state(&uow, crate::server::SERVER_MADE).await?.is_none() {
                    enqueue_existing_rows(&uow).await?;
                }
                set_state(&uow, "client_id", &id.to_string()).await?;
                id
            }
        };
        set_state(&uow, "capture", "1").await?;
        uow.commit().await?;
        let exchange = exchange_of(&db).await?;
        Ok(SyncClient {
            db,
            client_id: Arc::new(std::sync::Mutex::new(client_id)),
            clock_offset: Duration::zero(),
            exchange,
        })
    }

    /// The sync client of `db` if sync was ever turned on for it (it has a client id),
    /// without turning it on: `None` for a local database that never synced, and for
    /// Postgres. For tools that look at a replica (Studio).
    pub async fn existing(db: Database) -> dal::Result<Option<SyncClient>> {
        if db.backend() != Backend::Sqlite {
            return Ok(None);
        }
        if !db.has_table("sync_state").await? {
            return Ok(None);
        }
        let Some(id) = state(&db, "client_id").await? else {
            return Ok(None);
        };
        let client_id = Uuid::parse_str(&id)
            .map_err(|_| DalError::undecodable("sync_state", "client_id", "value", "not a uuid"))?;
        let exchange = exchange_of(&db).await?;
        Ok(Some(SyncClient {
            db,
            client_id: Arc::new(std::sync::Mutex::new(client_id)),
            clock_offset: Duration::zero(),
            exchange,
        }))
    }

    /// Shifts the client's clock (as stamped on outgoing entries) by `offset`; for testing
    /// that nothing depends on it.
    pub fn with_clock_offset(mut self, offset: Duration) -> SyncClient {
        self.clock_offset = offset;
        self
    }

    /// The persisted client id (a new one after [`SyncClient::reidentify`]).
    pub fn client_id(&self) -> Uuid {
        *self.client_id.lock().expect("client id lock")
    }

    /// The client id as the database has it, remembered for [`SyncClient::client_id`].
    pub(crate) async fn stored_client_id<E: ConnectionTrait>(&self, db: &E) -> dal::Result<Uuid> {
        let id = state(db, "client_id")
            .await?
            .and_then(|id| Uuid::parse_str(&id).ok())
            .ok_or_else(|| {
                DalError::undecodable("sync_state", "client_id", "value", "not a uuid")
            })?;
        *self.client_id.lock().expect("client id lock") = id;
        Ok(id)
    }

    /// The local database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Entries waiting to be pushed.
    pub async fn pending(&self) -> dal::Result<u64> {
        count(&self.db, "SELECT count(*) AS n FROM sync_outbox").await
    }

    /// Entries the server refused for good.
    pub async fn dead_letters(&self) -> dal::Result<Vec<DeadLetter>> {
        let rows = self
            .db
            .query_all_raw(sql(
                "SELECT seq, table_name, row_id, op, changes, reason FROM sync_dead_letters ORDER BY seq",
                vec![],
            ))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetter {
                    seq: r.try_get("", "seq")?,
                    table: r.try_get("", "table_name")?,
                    row_id: r.try_get("", "row_id")?,
                    op: r.try_get("", "op")?,
                    changes: r.try_get("", "changes")?,
                    reason: r.try_get("", "reason")?,
                })
            })
            .collect::<Result<_, sea_orm::DbErr>>()
            .map_err(DalError::from)
    }
}

impl SyncClient {
    /// Pulls one page of changes and stores it with the new cursor, in one local
    /// transaction: `(rows stored, whether the window is exhausted)`.
    pub async fn pull_once(
        &self,
        transport: &dyn Transport,
        page_size: usize,
    ) -> Result<(usize, bool), SyncError> {
        let _exchange = self.exchange.lock().await;
        let request = self.pull_request(page_size).await?;
        let page = transport.pull(request.clone()).await?;
        self.store_page(&request, &page).await
    }

    /// Pulls pages until the window is exhausted (`true`) or `stop` is set (`false`),
    /// asking for each next page while the one before is being stored: the next request
    /// follows from the page alone (its window and cursor), so the server reads while
    /// the replica writes. Each page is still stored with its cursor in one transaction,
    /// so stopping or failing between two loses nothing. `step_timeout` bounds each page.
    pub async fn pull_pages(
        &self,
        transport: &dyn Transport,
        page_size: usize,
        stop: &std::sync::atomic::AtomicBool,
        step_timeout: std::time::Duration,
    ) -> Result<bool, SyncError> {
        use std::sync::atomic::Ordering;
        let fetch = |request: PullRequest| async move {
            tokio::time::timeout(step_timeout, transport.pull(request))
                .await
                .unwrap_or_else(|_| {
                    Err(TransportError::Transient(format!(
                        "no answer within {step_timeout:?}"
                    )))
                })
        };
        let _exchange = self.exchange.lock().await;
        let mut request = self.pull_request(page_size).await?;
        let mut page = fetch(request.clone()).await?;
        loop {
            if request.to_txid.is_none() && page.to_txid < request.from_txid {
                // A server with younger transaction ids: storing the page resets the
                // cursor, and the pull starts over from the beginning.
                self.store_page(&request, &page).await?;
                request = self.pull_request(page_size).await?;
                page = fetch(request.clone()).await?;
                continue;
            }
            let next = page
                .next
                .filter(|_| !stop.load(Ordering::SeqCst))
                .map(|after| PullRequest {
                    from_txid: request.from_txid,
                    to_txid: Some(page.to_txid),
                    after: Some(after),
                    limit: request.limit,
                });
            let Some(next) = next else {
                let (_, done) = self.store_page(&request, &page).await?;
                return Ok(done);
            };
            let (stored, fetched) =
                futures::join!(self.store_page(&request, &page), fetch(next.clone()));
            stored?;
            page = fetched?;
            request = next;
        }
    }

    /// The request for the next page, from the stored cursor.
    async fn pull_request(&self, page_size: usize) -> Result<PullRequest, SyncError> {
        let from: u64 = state(&self.db, "pull_from")
            .await?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let to: Option<u64> = state(&self.db, "pull_to")
            .await?
            .and_then(|s| s.parse().ok());
        let after = state(&self.db, "pull_after")
            .await?
            .and_then(|s| serde_json::from_str(&s).ok());
        Ok(PullRequest {
            from_txid: from,
            to_txid: to,
            after,
            limit: page_size,
        })
    }

    /// Stores `page`, the answer to `request`, with the cursor that follows it, in one
    /// local transaction: `(rows stored, whether the window is exhausted)`.
    async fn store_page(
        &self,
        request: &PullRequest,
        page: &PullPage,
    ) -> Result<(usize, bool), SyncError> {
        let (from, to) = (request.from_txid, request.to_txid);
        if to.is_none() && page.to_txid < from {
            // Transaction ids only grow on one server: this is another one (restored
            // from a dump into a new cluster, say). Start over with a full pull.
            tracing::warn!(
                cursor = from,
                horizon = page.to_txid,
                "the server's transaction ids are behind this replica's cursor; pulling everything again"
            );
            set_state(&self.db, "pull_from", "0").await?;
            return Ok((0, false));
        }
        let uow = self.db.begin().await?;
        // Rows written here come from the server: they are not local changes.
        set_state(&uow, "capture", apply::SERVER_ROWS).await?;
        uow.execute_unprepared("PRAGMA defer_foreign_keys = ON")
            .await?;
        let pending =
            pending_among(&uow, page.rows.iter().map(|(t, v)| (t.as_str(), row_id(v)))).await?;
        // A row with a change of ours not yet pushed keeps that change; the server's
        // answer to it arrives with a later pull.
        let fresh = page
            .rows
            .iter()
            .filter(|(table, values)| {
                pending.is_empty() || !pending.contains(&(table.clone(), row_id(values)))
            })
            .map(|(table, values)| (table.as_str(), values))
            .collect::<Vec<_>>();
        apply::upsert_newer(&uow, &fresh).await?;
        apply_removals(&uow, &page.removed).await?;
        let done = page.next.is_none();
        if done {
            set_state(&uow, "pull_from", &page.to_txid.to_string()).await?;
            uow.execute_raw(sql(
                "DELETE FROM sync_state WHERE key IN ('pull_to', 'pull_after')",
                vec![],
            ))
            .await?;
        } else {
            set_state(&uow, "pull_to", &page.to_txid.to_string()).await?;
            set_state(
                &uow,
                "pull_after",
                &serde_json::to_string(&page.next).unwrap_or_default(),
            )
            .await?;
        }
        set_state(&uow, "capture", "1").await?;
        uow.commit().await?;
        Ok((page.rows.len(), done))
    }
}

/// Puts every live row already in the database into the outbox as an insert, parents
/// first, when sync is turned on for it: rows written before then were not captured, and
/// the server must have them before any later change to them can apply. Tombstones of
/// that time are removed instead: no other replica ever saw those rows.
async fn enqueue_existing_rows(uow: &UnitOfWork) -> dal::Result<()> {
    for table in tables().iter().rev() {
        uow.execute_raw(sql(
            &format!("DELETE FROM \"{}\" WHERE deleted = 1", table.name),
            vec![],
        ))
        .await?;
    }
    for table in tables().iter() {
        let values: Vec<String> = table
            .data_columns()
            .map(|c| format!("'{c}', \"{c}\""))
            .collect();
        uow.execute_raw(sql(
            &format!(
                "INSERT INTO sync_outbox (table_name, row_id, op, changes, base_version, client_time) \
                 SELECT '{name}', id, 'insert', json_object({values}), sync_version, ? \
                 FROM \"{name}\" WHERE deleted = 0 ORDER BY rowid",
                name = table.name,
                values = values.join(", "),
            ),
            vec![wire::format_timestamp(Utc::now()).into()],
        ))
        .await?;
    }
    Ok(())
}

/// The `n` column of the one row `query` selects (0 when it selects none).
pub(crate) async fn count<E: ConnectionTrait>(db: &E, query: &str) -> dal::Result<u64> {
    let row = db.query_one_raw(sql(query, vec![])).await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0) as u64)
}

/// The tables, parents first (for callers comparing replicas).
pub fn synced_tables() -> impl Iterator<Item = &'static str> {
    tables().iter().map(|t| t.name)
}
