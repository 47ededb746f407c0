//! The hand-written claim+complete cycle over sqlx, on the library's own pool, written as
//! one would by hand against the same schema and the same partial index
//! (`tasks_queued_idx`): one `UPDATE … WHERE id = (SELECT … LIMIT 1)` to claim, one
//! `UPDATE … WHERE id = … AND claimed_by = …` to complete, each returning the row, which is
//! decoded into plain Rust types. And the library's own statements sent the same way, to
//! tell what its statements cost from what it adds to each.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row as _;
use uuid::Uuid;

/// The columns the library's task model has, returned by both statements.
const COLUMNS: &str = "id, task_type, params, status, dependant_on, output_location, created_at, \
     updated_at, project_id, row_version, claimed_by, lease_expires_at, attempts, max_attempts, \
     last_error";

/// A task decoded by hand.
#[allow(dead_code)]
struct Task {
    id: Uuid,
    task_type: String,
    params: serde_json::Value,
    status: String,
    dependant_on: Vec<Uuid>,
    output_location: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    project_id: Uuid,
    row_version: i64,
    claimed_by: Option<String>,
    lease_expires_at: Option<DateTime<Utc>>,
    attempts: i32,
    max_attempts: i32,
    last_error: Option<String>,
}

/// The pool the library opened, taken from it (same size, same pragmas, same timeouts).
pub enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// The library's text form of a timestamp on SQLite.
pub fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

static PG_CLAIM: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE tasks SET status = 'In Progress', claimed_by = $1, lease_expires_at = $2, \
         attempts = attempts + 1, updated_at = $3, row_version = row_version + 1 \
         WHERE id = (SELECT id FROM tasks WHERE status = 'Queued' AND deleted = false \
         AND task_type = $4 ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING {COLUMNS}"
    )
});

static SQLITE_CLAIM: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE tasks SET status = 'In Progress', claimed_by = ?1, lease_expires_at = ?2, \
         attempts = attempts + 1, updated_at = ?3, row_version = row_version + 1 \
         WHERE id = (SELECT id FROM tasks WHERE status = 'Queued' AND deleted = false \
         AND task_type = ?4 ORDER BY created_at, id LIMIT 1) \
         RETURNING {COLUMNS}"
    )
});

static PG_COMPLETE: LazyLock<String> = LazyLock::new(|| complete(["$1", "$2", "$3", "$4"]));
static SQLITE_COMPLETE: LazyLock<String> = LazyLock::new(|| complete(["?1", "?2", "?3", "?4"]));

fn complete(p: [&str; 4]) -> String {
    let [output, now, id, worker] = p;
    format!(
        "UPDATE tasks SET status = 'Complete', output_location = {output}, \
         lease_expires_at = NULL, updated_at = {now}, row_version = row_version + 1 \
         WHERE id = {id} AND status = 'In Progress' AND deleted = false AND claimed_by = {worker} \
         RETURNING {COLUMNS}"
    )
}

/// The statements the library sends for one cycle (its claim: the sweep of exhausted
/// lapsed leases, the take-over of a lapsed lease, the pick of a queued task; then its
/// completion), as the library spells them, with `$N` placeholders (`?N` on SQLite, where
/// the row locks go). For [`Raw::cycle_as_library`].
struct Shaped {
    sweep: String,
    take_over: String,
    pick: String,
    complete: String,
}

fn shaped(postgres: bool) -> Shaped {
    let (lock, deps) = if postgres {
        (
            " FOR UPDATE SKIP LOCKED",
            "SELECT dep.id FROM unnest(tasks.dependant_on) AS dep(id)",
        )
    } else {
        (
            "",
            "SELECT dep.value AS id FROM json_each(tasks.dependant_on) AS dep",
        )
    };
    let in_progress = "tasks.status = 'In Progress' AND tasks.deleted = false";
    let queued = "tasks.status = 'Queued' AND tasks.deleted = false";
    let claim = "claimed_by = $1, lease_expires_at = $2, attempts = attempts + 1, \
                 updated_at = $3, row_version = row_version + 1";
    let sql = [
        format!(
            "UPDATE tasks SET status = 'Failed', \
             last_error = 'lease expired after ' || CAST(attempts AS TEXT) || ' attempts', \
             lease_expires_at = NULL, updated_at = $1, row_version = row_version + 1 \
             WHERE id IN (SELECT id FROM tasks WHERE task_type = $2 AND {in_progress} \
             AND lease_expires_at <= $1 AND attempts >= max_attempts LIMIT $3{lock}) \
             AND {in_progress} AND lease_expires_at <= $1 AND attempts >= max_attempts"
        ),
        format!(
            "UPDATE tasks SET {claim} WHERE id = (SELECT id FROM tasks WHERE task_type = $4 \
             AND {in_progress} AND lease_expires_at <= $3 AND attempts < max_attempts \
             ORDER BY lease_expires_at, id LIMIT $5{lock}) \
             AND {in_progress} AND lease_expires_at <= $3 RETURNING {COLUMNS}"
        ),
        format!(
            "UPDATE tasks SET {claim}, status = 'In Progress' WHERE id = (SELECT id FROM tasks \
             WHERE task_type = $4 AND {queued} AND NOT EXISTS (SELECT 1 FROM ({deps}) AS deps \
             WHERE NOT EXISTS (SELECT 1 FROM tasks AS done WHERE done.id = deps.id \
             AND done.status = 'Complete' AND done.deleted = false)) \
             ORDER BY created_at, id LIMIT $5{lock}) AND {queued} RETURNING {COLUMNS}"
        ),
        complete(["$1", "$2", "$3", "$4"]),
    ]
    .map(|sql| if postgres { sql } else { sql.replace('$', "?") });
    let [sweep, take_over, pick, complete] = sql;
    Shaped {
        sweep,
        take_over,
        pick,
        complete,
    }
}

static PG_SHAPED: LazyLock<Shaped> = LazyLock::new(|| shaped(true));
static SQLITE_SHAPED: LazyLock<Shaped> = LazyLock::new(|| shaped(false));

fn pg_task(r: &sqlx::postgres::PgRow) -> Task {
    Task {
        id: r.get(0),
        task_type: r.get(1),
        params: r.get::<sqlx::types::Json<serde_json::Value>, _>(2).0,
        status: r.get(3),
        dependant_on: r.get(4),
        output_location: r.get(5),
        created_at: r.get(6),
        updated_at: r.get(7),
        project_id: r.get(8),
        row_version: r.get(9),
        claimed_by: r.get(10),
        lease_expires_at: r.get(11),
        attempts: r.get(12),
        max_attempts: r.get(13),
        last_error: r.get(14),
    }
}

fn sqlite_task(r: &sqlx::sqlite::SqliteRow) -> Task {
    let text = |i: usize| r.get::<String, _>(i);
    Task {
        id: text(0).parse().expect("uuid"),
        task_type: text(1),
        params: serde_json::from_str(&text(2)).expect("json"),
        status: text(3),
        dependant_on: serde_json::from_str(&text(4)).expect("uuid list"),
        output_location: r.get(5),
        created_at: r.get(6),
        updated_at: r.get(7),
        project_id: text(8).parse().expect("uuid"),
        row_version: r.get(9),
        claimed_by: r.get(10),
        lease_expires_at: r.get(11),
        attempts: r.get(12),
        max_attempts: r.get(13),
        last_error: r.get(14),
    }
}

impl Raw {
    pub fn new(db: &dal::Database) -> Raw {
        let conn = db.sea_orm_connection();
        match db.backend() {
            dal::Backend::Sqlite => Raw::Sqlite(conn.get_sqlite_connection_pool().clone()),
            dal::Backend::Postgres => Raw::Postgres(conn.get_postgres_connection_pool().clone()),
        }
    }

    /// One claim of `task_type` for `worker` and its completion; the task's id, or `None`
    /// when nothing was claimable.
    pub async fn cycle(&self, task_type: &str, worker: &str, lease: Duration) -> Option<Uuid> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(lease).expect("lease");
        match self {
            Raw::Postgres(pool) => {
                let claimed = sqlx::query(PG_CLAIM.as_str())
                    .bind(worker)
                    .bind(until)
                    .bind(now)
                    .bind(task_type)
                    .fetch_optional(pool)
                    .await
                    .expect("raw claim")
                    .map(|r| pg_task(&r))?;
                let done = sqlx::query(PG_COMPLETE.as_str())
                    .bind("out")
                    .bind(Utc::now())
                    .bind(claimed.id)
                    .bind(worker)
                    .fetch_one(pool)
                    .await
                    .map(|r| pg_task(&r))
                    .expect("raw complete");
                Some(done.id)
            }
            Raw::Sqlite(pool) => {
                // The library's claim takes the write lock first (`BEGIN IMMEDIATE`), so
                // this does too; the completion is one autocommitted statement.
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("BEGIN");
                let claimed = sqlx::query(SQLITE_CLAIM.as_str())
                    .bind(worker)
                    .bind(ts(until))
                    .bind(ts(now))
                    .bind(task_type)
                    .fetch_optional(&mut *tx)
                    .await
                    .expect("raw claim")
                    .map(|r| sqlite_task(&r));
                tx.commit().await.expect("COMMIT");
                let claimed = claimed?;
                let done = sqlx::query(SQLITE_COMPLETE.as_str())
                    .bind("out")
                    .bind(ts(Utc::now()))
                    .bind(claimed.id.to_string())
                    .bind(worker)
                    .fetch_one(pool)
                    .await
                    .map(|r| sqlite_task(&r))
                    .expect("raw complete");
                Some(done.id)
            }
        }
    }

    /// The same cycle as the library runs it, statement for statement, over sqlx: the
    /// claim's three statements in one transaction (`BEGIN IMMEDIATE` on SQLite), then the
    /// completion in a transaction of its own. What is left between this and the library
    /// is the library's own work per statement (building, binding, decoding).
    pub async fn cycle_as_library(
        &self,
        task_type: &str,
        worker: &str,
        lease: Duration,
    ) -> Option<Uuid> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(lease).expect("lease");
        match self {
            Raw::Postgres(pool) => {
                let s = &*PG_SHAPED;
                let mut tx = pool.begin().await.expect("BEGIN");
                sqlx::query(s.sweep.as_str())
                    .bind(now)
                    .bind(task_type)
                    .bind(100i64)
                    .execute(&mut *tx)
                    .await
                    .expect("sweep");
                let mut claimed = None;
                for pick in [&s.take_over, &s.pick] {
                    claimed = sqlx::query(pick.as_str())
                        .bind(worker)
                        .bind(until)
                        .bind(now)
                        .bind(task_type)
                        .bind(1i64)
                        .fetch_optional(&mut *tx)
                        .await
                        .expect("claim")
                        .map(|r| pg_task(&r));
                    if claimed.is_some() {
                        break;
                    }
                }
                tx.commit().await.expect("COMMIT");
                let claimed = claimed?;
                let mut tx = pool.begin().await.expect("BEGIN");
                let done = sqlx::query(s.complete.as_str())
                    .bind("out")
                    .bind(Utc::now())
                    .bind(claimed.id)
                    .bind(worker)
                    .fetch_one(&mut *tx)
                    .await
                    .map(|r| pg_task(&r))
                    .expect("complete");
                tx.commit().await.expect("COMMIT");
                Some(done.id)
            }
            Raw::Sqlite(pool) => {
                let s = &*SQLITE_SHAPED;
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("BEGIN");
                sqlx::query(s.sweep.as_str())
                    .bind(ts(now))
                    .bind(task_type)
                    .bind(100i64)
                    .execute(&mut *tx)
                    .await
                    .expect("sweep");
                let mut claimed = None;
                for pick in [&s.take_over, &s.pick] {
                    claimed = sqlx::query(pick.as_str())
                        .bind(worker)
                        .bind(ts(until))
                        .bind(ts(now))
                        .bind(task_type)
                        .bind(1i64)
                        .fetch_optional(&mut *tx)
                        .await
                        .expect("claim")
                        .map(|r| sqlite_task(&r));
                    if claimed.is_some() {
                        break;
                    }
                }
                tx.commit().await.expect("COMMIT");
                let claimed = claimed?;
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("BEGIN");
                let done = sqlx::query(s.complete.as_str())
                    .bind("out")
                    .bind(ts(Utc::now()))
                    .bind(claimed.id.to_string())
                    .bind(worker)
                    .fetch_one(&mut *tx)
                    .await
                    .map(|r| sqlite_task(&r))
                    .expect("complete");
                tx.commit().await.expect("COMMIT");
                Some(done.id)
            }
        }
    }
}
