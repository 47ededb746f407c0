//! SQLite cannot alter a column's type, nullability or constraints, so the draft's tables
//! are rebuilt, the way SQLite's documentation describes: the converted rows are staged
//! in temporary tables (which the row checks read), each table is created anew under a
//! temporary name with exactly the DDL of the migrations' first step, filled from the
//! staging table, the old table dropped and the new one renamed; then the indexes.
//!
//! All of it runs in one transaction with `foreign_keys` off on that connection (it cannot
//! change inside a transaction; with it on, dropping an old parent table would cascade
//! into the new children), and `PRAGMA foreign_key_check` must come back empty before
//! commit.
//!
//! Dropping a table drops its triggers, and a view over a dropped table makes the rename
//! fail, so [`dependents`] names the draft's triggers and views for the plan, and
//! `--apply` refuses while there are any (a draft has none of the library's own).

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::convert::{Conversion, RENUMBER, converted_rows, ident, literal};
use super::decide::decisions_table;
use super::shape::{parents, unique_keys};
use crate::inspect::Table;

/// The staging table of `table`.
pub(crate) fn staging(table: &str) -> String {
    format!("temp.{}", ident(&format!("adopt_conv_{table}")))
}

/// The temporary name of the rebuilt `table`.
fn rebuilt(table: &str) -> String {
    ident(&format!("adopt_new_{table}"))
}

/// Stages the converted rows of `table` (plus `adopt_row_id`, the stored id) and indexes
/// the columns the row checks look up.
pub(crate) fn stage(table: &str, target: &Table, conversions: &[Conversion]) -> Vec<String> {
    let mut out = vec![format!(
        "CREATE TEMP TABLE {} AS {}",
        ident(&format!("adopt_conv_{table}")),
        converted_rows(DbBackend::Sqlite, table, conversions)
    )];
    let mut looked_up: Vec<String> = vec!["adopt_row_id".to_owned()];
    looked_up.extend(
        unique_keys(target)
            .into_iter()
            .filter(|k| k.len() == 1)
            .flatten(),
    );
    looked_up.extend(parents(target).into_iter().map(|(c, _)| c));
    looked_up.dedup();
    for column in looked_up {
        out.push(format!(
            "CREATE INDEX temp.{} ON {} ({})",
            ident(&format!("adopt_conv_{table}_{column}_idx")),
            ident(&format!("adopt_conv_{table}")),
            ident(&column)
        ));
    }
    out
}

/// Creates the rebuilt `table` under its temporary name and copies the staged rows into
/// it, leaving out those that need a decision.
pub(crate) fn create_and_copy(table: &str, target: &Table) -> Result<Vec<String>, String> {
    let sql = target
        .create_sql
        .as_deref()
        .ok_or_else(|| format!("no DDL for {table}"))?;
    let head = format!("CREATE TABLE {}", ident(table));
    let body = sql
        .strip_prefix(&head)
        .ok_or_else(|| format!("unexpected DDL for {table}: {sql}"))?;
    let names: Vec<String> = target.columns.iter().map(|c| ident(&c.name)).collect();
    let values: Vec<String> = target
        .columns
        .iter()
        .map(|c| {
            if (table, c.name.as_str()) == (RENUMBER.0, RENUMBER.1) {
                let (column, partition) = (ident(RENUMBER.1), ident(RENUMBER.2));
                format!(
                    "row_number() OVER (PARTITION BY r.{partition} ORDER BY r.{column} IS NULL, r.{column}, r.\"id\") - 1"
                )
            } else {
                format!("r.{}", ident(&c.name))
            }
        })
        .collect();
    Ok(vec![
        format!("CREATE TABLE {}{body}", rebuilt(table)),
        format!(
            "INSERT INTO {} ({}) SELECT {} FROM {} AS r WHERE NOT EXISTS (SELECT 1 FROM {} AS d WHERE d.table_name = {} AND d.row_id = r.adopt_row_id)",
            rebuilt(table),
            names.join(", "),
            values.join(", "),
            staging(table),
            decisions_table(DbBackend::Sqlite),
            literal(table)
        ),
    ])
}

/// Replaces the old `table` with the rebuilt one.
pub(crate) fn drop_old(table: &str) -> String {
    format!("DROP TABLE {}", ident(table))
}

/// Gives the rebuilt `table` its name.
pub(crate) fn rename(table: &str) -> String {
    format!("ALTER TABLE {} RENAME TO {}", rebuilt(table), ident(table))
}

/// The triggers and views that the rebuild of `tables` would drop or break, as
/// `trigger <name>` / `view <name>`: those on one of the tables, and those whose SQL names
/// one of them (any identifier-like word equal to a table's name, so a column of that
/// name counts too: a refusal is the safe side of a guess).
pub(crate) async fn dependents<C: ConnectionTrait>(
    db: &C,
    tables: &[String],
) -> Result<Vec<String>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT type, name, tbl_name, coalesce(sql, '') AS sql FROM sqlite_master \
             WHERE type IN ('trigger', 'view') ORDER BY type, name",
        ))
        .await?;
    let mut out = Vec::new();
    for row in rows {
        let kind: String = row.try_get("", "type")?;
        let name: String = row.try_get("", "name")?;
        let on: String = row.try_get("", "tbl_name")?;
        let sql: String = row.try_get("", "sql")?;
        let names_one = |word: &str| tables.iter().any(|t| t.eq_ignore_ascii_case(word));
        let words = sql.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'));
        if names_one(&on) || words.into_iter().any(names_one) {
            out.push(format!("{kind} {name}"));
        }
    }
    Ok(out)
}
