//! Filling the queue fast, in one statement per kind of row and through the migrated
//! schema (its checks and triggers run on every row), and putting back what a run took.

use std::ops::Range;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::raw::{Raw, ts};

/// How the loaded rows start: finished ones are older than every queued one, and each
/// kind is spaced a millisecond apart so `(created_at, id)` orders them as numbered.
pub struct Load<'a> {
    pub project: Uuid,
    pub task_type: &'a str,
    /// When row 0 of each kind was created.
    pub finished_base: DateTime<Utc>,
    pub queued_base: DateTime<Utc>,
}

const PG_INSERT: &str = "INSERT INTO tasks \
     (task_type, params, status, project_id, created_at, updated_at, claimed_by, attempts, \
      output_location) \
     SELECT $1, '{}'::jsonb, $2, $3, $4::timestamptz + g * interval '1 millisecond', \
      $4::timestamptz + g * interval '1 millisecond', $5, $6, $7 \
     FROM generate_series($8::bigint, $9::bigint - 1) AS g";

const SQLITE_INSERT: &str = "INSERT INTO tasks \
     (id, task_type, params, status, dependant_on, project_id, created_at, updated_at, \
      claimed_by, attempts, output_location) \
     WITH RECURSIVE g(n) AS (SELECT ?8 UNION ALL SELECT n + 1 FROM g WHERE n + 1 < ?9) \
     SELECT printf('%08x-0000-7000-8000-%012x', ?10, n), ?1, '{}', ?2, '[]', ?3, t, t, ?5, ?6, ?7 \
     FROM (SELECT n, strftime('%Y-%m-%dT%H:%M:%S', ?4 + n / 1000, 'unixepoch') \
      || printf('.%06dZ', (n % 1000) * 1000) AS t FROM g) \
     WHERE ?8 < ?9";

impl Load<'_> {
    /// `count` tasks that a worker finished long ago (`Complete`, never in the claim's index).
    pub async fn finished(&self, raw: &Raw, count: usize) {
        self.insert(raw, "Complete", 0..count, Some("loader"), 1, Some("out"))
            .await;
    }

    /// The queued tasks numbered `range` (a later number is a newer task).
    pub async fn queued(&self, raw: &Raw, range: Range<usize>) {
        self.insert(raw, "Queued", range, None, 0, None).await;
    }

    async fn insert(
        &self,
        raw: &Raw,
        status: &str,
        range: Range<usize>,
        claimed_by: Option<&str>,
        attempts: i32,
        output: Option<&str>,
    ) {
        let queued = status == "Queued";
        let base = if queued {
            self.queued_base
        } else {
            self.finished_base
        };
        let (start, end) = (range.start as i64, range.end as i64);
        match raw {
            Raw::Postgres(pool) => {
                sqlx::query(PG_INSERT)
                    .bind(self.task_type)
                    .bind(status)
                    .bind(self.project)
                    .bind(base)
                    .bind(claimed_by)
                    .bind(attempts)
                    .bind(output)
                    .bind(start)
                    .bind(end)
                    .execute(pool)
                    .await
                    .expect("load tasks");
            }
            Raw::Sqlite(pool) => {
                // Whole seconds here, the milliseconds from the row number.
                let base = chrono::SubsecRound::trunc_subsecs(base, 0).timestamp();
                sqlx::query(SQLITE_INSERT)
                    .bind(self.task_type)
                    .bind(status)
                    .bind(self.project.to_string())
                    .bind(base)
                    .bind(claimed_by)
                    .bind(attempts)
                    .bind(output)
                    .bind(start)
                    .bind(end)
                    .bind(if queued { 2 } else { 1 })
                    .execute(pool)
                    .await
                    .expect("load tasks");
            }
        }
    }
}

/// Puts the tasks a run completed back in the queue, where they were (their `created_at`
/// is kept), so every run starts from the same queue.
pub async fn requeue(raw: &Raw, ids: &[Uuid]) {
    if ids.is_empty() {
        return;
    }
    match raw {
        Raw::Postgres(pool) => {
            sqlx::query(
                "UPDATE tasks SET status = 'Queued', claimed_by = NULL, lease_expires_at = NULL, \
                 attempts = 0, output_location = NULL, updated_at = now(), \
                 row_version = row_version + 1 WHERE id = ANY($1)",
            )
            .bind(ids)
            .execute(pool)
            .await
            .expect("requeue");
        }
        Raw::Sqlite(pool) => {
            let list = serde_json::to_string(&ids.iter().map(Uuid::to_string).collect::<Vec<_>>())
                .expect("id list");
            sqlx::query(
                "UPDATE tasks SET status = 'Queued', claimed_by = NULL, lease_expires_at = NULL, \
                 attempts = 0, output_location = NULL, updated_at = ?2, \
                 row_version = row_version + 1 WHERE id IN (SELECT value FROM json_each(?1))",
            )
            .bind(list)
            .bind(ts(Utc::now()))
            .execute(pool)
            .await
            .expect("requeue");
        }
    }
}

/// How many live tasks of the type are queued.
pub async fn queued(raw: &Raw, task_type: &str) -> i64 {
    const SQL: [&str; 2] = [
        "SELECT count(*) FROM tasks WHERE status = 'Queued' AND deleted = false AND task_type = $1",
        "SELECT count(*) FROM tasks WHERE status = 'Queued' AND deleted = false AND task_type = ?1",
    ];
    match raw {
        Raw::Postgres(pool) => {
            sqlx::query_scalar(SQL[0])
                .bind(task_type)
                .fetch_one(pool)
                .await
        }
        Raw::Sqlite(pool) => {
            sqlx::query_scalar(SQL[1])
                .bind(task_type)
                .fetch_one(pool)
                .await
        }
    }
    .expect("count queued")
}

/// Before a cell: on Postgres, the dead rows of the last runs cleared and fresh statistics
/// (`VACUUM ANALYZE`), so every cell starts from the same state of the table and its
/// indexes; on SQLite, which updates in place, statistics after a load (`ANALYZE`) and the
/// write-ahead log folded back.
pub async fn settle(raw: &Raw, after_load: bool) {
    match raw {
        Raw::Postgres(pool) => sqlx::raw_sql("VACUUM ANALYZE tasks")
            .execute(pool)
            .await
            .map(drop),
        Raw::Sqlite(pool) => sqlx::raw_sql(if after_load {
            "ANALYZE; PRAGMA wal_checkpoint(TRUNCATE)"
        } else {
            "PRAGMA wal_checkpoint(TRUNCATE)"
        })
        .execute(pool)
        .await
        .map(drop),
    }
    .expect("VACUUM/ANALYZE");
}
