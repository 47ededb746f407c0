//! Restoring a replica that syncs, when things go wrong: a recovery interrupted at each
//! step and run again, a transport that cannot ask the server, a server that refuses
//! again right after the new client id. Nothing local is lost, nothing reaches the server
//! twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use dal::prelude::*;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use sync::engine::sync_once;
use sync::protocol::{PullPage, PullRequest, PushAck, PushBatch, SettledQuery, SettledReply};
use sync::{PostgresTransport, SyncClient, SyncError, Transport, TransportError};

use crate::sync::{Rig, run_postgres};
use crate::sync_restore::{
    assert_exactly_once, back_up, create_task, edit_task, open_file, server_params,
};

/// The direct transport with switches: the question may fail after a number of chunks,
/// a push's answer may be lost after the server applied it, every push may be refused as
/// `Diverged`, and `settled` may be missing altogether.
struct Switches {
    inner: PostgresTransport,
    questions_left: AtomicUsize,
    lose_push_answer: AtomicBool,
    always_diverged: AtomicBool,
    no_settled: bool,
    questions: AtomicUsize,
}

impl Switches {
    fn new(t: &parity_tests::TestDb, no_settled: bool) -> Switches {
        Switches {
            inner: PostgresTransport::new(t.db.clone()),
            questions_left: AtomicUsize::new(usize::MAX),
            lose_push_answer: AtomicBool::new(false),
            always_diverged: AtomicBool::new(false),
            no_settled,
            questions: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl Transport for Switches {
    async fn push(&self, batch: PushBatch) -> Result<PushAck, TransportError> {
        if self.always_diverged.load(Ordering::SeqCst) {
            return Err(TransportError::Diverged { seq: 1 });
        }
        let ack = self.inner.push(batch).await;
        if self.lose_push_answer.swap(false, Ordering::SeqCst) {
            return Err(TransportError::Transient("the answer was lost".into()));
        }
        ack
    }

    async fn pull(&self, request: PullRequest) -> Result<PullPage, TransportError> {
        self.inner.pull(request).await
    }

    async fn settled(&self, query: SettledQuery) -> Result<SettledReply, TransportError> {
        if self.no_settled {
            return Err(TransportError::Refused("no such call".into()));
        }
        self.questions.fetch_add(1, Ordering::SeqCst);
        let left = self.questions_left.load(Ordering::SeqCst);
        if left == 0 {
            return Err(TransportError::Transient("the server went away".into()));
        }
        self.questions_left.store(left - 1, Ordering::SeqCst);
        self.inner.settled(query).await
    }
}

/// `(client id, outbox length, first and last outbox numbers, dead letters)` of a replica,
/// read from its file.
async fn local_state(client: &SyncClient) -> (String, i64, i64, i64, usize) {
    let row = client
        .database()
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "SELECT (SELECT value FROM sync_state WHERE key = 'client_id') AS id, count(*) AS n, \
             coalesce(min(seq), 0) AS lo, coalesce(max(seq), 0) AS hi FROM sync_outbox",
        ))
        .await
        .unwrap()
        .unwrap();
    (
        row.try_get("", "id").unwrap(),
        row.try_get("", "n").unwrap(),
        row.try_get("", "lo").unwrap(),
        row.try_get("", "hi").unwrap(),
        client.dead_letters().await.unwrap().len(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_interrupted_at_any_step_is_rerun_without_loss_or_doubling() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let switches = Arc::new(Switches::new(&t, false));
        let backups = tempfile::tempdir().unwrap();
        let backup = backups.path().join("backup.db");
        let (project, a) = rig.synced_client("a").await;
        // More waiting entries than one question carries (500), so it takes two.
        let tasks: Vec<Id> = {
            let mut ids = Vec::new();
            for n in 0..520 {
                ids.push(
                    a.database()
                        .tasks()
                        .create(NewTask::queued(project, "render", json!({"n": n})))
                        .await
                        .unwrap()
                        .id,
                );
            }
            ids
        };
        // The backup is taken with 520 waiting; A pushes them and one more.
        back_up(&a, &backup).await;
        rig.sync(&a).await;
        create_task(&a, project, 1000).await;
        rig.sync(&a).await;
        let restored = open_file(&backup).await;
        for (n, task) in tasks.iter().take(3).enumerate() {
            edit_task(&restored, *task, n as i64).await;
        }
        let before = local_state(&restored).await;
        assert_eq!((before.1, before.2, before.3), (523, 1, 523));

        // 1. The server goes away after the first question: nothing changes locally.
        switches.questions_left.store(1, Ordering::SeqCst);
        let err = restored.reidentify(switches.as_ref()).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert_eq!(switches.questions.load(Ordering::SeqCst), 2);
        assert_eq!(local_state(&restored).await, before);
        assert_eq!(restored.client_id().to_string(), before.0);
        assert_eq!(restored.last_reidentified().await.unwrap(), None);

        // 2. It answers; the new id is in place, the push then loses its answer after
        //    the server applied the first batch. The process dies there.
        switches.questions_left.store(usize::MAX, Ordering::SeqCst);
        let first = restored.reidentify(switches.as_ref()).await.unwrap();
        assert_eq!((first.already_on_server, first.requeued), (520, 3));
        let after = local_state(&restored).await;
        assert_eq!((after.1, after.2, after.3), (3, 1, 3));
        assert_eq!(after.0, first.to.to_string());
        switches.lose_push_answer.store(true, Ordering::SeqCst);
        let err = restored.push_once(switches.as_ref(), 2).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        let path = backup.clone();
        drop(restored);

        // 3. Reopened, the app restores-and-reidentifies again: the entries the server
        //    took under the second id are recognised, only the rest goes again.
        let reopened = open_file(&path).await;
        assert_eq!(reopened.client_id(), first.to);
        let second = reopened.reidentify(switches.as_ref()).await.unwrap();
        assert_eq!(second.from, first.to);
        assert_eq!((second.already_on_server, second.requeued), (2, 1));
        sync_once(&reopened, switches.as_ref(), &rig.options)
            .await
            .unwrap();
        // A new write follows on under the third id.
        create_task(&reopened, project, 2000).await;
        sync_once(&reopened, switches.as_ref(), &rig.options)
            .await
            .unwrap();

        assert_exactly_once(&rig.server, 520 + 1 + 3 + 1).await;
        for (n, task) in tasks.iter().take(3).enumerate() {
            assert_eq!(
                server_params(&rig.server, *task).await,
                json!({"edit": n as i64})
            );
        }
        rig.assert_converged(reopened.database()).await;
        rig.sync(&a).await;
        rig.assert_converged(a.database()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_that_cannot_run_leaves_the_replica_as_it_was() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let backups = tempfile::tempdir().unwrap();
        let backup = backups.path().join("backup.db");
        let (project, a) = rig.synced_client("a").await;
        create_task(&a, project, 1).await;
        back_up(&a, &backup).await;
        rig.sync(&a).await;
        create_task(&a, project, 2).await;
        rig.sync(&a).await;
        let restored = open_file(&backup).await;
        create_task(&restored, project, 3).await;
        let before = local_state(&restored).await;

        // A transport that cannot ask which entries the server has: the push stays
        // refused as `Diverged`, and nothing local changes.
        let mute = Switches::new(&t, true);
        let err = sync_once(&restored, &mute, &rig.options).await.unwrap_err();
        assert!(
            matches!(&err, SyncError::Transport(TransportError::Refused(_))),
            "{err}"
        );
        assert_eq!(local_state(&restored).await, before);

        // A server that refuses again right after the new id: reported, not looped on;
        // the outbox is whole under the new id.
        let stubborn = Switches::new(&t, false);
        stubborn.always_diverged.store(true, Ordering::SeqCst);
        let err = sync_once(&restored, &stubborn, &rig.options)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SyncError::Transport(TransportError::Diverged { .. })),
            "{err}"
        );
        assert_eq!(stubborn.questions.load(Ordering::SeqCst), 1);
        let now = local_state(&restored).await;
        assert_ne!(now.0, before.0);
        assert_eq!((now.1, now.2, now.3), (1, 1, 1));

        // With a working server, it syncs.
        rig.sync(&restored).await;
        assert_exactly_once(&rig.server, 3).await;
        rig.assert_converged(restored.database()).await;
    })
    .await;
}
