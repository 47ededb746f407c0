//! Restoring a replica that syncs, through the HTTP sync server: the restored replica
//! takes a new client id over `POST /v1/settled` and goes on syncing exactly once; only
//! the user a client id is bound to learns anything about it.

use std::sync::Arc;

use dal::prelude::*;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use sync::http::SETTLED_PATH;
use sync::protocol::{SettledQuery, SettledReply};
use sync::snapshot::snapshot;
use sync::{SyncEngine, Transport, TransportError};
use sync_server::Limits;
use uuid::Uuid;

use crate::sync::{run_postgres, server_world};
use crate::sync_http::{HttpRig, token_for};
use crate::sync_restore::{assert_exactly_once, back_up, create_task, edit_task, open_file};

/// `(seq, digest)` of every entry the server logged for `client`.
async fn logged(server: &Database, client: Uuid) -> Vec<(i64, String)> {
    server
        .query_all_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT seq, entry_digest FROM sync_log WHERE client_id = '{client}' ORDER BY seq"
            ),
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.try_get("", "seq").unwrap(),
                r.try_get("", "entry_digest").unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_http_a_restored_replica_goes_on_syncing_exactly_once() {
    run_postgres(|t| async move {
        let rig = HttpRig::start(&t).await;
        let (user, project) = server_world(&rig.server).await;
        let backups = tempfile::tempdir().unwrap();
        let backup = backups.path().join("backup.db");
        let a = rig.client("a").await;
        let b = rig.client("b").await;
        rig.sync(&a, user).await;
        rig.sync(&b, user).await;

        let w1 = create_task(&a, project, 1).await;
        rig.sync(&a, user).await;
        let w2 = create_task(&a, project, 2).await;
        back_up(&a, &backup).await;
        let w3 = create_task(&a, project, 3).await;
        rig.sync(&a, user).await;
        let w4 = create_task(&b, project, 4).await;
        rig.sync(&b, user).await;

        // Restored, it writes and its engine syncs: `Diverged`, a new id, then on.
        let restored = open_file(&backup).await;
        let old_id = restored.client_id();
        let w5 = create_task(&restored, project, 5).await;
        edit_task(&restored, w1, 6).await;
        let engine = SyncEngine::start(
            restored.clone(),
            Arc::new(rig.transport(user)),
            rig.options.clone(),
        );
        engine.sync_now().await.unwrap();
        let status = engine.status().await;
        let record = status.reidentified.expect("a new client id");
        assert_eq!(record.from, old_id);
        assert_eq!((record.already_on_server, record.requeued), (1, 2));
        assert_eq!((status.pending, status.last_error), (0, None));
        create_task(&restored, project, 7).await;
        engine.sync_now().await.unwrap();
        engine.shutdown().await;
        rig.sync(&a, user).await;
        rig.sync(&b, user).await;

        assert_exactly_once(&rig.server, 7).await;
        for (task, params) in [
            (w1, json!({"edit": 6})),
            (w2, json!({"n": 2})),
            (w3, json!({"n": 3})),
            (w4, json!({"n": 4})),
            (w5, json!({"n": 5})),
        ] {
            assert_eq!(rig.server.tasks().get(task).await.unwrap().params, params);
        }
        let server = snapshot(&rig.server).await.unwrap();
        for replica in [&restored, &a, &b] {
            assert_eq!(snapshot(replica.database()).await.unwrap(), server);
        }
        let (clients, _) = rig.bookkeeping().await;
        assert_eq!(clients, 3, "a, b and the restored replica's new id");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_http_only_the_owner_of_a_client_id_learns_what_the_server_has_of_it() {
    run_postgres(|t| async move {
        let rig = HttpRig::start(&t).await;
        let (user, project) = server_world(&rig.server).await;
        let stranger = Id(Uuid::new_v4());
        let a = rig.client("a").await;
        rig.sync(&a, user).await;
        create_task(&a, project, 1).await;
        create_task(&a, project, 2).await;
        rig.sync(&a, user).await;
        let entries = logged(&rig.server, a.client_id()).await;
        assert_eq!(entries.len(), 2);
        let question = |client_id| SettledQuery {
            client_id,
            entries: entries.clone(),
        };

        // The owner learns which entries the server has, and the rows they wrote.
        let owner = rig
            .transport(user)
            .settled(question(a.client_id()))
            .await
            .unwrap();
        assert_eq!(owner.settled, vec![1, 2]);
        assert_eq!(
            owner.rows.len(),
            2 + 2,
            "the two tasks after their project and user"
        );
        // A digest that does not match is not settled.
        let mut wrong = question(a.client_id());
        wrong.entries[1].1 = "0".repeat(64);
        let partly = rig.transport(user).settled(wrong).await.unwrap();
        assert_eq!(partly.settled, vec![1]);

        // Another user, asking about that client id, gets exactly what anyone gets for an
        // unknown one, byte for byte; and asking binds nothing.
        let before = rig.bookkeeping().await;
        let ask = |client: Uuid| {
            let body = serde_json::to_vec(&question(client)).unwrap();
            let token = token_for(stranger);
            let rig = &rig;
            async move { rig.post(SETTLED_PATH, Some(&token), body, false).await }
        };
        let foreign = ask(a.client_id()).await;
        let unknown = ask(Uuid::new_v4()).await;
        assert_eq!(foreign, unknown);
        assert_eq!(foreign.0, 200);
        let reply: SettledReply = serde_json::from_slice(&foreign.1).unwrap();
        assert_eq!(reply, SettledReply::default());
        assert_eq!(
            rig.bookkeeping().await,
            before,
            "a question binds no client id"
        );
        // The owner asking about an id never used gets the same empty answer too.
        let never = rig.transport(user).settled(question(Uuid::new_v4())).await;
        assert_eq!(never.unwrap(), SettledReply::default());

        // Without a good token: 401, before the body is read.
        let (status, _) = rig
            .post(
                SETTLED_PATH,
                None,
                serde_json::to_vec(&question(a.client_id())).unwrap(),
                false,
            )
            .await;
        assert_eq!(status, 401);
        // Not a question: 400.
        let (status, _) = rig
            .post(
                SETTLED_PATH,
                Some(&token_for(user)),
                b"{\"client_id\": 7}".to_vec(),
                false,
            )
            .await;
        assert_eq!(status, 400);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_http_a_server_with_a_low_limit_is_asked_in_smaller_chunks() {
    run_postgres(|t| async move {
        let limits = Limits {
            batch_entries: 3,
            ..Limits::default()
        };
        let rig = HttpRig::with_limits(&t, limits).await;
        let (user, project) = server_world(&rig.server).await;
        let backups = tempfile::tempdir().unwrap();
        let backup = backups.path().join("backup.db");
        let a = rig.client("a").await;
        rig.sync(&a, user).await;
        for n in 0..7 {
            create_task(&a, project, n).await;
        }
        back_up(&a, &backup).await;
        let options = sync::SyncOptions {
            batch: 3,
            ..rig.options.clone()
        };
        let transport = rig.transport(user);
        sync::engine::sync_once(&a, &transport, &options)
            .await
            .unwrap();
        create_task(&a, project, 100).await;
        sync::engine::sync_once(&a, &transport, &options)
            .await
            .unwrap();

        // A question over the limit is refused as too large...
        let restored = open_file(&backup).await;
        let too_many = SettledQuery {
            client_id: restored.client_id(),
            entries: logged(&rig.server, restored.client_id()).await,
        };
        let err = transport.settled(too_many).await.unwrap_err();
        assert!(matches!(err, TransportError::TooLarge(_)), "{err}");
        // ...so the replica asks about fewer at a time, and recovers. (Its first two
        // batches hold only writes the server has, and settle as retries; the third
        // diverges, and the question then names five entries.)
        for n in 200..204 {
            create_task(&restored, project, n).await;
        }
        sync::engine::sync_once(&restored, &transport, &options)
            .await
            .unwrap();
        let record = restored.last_reidentified().await.unwrap().unwrap();
        assert_eq!((record.already_on_server, record.requeued), (1, 4));
        assert_exactly_once(&rig.server, 8 + 4).await;
        assert_eq!(
            snapshot(restored.database()).await.unwrap(),
            snapshot(&rig.server).await.unwrap()
        );
    })
    .await;
}
