//! A long outbox drains batch after batch with each batch's answer settled while the
//! next batch is with the server: what the replica and the server end with is what
//! batches sent one at a time give, and a settle that fails loses nothing.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use dal::prelude::*;
use sea_orm::ConnectionTrait;
use serde_json::json;
use sync::engine::sync_once;
use sync::protocol::{PullPage, PullRequest, PushAck, PushBatch};
use sync::{PostgresTransport, SyncClient, SyncError, SyncOptions, Transport, TransportError};

use crate::sync::{Rig, run_postgres};

/// The direct transport, with the insert of row `refused` made invalid (no name) so the
/// server refuses it, counting pushes; with `replica`, the first push's answer comes back
/// only after that replica's outbox has been made to refuse deletes (its settle fails).
struct Scripted {
    inner: PostgresTransport,
    refused: uuid::Uuid,
    replica: Option<Database>,
    pushes: AtomicUsize,
}

impl Scripted {
    fn new(rig: &Rig, refused: Id, replica: Option<Database>) -> Scripted {
        Scripted {
            inner: PostgresTransport::new(rig.server.clone()),
            refused: refused.0,
            replica,
            pushes: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl Transport for Scripted {
    async fn push(&self, mut batch: PushBatch) -> Result<PushAck, TransportError> {
        for entry in &mut batch.entries {
            if entry.row_id == self.refused {
                entry.changes.insert("name".into(), json!(null));
            }
        }
        let first = self.pushes.fetch_add(1, Ordering::SeqCst) == 0;
        let ack = self.inner.push(batch).await?;
        if let (true, Some(replica)) = (first, &self.replica) {
            replica
                .execute_unprepared(
                    "CREATE TRIGGER outbox_stuck BEFORE DELETE ON sync_outbox \
                     BEGIN SELECT RAISE(ABORT, 'the disk is failing'); END",
                )
                .await
                .unwrap();
        }
        Ok(ack)
    }

    async fn pull(&self, request: PullRequest) -> Result<PullPage, TransportError> {
        self.inner.pull(request).await
    }
}

/// A project (refused by the server) and tasks: four under `shared` in the first batch of
/// five, then six under the refused project, then three more under `shared`. Returns the
/// project's id and the tasks' ids under `shared`.
async fn outbox(client: &SyncClient, shared: Id) -> (Id, Vec<Id>) {
    let db = client.database();
    let user = db.projects().get(shared).await.unwrap().user_id;
    let project = db
        .projects()
        .create(NewProject::new(user, "refused"))
        .await
        .unwrap()
        .id;
    let mut kept = Vec::new();
    let task = |project, n| NewTask::queued(project, "render", json!({ "n": n }));
    for n in 0..4 {
        kept.push(db.tasks().create(task(shared, n)).await.unwrap().id);
    }
    for n in 0..6 {
        db.tasks().create(task(project, n)).await.unwrap();
    }
    for n in 4..7 {
        kept.push(db.tasks().create(task(shared, n)).await.unwrap().id);
    }
    (project, kept)
}

/// The dead letters are the project's insert and its six tasks', in the outbox's order.
async fn assert_refused(client: &SyncClient, project: Id) {
    let dead = client.dead_letters().await.unwrap();
    let tables: Vec<&str> = dead.iter().map(|d| d.table.as_str()).collect();
    assert_eq!(
        tables,
        [
            "projects", "tasks", "tasks", "tasks", "tasks", "tasks", "tasks"
        ]
    );
    assert_eq!(dead[0].row_id, project.0.to_string());
    assert!(dead.windows(2).all(|w| w[0].seq < w[1].seq), "{dead:?}");
}

/// Every task in `kept` is on the server, nothing waits, and the replica equals the server.
async fn assert_settled(rig: &Rig, client: &SyncClient, kept: &[Id]) {
    for task in kept {
        rig.server.tasks().get(*task).await.unwrap();
    }
    assert_eq!(client.pending().await.unwrap(), 0);
    rig.assert_converged(client.database()).await;
}

/// The one row `sql` selects on the server.
async fn server_row(rig: &Rig, sql: &str, values: Vec<sea_orm::Value>) -> sea_orm::QueryResult {
    rig.server
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            sql,
            values,
        ))
        .await
        .unwrap()
        .unwrap()
}

fn options() -> SyncOptions {
    SyncOptions {
        batch: 5,
        ..SyncOptions::default()
    }
}

/// The refused project's tasks travel in the batch after its own, sent before the
/// replica has settled the first: the server refuses them as it would have anyway (their
/// project is missing), so all seven are dead letters and nothing of them is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_of_a_refused_insert_in_the_next_batch_are_refused_too() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (shared, client) = rig.synced_client("a").await;
        let (project, kept) = outbox(&client, shared).await;
        let transport = Scripted::new(&rig, project, None);
        sync_once(&client, &transport, &options()).await.unwrap();

        assert_eq!(transport.pushes.load(Ordering::SeqCst), 3, "3 batches of 5");
        assert_refused(&client, project).await;
        assert!(rig.server.projects().get(project).await.is_err());
        assert_settled(&rig, &client, &kept).await;
    })
    .await;
}

/// The first batch's settle fails after the second batch reached the server: the push
/// stops with the local error, and the next sync settles everything once, the refused
/// insert still a dead letter (the second batch's answer, which does not name it, is not
/// taken in place of the first's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settle_that_fails_after_the_next_batch_was_pushed_loses_nothing() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (shared, client) = rig.synced_client("a").await;
        let (project, kept) = outbox(&client, shared).await;
        let transport = Scripted::new(&rig, project, Some(client.database().clone()));
        let failed = sync_once(&client, &transport, &options()).await;
        assert!(
            matches!(failed, Err(SyncError::Local(_))),
            "the settle's own error: {failed:?}"
        );
        assert_eq!(
            transport.pushes.load(Ordering::SeqCst),
            2,
            "the second batch went while the first was being settled"
        );
        assert_eq!(client.pending().await.unwrap(), 14, "nothing settled");
        assert!(client.dead_letters().await.unwrap().is_empty());

        client
            .database()
            .execute_unprepared("DROP TRIGGER outbox_stuck")
            .await
            .unwrap();
        sync_once(&client, &transport, &options()).await.unwrap();

        assert_refused(&client, project).await;
        let logged = server_row(
            &rig,
            "SELECT count(*) AS entries, count(DISTINCT seq) AS seqs, min(seq) AS low, max(seq) AS high \
             FROM sync_log WHERE client_id = $1",
            vec![client.client_id().into()],
        )
        .await;
        let column = |name| logged.try_get::<i64>("", name).unwrap();
        assert_eq!(
            (
                column("entries"),
                column("seqs"),
                column("low"),
                column("high")
            ),
            (14, 14, 1, 14),
            "every entry applied or refused exactly once"
        );
        assert_settled(&rig, &client, &kept).await;
    })
    .await;
}

/// The next batch cannot be read (an entry in it no longer decodes: its table is not
/// synced any more): the push stops with that local error, but the answer the server
/// already gave for the batch before is settled first, as a push of one batch at a time
/// settles it, so the refused insert is a dead letter and undone, and only the entries
/// from the next batch on wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_next_batch_still_settles_the_answer_before_it() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (shared, client) = rig.synced_client("a").await;
        let (project, _) = outbox(&client, shared).await;
        client
            .database()
            .execute_unprepared(
                "UPDATE sync_outbox SET table_name = 'retired' \
                 WHERE seq = (SELECT min(seq) + 7 FROM sync_outbox)",
            )
            .await
            .unwrap();
        let transport = Scripted::new(&rig, project, None);
        let failed = sync_once(&client, &transport, &options()).await;
        assert!(matches!(failed, Err(SyncError::Local(_))), "{failed:?}");
        assert_eq!(transport.pushes.load(Ordering::SeqCst), 1);
        assert_eq!(
            client.pending().await.unwrap(),
            9,
            "the first batch's answer is settled"
        );
        let dead = client.dead_letters().await.unwrap();
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(dead[0].row_id, project.0.to_string());
        assert!(client.database().projects().get(project).await.is_err());
    })
    .await;
}

/// The direct transport; at the first push, `other`, a second handle on the same replica
/// file, starts taking a new client id (the app's restore code running while the engine
/// drains the outbox), and the push waits up to a second for it to finish: before the
/// batch goes to the server (`before`: the server answers the question about the old id
/// while the batch is on its way), or after the server applied it.
struct Reidentifying {
    inner: PostgresTransport,
    other: SyncClient,
    pushes: AtomicUsize,
    before: bool,
    reidentify: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Reidentifying {
    /// Starts the other handle's change of client id, and waits up to a second for it.
    async fn reidentify(&self) {
        let (other, inner) = (self.other.clone(), self.inner.clone());
        let mut task = tokio::spawn(async move {
            other.reidentify(&inner).await.unwrap();
        });
        if tokio::time::timeout(std::time::Duration::from_secs(1), &mut task)
            .await
            .is_err()
        {
            *self.reidentify.lock().unwrap() = Some(task);
        }
    }
}

#[async_trait]
impl Transport for Reidentifying {
    async fn push(&self, batch: PushBatch) -> Result<PushAck, TransportError> {
        let first = self.pushes.fetch_add(1, Ordering::SeqCst) == 0;
        if first && self.before {
            self.reidentify().await;
        }
        let ack = self.inner.push(batch).await?;
        if first && !self.before {
            self.reidentify().await;
        }
        Ok(ack)
    }

    async fn pull(&self, request: PullRequest) -> Result<PullPage, TransportError> {
        self.inner.pull(request).await
    }

    async fn settled(
        &self,
        query: sync::protocol::SettledQuery,
    ) -> Result<sync::protocol::SettledReply, TransportError> {
        self.inner.settled(query).await
    }
}

/// Another handle on the file takes a new client id (renumbering the waiting entries)
/// between a batch's push and its settle: the settle must not forget entries by their
/// old numbers, nor the drain go on under the old id. Every write reaches the server once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_client_id_taken_by_another_handle_mid_drain_loses_nothing() {
    another_handle_takes_a_new_client_id_mid_drain(false).await;
}

/// Another handle on the file takes a new client id while a batch is on its way to the
/// server: had the server answered the question about the old id before applying the
/// batch, the renumbered outbox would still hold the batch's entries, sent again under
/// the new id. The change of id waits for the push instead; every write reaches the
/// server once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_client_id_taken_while_a_batch_is_on_its_way_sends_nothing_twice() {
    another_handle_takes_a_new_client_id_mid_drain(true).await;
}

async fn another_handle_takes_a_new_client_id_mid_drain(before: bool) {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (shared, client) = rig.synced_client("a").await;
        let mut tasks = Vec::new();
        for n in 0..12 {
            let task = NewTask::queued(shared, "render", json!({ "n": n }));
            tasks.push(client.database().tasks().create(task).await.unwrap().id);
        }
        let transport = Reidentifying {
            inner: PostgresTransport::new(rig.server.clone()),
            other: rig.client("a").await,
            pushes: AtomicUsize::new(0),
            before,
            reidentify: std::sync::Mutex::new(None),
        };
        let stop = std::sync::atomic::AtomicBool::new(false);
        // Whether the drain ends well or stops with an error depends on when the new id is
        // taken; what the server ends with may not.
        let _ = client.push_pending(&transport, 5, &options(), &stop).await;
        let waiting = transport.reidentify.lock().unwrap().take();
        if let Some(task) = waiting {
            task.await.unwrap();
        }

        rig.sync(&client).await;
        let logged = server_row(
            &rig,
            "SELECT count(*) AS entries, count(DISTINCT row_id) AS rows FROM sync_log \
             WHERE table_name = 'tasks' AND outcome = 'applied'",
            vec![],
        )
        .await;
        let column = |name| logged.try_get::<i64>("", name).unwrap();
        assert_eq!(
            (column("entries"), column("rows")),
            (12, 12),
            "each write once"
        );
        assert!(client.dead_letters().await.unwrap().is_empty());
        assert_settled(&rig, &client, &tasks).await;
    })
    .await;
}
