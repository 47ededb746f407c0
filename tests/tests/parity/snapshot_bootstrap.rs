//! A new device's first sync from the server's snapshot (`GET /v1/snapshot`,
//! `snapshot::bootstrap`), through the real HTTP sync server: the user's rows only, none
//! pushed back, and nothing committed meanwhile missed.

use std::sync::Arc;

use dal::Config;
use dal::prelude::*;
use sea_orm::ConnectionTrait;
use serde_json::json;
use snapshot::{Scope, SnapshotError};
use sync::http::{HttpTransport, StaticToken};
use sync::{SyncClient, TransportError};

use crate::sync::{run_postgres, server_world};
use crate::sync_http::{HttpRig, other_user};

async fn device(path: &std::path::Path) -> SyncClient {
    let db = Database::connect(&Config::sqlite(path)).await.unwrap();
    SyncClient::open(db).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_starts_from_the_servers_snapshot_and_pushes_nothing_back() {
    run_postgres(|t| async move {
        let rig = HttpRig::start(&t).await;
        let (alice, project) = server_world(&rig.server).await;
        for i in 0..30 {
            rig.server
                .tasks()
                .create(NewTask::queued(
                    project,
                    format!("render-{i}"),
                    json!({"i": i}),
                ))
                .await
                .unwrap();
        }
        let (bob, bobs_project) = other_user(&rig.server, "bob-the-stranger").await;
        let dir = tempfile::tempdir().unwrap();

        // The bytes sent carry nothing of another user.
        let raw = dir.path().join("raw.db");
        rig.transport(alice).download_snapshot(&raw).await.unwrap();
        let bytes = std::fs::read(&raw).unwrap();
        for secret in [
            "bob-the-stranger".to_owned(),
            bob.to_string(),
            bobs_project.to_string(),
        ] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the snapshot carried {secret}"
            );
        }

        let local = dir.path().join("device.db");
        let imported = snapshot::bootstrap(&rig.transport(alice), &local)
            .await
            .unwrap();
        assert_eq!(imported.meta.scope, Scope::User(alice.0));
        assert_eq!(imported.meta.row_counts.get("tasks"), Some(&30));
        let client = device(&local).await;
        assert_eq!(client.pending().await.unwrap(), 0, "nothing is pushed back");

        // The same rows a full pull gives.
        let pulled = rig.client("full-pull").await;
        rig.sync(&pulled, alice).await;
        let expected = sync::snapshot::snapshot(pulled.database()).await.unwrap();
        assert_eq!(
            sync::snapshot::snapshot(client.database()).await.unwrap(),
            expected
        );

        // And it syncs on both ways from there.
        rig.sync(&client, alice).await;
        assert_eq!(
            sync::snapshot::snapshot(client.database()).await.unwrap(),
            expected,
            "the first sync after the snapshot changes nothing"
        );
        let shot = client
            .database()
            .shots()
            .create(NewShot::new(project, "from the new device"))
            .await
            .unwrap();
        rig.sync(&client, alice).await;
        assert_eq!(
            rig.server.shots().get(shot.id).await.unwrap().name,
            "from the new device"
        );
        let (clients, log) = rig.bookkeeping().await;
        assert_eq!((clients, log), (1, 1), "one client pushed one entry");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_committed_while_the_snapshot_is_made_arrives_with_the_first_pull() {
    run_postgres(|t| async move {
        let rig = HttpRig::start(&t).await;
        let (alice, project) = server_world(&rig.server).await;
        // Another program's transaction is open while the snapshot is made: its change is
        // not in the snapshot, and it commits after.
        let writer = rig.server.begin().await.unwrap();
        writer
            .execute_unprepared(&format!(
                "UPDATE projects SET name = 'renamed during the export' WHERE id = '{project}'"
            ))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("device.db");
        snapshot::bootstrap(&rig.transport(alice), &local)
            .await
            .unwrap();
        writer.commit().await.unwrap();
        let task = rig
            .server
            .tasks()
            .create(NewTask::queued(project, "after the export", json!({})))
            .await
            .unwrap();

        let client = device(&local).await;
        assert_eq!(
            client
                .database()
                .projects()
                .get(project)
                .await
                .unwrap()
                .name,
            "shared",
            "the snapshot holds what was committed when it was made"
        );
        rig.sync(&client, alice).await;
        assert_eq!(
            client
                .database()
                .projects()
                .get(project)
                .await
                .unwrap()
                .name,
            "renamed during the export"
        );
        assert_eq!(
            client
                .database()
                .tasks()
                .get(task.id)
                .await
                .unwrap()
                .task_type,
            "after the export"
        );
        let pulled = rig.client("full-pull").await;
        rig.sync(&pulled, alice).await;
        assert_eq!(
            sync::snapshot::snapshot(client.database()).await.unwrap(),
            sync::snapshot::snapshot(pulled.database()).await.unwrap()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_needs_a_good_token_and_a_new_file() {
    run_postgres(|t| async move {
        let rig = HttpRig::start(&t).await;
        let (alice, _) = server_world(&rig.server).await;
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("device.db");
        let forged =
            HttpTransport::new(&rig.url, Arc::new(StaticToken::new("not-a-token"))).unwrap();
        let refused = snapshot::bootstrap(&forged, &local).await;
        assert!(
            matches!(
                refused,
                Err(SnapshotError::Transport(TransportError::Unauthorized(_)))
            ),
            "{refused:?}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing written"
        );

        // A device that has a database already keeps it.
        std::fs::write(&local, b"the device's own data").unwrap();
        let refused = snapshot::bootstrap(&rig.transport(alice), &local).await;
        assert!(
            matches!(refused, Err(SnapshotError::Exists { .. })),
            "{refused:?}"
        );
        assert_eq!(std::fs::read(&local).unwrap(), b"the device's own data");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_over_the_servers_limit_are_refused_for_now_and_the_limit_is_released() {
    use sync_server::Limits;
    run_postgres(|t| async move {
        // Turned off: refused as something to try again later, nothing written.
        let off = Limits {
            snapshots: 0,
            ..Limits::default()
        };
        let rig = HttpRig::with_limits(&t, off).await;
        let (alice, _) = server_world(&rig.server).await;
        let dir = tempfile::tempdir().unwrap();
        let refused = snapshot::bootstrap(&rig.transport(alice), &dir.path().join("a.db")).await;
        assert!(
            matches!(
                refused,
                Err(SnapshotError::Transport(TransportError::Transient(_)))
            ),
            "{refused:?}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        // One at a time: each snapshot gives its place back once sent.
        let one = Limits {
            snapshots: 1,
            ..Limits::default()
        };
        let rig = HttpRig::with_limits(&t, one).await;
        for n in 0..3 {
            snapshot::bootstrap(&rig.transport(alice), &dir.path().join(format!("{n}.db")))
                .await
                .unwrap_or_else(|e| panic!("snapshot {n}: {e}"));
        }
    })
    .await;
}
