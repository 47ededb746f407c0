//! Rows that cannot satisfy the migrations' constraints once converted: they need a
//! decision (fix them by hand, or quarantine them), never a silent delete.
//!
//! Every check runs on the *converted* rows (see `convert`), parents before children, and
//! writes `(table, row id, reason)` into a temporary table: a NULL left in a NOT NULL
//! column, a CHECK the value fails, a uuid list holding something that is not a uuid,
//! a duplicate key, a reference to a row that does not exist, and a reference to a row
//! that itself needs a decision (a shot's timeline entries go with the shot).

use std::collections::BTreeMap;

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::convert::{Kind, RENUMBER, ident, kind, literal, sqlite_json_array, uuid_glob};
use super::shape::{checks, parents, unique_keys};
use crate::inspect::Table;

/// A row that needs a decision, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Its table.
    pub table: String,
    /// Its id, as stored (before any conversion).
    pub row_id: String,
    /// Every reason, e.g. `project_id is NULL`.
    pub reasons: Vec<String>,
}

/// The temporary table holding the decisions, as statements refer to it.
pub(crate) fn decisions_table(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "pg_temp.adopt_decisions",
        _ => "temp.adopt_decisions",
    }
}

/// Creates the temporary decisions table (dropped with the transaction on Postgres, with
/// the connection on SQLite).
pub(crate) fn create_statements(backend: DbBackend) -> Vec<String> {
    let suffix = if backend == DbBackend::Postgres {
        " ON COMMIT DROP"
    } else {
        ""
    };
    vec![
        format!(
            "CREATE TEMP TABLE adopt_decisions (table_name text NOT NULL, row_id text NOT NULL, reason text NOT NULL){suffix}"
        ),
        "CREATE INDEX adopt_decisions_row_idx ON adopt_decisions (table_name, row_id)".to_owned(),
    ]
}

/// The SQL function quoting a value as a literal, for reasons.
fn quote(backend: DbBackend, x: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("quote_nullable({x})"),
        _ => format!("quote({x})"),
    }
}

/// The statements that record the decisions of `table`. `relation(t)` is SQL for the
/// converted rows of table `t`: its target columns plus `adopt_row_id`, the stored id.
pub(crate) fn statements(
    backend: DbBackend,
    table: &str,
    target: &Table,
    relation: &dyn Fn(&str) -> String,
) -> Vec<String> {
    let decisions = decisions_table(backend);
    let rel = relation(table);
    let record = |reason: String, predicate: String| {
        format!(
            "INSERT INTO {decisions} (table_name, row_id, reason) SELECT {}, r.adopt_row_id, {reason} FROM {rel} AS r WHERE {predicate}",
            literal(table)
        )
    };
    let col = |c: &str| format!("r.{}", ident(c));
    let mut out = Vec::new();
    for column in target.columns.iter().filter(|c| !c.nullable) {
        if (table, column.name.as_str()) == (RENUMBER.0, RENUMBER.1) {
            continue;
        }
        out.push(record(
            literal(&format!("{} is NULL", column.name)),
            format!("{} IS NULL", col(&column.name)),
        ));
    }
    for (name, expr) in checks(target) {
        let column = target
            .columns
            .iter()
            .find(|c| name == format!("{table}_{}_check", c.name));
        let reason = match column {
            Some(c) => format!(
                "{} || {} || {}",
                literal(&format!("{} ", c.name)),
                quote(backend, &col(&c.name)),
                literal(&format!(" fails {name}"))
            ),
            None => literal(&format!("fails {name}")),
        };
        // In WHERE, NOT (...) short-circuits AND, as the CHECK itself does, and NULL
        // passes, as it does in a CHECK.
        out.push(record(reason, format!("NOT ({expr})")));
    }
    if backend == DbBackend::Sqlite {
        for column in &target.columns {
            if kind(table, &column.name) == Kind::UuidList {
                out.push(record(
                    literal(&format!("{} holds a value that is not a uuid", column.name)),
                    format!(
                        "EXISTS (SELECT 1 FROM json_each({}) WHERE type <> 'text' OR value NOT GLOB '{}')",
                        sqlite_json_array(&col(&column.name)),
                        uuid_glob()
                    ),
                ));
            }
        }
    }
    for key in unique_keys(target) {
        let same: Vec<String> = key
            .iter()
            .map(|c| format!("r2.{} = {}", ident(c), col(c)))
            .collect();
        let shown = key
            .iter()
            .map(|c| quote(backend, &col(c)))
            .collect::<Vec<_>>()
            .join(" || ', ' || ");
        out.push(record(
            format!(
                "{} || {shown} || {}",
                literal(&format!("{} ", key.join(", "))),
                literal(" is not unique")
            ),
            format!(
                "EXISTS (SELECT 1 FROM {rel} AS r2 WHERE {} AND r2.adopt_row_id <> r.adopt_row_id)",
                same.join(" AND ")
            ),
        ));
    }
    for (column, parent) in parents(target) {
        let parent_rel = relation(&parent);
        let value = col(&column);
        out.push(record(
            format!(
                "{} || {} || {}",
                literal(&format!("{column} ")),
                quote(backend, &value),
                literal(&format!(" is not in {parent}"))
            ),
            format!(
                "{value} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {parent_rel} AS p WHERE p.\"id\" = {value})"
            ),
        ));
        out.push(record(
            format!(
                "{} || {} || {}",
                literal(&format!("{column} ")),
                quote(backend, &value),
                literal(&format!(" is a {parent} row that needs a decision"))
            ),
            format!(
                "EXISTS (SELECT 1 FROM {parent_rel} AS p JOIN {decisions} AS d ON d.table_name = {} AND d.row_id = p.adopt_row_id WHERE p.\"id\" = {value})",
                literal(&parent)
            ),
        ));
    }
    out
}

/// Reads the recorded decisions, one per row with all its reasons, in `order` of tables
/// and by id.
pub(crate) async fn read<C: ConnectionTrait>(
    db: &C,
    order: &[String],
) -> Result<Vec<Decision>, DbErr> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT DISTINCT table_name, row_id, reason FROM {} ORDER BY table_name, row_id, reason",
        decisions_table(backend)
    );
    let mut grouped: BTreeMap<(usize, String), Decision> = BTreeMap::new();
    for row in db
        .query_all_raw(Statement::from_string(backend, sql))
        .await?
    {
        let table: String = row.try_get("", "table_name")?;
        let row_id: String = row.try_get("", "row_id")?;
        let reason: String = row.try_get("", "reason")?;
        let rank = order.iter().position(|t| *t == table).unwrap_or(usize::MAX);
        grouped
            .entry((rank, row_id.clone()))
            .or_insert_with(|| Decision {
                table,
                row_id,
                reasons: Vec::new(),
            })
            .reasons
            .push(reason);
    }
    Ok(grouped.into_values().collect())
}
