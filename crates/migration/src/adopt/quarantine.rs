//! The quarantine: where `adopt --apply --quarantine` moves the rows that cannot satisfy
//! the migrations' constraints, instead of deleting them.
//!
//! | column | holds |
//! |---|---|
//! | `table_name` | the table the row came from |
//! | `row_id` | its id as it was stored |
//! | `row_data` | the whole row as it was, as JSON (`jsonb` / JSON text); on SQLite a BLOB value as `{"$blob_hex": "<hex>"}` |
//! | `reason` | every reason, `; `-separated, e.g. `project_id is NULL` |
//! | `quarantined_at` | when (the adoption's time) |
//!
//! On Postgres the table has row-level security on and no policies, and no privileges for
//! `PUBLIC`: on Supabase, the API roles cannot read it; only the owner (and the service
//! role) can. `migration check` ignores it, like the history's own tables.

use sea_orm_migration::sea_orm::DbBackend;

use super::convert::{ident, literal};
use super::decide::decisions_table;
use crate::inspect::Table;

/// The quarantine table's name.
pub const TABLE: &str = "dal_adopt_quarantine";

/// Creates the quarantine table if it does not exist.
pub(crate) fn create(backend: DbBackend) -> Vec<String> {
    match backend {
        DbBackend::Postgres => vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (table_name text NOT NULL, row_id text NOT NULL, \
                 row_data jsonb NOT NULL, reason text NOT NULL, quarantined_at timestamptz NOT NULL DEFAULT now(), \
                 PRIMARY KEY (table_name, row_id))"
            ),
            format!("ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY"),
            format!("REVOKE ALL ON {TABLE} FROM PUBLIC"),
        ],
        _ => vec![format!(
            "CREATE TABLE IF NOT EXISTS {TABLE} (table_name TEXT NOT NULL, row_id TEXT NOT NULL, \
             row_data TEXT NOT NULL CHECK (json_valid(row_data)), reason TEXT NOT NULL, quarantined_at TEXT NOT NULL, \
             PRIMARY KEY (table_name, row_id))"
        )],
    }
}

/// Copies the rows of `table` that need a decision into the quarantine, as they are
/// (`live` is the table's current shape); on Postgres also deletes them from `table`
/// (on SQLite the rebuild leaves them out). `now` is the adoption's time as SQL.
pub(crate) fn move_rows(backend: DbBackend, table: &str, live: &Table, now: &str) -> Vec<String> {
    let decisions = decisions_table(backend);
    let q = ident(table);
    let name = literal(table);
    let (row_id, row_data, reasons) = match backend {
        DbBackend::Postgres => (
            "t.\"id\"::text".to_owned(),
            "to_jsonb(t)".to_owned(),
            "string_agg(reason, '; ' ORDER BY reason)",
        ),
        _ => {
            let pairs: Vec<String> = live
                .columns
                .iter()
                .map(|c| {
                    // JSON cannot hold a BLOB (json_object fails on one): its hex, tagged.
                    let v = format!("t.{}", ident(&c.name));
                    format!(
                        "{}, CASE WHEN typeof({v}) = 'blob' THEN json_object('$blob_hex', hex({v})) ELSE {v} END",
                        literal(&c.name)
                    )
                })
                .collect();
            (
                "CAST(t.\"id\" AS TEXT)".to_owned(),
                format!("json_object({})", pairs.join(", ")),
                "group_concat(reason, '; ' ORDER BY reason)",
            )
        }
    };
    let mut out = vec![format!(
        "INSERT INTO {TABLE} (table_name, row_id, row_data, reason, quarantined_at) \
         SELECT {name}, {row_id}, {row_data}, d.reason, {now} FROM {q} AS t \
         JOIN (SELECT row_id, {reasons} AS reason FROM {decisions} WHERE table_name = {name} GROUP BY row_id) AS d \
         ON d.row_id = {row_id}"
    )];
    if backend == DbBackend::Postgres {
        out.push(format!(
            "DELETE FROM {q} AS t USING (SELECT DISTINCT row_id FROM {decisions} WHERE table_name = {name}) AS d \
             WHERE d.row_id = {row_id}"
        ));
    }
    out
}
