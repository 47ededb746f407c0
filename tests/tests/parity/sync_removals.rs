//! Rows leaving replicas: rows deleted on the server by a writer that is not the sync
//! engine (plain SQL, as the web app's supabase-js or a DBA's psql sends it), `TRUNCATE`
//! refused, a project given to another user, and pulls scoped to a user that never carry
//! another user's rows.

use std::collections::BTreeSet;
use std::process::Command;

use async_trait::async_trait;
use dal::prelude::*;
use parity_tests::TestDb;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value as Json, json};
use sync::protocol::{PullPage, PullRequest, PushAck, PushBatch};
use sync::snapshot::{Snapshot, snapshot};
use sync::tables;
use sync::{Server, SyncClient, Transport, TransportError};
use uuid::Uuid;

use crate::sync::{Rig, run_postgres, server_world};

/// A transport whose pulls are made as one user, as an authenticating server makes them.
struct AsUser {
    server: Server,
    user: Uuid,
}

#[async_trait]
impl Transport for AsUser {
    async fn push(&self, batch: PushBatch) -> Result<PushAck, TransportError> {
        self.server.push(batch).await
    }

    async fn pull(&self, request: PullRequest) -> Result<PullPage, TransportError> {
        self.server.pull_as(self.user, request).await
    }
}

/// Runs `sql` on the server in a transaction of its own, as a writer that knows nothing
/// of sync would.
async fn server_sql(server: &Database, sql: &str) -> dal::Result<()> {
    let uow = server.begin().await?;
    uow.execute_unprepared(sql).await?;
    uow.commit().await
}

async fn server_value(server: &Database, sql: &str) -> Json {
    let uow = server.begin().await.unwrap();
    let row = uow
        .query_one_raw(Statement::from_string(sea_orm::DbBackend::Postgres, sql))
        .await
        .unwrap()
        .unwrap();
    let value: Json = row.try_get("", "v").unwrap();
    uow.rollback().await.unwrap();
    value
}

/// Runs `sql` with the `psql` client on the test's database, directly (not through
/// PgBouncer): what a DBA does. Returns whether it succeeded and its error output.
fn psql(t: &TestDb, sql: &str) -> (bool, String) {
    let url = t.direct_url.as_deref().expect("a direct URL on Postgres");
    let output = Command::new("psql")
        .args([
            "--no-psqlrc",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs (Debian package postgresql-client)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn pull_all(client: &SyncClient, transport: &dyn Transport, page: usize) {
    while !client.pull_once(transport, page).await.unwrap().1 {}
}

async fn push_all(client: &SyncClient, transport: &dyn Transport) {
    while client.push_once(transport, 50).await.unwrap() > 0 {}
}

/// Every page of the window from `from` (as `user`, or of everyone), and its end.
async fn read_window(
    server: &Server,
    user: Option<Id>,
    from: u64,
    limit: usize,
) -> (Vec<PullPage>, u64) {
    let mut request = PullRequest {
        from_txid: from,
        limit,
        ..PullRequest::default()
    };
    let mut pages = Vec::new();
    loop {
        let page = match user {
            Some(user) => server.pull_as(user.0, request.clone()).await,
            None => server.pull(request.clone()).await,
        }
        .unwrap();
        let (next, to) = (page.next, page.to_txid);
        pages.push(page);
        match next {
            Some(next) => {
                request.to_txid = Some(to);
                request.after = Some(next);
            }
            None => return (pages, to),
        }
    }
}

/// What a transport would carry of `pages`.
fn bytes(pages: &[PullPage]) -> String {
    pages
        .iter()
        .map(|page| serde_json::to_string(page).unwrap())
        .collect()
}

/// The user owning a row of `snapshot`: the walk up its first parents.
fn owner(snapshot: &Snapshot, table: &str, id: &str) -> Option<String> {
    let spec = tables::table(table)?;
    let Some(parent) = spec.parents.first() else {
        return Some(id.to_owned());
    };
    let row = snapshot.get(&(table.to_owned(), id.to_owned()))?;
    let parent_id = row.get(parent.column)?.as_str()?;
    owner(snapshot, parent.table, parent_id)
}

/// The rows of `snapshot` that `user` owns.
fn owned_by(snapshot: &Snapshot, user: Uuid) -> Snapshot {
    snapshot
        .iter()
        .filter(|((table, id), _)| owner(snapshot, table, id) == Some(user.to_string()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The ids of the rows of `snapshot` under project `project` (and the project).
fn under(snapshot: &Snapshot, project: Id) -> BTreeSet<(String, String)> {
    fn reaches(snapshot: &Snapshot, table: &str, id: &str, project: &str) -> bool {
        if table == "projects" {
            return id == project;
        }
        let Some(row) = snapshot.get(&(table.to_owned(), id.to_owned())) else {
            return false;
        };
        tables::table(table).unwrap().parents.iter().any(|p| {
            row.get(p.column)
                .and_then(Json::as_str)
                .is_some_and(|parent| reaches(snapshot, p.table, parent, project))
        })
    }
    snapshot
        .keys()
        .filter(|(table, id)| reaches(snapshot, table, id, &project.to_string()))
        .cloned()
        .collect()
}

/// A project of `user` with two tasks, a shot and a generation on its timeline:
/// `(project, [task, task])`.
async fn project_with_rows(db: &Database, user: Id, name: &str) -> (Id, [Id; 2]) {
    let project = db
        .projects()
        .create(NewProject::new(user, name))
        .await
        .unwrap()
        .id;
    let mut tasks = [Id(Uuid::nil()); 2];
    for (i, task) in tasks.iter_mut().enumerate() {
        *task = db
            .tasks()
            .create(NewTask::queued(project, "render", json!({ "n": i })))
            .await
            .unwrap()
            .id;
    }
    let shot = db
        .shots()
        .create(NewShot::new(project, format!("{name} shot")))
        .await
        .unwrap();
    let generation = db
        .generations()
        .create(NewGeneration::new(project).tasks(vec![tasks[0]]))
        .await
        .unwrap();
    db.shots()
        .add_to_timeline(shot.id, generation.id, None)
        .await
        .unwrap();
    (project, tasks)
}

/// What `b` keeps waiting: an edit of `task` and a new task, both under `project`.
async fn pending_edits(b: &SyncClient, project: Id, task: Id) -> Id {
    let mut edited = b.database().tasks().get(task).await.unwrap();
    edited.params = json!({"edited": "offline"});
    b.database().tasks().update(edited).await.unwrap();
    let new = b
        .database()
        .tasks()
        .create(NewTask::queued(project, "render", json!({"new": true})))
        .await
        .unwrap()
        .id;
    assert_eq!(b.pending().await.unwrap(), 2);
    new
}

/// After the delete of `project`: no replica and not the server has a row under it, the
/// pending edits are dead letters and nothing else, and the server's bookkeeping for `b`
/// accounts for every entry once.
async fn assert_project_gone(rig: &Rig, replicas: [&SyncClient; 2], project: Id, new_task: Id) {
    let server = rig.server_snapshot().await;
    assert!(
        under(&server, project).is_empty(),
        "the server resurrected rows"
    );
    assert!(!server.contains_key(&("tasks".into(), new_task.to_string())));
    for replica in replicas {
        let local = snapshot(replica.database()).await.unwrap();
        assert!(
            under(&local, project).is_empty(),
            "a replica kept rows: {:?}",
            under(&local, project)
        );
        assert_eq!(local, server);
        assert_eq!(replica.pending().await.unwrap(), 0);
    }
    let b = replicas[1];
    let dead = b.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 2, "{dead:#?}");
    assert_eq!(dead[0].op, "update");
    assert!(
        dead[0].reason.contains("does not exist on the server"),
        "{dead:#?}"
    );
    assert_eq!(dead[1].op, "insert");
    assert_eq!(dead[1].row_id, new_task.to_string());
    assert!(
        dead[1].reason.contains("parent row does not exist"),
        "{dead:#?}"
    );
    // Every entry of `b` settled once: the log holds 1..=last_seq without gaps, the two
    // refused ones among them.
    let client = b.client_id();
    let last = server_value(
        &rig.server,
        &format!("SELECT to_jsonb(last_seq) AS v FROM sync_clients WHERE client_id = '{client}'"),
    )
    .await;
    let log = server_value(
        &rig.server,
        &format!(
            "SELECT jsonb_agg(jsonb_build_array(seq, outcome) ORDER BY seq) AS v FROM sync_log WHERE client_id = '{client}'"
        ),
    )
    .await;
    let log = log.as_array().unwrap();
    assert_eq!(Some(log.len() as i64), last.as_i64());
    for (i, entry) in log.iter().enumerate() {
        assert_eq!(entry[0].as_i64(), Some(i as i64 + 1));
    }
    let refused: Vec<i64> = log
        .iter()
        .filter(|e| e[1].as_str().unwrap().starts_with("rejected"))
        .map(|e| e[0].as_i64().unwrap())
        .collect();
    assert_eq!(refused, dead.iter().map(|d| d.seq).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_sql_delete_of_a_project_leaves_every_replica() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (user, _) = server_world(&rig.server).await;
        let (project, tasks) = project_with_rows(&rig.server, user, "doomed").await;
        let (kept, _) = project_with_rows(&rig.server, user, "kept").await;
        let (a, b) = (rig.client("a").await, rig.client("b").await);
        rig.sync(&a).await;
        rig.sync(&b).await;
        assert_eq!(
            under(&snapshot(a.database()).await.unwrap(), project).len(),
            6
        );
        let new_task = pending_edits(&b, project, tasks[0]).await;

        // A generation on a timeline of the kept project: its timeline entry goes with it.
        server_sql(
            &rig.server,
            &format!("DELETE FROM generations WHERE project_id = '{kept}'"),
        )
        .await
        .unwrap();
        // What supabase-js's `.delete()` sends: one plain statement.
        server_sql(
            &rig.server,
            &format!("DELETE FROM projects WHERE id = '{project}'"),
        )
        .await
        .unwrap();

        // B pushes first (its edits are refused: their rows and parent are gone), then
        // pulls the removals.
        rig.sync(&a).await;
        rig.sync(&b).await;
        assert_project_gone(&rig, [&a, &b], project, new_task).await;
        assert_eq!(
            a.database().projects().get(kept).await.unwrap().name,
            "kept"
        );
        // The project, its two tasks and its shot; no generation, no timeline entry.
        assert_eq!(under(&snapshot(a.database()).await.unwrap(), kept).len(), 4);
        // Nothing comes back on later rounds.
        rig.sync(&b).await;
        rig.sync(&a).await;
        assert_project_gone(&rig, [&a, &b], project, new_task).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psql_delete_reaches_a_replica_whose_edits_under_it_are_still_waiting() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (user, _) = server_world(&rig.server).await;
        let (project, tasks) = project_with_rows(&rig.server, user, "doomed").await;
        let (a, b) = (rig.client("a").await, rig.client("b").await);
        rig.sync(&a).await;
        rig.sync(&b).await;
        let new_task = pending_edits(&b, project, tasks[1]).await;

        let (ok, stderr) = psql(&t, &format!("DELETE FROM projects WHERE id = '{project}'"));
        assert!(ok, "{stderr}");

        // B pulls before it pushes: the project and everything under it go, its own
        // waiting edits included, while the edits stay in the outbox.
        pull_all(&b, rig.transport.as_ref(), 3).await;
        assert!(under(&snapshot(b.database()).await.unwrap(), project).is_empty());
        assert_eq!(b.pending().await.unwrap(), 2);
        // Pushed now, they cannot bring anything back.
        push_all(&b, rig.transport.as_ref()).await;
        rig.sync(&b).await;
        rig.sync(&a).await;
        assert_project_gone(&rig, [&a, &b], project, new_task).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_are_paged_with_the_window() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (user, project) = server_world(&rig.server).await;
        for n in 0..23 {
            rig.server
                .tasks()
                .create(NewTask::queued(project, "render", json!({ "n": n })))
                .await
                .unwrap();
        }
        let a = rig.client("a").await;
        rig.sync(&a).await;
        let (_, from) = read_window(&Server::new(rig.server.clone()), None, 0, 100).await;
        // A delete of one row among many, of the others in one statement, and of the
        // user with their project: each row a statement names is logged, what a cascade
        // took with it is not (the replica's own cascade takes it).
        for sql in [
            "DELETE FROM tasks WHERE id = (SELECT id FROM tasks ORDER BY id LIMIT 1)".to_owned(),
            format!("DELETE FROM tasks WHERE project_id = '{project}' AND id IN (SELECT id FROM tasks ORDER BY id LIMIT 20)"),
            format!("DELETE FROM users WHERE id = '{user}'"),
        ] {
            server_sql(&rig.server, &sql).await.unwrap();
        }
        let server = Server::new(rig.server.clone());
        let (pages, _) = read_window(&server, None, from, 4).await;
        let mut removed = Vec::new();
        for page in pages {
            assert!(page.rows.len() + page.removed.len() <= 4, "{page:?}");
            removed.extend(page.removed);
        }
        assert_eq!(removed.len(), 22, "{removed:?}");
        assert_eq!(removed.iter().collect::<BTreeSet<_>>().len(), 22);
        assert_eq!(removed.last().unwrap(), &("users".to_owned(), user.0));

        // A first pull has none: there is nothing to remove.
        let (first, _) = read_window(&Server::new(rig.server.clone()), None, 0, 4).await;
        assert!(first.iter().all(|page| page.removed.is_empty()));
        let b = rig.client("b").await;
        rig.sync(&b).await;
        pull_all(&a, rig.transport.as_ref(), 4).await;
        assert!(snapshot(a.database()).await.unwrap().is_empty());
        rig.assert_converged(a.database()).await;
        rig.assert_converged(b.database()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_of_a_synced_table_is_refused_with_a_clear_error() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (_, project) = server_world(&rig.server).await;
        rig.server
            .tasks()
            .create(NewTask::queued(project, "render", json!({})))
            .await
            .unwrap();
        let before = rig.server_snapshot().await;
        let error = server_sql(&rig.server, "TRUNCATE tasks")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("TRUNCATE of synced table tasks is refused")
                && error.contains("DELETE FROM tasks"),
            "{error}"
        );
        let (ok, stderr) = psql(&t, "TRUNCATE users CASCADE");
        assert!(!ok);
        assert!(
            stderr.contains("TRUNCATE of synced table users is refused"),
            "{stderr}"
        );
        assert_eq!(rig.server_snapshot().await, before);
    })
    .await;
}

/// Syncs each replica through its user's transport, then checks it holds exactly its
/// user's rows of the server; returns the server's rows.
async fn sync_both(rig: &Rig, replicas: [(&SyncClient, &AsUser); 2]) -> Snapshot {
    for (replica, transport) in replicas {
        sync::engine::sync_once(replica, transport, &rig.options)
            .await
            .unwrap();
    }
    let all = rig.server_snapshot().await;
    for (replica, transport) in replicas {
        assert_eq!(
            snapshot(replica.database()).await.unwrap(),
            owned_by(&all, transport.user)
        );
    }
    all
}

/// Rows, versions and local versions of every row under `project` on the server.
async fn versions_under(server: &Database, project: Id) -> Json {
    server_value(
        server,
        &format!(
            "SELECT jsonb_agg(jsonb_build_array(id, sync_version, row_version) ORDER BY id) AS v FROM ( \
               SELECT id, sync_version, row_version FROM tasks WHERE project_id = '{project}' \
               UNION ALL SELECT id, sync_version, row_version FROM shots WHERE project_id = '{project}' \
               UNION ALL SELECT id, sync_version, row_version FROM generations WHERE project_id = '{project}' \
               UNION ALL SELECT l.id, l.sync_version, l.row_version FROM shot_generations l \
                 JOIN shots s ON s.id = l.shot_id WHERE s.project_id = '{project}') r"
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_given_to_another_user_moves_between_their_replicas() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let server = Server::new(rig.server.clone());
        let ada = rig
            .server
            .users()
            .create(NewUser::new().display_name("Ada"))
            .await
            .unwrap()
            .id;
        let bob = rig
            .server
            .users()
            .create(NewUser::new().display_name("Bob"))
            .await
            .unwrap()
            .id;
        let (project, _) = project_with_rows(&rig.server, ada, "handed over").await;
        project_with_rows(&rig.server, bob, "bob's own").await;
        let as_ada = AsUser {
            server: server.clone(),
            user: ada.0,
        };
        let as_bob = AsUser {
            server: server.clone(),
            user: bob.0,
        };
        let (a, b) = (rig.client("ada").await, rig.client("bob").await);
        let all = sync_both(&rig, [(&a, &as_ada), (&b, &as_bob)]).await;
        assert_eq!(
            under(&snapshot(a.database()).await.unwrap(), project).len(),
            6
        );
        assert!(under(&snapshot(b.database()).await.unwrap(), project).is_empty());

        // Given to Bob by a plain update: the rows under it keep their versions.
        let versions = versions_under(&rig.server, project).await;
        server_sql(
            &rig.server,
            &format!("UPDATE projects SET user_id = '{bob}' WHERE id = '{project}'"),
        )
        .await
        .unwrap();
        assert_eq!(versions_under(&rig.server, project).await, versions);
        let moved = sync_both(&rig, [(&a, &as_ada), (&b, &as_bob)]).await;
        assert!(under(&snapshot(a.database()).await.unwrap(), project).is_empty());
        assert_eq!(
            under(&snapshot(b.database()).await.unwrap(), project),
            under(&all, project)
        );

        // And back, by psql; Bob edits nothing meanwhile, nothing conflicts.
        let (ok, stderr) = psql(
            &t,
            &format!("UPDATE projects SET user_id = '{ada}' WHERE id = '{project}'"),
        );
        assert!(ok, "{stderr}");
        sync_both(&rig, [(&a, &as_ada), (&b, &as_bob)]).await;
        assert!(under(&snapshot(b.database()).await.unwrap(), project).is_empty());
        assert_eq!(
            under(&snapshot(a.database()).await.unwrap(), project),
            under(&moved, project)
        );
        assert_eq!(
            server_value(
                &rig.server,
                "SELECT to_jsonb(count(*)) AS v FROM sync_conflicts"
            )
            .await,
            json!(0)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_as_a_user_never_carries_another_users_rows() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let server = Server::new(rig.server.clone());
        let ada = rig
            .server
            .users()
            .create(NewUser::new().display_name("Ada Visible"))
            .await
            .unwrap()
            .id;
        let bob = rig
            .server
            .users()
            .create(NewUser::new().display_name("Bob Hidden"))
            .await
            .unwrap()
            .id;
        let (ada_project, ada_tasks) = project_with_rows(&rig.server, ada, "ada-project").await;
        let (bob_project, bob_tasks) = project_with_rows(&rig.server, bob, "bob-project").await;
        let (_, from) = read_window(&server, None, 0, 100).await;
        // After that window: a removal of each user's, a task of each, and a project of
        // Bob's moved to Ada's... and one of Ada's moved to Bob, which Ada must lose
        // without learning where it went.
        for task in [ada_tasks[1], bob_tasks[1]] {
            server_sql(
                &rig.server,
                &format!("DELETE FROM tasks WHERE id = '{task}'"),
            )
            .await
            .unwrap();
        }
        let ada_new = rig
            .server
            .tasks()
            .create(NewTask::queued(
                ada_project,
                "render",
                json!({"ada": "open"}),
            ))
            .await
            .unwrap()
            .id;
        rig.server
            .tasks()
            .create(NewTask::queued(
                bob_project,
                "render",
                json!({"bob": "secret"}),
            ))
            .await
            .unwrap();
        let (given, _) = project_with_rows(&rig.server, ada, "given-away").await;
        server_sql(
            &rig.server,
            &format!("UPDATE projects SET user_id = '{bob}' WHERE id = '{given}'"),
        )
        .await
        .unwrap();

        let all = rig.server_snapshot().await;
        let bobs: Vec<String> = owned_by(&all, bob.0)
            .keys()
            .map(|(_, id)| id.clone())
            .chain([
                bob_tasks[1].to_string(),
                "Bob Hidden".into(),
                "bob-project".into(),
                "secret".into(),
                bob.to_string(),
            ])
            .collect();
        assert!(bobs.contains(&given.to_string()));
        for page_size in [1, 3, 100] {
            // The whole history, and the window after `from` with its removals.
            let (full, _) = read_window(&server, Some(ada), 0, page_size).await;
            let (recent, _) = read_window(&server, Some(ada), from, page_size).await;
            let removed: Vec<_> = recent.iter().flat_map(|p| p.removed.clone()).collect();
            assert_eq!(
                removed,
                vec![
                    ("tasks".to_owned(), ada_tasks[1].0),
                    ("projects".to_owned(), given.0)
                ],
                "page size {page_size}"
            );
            for (scoped, expected) in [
                (
                    bytes(&full),
                    vec![
                        ada.to_string(),
                        ada_project.to_string(),
                        ada_tasks[0].to_string(),
                        ada_new.to_string(),
                    ],
                ),
                (
                    bytes(&recent),
                    vec![
                        ada_tasks[1].to_string(),
                        ada_new.to_string(),
                        given.to_string(),
                    ],
                ),
            ] {
                for id in &bobs {
                    // The project given away is Ada's removal to read, under its id.
                    if *id == given.to_string() && expected.contains(id) {
                        continue;
                    }
                    assert!(
                        !scoped.contains(id.as_str()),
                        "page size {page_size}: {id} in {scoped}"
                    );
                }
                for id in &expected {
                    assert!(
                        scoped.contains(id.as_str()),
                        "page size {page_size}: {id} missing in {scoped}"
                    );
                }
            }
            // The unscoped pull has them: the check above can fail.
            let (full, _) = read_window(&server, None, 0, page_size).await;
            let (recent, _) = read_window(&server, None, from, page_size).await;
            let unscoped = bytes(&full) + &bytes(&recent);
            assert!(bobs.iter().all(|id| unscoped.contains(id.as_str())));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_by_the_web_app_as_its_user_reaches_that_users_replica() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let server = Server::new(rig.server.clone());
        let ada = rig.server.users().create(NewUser::new()).await.unwrap().id;
        let bob = rig.server.users().create(NewUser::new()).await.unwrap().id;
        let (kept, [task, _]) = project_with_rows(&rig.server, ada, "kept").await;
        let (doomed, _) = project_with_rows(&rig.server, ada, "doomed").await;
        let (bobs, _) = project_with_rows(&rig.server, bob, "bob's").await;
        let as_ada = AsUser { server: server.clone(), user: ada.0 };
        let as_bob = AsUser { server, user: bob.0 };
        let (a, b) = (rig.client("ada").await, rig.client("bob").await);
        sync_both(&rig, [(&a, &as_ada), (&b, &as_bob)]).await;

        // What supabase-js sends for Ada: plain deletes under row-level security as her.
        let uow = rig.server.begin_as_user(ada).await.unwrap();
        uow.execute_unprepared(&format!("DELETE FROM tasks WHERE id = '{task}'")).await.unwrap();
        uow.execute_unprepared(&format!("DELETE FROM projects WHERE id = '{doomed}'")).await.unwrap();
        uow.commit().await.unwrap();
        // She cannot log a removal for Bob's replica.
        let uow = rig.server.begin_as_user(ada).await.unwrap();
        let forged = uow
            .execute_unprepared(&format!(
                "INSERT INTO sync_removals (table_name, row_id, owner_id, reason) VALUES ('projects', '{bobs}', '{bob}', 'deleted')"
            ))
            .await;
        assert!(forged.is_err());
        drop(uow);

        sync_both(&rig, [(&a, &as_ada), (&b, &as_bob)]).await;
        let local = snapshot(a.database()).await.unwrap();
        assert!(under(&local, doomed).is_empty());
        assert!(!local.contains_key(&("tasks".into(), task.to_string())));
        assert_eq!(under(&local, kept).len(), 5);
        assert_eq!(under(&snapshot(b.database()).await.unwrap(), bobs).len(), 6);
    })
    .await;
}
