//! Pushes applied on behalf of an authenticated user ([`sync::Server::push_as`]): the
//! rows are written under the row-level security policies as that user, so a write
//! outside the user's rows is refused for that entry alone, gives away nothing about
//! other users' rows, and the rows sent back are only the user's.

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use dal::prelude::*;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use sync::engine::sync_once;
use sync::protocol::{PullPage, PullRequest, PushAck, PushBatch};
use sync::{Server, SyncOptions, Transport, TransportError};
use uuid::Uuid;

use crate::sync::{Rig, run_postgres};

/// Pushes as `user` (as a sync server does for the user its token names) and keeps every
/// acknowledgement; pulls are not scoped (so the replica learns other users' row ids,
/// and can try to write them).
struct AsUser {
    server: Server,
    user: Uuid,
    acks: Mutex<Vec<PushAck>>,
}

#[async_trait]
impl Transport for AsUser {
    async fn push(&self, batch: PushBatch) -> Result<PushAck, TransportError> {
        let ack = self.server.push_as(self.user, batch).await?;
        self.acks.lock().unwrap().push(ack.clone());
        Ok(ack)
    }

    async fn pull(&self, request: PullRequest) -> Result<PullPage, TransportError> {
        self.server.pull(request).await
    }
}

async fn scalar_i64(db: &Database, sql: &str, id: Id) -> i64 {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            sql,
            [id.0.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_as_a_user_writes_only_that_users_rows() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let server = &rig.server;
        // Two users, each with a project and tasks, made on the server.
        let user_a = server.users().create(NewUser::new()).await.unwrap().id;
        let user_b = server.users().create(NewUser::new()).await.unwrap().id;
        let project_a = server
            .projects()
            .create(NewProject::new(user_a, "A's"))
            .await
            .unwrap()
            .id;
        let project_b = server
            .projects()
            .create(NewProject::new(user_b, "B's"))
            .await
            .unwrap()
            .id;
        let task = |project| NewTask::queued(project, "render", json!({"v": 0}));
        let edited_a = server.tasks().create(task(project_a)).await.unwrap().id;
        let deleted_a = server.tasks().create(task(project_a)).await.unwrap().id;
        let vanished_a = server.tasks().create(task(project_a)).await.unwrap().id;
        let edited_b = server.tasks().create(task(project_b)).await.unwrap().id;
        let deleted_b = server.tasks().create(task(project_b)).await.unwrap().id;
        let b_rows: HashSet<Uuid> = [user_b, project_b, edited_b, deleted_b]
            .iter()
            .map(|id| id.0)
            .collect();

        let transport = AsUser {
            server: Server::new(server.clone()),
            user: user_a.0,
            acks: Mutex::new(Vec::new()),
        };
        let options = SyncOptions::default();
        let a = rig.client("a").await;
        sync_once(&a, &transport, &options).await.unwrap();
        // A's task disappears from the server (not through sync): A's update of it is
        // an update of a row that does not exist.
        server
            .execute_raw(Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "DELETE FROM tasks WHERE id = $1",
                [vanished_a.0.into()],
            ))
            .await
            .unwrap();

        let local = a.database();
        let first = local.tasks().create(task(project_a)).await.unwrap().id;
        let edit = |id| async move {
            let mut row = local.tasks().get(id).await.unwrap();
            row.params = json!({"v": 1});
            local.tasks().update(row).await.unwrap();
        };
        edit(edited_b).await;
        local.tasks().delete(deleted_b).await.unwrap();
        let intruder = local.tasks().create(task(project_b)).await.unwrap().id;
        let foreign_project = local
            .projects()
            .create(NewProject::new(user_b, "planted"))
            .await
            .unwrap()
            .id;
        edit(vanished_a).await;
        edit(edited_a).await;
        local.tasks().delete(deleted_a).await.unwrap();
        let last = local.tasks().create(task(project_a)).await.unwrap().id;
        sync_once(&a, &transport, &options).await.unwrap();

        // The writes outside A's rows are dead letters, each alone.
        let dead = a.dead_letters().await.unwrap();
        let dead_ids: Vec<String> = dead.iter().map(|d| d.row_id.clone()).collect();
        let expected: Vec<String> = [edited_b, intruder, foreign_project, vanished_a]
            .iter()
            .map(|id| id.0.to_string())
            .collect();
        assert_eq!(dead_ids, expected, "{dead:?}");
        // Another user's row is refused exactly as a row that does not exist is.
        let missing = |id: Id| {
            format!(
                "rejected: {}",
                DalError::sync_refused(dal::SyncRefusal::RowMissing {
                    table: "tasks".into(),
                    id: id.0,
                })
            )
        };
        assert_eq!(dead[0].reason, missing(edited_b));
        assert_eq!(dead[3].reason, missing(vanished_a));
        for refused in &dead[1..3] {
            assert!(
                refused.reason.starts_with("rejected: "),
                "{}",
                refused.reason
            );
        }
        assert_eq!(a.pending().await.unwrap(), 0);

        // B's rows are as they were; A's writes applied, with the server's stamps (the
        // triggers ran as the user too).
        let b_task = server.tasks().get(edited_b).await.unwrap();
        assert_eq!(b_task.params, json!({"v": 0}));
        server.tasks().get(deleted_b).await.unwrap();
        assert!(matches!(
            server.tasks().get(intruder).await,
            Err(DalError::NotFound { .. })
        ));
        assert!(matches!(
            server.projects().get(foreign_project).await,
            Err(DalError::NotFound { .. })
        ));
        assert_eq!(
            server.tasks().get(edited_a).await.unwrap().params,
            json!({"v": 1})
        );
        assert!(matches!(
            server.tasks().get(deleted_a).await,
            Err(DalError::NotFound { .. })
        ));
        for id in [first, last] {
            server.tasks().get(id).await.unwrap();
            let version = "SELECT sync_version FROM tasks WHERE id = $1";
            assert_eq!(scalar_i64(server, version, id).await, 1);
        }
        let versions = "SELECT sync_version + row_version FROM tasks WHERE id = $1";
        assert_eq!(scalar_i64(server, versions, edited_a).await, 4);
        let tombstone = "SELECT count(*) FROM tasks WHERE id = $1 AND deleted";
        assert_eq!(scalar_i64(server, tombstone, deleted_a).await, 1);
        // The delete of B's task did nothing, as one of a row already gone.
        let outcome = server
            .query_one_raw(Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT outcome FROM sync_log WHERE row_id = $1",
                [deleted_b.0.into()],
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            outcome.try_get_by_index::<String>(0).unwrap(),
            "noop: already gone"
        );

        // No acknowledgement carried a row of B's.
        let acks = transport.acks.lock().unwrap().clone();
        assert!(!acks.is_empty());
        for ack in &acks {
            for (table, id, row) in &ack.rows {
                assert!(
                    row.is_none() || !b_rows.contains(id),
                    "B's row {table} {id} was sent to A"
                );
            }
        }
        // The bookkeeping is the server's alone.
        for table in ["sync_clients", "sync_log", "sync_conflicts"] {
            let row = server
                .query_one_raw(Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    format!(
                        "SELECT has_table_privilege('authenticated', '{table}', 'SELECT') \
                         OR has_table_privilege('authenticated', '{table}', 'INSERT')"
                    ),
                ))
                .await
                .unwrap()
                .unwrap();
            assert!(!row.try_get_by_index::<bool>(0).unwrap(), "{table}");
        }
    })
    .await;
}
