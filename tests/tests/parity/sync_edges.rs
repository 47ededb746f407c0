//! Sync at its edges: rows that predate sync, a pull that passes over a pending row, holes,
//! refusals whose answer needs new parents, a cursor from another server, and a child
//! written while its parent is deleted. Each is a bug a review found; each test failed
//! before its fix.

use dal::DalError;
use dal::prelude::*;
use parity_tests::wait_until;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use sync::engine::sync_once;
use sync::snapshot::snapshot;
use sync::{SyncClient, SyncEngine, Transport, TransportError};

use crate::sync::{Rig, run_postgres, server_world};

/// Pulls until the window is exhausted, pushing nothing.
async fn pull_only(client: &SyncClient, transport: &dyn Transport) {
    while !client.pull_once(transport, 40).await.unwrap().1 {}
}

async fn sqlite_exec(db: &Database, sql: &str) {
    db.execute_raw(Statement::from_string(sea_orm::DbBackend::Sqlite, sql))
        .await
        .unwrap();
}

async fn server_count(server: &Database, sql: &str) -> i64 {
    server
        .query_one_raw(Statement::from_string(sea_orm::DbBackend::Postgres, sql))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_before_sync_was_turned_on_reach_the_server() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        // An app that ran local-only for a while.
        let path = tempfile::tempdir().unwrap();
        let local = Database::connect(&Config::sqlite(path.path().join("app.db")))
            .await
            .unwrap();
        local.migrate().await.unwrap();
        let user = local.users().create(NewUser::default()).await.unwrap();
        let project = local
            .projects()
            .create(NewProject::new(user.id, "made offline"))
            .await
            .unwrap();
        let task = local
            .tasks()
            .create(NewTask::queued(project.id, "render", json!({"n": 1})))
            .await
            .unwrap();
        let gone = local
            .tasks()
            .create(NewTask::queued(project.id, "render", json!({"n": 2})))
            .await
            .unwrap();
        local.tasks().delete(gone.id).await.unwrap();

        let client = SyncClient::open(local.clone()).await.unwrap();
        assert_eq!(
            client.pending().await.unwrap(),
            3,
            "user, project, live task"
        );
        // Edited after sync was turned on: applies on top of the row's first push.
        let mut renamed = local.projects().get(project.id).await.unwrap();
        renamed.name = "renamed".into();
        local.projects().update(renamed).await.unwrap();
        rig.sync(&client).await;

        assert!(client.dead_letters().await.unwrap().is_empty());
        assert_eq!(
            rig.server.projects().get(project.id).await.unwrap().name,
            "renamed"
        );
        assert_eq!(rig.server.tasks().get(task.id).await.unwrap().id, task.id);
        assert!(local.tasks().get(task.id).await.is_ok(), "kept locally");
        assert_eq!(snapshot(&local).await.unwrap(), rig.server_snapshot().await);
        // Reopening does not queue them again.
        drop(client);
        let again = SyncClient::open(local.clone()).await.unwrap();
        assert_eq!(again.pending().await.unwrap(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_a_pull_passed_over_still_arrives() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (_, a, b, task) = rig.two_clients_sharing_a_task().await;

        a.database().tasks().delete(task).await.unwrap();
        rig.sync(&a).await;
        // B edits the task, then pulls before pushing: the pull keeps B's pending edit
        // and passes over the tombstone.
        let mut edited = b.database().tasks().get(task).await.unwrap();
        edited.params = json!({"v": 1});
        b.database().tasks().update(edited).await.unwrap();
        pull_only(&b, rig.transport.as_ref()).await;
        assert!(b.database().tasks().get(task).await.is_ok());
        // B's push loses to the delete, and its answer carries the tombstone.
        rig.sync(&b).await;
        assert!(
            matches!(
                b.database().tasks().get(task).await,
                Err(DalError::NotFound { .. })
            ),
            "the tombstone did not reach B"
        );
        rig.assert_converged(b.database()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_inside_a_batch_writes_nothing_and_pulls_go_on() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (project, client) = rig.synced_client("holed").await;
        for n in 0..4 {
            client
                .database()
                .tasks()
                .create(NewTask::queued(project, "render", json!({"n": n})))
                .await
                .unwrap();
        }
        // seq 1, 2, 4, 5: the batch starts right but has a hole in the middle.
        sqlite_exec(
            client.database(),
            "DELETE FROM sync_outbox WHERE seq = (SELECT min(seq) + 2 FROM sync_outbox)",
        )
        .await;
        let err = sync_once(&client, rig.transport.as_ref(), &rig.options)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                sync::SyncError::Transport(TransportError::Gap { last_seq: 0 })
            ),
            "{err}"
        );
        assert!(!err.is_transient(), "a hole is not retried for ever");
        assert_eq!(
            server_count(&rig.server, "SELECT count(*) AS n FROM sync_log").await,
            0,
            "no part of the batch is applied"
        );
        assert_eq!(
            server_count(&rig.server, "SELECT count(*) AS n FROM tasks").await,
            0
        );
        assert_eq!(client.pending().await.unwrap(), 3);

        // The engine keeps pulling although the push is refused.
        let other = rig
            .server
            .tasks()
            .create(NewTask::queued(project, "from elsewhere", json!({})))
            .await
            .unwrap();
        let engine = SyncEngine::start(client.clone(), rig.transport.clone(), rig.options.clone());
        assert_eq!(
            engine.sync_now().await,
            Err(TransportError::Gap { last_seq: 0 }.to_string())
        );
        assert!(client.database().tasks().get(other.id).await.is_ok());
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_large_rows_stops_early_so_its_request_stays_small() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (project, client) = rig.synced_client("large").await;
        // Three writes of 3 MiB each: two fit in one push (about 8 MiB), not three.
        let big = "x".repeat(3 * 1024 * 1024);
        for n in 0..3 {
            client
                .database()
                .tasks()
                .create(NewTask::queued(
                    project,
                    "render",
                    json!({"n": n, "blob": big}),
                ))
                .await
                .unwrap();
        }
        assert_eq!(
            client
                .push_once(rig.transport.as_ref(), 1_000)
                .await
                .unwrap(),
            2
        );
        assert_eq!(client.pending().await.unwrap(), 1);
        assert_eq!(
            client
                .push_once(rig.transport.as_ref(), 1_000)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            server_count(&rig.server, "SELECT count(*) AS n FROM tasks").await,
            3
        );
        // One entry larger than the bound still goes, alone.
        let huge = "y".repeat(9 * 1024 * 1024);
        client
            .database()
            .tasks()
            .create(NewTask::queued(project, "render", json!({"blob": huge})))
            .await
            .unwrap();
        assert_eq!(
            client
                .push_once(rig.transport.as_ref(), 1_000)
                .await
                .unwrap(),
            1
        );
        assert_eq!(client.pending().await.unwrap(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_whose_row_moved_to_a_project_the_client_lacks_settles() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (user, project) = server_world(&rig.server).await;
        let doomed = rig
            .server
            .projects()
            .create(NewProject::new(user, "doomed"))
            .await
            .unwrap();
        let task = rig
            .server
            .tasks()
            .create(NewTask::queued(project, "render", json!({})))
            .await
            .unwrap();
        let (a, b) = (rig.client("a").await, rig.client("b").await);
        rig.sync(&a).await;
        rig.sync(&b).await;

        // A moves the task to a project B has never seen and deletes "doomed".
        let fresh = a
            .database()
            .projects()
            .create(NewProject::new(user, "fresh"))
            .await
            .unwrap();
        let mut moved = a.database().tasks().get(task.id).await.unwrap();
        moved.project_id = fresh.id;
        a.database().tasks().update(moved).await.unwrap();
        a.database().projects().delete(doomed.id).await.unwrap();
        rig.sync(&a).await;

        // B, not having pulled, moves the task to "doomed": refused, and the server's
        // version of the task points at "fresh", which comes with the answer.
        let mut moved = b.database().tasks().get(task.id).await.unwrap();
        moved.project_id = doomed.id;
        b.database().tasks().update(moved).await.unwrap();
        rig.sync(&b).await;

        assert_eq!(b.dead_letters().await.unwrap().len(), 1);
        assert_eq!(
            b.database().tasks().get(task.id).await.unwrap().project_id,
            fresh.id
        );
        rig.assert_converged(b.database()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_from_another_server_pulls_everything_again() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (project, client) = rig.synced_client("moved").await;
        // As if the replica had last pulled from a server far ahead of this one.
        sqlite_exec(
            client.database(),
            "UPDATE sync_state SET value = '9000000000000' WHERE key = 'pull_from'",
        )
        .await;
        let task = rig
            .server
            .tasks()
            .create(NewTask::queued(project, "render", json!({})))
            .await
            .unwrap();
        rig.sync(&client).await;
        assert!(client.database().tasks().get(task.id).await.is_ok());
        rig.assert_converged(client.database()).await;
    })
    .await;
}

/// Holds a timeline entry's parents FOR SHARE (as the server does before writing under
/// them) in an open transaction, writes the entry, and deletes the project meanwhile from
/// another connection: the delete's cascade waits at the shot, then takes the entry too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_written_while_its_project_is_deleted_goes_with_it() {
    run_postgres(|t| async move {
        let server = t.db.clone();
        let (_, project) = server_world(&server).await;
        let shot = server
            .shots()
            .create(NewShot::new(project, "opening"))
            .await
            .unwrap();
        let generation = server
            .generations()
            .create(
                NewGeneration::new(project)
                    .tasks(vec![])
                    .generation_type("image"),
            )
            .await
            .unwrap();

        let writer = server.begin().await.unwrap();
        // A timeline entry's parents are the shot and the generation, not the project.
        for (table, id) in [("shots", shot.id), ("generations", generation.id)] {
            writer
                .execute_raw(Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    format!(
                        "SELECT deleted FROM {table} WHERE id = '{}' FOR SHARE",
                        id.0
                    ),
                ))
                .await
                .unwrap();
        }
        let link = writer
            .shots()
            .add_to_timeline(shot.id, generation.id, None)
            .await
            .unwrap();

        let deleter = {
            let server = server.clone();
            tokio::spawn(async move { server.projects().delete(project).await })
        };
        // The delete is seen blocked on the writer's row locks, not merely not yet run.
        wait_until("the delete waits on a lock", || async {
            server_count(
                &server,
                "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await
                > 0
        })
        .await;
        assert!(!deleter.is_finished(), "the delete waits for the writer");
        writer.commit().await.unwrap();
        deleter.await.unwrap().unwrap();

        let live_links = server_count(
            &server,
            &format!(
                "SELECT count(*) AS n FROM shot_generations WHERE id = '{}' AND NOT deleted",
                link.id.0
            ),
        )
        .await;
        assert_eq!(live_links, 0, "a live timeline entry under a deleted shot");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_replica_reusing_sequence_numbers_is_refused_not_dropped() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (project, original) = rig.synced_client("original").await;
        let first = original
            .database()
            .tasks()
            .create(NewTask::queued(project, "render", json!({"n": 1})))
            .await
            .unwrap();
        // A copy of the database taken now (a backup, a second device): same client id,
        // the same first entry still in its outbox.
        let copy_path = tempfile::tempdir().unwrap();
        let copy_file = copy_path.path().join("copy.db");
        sqlite_exec(
            original.database(),
            &format!("VACUUM INTO '{}'", copy_file.display()),
        )
        .await;
        original
            .database()
            .tasks()
            .create(NewTask::queued(project, "render", json!({"n": 2})))
            .await
            .unwrap();
        rig.sync(&original).await;

        let copy = SyncClient::open(
            Database::connect(&Config::sqlite(&copy_file))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(copy.client_id(), original.client_id());
        let only_on_copy = copy
            .database()
            .tasks()
            .create(NewTask::queued(project, "render", json!({"n": 3})))
            .await
            .unwrap();
        // A push as such is refused (the engine then takes a new client id: see
        // sync_restore.rs).
        let err = copy
            .push_once(rig.transport.as_ref(), rig.options.batch)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                sync::SyncError::Transport(TransportError::Diverged { seq: 2 })
            ),
            "{err}"
        );
        assert_eq!(copy.pending().await.unwrap(), 2, "nothing is dropped");
        assert!(
            matches!(
                rig.server.tasks().get(only_on_copy.id).await,
                Err(DalError::NotFound { .. })
            ),
            "the copy's write reached the server"
        );
        assert!(rig.server.tasks().get(first.id).await.is_ok());
    })
    .await;
}

/// `(column, losing, winning)` of every recorded conflict, oldest first.
async fn conflicts(server: &Database) -> Vec<(String, String, String)> {
    server
        .query_all_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT column_name, losing_value::text AS losing, winning_value::text AS winning \
             FROM sync_conflicts ORDER BY id",
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.try_get("", "column_name").unwrap(),
                r.try_get("", "losing").unwrap(),
                r.try_get("", "winning").unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_is_recorded_for_exactly_the_columns_another_client_changed() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (_, project) = server_world(&rig.server).await;
        let task = rig
            .server
            .tasks()
            .create(NewTask::queued(project, "render", json!({"v": 0})))
            .await
            .unwrap();
        let (a, b) = (rig.client("a").await, rig.client("b").await);
        rig.sync(&a).await;
        rig.sync(&b).await;

        // A, offline, changes the type and then the params (both based on the same
        // version); B changes the params and syncs first.
        let mut on_a = a.database().tasks().get(task.id).await.unwrap();
        on_a.task_type = "upscale".into();
        let on_a = a.database().tasks().update(on_a).await.unwrap();
        let mut on_a = on_a;
        on_a.params = json!({"v": "a"});
        a.database().tasks().update(on_a).await.unwrap();
        let mut on_b = b.database().tasks().get(task.id).await.unwrap();
        on_b.params = json!({"v": "b"});
        b.database().tasks().update(on_b).await.unwrap();
        rig.sync(&b).await;
        rig.sync(&a).await;

        // Only the params were contested (B's lost to A's, which arrived later); the type
        // was A's alone, and A's second write is not A's own conflict.
        assert_eq!(
            conflicts(&rig.server).await,
            vec![(
                "params".to_owned(),
                r#""{\"v\":\"b\"}""#.to_owned(),
                r#""{\"v\":\"a\"}""#.to_owned()
            )]
        );
        let merged = rig.server.tasks().get(task.id).await.unwrap();
        assert_eq!(
            (merged.task_type.as_str(), merged.params),
            ("upscale", json!({"v": "a"}))
        );
    })
    .await;
}

/// Pages are ordered by the columns, not by their text: "1000" sorts before "999" as text,
/// and a page ending at 1000 would resume past 999 and skip it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_follow_transaction_ids_in_number_order_not_text_order() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (_, project) = server_world(&rig.server).await;
        let mut tasks = Vec::new();
        for n in 0..2 {
            tasks.push(
                rig.server
                    .tasks()
                    .create(NewTask::queued(project, "render", json!({"n": n})))
                    .await
                    .unwrap()
                    .id,
            );
        }
        // Transaction ids on either side of a power of ten, as a long-lived server has.
        for (table, txid, id) in [
            ("users", "5", None),
            ("projects", "5", None),
            ("tasks", "999", Some(tasks[0])),
            ("tasks", "1000", Some(tasks[1])),
        ] {
            let only = id.map_or(String::new(), |id| format!(" WHERE id = '{}'", id.0));
            rig.server
                .execute_unprepared(&format!(
                    "ALTER TABLE {table} DISABLE TRIGGER {table}_sync_stamp; \
                     UPDATE {table} SET sync_txid = '{txid}'{only}; \
                     ALTER TABLE {table} ENABLE TRIGGER {table}_sync_stamp"
                ))
                .await
                .unwrap();
        }
        let client = rig.client("pager").await;
        while !client.pull_once(rig.transport.as_ref(), 1).await.unwrap().1 {}
        for id in tasks {
            assert!(
                client.database().tasks().get(id).await.is_ok(),
                "task {id:?} skipped"
            );
        }
        rig.assert_converged(client.database()).await;
    })
    .await;
}
