//! What a snapshot holds, measured: the row count of every table and one checksum of
//! the content, independent of how the rows are laid out in the file.
//!
//! Each table (by name) contributes its name, its column names and every row as SQLite's
//! `quote()` renders each value (type-exact: `1`, `'1'` and `X'31'` differ), rows in
//! primary-key order, so the same rows give the same checksum whatever order they were
//! written in and however the pages are arranged. The metadata table itself is left out,
//! and so is the time each migration was applied. The schema counts as content too:
//! every table, index, trigger and view as `sqlite_master` records it (type, name, table
//! and SQL text), so a trigger added or dropped, an index or a column's declaration
//! changed, fails the checksum even when no row changed.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::{Row, SqlitePool};

use crate::meta::META_TABLE;

/// Row counts per table and the content checksum (`sha256:` and hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Content {
    /// Rows per table, every table of the file but the metadata.
    pub row_counts: BTreeMap<String, u64>,
    /// The checksum of every row of those tables.
    pub checksum: String,
}

/// Reads every table of `pool`'s database once, streaming (memory stays flat).
pub(crate) async fn measure(pool: &SqlitePool) -> sqlx::Result<Content> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         AND name <> ? ORDER BY name",
    )
    .bind(META_TABLE)
    .fetch_all(pool)
    .await?;
    let mut hash = Sha256::new();
    let mut row_counts = BTreeMap::new();
    let schema: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name <> ? \
         ORDER BY type, name",
    )
    .bind(META_TABLE)
    .fetch_all(pool)
    .await?;
    for (kind, name, table, sql) in schema {
        hash.update(format!(
            "schema {kind} {} on {}: {}\n",
            quoted(&name),
            quoted(&table),
            sql.as_deref().unwrap_or("")
        ));
    }
    for table in tables {
        let mut columns = columns(pool, &table).await?;
        if table == "seaql_migrations" {
            // When a migration ran is not content: the same rows made at another time
            // keep their checksum.
            columns.retain(|(name, _)| name != "applied_at");
        }
        hash.update(format!("table {}\n", quoted(&table)));
        let names: Vec<String> = columns.iter().map(|(name, _)| quoted(name)).collect();
        hash.update(format!("columns {}\n", names.join(",")));
        let mut key: Vec<(u32, &str)> = columns
            .iter()
            .filter(|(_, pk)| *pk > 0)
            .map(|(name, pk)| (*pk, name.as_str()))
            .collect();
        key.sort();
        // Without a key, every column in order makes the order a function of the content.
        let order: Vec<String> = if key.is_empty() {
            names.clone()
        } else {
            key.iter().map(|(_, name)| quoted(name)).collect()
        };
        let rendered: Vec<String> = names.iter().map(|c| format!("quote({c})")).collect();
        let sql = format!(
            "SELECT {} AS r FROM {} ORDER BY {}",
            rendered.join(" || ',' || "),
            quoted(&table),
            order.join(", ")
        );
        // Identifiers from the file's own catalog, quoted.
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(pool);
        let mut count = 0u64;
        while let Some(row) = rows.try_next().await? {
            let line: String = row.try_get("r")?;
            hash.update(line.as_bytes());
            hash.update(b"\n");
            count += 1;
        }
        row_counts.insert(table, count);
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Content {
        row_counts,
        checksum: format!("sha256:{hex}"),
    })
}

/// `(name, position in the primary key or 0)` of each column of `table`, in order.
async fn columns(pool: &SqlitePool, table: &str) -> sqlx::Result<Vec<(String, u32)>> {
    let rows = sqlx::query("SELECT name, pk FROM pragma_table_info(?) ORDER BY cid")
        .bind(table)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("name")?, r.try_get::<i64, _>("pk")? as u32)))
        .collect()
}

/// An SQL identifier, quoted.
pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
