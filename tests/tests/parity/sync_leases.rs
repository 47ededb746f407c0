//! Task leases through sync: the lease columns (added by a migration after the sync
//! machinery) travel between replicas and the server like every other column, because the
//! capture triggers and the wire read them from the schema registry. Forgetting either
//! step would fail here: a claim made on a replica would reach the server without its
//! holder, or a server-side claim would reach the replica without its lease.

use std::time::Duration;

use dal::prelude::*;
use serde_json::json;
use sync::snapshot::snapshot;

use crate::sync::{Rig, run_postgres};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_carries_leases_both_ways() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (project, a) = rig.synced_client("a").await;
        let b = rig.client("b").await;

        // A task made and claimed on replica A reaches the server with its lease.
        let task = a
            .database()
            .tasks()
            .create(NewTask::queued(project, "render", json!({})).with_max_attempts(5))
            .await
            .unwrap();
        let claimed = a
            .database()
            .tasks()
            .claim_as("render", "worker-a", Duration::from_secs(600))
            .await
            .unwrap()
            .expect("the task is ready");
        assert_eq!(claimed.id, task.id);
        rig.sync(&a).await;
        let on_server = rig.server.tasks().get(task.id).await.unwrap();
        assert_eq!(on_server.claimed_by.as_deref(), Some("worker-a"));
        assert_eq!(on_server.attempts, 1);
        assert_eq!(on_server.max_attempts, 5);
        assert_eq!(on_server.lease_expires_at, claimed.lease_expires_at);

        // A write that changes only lease columns (a heartbeat) travels too.
        let renewed = a
            .database()
            .tasks()
            .heartbeat(task.id, "worker-a", Duration::from_secs(1200))
            .await
            .unwrap();
        assert!(renewed.lease_expires_at > claimed.lease_expires_at);
        rig.sync(&a).await;
        assert_eq!(
            rig.server
                .tasks()
                .get(task.id)
                .await
                .unwrap()
                .lease_expires_at,
            renewed.lease_expires_at
        );

        // The holder's failure, with its reason, reaches replica B through the server.
        a.database()
            .tasks()
            .fail(task.id, "worker-a", "out of memory")
            .await
            .unwrap();
        rig.sync(&a).await;
        rig.sync(&b).await;
        let on_b = b.database().tasks().get(task.id).await.unwrap();
        assert_eq!(on_b.status, TaskStatus::Queued);
        assert_eq!(on_b.last_error.as_deref(), Some("out of memory"));
        assert_eq!(on_b.attempts, 1);

        // A claim on the server (a worker of the web tier) reaches the replicas.
        let server_claim = rig
            .server
            .tasks()
            .claim_as("render", "server-worker", Duration::from_secs(600))
            .await
            .unwrap()
            .expect("queued again after the failure");
        rig.sync(&b).await;
        let on_b = b.database().tasks().get(task.id).await.unwrap();
        assert_eq!(on_b.claimed_by.as_deref(), Some("server-worker"));
        assert_eq!(on_b.attempts, 2);
        assert_eq!(on_b.lease_expires_at, server_claim.lease_expires_at);
        // And the former holder on A, once it has pulled, cannot complete it.
        rig.sync(&a).await;
        assert!(matches!(
            a.database()
                .tasks()
                .complete(task.id, "worker-a", None)
                .await,
            Err(dal::DalError::LeaseLost { .. })
        ));

        let server = rig.server_snapshot().await;
        assert_eq!(snapshot(a.database()).await.unwrap(), server);
        assert_eq!(snapshot(b.database()).await.unwrap(), server);
    })
    .await;
}
