//! Restoring a replica that syncs: a replica restored from a backup (or copied to a second
//! device) takes a new client id ([`SyncClient::reidentify`]), by itself when the server
//! refuses its push as `Diverged` or when asked, and goes on syncing: the server ends with
//! every write exactly once and every replica equal to it. Real SQLite files (backups made
//! with `VACUUM INTO`) and the real server, through the direct transport; the HTTP server
//! is in `sync_restore_http.rs`, failures in `sync_restore_failures.rs`.

use std::path::Path;

use dal::prelude::*;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use sync::{SyncClient, SyncEngine};

use crate::sync::{Rig, run_postgres, server_world};

/// Copies the live replica into `path` with `VACUUM INTO`: a consistent copy of a file in
/// WAL mode, as a backup would be.
pub(crate) async fn back_up(client: &SyncClient, path: &Path) {
    let db = client.database();
    db.execute_unprepared(&format!("VACUUM INTO '{}'", path.display()))
        .await
        .unwrap();
}

/// Opens the replica in the file at `path` (a restored backup, or a copy).
pub(crate) async fn open_file(path: &Path) -> SyncClient {
    SyncClient::open(Database::connect(&Config::sqlite(path)).await.unwrap())
        .await
        .unwrap()
}

/// Creates a task (one outbox entry) on `client` and returns its id.
pub(crate) async fn create_task(client: &SyncClient, project: Id, n: i64) -> Id {
    let before = client.pending().await.unwrap();
    let id = client
        .database()
        .tasks()
        .create(NewTask::queued(project, "render", json!({"n": n})))
        .await
        .unwrap()
        .id;
    assert_eq!(
        client.pending().await.unwrap(),
        before + 1,
        "one write, one entry"
    );
    id
}

/// Sets a task's params (one outbox entry).
pub(crate) async fn edit_task(client: &SyncClient, task: Id, n: i64) {
    let before = client.pending().await.unwrap();
    let mut row = client.database().tasks().get(task).await.unwrap();
    row.params = json!({"edit": n});
    client.database().tasks().update(row).await.unwrap();
    assert_eq!(
        client.pending().await.unwrap(),
        before + 1,
        "one write, one entry"
    );
}

pub(crate) async fn server_count(server: &Database, sql: &str) -> i64 {
    server
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            sql.to_owned(),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap()
}

/// Asserts the server applied exactly `writes` entries, none of them twice (the same
/// write under two client ids has the same digest).
pub(crate) async fn assert_exactly_once(server: &Database, writes: i64) {
    let doubled = server_count(
        server,
        "SELECT count(*) AS n FROM (SELECT entry_digest FROM sync_log \
         GROUP BY entry_digest HAVING count(*) > 1) AS d",
    )
    .await;
    assert_eq!(doubled, 0, "a write reached the server twice");
    let logged = server_count(server, "SELECT count(*) AS n FROM sync_log").await;
    assert_eq!(logged, writes, "writes settled on the server");
}

/// The params of task `id` on the server.
pub(crate) async fn server_params(server: &Database, id: Id) -> serde_json::Value {
    server.tasks().get(id).await.unwrap().params
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_replica_takes_a_new_id_and_loses_and_doubles_nothing() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let backups = tempfile::tempdir().unwrap();
        let backup = backups.path().join("a-backup.db");
        let (project, a) = rig.synced_client("a").await;
        let b = rig.client("b").await;
        rig.sync(&b).await;

        // A: two writes synced, two waiting when the backup is taken.
        let w1 = create_task(&a, project, 1).await;
        let w2 = create_task(&a, project, 2).await;
        rig.sync(&a).await;
        let w3 = create_task(&a, project, 3).await;
        let w4 = create_task(&a, project, 4).await;
        back_up(&a, &backup).await;
        // A goes on: the waiting writes are pushed, more follow; B writes too.
        let w5 = create_task(&a, project, 5).await;
        rig.sync(&a).await;
        edit_task(&a, w1, 6).await;
        rig.sync(&a).await;
        let w7 = create_task(&b, project, 7).await;
        rig.sync(&b).await;

        // The device is restored from the backup, writes more, syncs.
        let restored = open_file(&backup).await;
        let old_id = restored.client_id();
        assert_eq!(old_id, a.client_id());
        let w8 = create_task(&restored, project, 8).await;
        edit_task(&restored, w3, 9).await;
        edit_task(&restored, w2, 10).await;
        rig.sync(&restored).await;

        assert_ne!(restored.client_id(), old_id, "a new client id");
        let record = restored.last_reidentified().await.unwrap().unwrap();
        assert_eq!((record.from, record.to), (old_id, restored.client_id()));
        assert_eq!(record.already_on_server, 2, "w3 and w4 were pushed by A");
        assert_eq!(record.requeued, 3, "w8 and the two edits");
        assert_eq!(record.dead_lettered, 0);
        assert!(
            record.reason.contains("sequence number 5"),
            "{}",
            record.reason
        );
        assert_eq!(restored.pending().await.unwrap(), 0);

        // Every write once on the server; every replica equal to it.
        assert_exactly_once(&rig.server, 10).await;
        for (task, n) in [
            (w4, json!({"n": 4})),
            (w5, json!({"n": 5})),
            (w7, json!({"n": 7})),
        ] {
            assert_eq!(server_params(&rig.server, task).await, n);
        }
        assert_eq!(server_params(&rig.server, w8).await, json!({"n": 8}));
        assert_eq!(server_params(&rig.server, w3).await, json!({"edit": 9}));
        assert_eq!(server_params(&rig.server, w2).await, json!({"edit": 10}));
        assert_eq!(server_params(&rig.server, w1).await, json!({"edit": 6}));
        rig.assert_converged(restored.database()).await;
        rig.sync(&b).await;
        rig.assert_converged(b.database()).await;

        // The restored replica goes on under its new id: its next entry is number 4.
        create_task(&restored, project, 11).await;
        rig.sync(&restored).await;
        assert_exactly_once(&rig.server, 11).await;
        rig.assert_converged(restored.database()).await;
        let seqs = server_count(
            &rig.server,
            &format!(
                "SELECT max(seq) AS n FROM sync_log WHERE client_id = '{}'",
                restored.client_id()
            ),
        )
        .await;
        assert_eq!(seqs, 4);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_replica_in_use_on_two_devices_recovers_in_the_engine() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let copies = tempfile::tempdir().unwrap();
        let copy_file = copies.path().join("second-device.db");
        let (project, first) = rig.synced_client("first").await;
        // Copied with a write still waiting: both devices hold it.
        let shared = create_task(&first, project, 1).await;
        back_up(&first, &copy_file).await;
        let second = open_file(&copy_file).await;
        assert_eq!(second.client_id(), first.client_id());

        // Both write under the same client id; the first device pushes first.
        let on_first = create_task(&first, project, 2).await;
        let on_second = create_task(&second, project, 3).await;
        edit_task(&second, shared, 4).await;
        rig.sync(&first).await;

        // The second device's engine gets `Diverged`, takes a new id and goes on.
        let engine = SyncEngine::start(second.clone(), rig.transport.clone(), rig.options.clone());
        engine.sync_now().await.unwrap();
        let status = engine.status().await;
        let record = status
            .reidentified
            .expect("the engine took a new client id");
        assert_eq!(record.from, first.client_id());
        assert_eq!(record.to, second.client_id());
        assert_eq!((record.already_on_server, record.requeued), (1, 2));
        assert_eq!(status.pending, 0);
        assert_eq!(status.last_error, None);

        // Both go on writing and syncing.
        rig.sync(&first).await;
        edit_task(&first, on_second, 5).await;
        let later = create_task(&second, project, 6).await;
        rig.sync(&first).await;
        engine.sync_now().await.unwrap();
        rig.sync(&first).await;
        engine.shutdown().await;

        assert_exactly_once(&rig.server, 6).await;
        assert_eq!(server_params(&rig.server, shared).await, json!({"edit": 4}));
        assert_eq!(server_params(&rig.server, on_first).await, json!({"n": 2}));
        assert_eq!(
            server_params(&rig.server, on_second).await,
            json!({"edit": 5})
        );
        assert_eq!(server_params(&rig.server, later).await, json!({"n": 6}));
        rig.assert_converged(first.database()).await;
        rig.assert_converged(second.database()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_takes_a_new_id_when_asked_after_a_restore() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let backups = tempfile::tempdir().unwrap();
        let backup = backups.path().join("backup.db");
        let (project, a) = rig.synced_client("a").await;
        let waiting = create_task(&a, project, 1).await;
        back_up(&a, &backup).await;
        rig.sync(&a).await;

        // Restored before any write: asked to, the engine drops what the server has and
        // syncs; nothing was refused on the way.
        let restored = open_file(&backup).await;
        let engine =
            SyncEngine::start(restored.clone(), rig.transport.clone(), rig.options.clone());
        let record = engine.reidentify().await.unwrap();
        // The engine's first sync starts at once and may push the restored entry before
        // the request arrives: the server passes over it as a retry under the same id,
        // and the new id's recovery then finds nothing left. Either way it is on the
        // server once (checked below) and nothing is requeued.
        assert!(
            matches!((record.already_on_server, record.requeued), (1, 0) | (0, 0)),
            "{record:?}"
        );
        assert_eq!(record.reason, "asked by the application");
        let mine = create_task(&restored, project, 2).await;
        engine.sync_now().await.unwrap();
        let status = engine.status().await;
        assert_eq!(status.reidentified, Some(record));
        assert_eq!((status.pending, status.last_error), (0, None));
        engine.shutdown().await;

        assert_exactly_once(&rig.server, 2).await;
        assert_eq!(server_params(&rig.server, waiting).await, json!({"n": 1}));
        assert_eq!(server_params(&rig.server, mine).await, json!({"n": 2}));
        rig.assert_converged(restored.database()).await;

        // Asked again (a second restore of the same file, an app calling it twice):
        // harmless, nothing is sent twice.
        let again = restored.reidentify(rig.transport.as_ref()).await.unwrap();
        assert_eq!((again.already_on_server, again.requeued), (0, 0));
        rig.sync(&restored).await;
        assert_exactly_once(&rig.server, 2).await;
        rig.assert_converged(restored.database()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_the_server_refused_become_dead_letters_of_the_restored_replica() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let backups = tempfile::tempdir().unwrap();
        let backup = backups.path().join("backup.db");
        let (user, keeper) = server_world(&rig.server).await;
        let a = rig.client("a").await;
        let b = rig.client("b").await;
        rig.sync(&a).await;
        let doomed = a
            .database()
            .projects()
            .create(NewProject::new(user, "doomed"))
            .await
            .unwrap()
            .id;
        rig.sync(&a).await;
        rig.sync(&b).await;
        // A adds a task to the project while B deletes it: A's write is refused.
        let orphan = create_task(&a, doomed, 1).await;
        back_up(&a, &backup).await;
        b.database().projects().delete(doomed).await.unwrap();
        rig.sync(&b).await;
        rig.sync(&a).await;
        assert_eq!(a.dead_letters().await.unwrap().len(), 1);
        create_task(&a, keeper, 2).await;
        rig.sync(&a).await;

        // The restored replica still holds the refused write, and writes two more: one
        // the server takes, one under the project it does not know is gone.
        let restored = open_file(&backup).await;
        let kept = create_task(&restored, keeper, 3).await;
        let second_orphan = create_task(&restored, doomed, 4).await;
        rig.sync(&restored).await;

        let record = restored.last_reidentified().await.unwrap().unwrap();
        assert_eq!(
            (
                record.already_on_server,
                record.dead_lettered,
                record.requeued
            ),
            (1, 1, 2)
        );
        let dead = restored.dead_letters().await.unwrap();
        assert_eq!(dead.len(), 2, "{dead:?}");
        // The old id's refusal, moved below the new numbers, then the new id's first.
        assert_eq!(dead[0].row_id, orphan.0.to_string());
        assert!(dead[0].seq <= 0, "{dead:?}");
        assert_eq!(dead[0].reason, a.dead_letters().await.unwrap()[0].reason);
        assert_eq!(
            (dead[1].row_id.clone(), dead[1].seq),
            (second_orphan.0.to_string(), 2)
        );
        assert!(restored.database().tasks().get(orphan).await.is_err());
        assert_eq!(server_params(&rig.server, kept).await, json!({"n": 3}));
        rig.assert_converged(restored.database()).await;
        let doubled = server_count(
            &rig.server,
            "SELECT count(*) AS n FROM (SELECT entry_digest FROM sync_log \
             GROUP BY entry_digest HAVING count(*) > 1) AS d",
        )
        .await;
        assert_eq!(doubled, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_replica_with_more_waiting_than_a_batch_loses_nothing() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let backups = tempfile::tempdir().unwrap();
        let backup = backups.path().join("backup.db");
        let (project, a) = rig.synced_client("a").await;
        // More waiting than one batch (50) when the backup is taken; A pushes them all
        // and one more.
        for n in 0..60 {
            create_task(&a, project, n).await;
        }
        back_up(&a, &backup).await;
        rig.sync(&a).await;
        create_task(&a, project, 100).await;
        rig.sync(&a).await;

        // The restored replica's first batch holds only writes the server has: its
        // acknowledgement must not settle the entries after the batch, among them the
        // restored replica's own write under a number the server gave another.
        let restored = open_file(&backup).await;
        let mine = create_task(&restored, project, 200).await;
        rig.sync(&restored).await;
        let record = restored.last_reidentified().await.unwrap().unwrap();
        assert_eq!((record.already_on_server, record.requeued), (10, 1));
        assert_eq!(server_params(&rig.server, mine).await, json!({"n": 200}));
        assert_exactly_once(&rig.server, 62).await;
        rig.assert_converged(restored.database()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restored_with_snapshot_import_goes_on_syncing() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (_, project) = server_world(&rig.server).await;
        let dir = tempfile::tempdir().unwrap();
        let (local, backup) = (dir.path().join("local.db"), dir.path().join("backup.db"));
        let device = open_file(&local).await;
        rig.sync(&device).await;
        let synced = create_task(&device, project, 1).await;
        rig.sync(&device).await;
        let waiting = create_task(&device, project, 2).await;
        // The library's backup of the live database, then more work synced.
        snapshot::export(
            device.database(),
            &backup,
            &snapshot::ExportOptions::new(local.display().to_string()),
            |_| {},
        )
        .await
        .unwrap();
        let after_backup = create_task(&device, project, 3).await;
        rig.sync(&device).await;
        edit_task(&device, synced, 4).await;
        rig.sync(&device).await;
        device.database().clone().close().await.unwrap();
        drop(device);

        // Imported over the local database (the application closed), then used again.
        snapshot::import(&backup, &local, false).await.unwrap();
        let restored = open_file(&local).await;
        let mine = create_task(&restored, project, 5).await;
        let engine =
            SyncEngine::start(restored.clone(), rig.transport.clone(), rig.options.clone());
        engine.sync_now().await.unwrap();
        let record = engine.status().await.reidentified.expect("a new client id");
        assert_eq!((record.already_on_server, record.requeued), (1, 1));
        engine.shutdown().await;

        assert_exactly_once(&rig.server, 5).await;
        for (task, params) in [
            (synced, json!({"edit": 4})),
            (waiting, json!({"n": 2})),
            (after_backup, json!({"n": 3})),
            (mine, json!({"n": 5})),
        ] {
            assert_eq!(server_params(&rig.server, task).await, params);
        }
        rig.assert_converged(restored.database()).await;
    })
    .await;
}
