//! Cheaper value checks on SQLite: the same refusals, with the costly part of two checks
//! run only for values that could fail it.
//!
//! The value triggers of `m20261130_203628_values_every_reader_reads` walk every JSON
//! document with `json_tree` (to find a string or key holding NUL or an unpaired
//! surrogate) and round-trip every timestamp through `julianday` (to find `2026-02-30`).
//! On a full pull those two were about 40 % of a task row's insert into a replica. Each now
//! has a fast path in front of it:
//!
//! * JSON: a decoded string can hold NUL or a surrogate only through an escape (`\u0000`,
//!   `\ud800`: a backslash in the text) or through those bytes in the text itself (NUL,
//!   `ED A0`..`ED BF`). A document without a backslash, an `ED` byte and a NUL byte is
//!   accepted without the walk; any other still gets it.
//! * Timestamps: a value shaped `YYYY-MM-DDTHH:MM:SS` with a month 01–12, a day 01–28, an
//!   hour below 24, minutes and seconds below 60 exists in every month of every year
//!   0001–9999, so it skips the round trip (year 0000 is refused by its own term, as
//!   before); the rest (days 29–31, say) still take it.
//!
//! Nothing else changes: the triggers are rewritten from their stored text, each costly
//! term kept whole behind its fast path, so `down` gives back the text it started from.
//! Postgres has no such triggers: there this migration does nothing.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

/// Puts fast paths in front of the SQLite value triggers' costly checks (see the module
/// docs).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_160000_value_check_fast_paths"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// Every migration runs in a transaction, on SQLite too: none stays half-applied.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rewrite_triggers(manager, with_fast_paths).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rewrite_triggers(manager, without_fast_paths).await
    }
}

/// Replaces every `<table>_values_insert` / `_update` trigger by `rewrite` of its text.
async fn rewrite_triggers(
    manager: &SchemaManager<'_>,
    rewrite: fn(&str) -> String,
) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Sqlite {
        return Ok(());
    }
    let db = manager.get_connection();
    let triggers = db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' \
             AND (name LIKE '%\\_values\\_insert' ESCAPE '\\' OR name LIKE '%\\_values\\_update' ESCAPE '\\') \
             ORDER BY name",
        ))
        .await?;
    for trigger in triggers {
        let name: String = trigger.try_get("", "name")?;
        let sql: String = trigger.try_get("", "sql")?;
        let rewritten = rewrite(&sql);
        if rewritten != sql {
            db.execute_unprepared(&format!("DROP TRIGGER \"{name}\""))
                .await?;
            db.execute_unprepared(&rewritten).await?;
        }
    }
    Ok(())
}

/// The start of the JSON walk, for value `v`.
fn json_walk(v: &str) -> String {
    format!("CASE WHEN json_valid({v}) THEN EXISTS (SELECT 1 FROM json_tree({v}) AS j")
}

/// What lets a JSON document skip the walk: no backslash, no `ED` byte, no NUL byte.
fn json_may_hide_a_bad_string(v: &str) -> String {
    format!(
        " AND (instr({v}, '\\') > 0 OR instr(CAST({v} AS BLOB), x'ED') > 0 OR instr(CAST({v} AS BLOB), x'00') > 0)"
    )
}

/// The timestamp round trip, for value `v`.
fn timestamp_round_trip(v: &str) -> String {
    format!(
        "strftime('%Y-%m-%dT%H:%M:%S', julianday(substr({v}, 1, 19))) IS NOT substr({v}, 1, 19)"
    )
}

/// A timestamp every calendar has (see the module docs).
fn timestamp_surely_real(v: &str) -> String {
    format!(
        "(substr({v}, 1, 19) GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]' \
         AND substr({v}, 6, 2) BETWEEN '01' AND '12' AND substr({v}, 9, 2) BETWEEN '01' AND '28' \
         AND substr({v}, 12, 2) < '24')"
    )
}

/// The columns a trigger's text checks (`NEW."<column>"`), in order of first mention.
fn values_in(sql: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut rest = sql;
    while let Some(start) = rest.find("NEW.\"") {
        let after = &rest[start + 5..];
        let Some(end) = after.find('"') else { break };
        let value = format!("NEW.\"{}\"", &after[..end]);
        if !found.contains(&value) {
            found.push(value);
        }
        rest = &after[end + 1..];
    }
    found
}

/// `sql` with a fast path in front of each JSON walk and timestamp round trip.
fn with_fast_paths(sql: &str) -> String {
    let mut sql = sql.to_owned();
    for v in values_in(&sql) {
        let walk = json_walk(&v);
        let guarded = walk.replacen(
            " THEN EXISTS",
            &format!("{} THEN EXISTS", json_may_hide_a_bad_string(&v)),
            1,
        );
        sql = sql.replace(&walk, &guarded);
        let trip = timestamp_round_trip(&v);
        sql = sql.replace(
            &trip,
            &format!("(NOT {} AND {trip})", timestamp_surely_real(&v)),
        );
    }
    sql
}

/// `sql` as it was before [`with_fast_paths`].
fn without_fast_paths(sql: &str) -> String {
    let mut sql = sql.to_owned();
    for v in values_in(&sql) {
        sql = sql.replace(&json_may_hide_a_bad_string(&v), "");
        let trip = timestamp_round_trip(&v);
        sql = sql.replace(
            &format!("(NOT {} AND {trip})", timestamp_surely_real(&v)),
            &trip,
        );
    }
    sql
}

#[cfg(test)]
mod tests {
    use sea_orm_migration::sea_orm::Database;

    use super::*;

    /// The values each test writes: JSON documents for `tasks.params` and timestamps for
    /// `tasks.created_at`, good and bad, near every edge of both fast paths.
    const DOCUMENTS: &[&str] = &[
        r#"{"frame": 1, "tags": ["a", "b"]}"#,
        r#"{"a": "x\u0000y"}"#,
        r#"{"a\u0000": 1}"#,
        r#"{"a": "\ud800"}"#,
        r#"{"\udc00x": 1}"#,
        r#"["\udc00\ud800"]"#,
        r#"{"a": "\\ud800 \ud83c\udfac"}"#,
        r#"{"path": "C:\\tmp"}"#,
        r#"{"quote": "\"", "e": "é€🎬"}"#,
        "[]",
    ];
    const TIMESTAMPS: &[&str] = &[
        "2026-01-02T03:04:05.123456Z",
        "2026-02-28T23:59:59.999999Z",
        "2026-02-29T00:00:00.000000Z",
        "2024-02-29T00:00:00.000000Z",
        "2026-02-30T00:00:00.000000Z",
        "2026-04-31T00:00:00.000000Z",
        "2026-12-31T23:59:59.000000Z",
        "2026-12-31T23:59:60.000000Z",
        "2026-01-01T24:00:00.000000Z",
        "2026-01-01T23:61:00.000000Z",
        "2026-13-01T00:00:00.000000Z",
        "2026-00-10T00:00:00.000000Z",
        "2026-01-00T00:00:00.000000Z",
        "0000-01-01T00:00:00.000000Z",
        "0001-01-01T00:00:00.000000Z",
        "9999-12-31T23:59:59.999999Z",
    ];

    /// Which of [`DOCUMENTS`] and [`TIMESTAMPS`] a database at `steps` migrations takes,
    /// on insert and on update.
    async fn accepted(steps: u32) -> Vec<(String, bool)> {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("v.db").display());
        let db = Database::connect(&url).await.unwrap();
        crate::Migrator::up(&db, Some(steps)).await.unwrap();
        let run = |sql: String| {
            let db = &db;
            async move { db.execute_unprepared(&sql).await.is_ok() }
        };
        assert!(run("INSERT INTO users (id, email, display_name) VALUES ('00000000-0000-4000-8000-000000000001', 'a@b.c', 'a')".into()).await);
        assert!(run("INSERT INTO projects (id, name, user_id) VALUES ('00000000-0000-4000-8000-000000000002', 'p', '00000000-0000-4000-8000-000000000001')".into()).await);
        let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let insert = |n: usize, params: &str, at: &str| {
            format!(
                "INSERT INTO tasks (id, task_type, params, project_id, created_at) VALUES \
                 ('00000000-0000-4000-8000-{n:012}', 'render', {}, '00000000-0000-4000-8000-000000000002', {})",
                lit(params),
                lit(at)
            )
        };
        let base = 1000;
        assert!(run(insert(base, "{}", TIMESTAMPS[0])).await);
        let mut answers = Vec::new();
        for (n, document) in DOCUMENTS.iter().enumerate() {
            let ok = run(insert(n + 1, document, TIMESTAMPS[0])).await;
            answers.push((format!("insert params {document}"), ok));
            let ok = run(format!(
                "UPDATE tasks SET params = {} WHERE id = '00000000-0000-4000-8000-{base:012}'",
                lit(document)
            ))
            .await;
            answers.push((format!("update params {document}"), ok));
        }
        for (n, at) in TIMESTAMPS.iter().enumerate() {
            let ok = run(insert(100 + n, "{}", at)).await;
            answers.push((format!("insert created_at {at}"), ok));
            let ok = run(format!(
                "UPDATE tasks SET updated_at = {} WHERE id = '00000000-0000-4000-8000-{base:012}'",
                lit(at)
            ))
            .await;
            answers.push((format!("update updated_at {at}"), ok));
        }
        answers
    }

    fn steps_through_this_one() -> u32 {
        let name = Migration.name().to_owned();
        crate::sources()
            .iter()
            .position(|(source, _)| *source == name)
            .expect("the migration is in the history") as u32
            + 1
    }

    #[tokio::test]
    async fn the_fast_paths_accept_and_refuse_exactly_what_the_full_checks_did() {
        let steps = steps_through_this_one();
        let before = accepted(steps - 1).await;
        let after = accepted(steps).await;
        assert_eq!(before, after);
        // The list exercises both answers, for both kinds of value.
        for kind in ["params", "created_at"] {
            let of_kind: Vec<bool> = before
                .iter()
                .filter(|(what, _)| what.contains(kind))
                .map(|(_, ok)| *ok)
                .collect();
            assert!(of_kind.contains(&true) && of_kind.contains(&false), "{kind}");
        }
    }

    #[tokio::test]
    async fn every_costly_check_gets_its_fast_path_and_down_restores_the_text() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = Database::connect(&url).await.unwrap();
        let steps = steps_through_this_one();
        let triggers = |db: &sea_orm_migration::sea_orm::DatabaseConnection| {
            let db = db.clone();
            async move {
                let rows = db
                    .query_all_raw(Statement::from_string(
                        DbBackend::Sqlite,
                        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%values%' ORDER BY name",
                    ))
                    .await
                    .unwrap();
                rows.iter()
                    .map(|r| {
                        (
                            r.try_get::<String>("", "name").unwrap(),
                            r.try_get::<String>("", "sql").unwrap(),
                        )
                    })
                    .collect::<Vec<_>>()
            }
        };
        crate::Migrator::up(&db, Some(steps - 1)).await.unwrap();
        let before = triggers(&db).await;
        assert!(before.len() >= 12, "the value triggers of six tables");
        crate::Migrator::up(&db, Some(1)).await.unwrap();
        let after = triggers(&db).await;
        let (mut walks, mut trips) = (0, 0);
        for (name, sql) in &after {
            for v in values_in(sql) {
                let walk = json_walk(&v);
                assert!(!sql.contains(&walk), "{name}: {v}'s JSON walk has no fast path");
                walks += sql.matches(&format!("json_valid({v}){}", json_may_hide_a_bad_string(&v))).count();
                let guarded = format!("(NOT {} AND {})", timestamp_surely_real(&v), timestamp_round_trip(&v));
                trips += sql.matches(&guarded).count();
                assert_eq!(
                    sql.matches(&timestamp_round_trip(&v)).count(),
                    sql.matches(&guarded).count(),
                    "{name}: {v}'s round trip has no fast path"
                );
            }
        }
        // tasks.params on insert and update; 14 timestamp columns (users and projects 2,
        // tasks, generations and shots 3, shot_generations 1), each on insert and update.
        assert_eq!(walks, 2);
        assert_eq!(trips, 28);
        crate::Migrator::down(&db, Some(1)).await.unwrap();
        assert_eq!(triggers(&db).await, before);
    }
}
