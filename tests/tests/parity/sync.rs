//! Offline-first sync: local SQLite replicas and the Postgres server (the real server of
//! the suite), through the direct transport or a fault-injecting wrapper around it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dal::DalError;
use dal::prelude::*;
use parity_tests::{Setup, TestDb};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set, Statement};
use serde_json::json;
use sync::engine::sync_once;
use sync::protocol::{PullPage, PullRequest, PushAck, PushBatch, SettledQuery, SettledReply};
use sync::snapshot::{Snapshot, snapshot};
use sync::{PostgresTransport, SyncClient, SyncEngine, SyncOptions, Transport, TransportError};

/// A server database and a directory for client replicas.
pub(crate) struct Rig {
    pub(crate) server: Database,
    pub(crate) transport: Arc<Faulty>,
    dir: tempfile::TempDir,
    pub(crate) options: SyncOptions,
}

impl Rig {
    pub(crate) fn new(t: &TestDb) -> Rig {
        Rig::seeded(t, 0)
    }

    fn seeded(t: &TestDb, seed: u64) -> Rig {
        Rig::over(t, seed, Arc::new(PostgresTransport::new(t.db.clone())))
    }

    /// A rig whose clients reach the server through `inner` (wrapped in [`Faulty`]).
    pub(crate) fn over(t: &TestDb, seed: u64, inner: Arc<dyn Transport>) -> Rig {
        Rig {
            server: t.db.clone(),
            transport: Arc::new(Faulty::new(inner, seed)),
            dir: tempfile::tempdir().unwrap(),
            options: SyncOptions {
                batch: 50,
                page: 40,
                ..SyncOptions::default()
            },
        }
    }

    pub(crate) async fn client(&self, name: &str) -> SyncClient {
        let db = Database::connect(&Config::sqlite(self.dir.path().join(format!("{name}.db"))))
            .await
            .unwrap();
        SyncClient::open(db).await.unwrap()
    }

    pub(crate) async fn sync(&self, client: &SyncClient) {
        sync_once(client, self.transport.as_ref(), &self.options)
            .await
            .unwrap();
    }

    /// One sync round in which the transport may fail: a transient failure is expected
    /// (the next round resumes), anything else is a bug.
    async fn try_sync(&self, client: &SyncClient) {
        if let Err(e) = sync_once(client, self.transport.as_ref(), &self.options).await {
            assert!(e.is_transient(), "a sync round failed for good: {e}");
        }
    }

    pub(crate) async fn server_snapshot(&self) -> Snapshot {
        snapshot(&self.server).await.unwrap()
    }

    /// Asserts that `replica` holds exactly what the server holds.
    pub(crate) async fn assert_converged(&self, replica: &Database) {
        assert_eq!(
            snapshot(replica).await.unwrap(),
            self.server_snapshot().await
        );
    }

    /// The shared world and one client `name` that has it: `(project, client)`.
    pub(crate) async fn synced_client(&self, name: &str) -> (Id, SyncClient) {
        let (_, project) = server_world(&self.server).await;
        let client = self.client(name).await;
        self.sync(&client).await;
        (project, client)
    }

    /// The shared world, clients `a` and `b` synced, and a task `a` made that both have.
    pub(crate) async fn two_clients_sharing_a_task(&self) -> (Id, SyncClient, SyncClient, Id) {
        let (_, project) = server_world(&self.server).await;
        let (a, b) = (self.client("a").await, self.client("b").await);
        self.sync(&a).await;
        let task = a
            .database()
            .tasks()
            .create(NewTask::queued(project, "render", json!({"v": 0})))
            .await
            .unwrap()
            .id;
        self.sync(&a).await;
        self.sync(&b).await;
        (project, a, b, task)
    }
}

/// Rows created on the server with fixed ids: the dummy user and a shared project.
pub(crate) async fn server_world(server: &Database) -> (Id, Id) {
    let user = Id(uuid::Uuid::from_u128(1));
    let project = Id(uuid::Uuid::from_u128(2));
    entities::user::ActiveModel {
        row_version: sea_orm::ActiveValue::Set(1),
        id: Set(user),
        email: Set(None),
        display_name: Set(Some("U".into())),
        created_at: Set(dal::clock::now()),
    }
    .insert(server)
    .await
    .unwrap();
    entities::project::ActiveModel {
        row_version: sea_orm::ActiveValue::Set(1),
        id: Set(project),
        name: Set("shared".into()),
        user_id: Set(user),
        created_at: Set(dal::clock::now()),
    }
    .insert(server)
    .await
    .unwrap();
    (user, project)
}

/// The variable that puts the sync server behind PgBouncer (`pgbouncer`) instead of on
/// the Postgres server directly (`postgres`, the default); CI runs the sync tests both ways.
pub(crate) const SYNC_SERVER_VAR: &str = "DAL_TEST_SYNC_SERVER";

pub(crate) async fn run_postgres<F, Fut>(body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let target = match std::env::var(SYNC_SERVER_VAR).as_deref() {
        Ok("pgbouncer") => parity_tests::Target::PgBouncer,
        Ok("postgres") | Err(_) => parity_tests::Target::Postgres,
        Ok(other) => panic!("{SYNC_SERVER_VAR}={other:?}: expected `postgres` or `pgbouncer`"),
    };
    parity_tests::run_on(target, Setup::Migrated, body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_round_trip_between_two_clients() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (_, project) = server_world(&rig.server).await;
        let (a, b) = (rig.client("a").await, rig.client("b").await);
        rig.sync(&a).await;
        rig.sync(&b).await;
        assert_eq!(
            a.database().projects().get(project).await.unwrap().name,
            "shared"
        );

        // Writes on A: through the ordinary repositories, nothing sync-specific.
        let task = a
            .database()
            .tasks()
            .create(NewTask::queued(project, "render", json!({"frames": 24})))
            .await
            .unwrap();
        let mut renamed = a.database().projects().get(project).await.unwrap();
        renamed.name = "renamed on a".into();
        a.database().projects().update(renamed).await.unwrap();
        let shot = a
            .database()
            .shots()
            .create(NewShot::new(project, "opening"))
            .await
            .unwrap();
        let g = a
            .database()
            .generations()
            .create(NewGeneration::new(project).tasks(vec![task.id]))
            .await
            .unwrap();
        a.database()
            .shots()
            .add_to_timeline(shot.id, g.id, None)
            .await
            .unwrap();
        assert!(a.pending().await.unwrap() >= 5);
        rig.sync(&a).await;
        assert_eq!(a.pending().await.unwrap(), 0);
        rig.sync(&b).await;

        assert_eq!(
            b.database().tasks().get(task.id).await.unwrap().params,
            json!({"frames": 24})
        );
        assert_eq!(
            b.database().projects().get(project).await.unwrap().name,
            "renamed on a"
        );
        assert_eq!(
            b.database().shots().timeline(shot.id).await.unwrap().len(),
            1
        );

        // A delete on B reaches A as a tombstone.
        b.database().tasks().delete(task.id).await.unwrap();
        rig.sync(&b).await;
        rig.sync(&a).await;
        assert!(matches!(
            a.database().tasks().get(task.id).await,
            Err(dal::DalError::NotFound { .. })
        ));
        let server = rig.server_snapshot().await;
        assert_eq!(snapshot(a.database()).await.unwrap(), server);
        assert_eq!(snapshot(b.database()).await.unwrap(), server);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_size_pulls_every_row() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (_, project) = server_world(&rig.server).await;
        for n in 0..3 {
            rig.server
                .tasks()
                .create(NewTask::queued(project, "render", json!({"n": n})))
                .await
                .unwrap();
        }
        // The project changes last, so its change is newer than the tasks that follow it
        // in table order: a page resuming "after the project" must still read them.
        let mut renamed = rig.server.projects().get(project).await.unwrap();
        renamed.name = "renamed".into();
        rig.server.projects().update(renamed).await.unwrap();
        let server = rig.server_snapshot().await;
        // Pages ending inside a table, exactly at a table's end, and holding everything.
        for page in [1, 2, 3, 5, 100] {
            let client = rig.client(&format!("page-{page}")).await;
            let options = SyncOptions {
                page,
                ..rig.options.clone()
            };
            sync_once(&client, rig.transport.as_ref(), &options)
                .await
                .unwrap();
            assert_eq!(
                snapshot(client.database()).await.unwrap(),
                server,
                "page size {page}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_converge_by_arrival_and_the_loser_is_logged() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (_, project) = server_world(&rig.server).await;
        let (a, b) = (rig.client("a").await, rig.client("b").await);
        rig.sync(&a).await;
        rig.sync(&b).await;
        let task = a.database().tasks().create(NewTask::queued(project, "render", json!({"v": 0}))).await.unwrap();
        rig.sync(&a).await;
        rig.sync(&b).await;

        // Both edit the project's name and the task while apart.
        for (client, name, v) in [(&a, "alpha", 1), (&b, "beta", 2)] {
            let mut p = client.database().projects().get(project).await.unwrap();
            p.name = name.into();
            client.database().projects().update(p).await.unwrap();
            let mut tk = client.database().tasks().get(task.id).await.unwrap();
            tk.params = json!({"v": v});
            client.database().tasks().update(tk).await.unwrap();
        }
        // A's changes reach the server first, B's last: B's win, column by column.
        rig.sync(&a).await;
        rig.sync(&b).await;
        rig.sync(&a).await;
        for client in [&a, &b] {
            assert_eq!(client.database().projects().get(project).await.unwrap().name, "beta");
            assert_eq!(client.database().tasks().get(task.id).await.unwrap().params, json!({"v": 2}));
        }
        let conflicts = rig
            .server
            .query_all_raw(Statement::from_string(
                rig.server.get_database_backend(),
                "SELECT table_name, column_name, losing_value::text AS losing, winning_value::text AS winning, rule FROM sync_conflicts ORDER BY id",
            ))
            .await
            .unwrap();
        let logged: Vec<(String, String, String, String)> = conflicts
            .iter()
            .map(|r| (r.try_get("", "table_name").unwrap(), r.try_get("", "column_name").unwrap(), r.try_get("", "losing").unwrap(), r.try_get("", "rule").unwrap()))
            .collect();
        assert!(logged.contains(&("projects".into(), "name".into(), "\"alpha\"".into(), "last-write-to-arrive-wins".into())), "{logged:?}");
        assert!(logged.iter().any(|(t, c, l, _)| t == "tasks" && c == "params" && l.contains("1")), "{logged:?}");

        // A delete wins over a concurrent update, whichever arrives first.
        let doomed = a.database().tasks().create(NewTask::queued(project, "render", json!({}))).await.unwrap();
        rig.sync(&a).await;
        rig.sync(&b).await;
        b.database().tasks().set_status(doomed.id, TaskStatus::Failed).await.unwrap();
        a.database().tasks().delete(doomed.id).await.unwrap();
        rig.sync(&b).await; // the update arrives first ...
        rig.sync(&a).await; // ... the delete still wins
        rig.sync(&b).await;
        for client in [&a, &b] {
            assert!(matches!(client.database().tasks().get(doomed.id).await, Err(dal::DalError::NotFound { .. })));
        }
        let server = rig.server_snapshot().await;
        assert_eq!(snapshot(a.database()).await.unwrap(), server);
        assert_eq!(snapshot(b.database()).await.unwrap(), server);
    })
    .await;
}

/// Wraps the real transport: drops requests, drops responses after the server committed,
/// sends requests twice, or is down altogether; all from a seeded generator.
pub(crate) struct Faulty {
    inner: Arc<dyn Transport>,
    rng: Mutex<StdRng>,
    faults: AtomicBool,
    pub(crate) down: AtomicBool,
    injected: AtomicUsize,
}

impl Faulty {
    fn new(inner: Arc<dyn Transport>, seed: u64) -> Faulty {
        Faulty {
            inner,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            faults: AtomicBool::new(false),
            down: AtomicBool::new(false),
            injected: AtomicUsize::new(0),
        }
    }

    fn roll(&self) -> f64 {
        if !self.faults.load(Ordering::SeqCst) {
            return 1.0;
        }
        let r = self.rng.lock().unwrap().random::<f64>();
        self.injected
            .fetch_add(usize::from(r < 0.4), Ordering::SeqCst);
        r
    }

    fn check_up(&self) -> Result<(), TransportError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(TransportError::Transient(
                "the server is unreachable".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Transport for Faulty {
    async fn push(&self, batch: PushBatch) -> Result<PushAck, TransportError> {
        self.check_up()?;
        let r = self.roll();
        if r < 0.15 {
            return Err(TransportError::Transient("request dropped".into()));
        }
        let result = self.inner.push(batch.clone()).await;
        if r < 0.30 {
            return Err(TransportError::Transient(
                "response dropped after the server committed".into(),
            ));
        }
        if r < 0.40 {
            return self.inner.push(batch).await; // delivered twice
        }
        result
    }

    async fn pull(&self, request: PullRequest) -> Result<PullPage, TransportError> {
        self.check_up()?;
        let r = self.roll();
        if r < 0.10 {
            return Err(TransportError::Transient("request dropped".into()));
        }
        let page = self.inner.pull(request).await;
        if r < 0.20 {
            return Err(TransportError::Transient("response dropped".into()));
        }
        page
    }

    async fn settled(&self, query: SettledQuery) -> Result<SettledReply, TransportError> {
        self.check_up()?;
        self.inner.settled(query).await
    }
}

fn sync_scale() -> usize {
    ["DAL_SYNC_SCALE", "DAL_RELIABILITY_SCALE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(1usize)
        .max(1)
}

/// A fixed world on the server: the user and project of [`server_world`], one shot and
/// four generations, all with fixed ids.
pub(crate) async fn simulation_world(server: &Database) -> (Id, Id, Vec<Id>) {
    let (_, project) = server_world(server).await;
    let shot = Id(uuid::Uuid::from_u128(3));
    let now = dal::clock::now();
    entities::shot::ActiveModel {
        row_version: sea_orm::ActiveValue::Set(1),
        id: Set(shot),
        name: Set("shared shot".into()),
        project_id: Set(project),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(server)
    .await
    .unwrap();
    let mut generations = Vec::new();
    for n in 0..4u128 {
        let id = Id(uuid::Uuid::from_u128(10 + n));
        entities::generation::ActiveModel {
            row_version: sea_orm::ActiveValue::Set(1),
            id: Set(id),
            project_id: Set(project),
            tasks: Set(entities::IdList::default()),
            location: Set(Some(format!("s3://bucket/{n}.mp4"))),
            generation_type: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(server)
        .await
        .unwrap();
        generations.push(id);
    }
    (project, shot, generations)
}

/// The outcome of a simulation: the converged state and what the clients believed.
pub(crate) struct Simulated {
    pub(crate) server: Snapshot,
    deleted_tasks: Vec<Id>,
}

/// Several clients edit shared rows at random while the transport drops requests,
/// drops answers after the server committed, delivers twice, and clients are killed and
/// reopened from their files. Then the network heals, and every replica must equal the
/// server, every entry must have been applied exactly once, and nothing deleted may
/// come back. Everything random comes from `seed`, printed so a failure can be replayed.
async fn simulate(
    t: &TestDb,
    seed: u64,
    clock_offsets: &[chrono::Duration],
    ops: usize,
) -> Simulated {
    simulate_on(Rig::seeded(t, seed), seed, clock_offsets, ops).await
}

/// [`simulate`] with the clients reaching the server through `rig`'s transport.
pub(crate) async fn simulate_on(
    rig: Rig,
    seed: u64,
    clock_offsets: &[chrono::Duration],
    ops: usize,
) -> Simulated {
    println!(
        "sync simulation: seed {seed}, {} clients, {ops} operations",
        clock_offsets.len()
    );
    let (project, shot, generations) = simulation_world(&rig.server).await;
    let mut rng = StdRng::seed_from_u64(seed);
    let name = |i: usize| format!("client-{i}");
    let mut clients = Vec::new();
    for (i, offset) in clock_offsets.iter().enumerate() {
        let client = rig.client(&name(i)).await.with_clock_offset(*offset);
        rig.sync(&client).await;
        clients.push(client);
    }
    rig.transport.faults.store(true, Ordering::SeqCst);

    let mut tasks: Vec<Id> = Vec::new();
    let mut deleted_tasks = Vec::new();
    let statuses = [
        TaskStatus::Queued,
        TaskStatus::InProgress,
        TaskStatus::Complete,
        TaskStatus::Failed,
    ];
    for step in 0..ops {
        let i = rng.random_range(0..clients.len());
        let db = clients[i].database().clone();
        let pick = |rng: &mut StdRng, ids: &[Id]| {
            (!ids.is_empty()).then(|| ids[rng.random_range(0..ids.len())])
        };
        match rng.random_range(0..100) {
            0..20 => {
                let id = Id(uuid::Uuid::from_u128(rng.random()));
                db.tasks()
                    .create(NewTask::queued(project, "render", json!({"step": step})).with_id(id))
                    .await
                    .unwrap();
                tasks.push(id);
            }
            20..40 => {
                // Unknown here yet (not pulled) or deleted: both are fine to skip.
                if let Some(id) = pick(&mut rng, &tasks)
                    && let Ok(mut task) = db.tasks().get(id).await
                {
                    task.params = json!({"step": step, "by": i});
                    db.tasks().update(task).await.unwrap();
                }
            }
            40..50 => {
                let status = statuses[rng.random_range(0..statuses.len())];
                if let Some(id) = pick(&mut rng, &tasks)
                    && db.tasks().get(id).await.is_ok()
                {
                    db.tasks().set_status(id, status).await.unwrap();
                }
            }
            50..55 => {
                if let Some(id) = pick(&mut rng, &tasks)
                    && db.tasks().get(id).await.is_ok()
                {
                    db.tasks().delete(id).await.unwrap();
                    deleted_tasks.push(id);
                }
            }
            55..62 => {
                let mut p = db.projects().get(project).await.unwrap();
                p.name = format!("name {step} by {i}");
                db.projects().update(p).await.unwrap();
            }
            62..70 => {
                let generation = generations[rng.random_range(0..generations.len())];
                let position = rng.random_range(0..4i32);
                db.shots()
                    .add_to_timeline(shot, generation, Some(position))
                    .await
                    .unwrap();
            }
            70..75 => {
                let timeline = db.shots().timeline(shot).await.unwrap();
                if !timeline.is_empty() {
                    let entry = &timeline[rng.random_range(0..timeline.len())];
                    if rng.random_bool(0.5) {
                        db.shots()
                            .remove_from_timeline(entry.link.id)
                            .await
                            .unwrap();
                    } else {
                        db.shots()
                            .move_in_timeline(entry.link.id, rng.random_range(0..4i32))
                            .await
                            .unwrap();
                    }
                }
            }
            75..95 => rig.try_sync(&clients[i]).await,
            _ => {
                // Killed and restarted: everything it knows comes back from its file.
                let killed = clients.remove(i);
                let id = killed.client_id();
                drop(killed);
                let reopened = rig
                    .client(&name(i))
                    .await
                    .with_clock_offset(clock_offsets[i]);
                assert_eq!(reopened.client_id(), id, "the client id survives a restart");
                clients.insert(i, reopened);
            }
        }
    }

    // The network heals; rounds until every replica has everything.
    rig.transport.faults.store(false, Ordering::SeqCst);
    let injected = rig.transport.injected.load(Ordering::SeqCst);
    println!(
        "sync simulation: seed {seed}: {injected} faults injected, {} tasks deleted",
        deleted_tasks.len()
    );
    assert!(
        injected > 0,
        "seed {seed}: the simulation injected no fault"
    );
    for _ in 0..3 {
        for client in &clients {
            rig.sync(client).await;
        }
    }
    let server = rig.server_snapshot().await;
    for (i, client) in clients.iter().enumerate() {
        let replica = snapshot(client.database()).await.unwrap();
        let missing: Vec<_> = server
            .keys()
            .filter(|k| !replica.contains_key(*k))
            .collect();
        let extra: Vec<_> = replica
            .keys()
            .filter(|k| !server.contains_key(*k))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "seed {seed}: client {i} lacks {missing:?} and has extra {extra:?}"
        );
        for (key, row) in &server {
            assert_eq!(
                replica.get(key),
                Some(row),
                "seed {seed}: client {i} differs at {key:?}"
            );
        }
        assert_eq!(client.pending().await.unwrap(), 0);
        assert_exactly_once(&rig.server, client, seed).await;
    }
    for id in &deleted_tasks {
        let row = &server[&("tasks".to_owned(), id.0.to_string())];
        assert_eq!(
            row["deleted"],
            json!(true),
            "seed {seed}: deleted task {id:?} came back"
        );
    }
    let timeline = rig.server.shots().timeline(shot).await.unwrap();
    let positions: Vec<i32> = timeline.iter().map(|e| e.link.position).collect();
    assert_eq!(
        positions,
        (0..positions.len() as i32).collect::<Vec<_>>(),
        "seed {seed}: the timeline has gaps"
    );
    Simulated {
        server,
        deleted_tasks,
    }
}

/// Every entry the client ever wrote was applied by the server once, in order, and what
/// the server refused is in the client's dead letters.
async fn assert_exactly_once(server: &Database, client: &SyncClient, seed: u64) {
    let written: i64 = client
        .database()
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'sync_outbox'), 0) AS n",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap();
    let rows = server
        .query_all_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT seq, outcome FROM sync_log WHERE client_id = $1 ORDER BY seq",
            [client.client_id().into()],
        ))
        .await
        .unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.try_get("", "seq").unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=written).collect::<Vec<_>>(),
        "seed {seed}: applied entries are not exactly 1..={written}"
    );
    let dead: Vec<i64> = client
        .dead_letters()
        .await
        .unwrap()
        .iter()
        .map(|d| d.seq)
        .collect();
    for row in &rows {
        let outcome: String = row.try_get("", "outcome").unwrap();
        let seq: i64 = row.try_get("", "seq").unwrap();
        if outcome.starts_with("rejected") {
            assert!(
                dead.contains(&seq),
                "seed {seed}: entry {seq} was refused but is not a dead letter"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_edits_under_faults_converge_exactly_once() {
    let scale = sync_scale();
    let seeds: Vec<u64> = match std::env::var("DAL_SYNC_SEED") {
        Ok(seed) => vec![seed.parse().expect("DAL_SYNC_SEED is a number")],
        Err(_) => vec![1, 2, 3, 4, 5],
    };
    for seed in seeds {
        let clients = (3 + seed as usize % 3) * scale.min(4); // 3 to 5 clients
        run_postgres(|t| async move {
            let offsets = vec![chrono::Duration::zero(); clients];
            let outcome = simulate(&t, seed, &offsets, 300 * scale).await;
            assert!(
                outcome.server.keys().any(|(table, _)| table == "tasks"),
                "the simulation wrote nothing"
            );
        })
        .await;
    }
}

/// Server-side values that depend on when and where a change was made, not on what it
/// was: timestamps, the device, and the random ids of timeline entries.
fn without_clock(snapshot: &Snapshot) -> Vec<(String, String, sync::protocol::RowValues)> {
    let mut rows: Vec<_> = snapshot
        .iter()
        .map(|((table, id), row)| {
            let mut row = row.clone();
            for column in ["created_at", "updated_at", "last_modified_at", "device_id"] {
                row.remove(column);
            }
            let id = if table == "shot_generations" {
                row.remove("id");
                String::new()
            } else {
                id.clone()
            };
            (table.clone(), id, row)
        })
        .collect();
    rows.sort_by(|a, b| {
        (&a.0, &a.1, serde_json::to_string(&a.2).unwrap()).cmp(&(
            &b.0,
            &b.1,
            serde_json::to_string(&b.2).unwrap(),
        ))
    });
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_clocks_hours_apart_change_nothing() {
    let results = Arc::new(Mutex::new(Vec::new()));
    let hour = chrono::Duration::hours(1);
    for offsets in [
        vec![chrono::Duration::zero(); 3],
        vec![hour * 5, -hour * 7, hour * 26],
    ] {
        let results = results.clone();
        run_postgres(|t| async move {
            let outcome = simulate(&t, 42, &offsets, 200).await;
            assert!(!outcome.deleted_tasks.is_empty() || outcome.server.len() > 6);
            results.lock().unwrap().push(without_clock(&outcome.server));
        })
        .await;
    }
    let results = results.lock().unwrap();
    if results.is_empty() {
        return; // the server's backend is left out (DAL_TEST_BACKENDS); said above
    }
    assert_eq!(
        results[0], results[1],
        "clock offsets changed the converged state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_commits_late_is_still_pulled() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (project, client) = rig.synced_client("late").await;

        // T1 writes and stays open; T2 starts later and commits first. A cursor on commit
        // time or on "changed since" would read T2, move past T1 and never see T1's row.
        let t1 = rig.server.begin().await.unwrap();
        let early = t1
            .tasks()
            .create(NewTask::queued(project, "render", json!({"t": 1})))
            .await
            .unwrap();
        let t2 = rig
            .server
            .tasks()
            .create(NewTask::queued(project, "render", json!({"t": 2})))
            .await
            .unwrap();
        rig.sync(&client).await;
        assert!(
            matches!(
                client.database().tasks().get(early.id).await,
                Err(DalError::NotFound { .. })
            ),
            "T1 has not committed yet"
        );
        // Changes committed after T1 began wait for it: delayed, never lost.
        assert!(
            matches!(
                client.database().tasks().get(t2.id).await,
                Err(DalError::NotFound { .. })
            ),
            "T2 waits for T1"
        );

        t1.commit().await.unwrap();
        rig.sync(&client).await;
        assert_eq!(
            client
                .database()
                .tasks()
                .get(early.id)
                .await
                .unwrap()
                .params,
            json!({"t": 1})
        );
        assert_eq!(
            client.database().tasks().get(t2.id).await.unwrap().params,
            json!({"t": 2})
        );
        rig.assert_converged(client.database()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_writes_queue_and_arrive_in_order() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (project, client) = rig.synced_client("offline").await;

        rig.transport.down.store(true, Ordering::SeqCst);
        let mut ids = Vec::new();
        for n in 0..1000 {
            ids.push(
                client
                    .database()
                    .tasks()
                    .create(NewTask::queued(project, "render", json!({"n": n})))
                    .await
                    .unwrap()
                    .id,
            );
        }
        let err = sync_once(&client, rig.transport.as_ref(), &rig.options)
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert_eq!(client.pending().await.unwrap(), 1000);
        // Local reads and writes carry on while offline.
        assert_eq!(
            client
                .database()
                .tasks()
                .count_for_project(project, &TaskFilter::default())
                .await
                .unwrap(),
            1000
        );

        rig.transport.down.store(false, Ordering::SeqCst);
        rig.sync(&client).await;
        assert_eq!(client.pending().await.unwrap(), 0);
        let rows = rig
            .server
            .query_all_raw(Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT seq, row_id FROM sync_log WHERE client_id = $1 ORDER BY seq",
                [client.client_id().into()],
            ))
            .await
            .unwrap();
        let applied: Vec<(i64, uuid::Uuid)> = rows
            .iter()
            .map(|r| {
                (
                    r.try_get("", "seq").unwrap(),
                    r.try_get("", "row_id").unwrap(),
                )
            })
            .collect();
        let expected: Vec<(i64, uuid::Uuid)> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| (n as i64 + 1, id.0))
            .collect();
        assert_eq!(applied, expected);
        rig.assert_converged(client.database()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_syncs_in_the_background_reports_status_and_stops_cleanly() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (_, project) = server_world(&rig.server).await;
        let client = rig.client("engine").await;
        let options = SyncOptions {
            push_interval: std::time::Duration::from_millis(50),
            pull_interval: std::time::Duration::from_millis(50),
            ..rig.options.clone()
        };
        let engine = SyncEngine::start(client.clone(), rig.transport.clone(), options);
        engine.sync_now().await.unwrap();
        let status = engine.status().await;
        assert!(
            status.last_success.is_some() && status.last_error.is_none(),
            "{status:?}"
        );

        // Down: writes queue, the status says why.
        rig.transport.down.store(true, Ordering::SeqCst);
        let task = client
            .database()
            .tasks()
            .create(NewTask::queued(project, "render", json!({})))
            .await
            .unwrap();
        assert_eq!(
            engine.sync_now().await,
            Err(TransportError::Transient("the server is unreachable".into()).to_string())
        );
        let status = engine.status().await;
        assert_eq!(status.pending, 1);
        assert!(
            status
                .last_error
                .as_deref()
                .unwrap_or_default()
                .contains("unreachable"),
            "{status:?}"
        );

        // Back up: the background loop drains the outbox on its own.
        rig.transport.down.store(false, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while engine.status().await.pending > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the engine did not drain the outbox"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(rig.server.tasks().get(task.id).await.is_ok());
        // A server-side change arrives without being asked for.
        let mut p = rig.server.projects().get(project).await.unwrap();
        p.name = "from the server".into();
        rig.server.projects().update(p).await.unwrap();
        while client
            .database()
            .projects()
            .get(project)
            .await
            .unwrap()
            .name
            != "from the server"
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the engine did not pull"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        engine.shutdown().await;
        let status_after: u64 = client.pending().await.unwrap();
        assert_eq!(status_after, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_alone_turns_sync_on() {
    run_postgres(|t| async move {
        let (_, project) = server_world(&t.db).await;
        let dir = tempfile::tempdir().unwrap();
        let local = Database::connect(&Config::sqlite(dir.path().join("app.db")))
            .await
            .unwrap();
        let config = sync::SyncConfig {
            server: sync::SyncServer::Database(t.config.clone()),
            options: SyncOptions::default(),
        };
        let engine = sync::start(local.clone(), config).await.unwrap();
        engine.sync_now().await.unwrap();
        // The application's own calls, unchanged.
        let task = local
            .tasks()
            .create(NewTask::queued(project, "render", json!({})))
            .await
            .unwrap();
        engine.sync_now().await.unwrap();
        assert_eq!(t.db.tasks().get(task.id).await.unwrap().project_id, project);
        engine.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_under_a_deleted_parent_is_refused_kept_and_undone_locally() {
    run_postgres(|t| async move {
        let rig = Rig::new(&t);
        let (project, a, b, task) = rig.two_clients_sharing_a_task().await;

        // A deletes the project (and with it the task); B, apart, adds a task to it and
        // edits the old one.
        a.database().projects().delete(project).await.unwrap();
        let orphan = b
            .database()
            .tasks()
            .create(NewTask::queued(project, "render", json!({})))
            .await
            .unwrap();
        let mut edited = b.database().tasks().get(task).await.unwrap();
        edited.params = json!({"v": 1});
        b.database().tasks().update(edited).await.unwrap();
        rig.sync(&a).await;
        rig.sync(&b).await;

        // The new task is refused and kept as a dead letter; the edit lost to the delete.
        let dead = b.dead_letters().await.unwrap();
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(
            (dead[0].row_id.as_str(), dead[0].op.as_str()),
            (orphan.id.0.to_string().as_str(), "insert")
        );
        // The reason is the typed refusal's text: readable, and made from the value.
        let refusal = dal::DalError::sync_refused(dal::SyncRefusal::ParentDeleted {
            table: "projects".into(),
            id: project.0,
        });
        assert_eq!(dead[0].reason, format!("rejected: {refusal}"));
        assert!(dead[0].reason.contains("was deleted"), "{}", dead[0].reason);
        assert_eq!(b.pending().await.unwrap(), 0);
        // B's replica is the server's again: no live task under a deleted project.
        assert!(
            matches!(
                rig.server.tasks().get(orphan.id).await,
                Err(DalError::NotFound { .. })
            ),
            "the orphan reached the server"
        );
        assert!(
            matches!(
                b.database().tasks().get(orphan.id).await,
                Err(DalError::NotFound { .. })
            ),
            "the orphan stayed on B"
        );
        let server = rig.server_snapshot().await;
        assert_eq!(snapshot(b.database()).await.unwrap(), server);
        rig.sync(&a).await;
        assert_eq!(snapshot(a.database()).await.unwrap(), server);
    })
    .await;
}
