//! The hand-written baseline for a full pull: what copying the server's rows into a new
//! replica costs without the library. Raw sqlx on both sides: each synced table read from
//! Postgres in pages of primary-key order (every column in SQLite's text form, as the
//! wire carries it), and each page stored in the same SQLite schema (triggers and checks
//! in place, capture off as no `sync_state` row is there) with one prepared `INSERT` per
//! row, reused, in one transaction per page. No outbox check, no cursor, no parents.

use std::path::Path;

use dal::entities::schema::{Kind, Table, tables};
use dal::prelude::*;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Connection, PgPool, Row, SqliteConnection};
use uuid::Uuid;

enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
}

/// Postgres: the table's columns in SQLite's text forms, a page after `$1` in id order.
fn select(table: &Table) -> String {
    let mut columns = vec!["id::text".to_owned()];
    for column in table.wire_columns() {
        let quoted = format!("\"{}\"", column.name);
        columns.push(match column.kind {
            Kind::Uuid | Kind::Json => format!("{quoted}::text"),
            Kind::Timestamp => {
                format!("to_char({quoted} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
            }
            Kind::UuidList => format!("array_to_json({quoted})::text"),
            Kind::Int => format!("{quoted}::bigint"),
            Kind::Text | Kind::Bool => quoted,
        });
    }
    format!(
        "SELECT {} FROM \"{}\" WHERE id > $1 ORDER BY id LIMIT $2",
        columns.join(", "),
        table.name
    )
}

fn insert(table: &Table) -> String {
    let mut columns = vec!["id".to_owned()];
    columns.extend(table.wire_columns().map(|c| format!("\"{}\"", c.name)));
    let marks = vec!["?"; columns.len()].join(", ");
    format!(
        "INSERT INTO \"{}\" ({}) VALUES ({marks})",
        table.name,
        columns.join(", ")
    )
}

/// Creates a replica file with the library's schema (untimed).
pub async fn prepare(path: &Path) {
    let db = Database::connect(&Config::sqlite(path))
        .await
        .expect("baseline replica opens");
    db.migrate().await.expect("baseline schema");
    db.close().await.ok();
}

/// Copies every synced row of `pg` into the SQLite file at `path`; returns the row count.
pub async fn full_pull(pg: &PgPool, path: &Path, page: usize) -> usize {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true);
    let mut sqlite = SqliteConnection::connect_with(&options)
        .await
        .expect("baseline SQLite connects");
    let mut copied = 0;
    for table in tables() {
        let (select, insert) = (select(table), insert(table));
        let kinds: Vec<Kind> = std::iter::once(Kind::Uuid)
            .chain(table.wire_columns().map(|c| c.kind))
            .collect();
        let mut after = Uuid::nil();
        loop {
            let rows = sqlx::query(AssertSqlSafe(select.clone()))
                .bind(after)
                .bind(page as i64)
                .fetch_all(pg)
                .await
                .expect("baseline page read");
            if rows.is_empty() {
                break;
            }
            let decoded: Vec<Vec<Cell>> = rows
                .iter()
                .map(|row| {
                    kinds
                        .iter()
                        .enumerate()
                        .map(|(i, kind)| match kind {
                            Kind::Int => Cell::Int(row.get(i)),
                            Kind::Bool => Cell::Bool(row.get(i)),
                            _ => Cell::Text(row.get(i)),
                        })
                        .collect()
                })
                .collect();
            let mut tx = sqlite.begin().await.expect("baseline BEGIN");
            for row in decoded {
                let mut query = sqlx::query(AssertSqlSafe(insert.clone()));
                for cell in row {
                    query = match cell {
                        Cell::Text(v) => query.bind(v),
                        Cell::Int(v) => query.bind(v),
                        Cell::Bool(v) => query.bind(v),
                    };
                }
                query.execute(&mut *tx).await.expect("baseline insert");
                copied += 1;
            }
            tx.commit().await.expect("baseline COMMIT");
            let last: String = rows.last().expect("non-empty").get(0);
            after = last.parse().expect("a uuid");
        }
    }
    sqlite.close().await.ok();
    copied
}
