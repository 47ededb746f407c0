//! The push part of `sync-bench`: a client's outbox pushed over the direct transport, and
//! the baseline it is measured against, a hand-written set-based apply of the same
//! batches (as a server with nothing but inserts of new rows to settle would write them).

use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::Value as Json;
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row as _};
use sync::protocol::{PullPage, PullRequest, PushAck, PushBatch};
use sync::{PostgresTransport, SyncClient, Transport, TransportError};
use uuid::Uuid;

/// The direct transport, keeping a copy of every batch pushed through it and the time
/// the server's side took.
pub struct Recorder {
    inner: PostgresTransport,
    batches: Mutex<Vec<PushBatch>>,
    server_seconds: Mutex<f64>,
}

impl Recorder {
    /// Records pushes to the server database `db`.
    pub fn new(db: dal::Database) -> Recorder {
        Recorder {
            inner: PostgresTransport::new(db),
            batches: Mutex::new(Vec::new()),
            server_seconds: Mutex::new(0.0),
        }
    }
}

#[async_trait]
impl Transport for Recorder {
    async fn push(&self, batch: PushBatch) -> Result<PushAck, TransportError> {
        self.batches.lock().unwrap().push(batch.clone());
        let started = Instant::now();
        let ack = self.inner.push(batch).await;
        *self.server_seconds.lock().unwrap() += started.elapsed().as_secs_f64();
        ack
    }

    async fn pull(&self, request: PullRequest) -> Result<PullPage, TransportError> {
        self.inner.pull(request).await
    }
}

/// A push measured end to end.
pub struct Pushed {
    /// Seconds for the whole push.
    pub seconds: f64,
    /// Seconds of it spent in the server's side (the transport's `push` calls).
    pub server_seconds: f64,
    /// The batches sent.
    pub batches: Vec<PushBatch>,
}

/// Pushes `client`'s whole outbox in batches of `batch` (end to end: reading the outbox,
/// the server's apply, settling the client).
pub async fn push_outbox(client: &SyncClient, server: &dal::Database, batch: usize) -> Pushed {
    let recorder = Recorder::new(server.clone());
    let started = Instant::now();
    let drained = client
        .push_pending(
            &recorder,
            batch,
            &sync::SyncOptions::default(),
            &std::sync::atomic::AtomicBool::new(false),
        )
        .await
        .expect("push");
    assert!(drained, "nothing stops the push");
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(client.pending().await.unwrap(), 0, "the outbox drained");
    Pushed {
        seconds,
        server_seconds: recorder.server_seconds.into_inner().unwrap(),
        batches: recorder.batches.into_inner().unwrap(),
    }
}

/// One line of the push table.
pub struct PushLine {
    /// What was pushed.
    pub operation: String,
    /// The push's rate, end to end.
    pub rate: f64,
    /// The rate of the server's side alone.
    pub server_rate: f64,
    /// The hand-written set-based apply's rate on the same batches.
    pub baseline_rate: f64,
}

/// The push cases, on a scratch database of their own (so the rows they push do not
/// change what the pull cases measure): for each size in `batches`, `rounds` times, a
/// fresh replica writes `writes` tasks (capture on) and pushes its outbox, then the
/// baseline applies the same batches. Medians of the rounds.
pub async fn push_cases(
    postgres_url: &str,
    dir: &std::path::Path,
    writes: usize,
    batches: &[usize],
    rounds: usize,
) -> Vec<PushLine> {
    use dal::prelude::*;
    let scratch = crate::ScratchPostgres::create(postgres_url).await;
    let server = Database::connect(&Config::postgres(&scratch.url).expect("scratch URL"))
        .await
        .expect("scratch database connects");
    server.migrate().await.expect("migrations apply");
    let transport = PostgresTransport::new(server.clone());
    let user = server.users().create(NewUser::default()).await.unwrap();
    let project = server
        .projects()
        .create(NewProject::new(user.id, "push bench"))
        .await
        .unwrap();
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let mut lines = Vec::new();
    for &batch in batches {
        let (mut push, mut server_side, mut baseline) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let path = dir.join(format!("push-{batch}-{round}.db"));
            let db = Database::connect(&Config::sqlite(&path))
                .await
                .expect("replica opens");
            let client = SyncClient::open(db).await.expect("sync turns on");
            sync::engine::sync_once(&client, &transport, &sync::SyncOptions::default())
                .await
                .expect("initial pull");
            for i in 0..writes {
                client
                    .database()
                    .tasks()
                    .create(NewTask::queued(
                        project.id,
                        "local",
                        serde_json::json!({"i": i}),
                    ))
                    .await
                    .expect("local write");
            }
            let pushed = push_outbox(&client, &server, batch).await;
            push.push(pushed.seconds);
            server_side.push(pushed.server_seconds);
            baseline.push(set_based_apply(&scratch.url, &pushed.batches).await);
            client.database().clone().close().await.ok();
        }
        let rate = |seconds| writes as f64 / seconds;
        lines.push(PushLine {
            operation: format!("push of {writes} outbox entries, batches of {batch}"),
            rate: rate(median(push)),
            server_rate: rate(median(server_side)),
            baseline_rate: rate(median(baseline)),
        });
    }
    server.close().await.ok();
    scratch.drop_database().await;
    lines
}

/// Applies `batches` (inserts of `tasks` rows, given new ids and a new client id so they
/// land beside the pushed ones) the way a hand-written set-based server would: per batch,
/// one transaction that locks the client's row, locks the batch's rows `FOR UPDATE`,
/// reads the parents `FOR SHARE`, inserts the rows from `unnest` returning their
/// versions, logs the entries in one insert and settles the client. Seconds taken.
pub async fn set_based_apply(url: &str, batches: &[PushBatch]) -> f64 {
    let mut db = PgConnection::connect(url).await.expect("baseline connects");
    let types = column_types(&mut db).await;
    let client = Uuid::new_v4();
    let mut seconds = 0.0;
    for batch in batches {
        let columns: Vec<&String> = batch.entries[0].changes.keys().collect();
        for entry in &batch.entries {
            assert!(
                entry.table == "tasks" && entry.changes.keys().eq(columns.iter().copied()),
                "the baseline writes inserts of tasks with one set of columns"
            );
        }
        let ids: Vec<Uuid> = batch.entries.iter().map(|_| Uuid::new_v4()).collect();
        let projects: Vec<Uuid> = batch
            .entries
            .iter()
            .filter_map(|e| e.changes.get("project_id")?.as_str()?.parse().ok())
            .collect();
        // What the server computes from the entries, outside the clock as there.
        let digests: Vec<String> = batch.entries.iter().map(|e| e.digest()).collect();
        let started = Instant::now();
        let mut tx = db.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO sync_clients (client_id) VALUES ($1) ON CONFLICT (client_id) DO NOTHING",
        )
        .bind(client)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query("SELECT last_seq FROM sync_clients WHERE client_id = $1 FOR UPDATE")
            .bind(client)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        sqlx::query("SELECT id FROM tasks WHERE id = ANY($1) FOR UPDATE")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        sqlx::query("SELECT id, deleted FROM projects WHERE id = ANY($1) FOR SHARE")
            .bind(&projects)
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        let mut select = vec!["u.id".to_owned()];
        let mut unnest = vec!["$1::uuid[]".to_owned()];
        for (n, column) in columns.iter().enumerate() {
            select.push(format!("u.c{n}::{}", types_of(&types, column)));
            unnest.push(format!("${}::text[]", n + 2));
        }
        let aliases: Vec<String> = (0..columns.len()).map(|n| format!("c{n}")).collect();
        let (times_param, device_param) = (columns.len() + 2, columns.len() + 3);
        let sql = format!(
            "INSERT INTO tasks (id, {}, device_id, last_modified_at) \
             SELECT {}, ${device_param}::text, u.at::timestamptz \
             FROM unnest({}, ${times_param}::text[]) AS u(id, {}, at) \
             RETURNING id, sync_version",
            columns
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", "),
            select.join(", "),
            unnest.join(", "),
            aliases.join(", "),
        );
        let mut insert = sqlx::query(AssertSqlSafe(sql)).bind(&ids);
        for column in &columns {
            let values: Vec<Option<String>> = batch
                .entries
                .iter()
                .map(|e| as_text(types_of(&types, column), &e.changes[*column]))
                .collect();
            insert = insert.bind(values);
        }
        let times: Vec<String> = batch
            .entries
            .iter()
            .map(|e| e.client_time.clone())
            .collect();
        let written = insert
            .bind(times)
            .bind(client.to_string())
            .fetch_all(&mut *tx)
            .await
            .expect("the baseline's insert");
        let versions: Vec<i64> = written.iter().map(|r| r.get("sync_version")).collect();
        let seqs: Vec<i64> = batch.entries.iter().map(|e| e.seq).collect();
        let changed = columns
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(",");
        sqlx::query(
            "INSERT INTO sync_log (client_id, seq, table_name, row_id, op, outcome, entry_digest, changed_columns, row_version) \
             SELECT $1, u.seq, 'tasks', u.id, 'insert', 'applied', u.digest, string_to_array($5, ','), u.version \
             FROM unnest($2::bigint[], $3::uuid[], $4::text[], $6::bigint[]) AS u(seq, id, digest, version)",
        )
        .bind(client)
        .bind(&seqs)
        .bind(&ids)
        .bind(&digests)
        .bind(changed)
        .bind(&versions)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "UPDATE sync_clients SET last_seq = $2, updated_at = now() WHERE client_id = $1",
        )
        .bind(client)
        .bind(seqs.last().copied().unwrap_or(0))
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        seconds += started.elapsed().as_secs_f64();
    }
    db.close().await.ok();
    seconds
}

/// Each `tasks` column's SQL type.
async fn column_types(db: &mut PgConnection) -> Vec<(String, String)> {
    sqlx::query(
        "SELECT attname::text AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute \
         WHERE attrelid = 'tasks'::regclass AND attnum > 0 AND NOT attisdropped",
    )
    .fetch_all(db)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("name"), r.get("type")))
    .collect()
}

fn types_of<'t>(types: &'t [(String, String)], column: &str) -> &'t str {
    types
        .iter()
        .find(|(name, _)| name == column)
        .map(|(_, t)| t.as_str())
        .expect("a tasks column")
}

/// A wire value as the text its column's type reads.
fn as_text(sql_type: &str, value: &Json) -> Option<String> {
    match value {
        Json::Null => None,
        Json::String(s) if sql_type == "uuid[]" => {
            let ids: Vec<String> = serde_json::from_str(s).expect("a uuid list");
            Some(format!("{{{}}}", ids.join(",")))
        }
        Json::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}
