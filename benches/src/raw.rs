//! The hand-written baseline: sqlx queries on the library's own pool (same pragmas, same
//! pool settings), decoding every column into plain Rust types.

use chrono::{DateTime, Utc};
use dal::Backend;
use sqlx::{AssertSqlSafe, Row as _};
use uuid::Uuid;

use crate::plain::Row;

const COLUMNS: &str = "id, task_type, params, status, dependant_on, output_location, created_at, updated_at, project_id";

/// A task decoded by hand.
#[allow(dead_code)]
pub struct Task {
    pub id: Uuid,
    pub task_type: String,
    pub params: serde_json::Value,
    pub status: String,
    pub dependant_on: Vec<Uuid>,
    pub output_location: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub project_id: Uuid,
}

pub enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

fn sqlite_task(r: &sqlx::sqlite::SqliteRow) -> Task {
    let text = |c: &str| r.get::<String, _>(c);
    Task {
        id: text("id").parse().unwrap(),
        task_type: text("task_type"),
        params: serde_json::from_str(&text("params")).unwrap(),
        status: text("status"),
        dependant_on: serde_json::from_str(&text("dependant_on")).unwrap(),
        output_location: r.get("output_location"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        project_id: text("project_id").parse().unwrap(),
    }
}

fn pg_task(r: &sqlx::postgres::PgRow) -> Task {
    Task {
        id: r.get("id"),
        task_type: r.get("task_type"),
        params: r.get::<sqlx::types::Json<serde_json::Value>, _>("params").0,
        status: r.get("status"),
        dependant_on: r.get("dependant_on"),
        output_location: r.get("output_location"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
        project_id: r.get("project_id"),
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

impl Raw {
    pub fn new(db: &dal::Database) -> Raw {
        match db.backend() {
            Backend::Sqlite => {
                Raw::Sqlite(db.sea_orm_connection().get_sqlite_connection_pool().clone())
            }
            Backend::Postgres => Raw::Postgres(
                db.sea_orm_connection()
                    .get_postgres_connection_pool()
                    .clone(),
            ),
        }
    }

    pub async fn select_one(&self) {
        match self {
            Raw::Sqlite(p) => drop(sqlx::query("SELECT 1").fetch_one(p).await.unwrap()),
            Raw::Postgres(p) => drop(sqlx::query("SELECT 1").fetch_one(p).await.unwrap()),
        }
    }

    pub async fn get(&self, id: Uuid) -> Task {
        match self {
            Raw::Sqlite(p) => {
                let sql = format!("SELECT {COLUMNS} FROM tasks WHERE id = ?");
                sqlite_task(
                    &sqlx::query(AssertSqlSafe(sql))
                        .bind(id.to_string())
                        .fetch_one(p)
                        .await
                        .unwrap(),
                )
            }
            Raw::Postgres(p) => {
                let sql = format!("SELECT {COLUMNS} FROM tasks WHERE id = $1");
                pg_task(
                    &sqlx::query(AssertSqlSafe(sql))
                        .bind(id)
                        .fetch_one(p)
                        .await
                        .unwrap(),
                )
            }
        }
    }

    pub async fn page(&self, project: Uuid) -> usize {
        match self {
            Raw::Sqlite(p) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM tasks WHERE project_id = ? AND status IN ('Queued', 'Pending') ORDER BY created_at, id"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(project.to_string())
                    .fetch_all(p)
                    .await
                    .unwrap()
                    .iter()
                    .map(sqlite_task)
                    .count()
            }
            Raw::Postgres(p) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM tasks WHERE project_id = $1 AND status IN ('Queued', 'Pending') ORDER BY created_at, id"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(project)
                    .fetch_all(p)
                    .await
                    .unwrap()
                    .iter()
                    .map(pg_task)
                    .count()
            }
        }
    }

    pub async fn insert(&self, r: Row) {
        match self {
            Raw::Sqlite(p) => {
                sqlx::query("INSERT INTO tasks (id, task_type, params, status, dependant_on, created_at, updated_at, project_id) VALUES (?, ?, ?, ?, '[]', ?, ?, ?)")
                    .bind(r.id.to_string()).bind(r.task_type).bind(r.params.to_string()).bind(r.status.as_str())
                    .bind(ts(r.created_at)).bind(ts(r.created_at)).bind(r.project_id.to_string())
                    .execute(p).await.unwrap();
            }
            Raw::Postgres(p) => {
                sqlx::query("INSERT INTO tasks (id, task_type, params, status, dependant_on, created_at, updated_at, project_id) VALUES ($1, $2, $3, $4, '{}', $5, $5, $6)")
                    .bind(r.id).bind(r.task_type).bind(sqlx::types::Json(r.params)).bind(r.status.as_str())
                    .bind(r.created_at).bind(r.project_id)
                    .execute(p).await.unwrap();
            }
        }
    }

    /// The same work as the library's update: every column written, the row returned.
    pub async fn update(&self, t: &Task, task_type: &str) -> Task {
        match self {
            Raw::Sqlite(p) => {
                let sql = format!(
                    "UPDATE tasks SET task_type = ?, params = ?, status = ?, dependant_on = ?, output_location = ?, updated_at = ?, project_id = ? WHERE id = ? RETURNING {COLUMNS}"
                );
                sqlite_task(
                    &sqlx::query(AssertSqlSafe(sql))
                        .bind(task_type)
                        .bind(t.params.to_string())
                        .bind(&t.status)
                        .bind(serde_json::to_string(&t.dependant_on).unwrap())
                        .bind(&t.output_location)
                        .bind(ts(dal::clock::now()))
                        .bind(t.project_id.to_string())
                        .bind(t.id.to_string())
                        .fetch_one(p)
                        .await
                        .unwrap(),
                )
            }
            Raw::Postgres(p) => {
                let sql = format!(
                    "UPDATE tasks SET task_type = $1, params = $2, status = $3, dependant_on = $4, output_location = $5, updated_at = $6, project_id = $7 WHERE id = $8 RETURNING {COLUMNS}"
                );
                pg_task(
                    &sqlx::query(AssertSqlSafe(sql))
                        .bind(task_type)
                        .bind(sqlx::types::Json(&t.params))
                        .bind(&t.status)
                        .bind(&t.dependant_on)
                        .bind(&t.output_location)
                        .bind(dal::clock::now())
                        .bind(t.project_id)
                        .bind(t.id)
                        .fetch_one(p)
                        .await
                        .unwrap(),
                )
            }
        }
    }

    pub async fn delete(&self, id: Uuid) {
        match self {
            Raw::Sqlite(p) => drop(
                sqlx::query("DELETE FROM tasks WHERE id = ?")
                    .bind(id.to_string())
                    .execute(p)
                    .await
                    .unwrap(),
            ),
            Raw::Postgres(p) => drop(
                sqlx::query("DELETE FROM tasks WHERE id = $1")
                    .bind(id)
                    .execute(p)
                    .await
                    .unwrap(),
            ),
        }
    }

    /// A shot's timeline with its generations: one join, every column decoded.
    pub async fn timeline(&self, shot: Uuid) -> usize {
        let sql = "SELECT sg.id, sg.shot_id, sg.generation_id, sg.position, g.tasks, g.location, g.type, \
                   g.created_at, g.updated_at, g.project_id \
                   FROM shots s LEFT JOIN shot_generations sg ON sg.shot_id = s.id \
                   LEFT JOIN generations g ON g.id = sg.generation_id WHERE s.id = {} ORDER BY sg.position, sg.id";
        match self {
            Raw::Sqlite(p) => sqlx::query(AssertSqlSafe(sql.replace("{}", "?")))
                .bind(shot.to_string())
                .fetch_all(p)
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    let id: Uuid = r.get::<String, _>("id").parse().unwrap();
                    let tasks: Vec<Uuid> =
                        serde_json::from_str(&r.get::<String, _>("tasks")).unwrap();
                    let created: DateTime<Utc> = r.get("created_at");
                    let updated: DateTime<Utc> = r.get("updated_at");
                    let _: (Option<String>, Option<String>, i32) =
                        (r.get("location"), r.get("type"), r.get("position"));
                    let _: (Uuid, Uuid, Uuid) = (
                        r.get::<String, _>("shot_id").parse().unwrap(),
                        r.get::<String, _>("generation_id").parse().unwrap(),
                        r.get::<String, _>("project_id").parse().unwrap(),
                    );
                    (id, tasks, created, updated)
                })
                .count(),
            Raw::Postgres(p) => sqlx::query(AssertSqlSafe(sql.replace("{}", "$1")))
                .bind(shot)
                .fetch_all(p)
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    let _: (Uuid, Uuid, Uuid, i32) = (
                        r.get("id"),
                        r.get("shot_id"),
                        r.get("generation_id"),
                        r.get("position"),
                    );
                    let _: (Vec<Uuid>, Option<String>, Option<String>) =
                        (r.get("tasks"), r.get("location"), r.get("type"));
                    let _: (DateTime<Utc>, DateTime<Utc>, Uuid) = (
                        r.get("created_at"),
                        r.get("updated_at"),
                        r.get("project_id"),
                    );
                })
                .count(),
        }
    }

    /// The fastest hand-written bulk load: Postgres `COPY ... FROM STDIN`; SQLite one
    /// prepared insert per row inside one write transaction.
    pub async fn bulk(&self, rows: Vec<Row>) {
        match self {
            Raw::Sqlite(p) => {
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await.unwrap();
                for r in rows {
                    let at = ts(r.created_at);
                    sqlx::query("INSERT INTO tasks (id, task_type, params, status, dependant_on, created_at, updated_at, project_id) VALUES (?, ?, ?, ?, '[]', ?, ?, ?)")
                        .bind(r.id.to_string()).bind(r.task_type).bind(r.params.to_string()).bind(r.status.as_str())
                        .bind(&at).bind(&at).bind(r.project_id.to_string())
                        .execute(&mut *tx).await.unwrap();
                }
                tx.commit().await.unwrap();
            }
            Raw::Postgres(p) => {
                let mut conn = p.acquire().await.unwrap();
                let mut copy = conn
                    .copy_in_raw("COPY tasks (id, task_type, params, status, dependant_on, created_at, updated_at, project_id) FROM STDIN")
                    .await
                    .unwrap();
                let mut buf = String::new();
                for r in rows {
                    let json = r.params.to_string().replace('\\', "\\\\");
                    let at = r.created_at.format("%Y-%m-%d %H:%M:%S%.6f+00");
                    buf.push_str(&format!(
                        "{}\t{}\t{}\t{}\t{{}}\t{at}\t{at}\t{}\n",
                        r.id,
                        r.task_type,
                        json,
                        r.status.as_str(),
                        r.project_id
                    ));
                    if buf.len() > 1 << 20 {
                        copy.send(std::mem::take(&mut buf).into_bytes())
                            .await
                            .unwrap();
                    }
                }
                copy.send(buf.into_bytes()).await.unwrap();
                copy.finish().await.unwrap();
            }
        }
    }
}
