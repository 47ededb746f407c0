//! The set-based path of a push: runs of plain entries are applied with a few set
//! statements, and an entry the database refuses inside such a run is still refused
//! alone, the others applied, as the per-entry path would.

use async_trait::async_trait;
use dal::prelude::*;
use serde_json::json;
use sync::engine::sync_once;
use sync::protocol::{PullPage, PullRequest, PushAck, PushBatch};
use sync::{PostgresTransport, SyncOptions, Transport, TransportError};

use crate::sync::{Rig, run_postgres};

/// Breaks the `nth` entry of every batch in a way only the server's constraints catch
/// (`max_attempts` below 1), so the set statement carrying it fails.
struct Spoiled {
    inner: PostgresTransport,
    nth: usize,
}

#[async_trait]
impl Transport for Spoiled {
    async fn push(&self, mut batch: PushBatch) -> Result<PushAck, TransportError> {
        if let Some(entry) = batch.entries.get_mut(self.nth) {
            entry.changes.insert("max_attempts".into(), json!(0));
        }
        self.inner.push(batch).await
    }

    async fn pull(&self, request: PullRequest) -> Result<PullPage, TransportError> {
        self.inner.pull(request).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_the_database_refuses_in_a_set_run_is_refused_alone() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (project, client) = rig.synced_client("a").await;
        let mut ids = Vec::new();
        for n in 0..40 {
            let task = NewTask::queued(project, "render", json!({ "n": n }));
            ids.push(client.database().tasks().create(task).await.unwrap().id);
        }
        let transport = Spoiled {
            inner: PostgresTransport::new(rig.server.clone()),
            nth: 17,
        };
        let options = SyncOptions::default();
        sync_once(&client, &transport, &options).await.unwrap();

        let dead = client.dead_letters().await.unwrap();
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(dead[0].row_id, ids[17].0.to_string());
        assert!(
            dead[0].reason.starts_with("rejected: "),
            "{}",
            dead[0].reason
        );
        for (n, id) in ids.iter().enumerate() {
            let on_server = rig.server.tasks().get(*id).await;
            assert_eq!(on_server.is_ok(), n != 17, "task {n}: {on_server:?}");
        }
        assert_eq!(client.pending().await.unwrap(), 0);
        rig.assert_converged(client.database()).await;
    })
    .await;
}

/// The direct transport, keeping every answer it got.
struct Answers {
    inner: PostgresTransport,
    acks: std::sync::Mutex<Vec<PushAck>>,
}

#[async_trait]
impl Transport for Answers {
    async fn push(&self, batch: PushBatch) -> Result<PushAck, TransportError> {
        let ack = self.inner.push(batch).await?;
        self.acks.lock().unwrap().push(ack.clone());
        Ok(ack)
    }

    async fn pull(&self, request: PullRequest) -> Result<PullPage, TransportError> {
        self.inner.pull(request).await
    }
}

/// The rows a push's answer carries are the server's as the whole batch left them: the
/// rows a set run's write returned are not reused once a later entry of the batch went
/// the per-entry way (here a project's delete, which cascades to the tasks the run
/// inserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rows_a_push_sends_back_are_as_the_whole_batch_left_them() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (shared, client) = rig.synced_client("a").await;
        let db = client.database();
        let user = db.projects().get(shared).await.unwrap().user_id;
        let project = db
            .projects()
            .create(NewProject::new(user, "short-lived"))
            .await
            .unwrap()
            .id;
        let mut tasks = Vec::new();
        for n in 0..5 {
            let task = NewTask::queued(project, "render", json!({ "n": n }));
            tasks.push(db.tasks().create(task).await.unwrap().id);
        }
        db.projects().delete(project).await.unwrap();
        let transport = Answers {
            inner: PostgresTransport::new(rig.server.clone()),
            acks: Default::default(),
        };
        while client.push_once(&transport, 1000).await.unwrap() > 0 {}
        let acks = transport.acks.into_inner().unwrap();
        for task in &tasks {
            let sent: Vec<_> = acks
                .iter()
                .flat_map(|ack| &ack.rows)
                .filter(|(table, id, _)| table == "tasks" && *id == task.0)
                .collect();
            assert!(!sent.is_empty(), "task {task} sent back");
            for (_, _, row) in sent {
                let row = row.as_ref().expect("the server has the task");
                assert_eq!(
                    row["deleted"],
                    json!(true),
                    "task {task} as the batch left it: {row:?}"
                );
            }
        }
        rig.sync(&client).await;
        rig.assert_converged(client.database()).await;
    })
    .await;
}
