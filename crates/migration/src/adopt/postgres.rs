//! Postgres: the draft's tables are altered in place, so their data, their ids and the
//! rows of any table outside the schema that refer to them stay where they are.
//!
//! Per table, parents first: add the missing columns (with their defaults), set the
//! migrations' defaults, backfill NULLs (one `UPDATE` per table, see `convert`),
//! renumber positions, `SET NOT NULL`, replace constraints that differ (a foreign key
//! without `ON DELETE CASCADE` is dropped and added again with it, in one statement) and
//! add the missing ones, and create the missing indexes.

use std::collections::BTreeMap;

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::convert::{Conversion, RENUMBER, ident, literal};
use crate::inspect::{Schema, Table};

/// The statements that turn the live `table` into the migrations' `target`.
pub(crate) fn statements(
    table: &str,
    live: &Table,
    target: &Table,
    conversions: &[Conversion],
) -> Vec<String> {
    let q = ident(table);
    let mut out = Vec::new();
    let live_column = |name: &str| live.columns.iter().find(|c| c.name == name);
    let mut now_nullable: Vec<&str> = Vec::new();
    for column in &target.columns {
        match live_column(&column.name) {
            None => {
                let mut sql = format!(
                    "ALTER TABLE {q} ADD COLUMN {} {}",
                    ident(&column.name),
                    column.data_type
                );
                if let Some(default) = &column.default {
                    sql.push_str(&format!(" DEFAULT {default}"));
                    if !column.nullable {
                        // The default fills every existing row.
                        sql.push_str(" NOT NULL");
                    }
                } else if !column.nullable {
                    now_nullable.push(&column.name);
                }
                out.push(sql);
            }
            Some(l) => {
                if l.default != column.default {
                    out.push(match &column.default {
                        Some(d) => format!(
                            "ALTER TABLE {q} ALTER COLUMN {} SET DEFAULT {d}",
                            ident(&column.name)
                        ),
                        None => format!(
                            "ALTER TABLE {q} ALTER COLUMN {} DROP DEFAULT",
                            ident(&column.name)
                        ),
                    });
                }
                if l.nullable && !column.nullable {
                    now_nullable.push(&column.name);
                }
            }
        }
    }
    let fills: Vec<&Conversion> = conversions.iter().filter(|c| c.fills).collect();
    let rewrites = !fills.is_empty() || table == RENUMBER.0;
    if rewrites {
        out.push(pause_triggers(table));
    }
    if !fills.is_empty() {
        let sets: Vec<String> = fills
            .iter()
            .map(|c| format!("{} = {}", ident(&c.column), c.value))
            .collect();
        let any_null: Vec<String> = fills
            .iter()
            .map(|c| format!("t.{} IS NULL", ident(&c.column)))
            .collect();
        out.push(format!(
            "UPDATE {q} AS t SET {} WHERE {}",
            sets.join(", "),
            any_null.join(" OR ")
        ));
    }
    if table == RENUMBER.0 {
        let (column, partition) = (ident(RENUMBER.1), ident(RENUMBER.2));
        let ty = target
            .columns
            .iter()
            .find(|c| c.name == RENUMBER.1)
            .map_or("integer", |c| c.data_type.as_str());
        out.push(format!(
            "UPDATE {q} AS t SET {column} = r.n FROM (SELECT \"id\", CAST(row_number() OVER (PARTITION BY {partition} ORDER BY {column} NULLS LAST, \"id\") - 1 AS {ty}) AS n FROM {q}) AS r \
             WHERE r.\"id\" = t.\"id\" AND t.{column} IS DISTINCT FROM r.n"
        ));
    }
    if rewrites {
        out.push(resume_triggers(table));
    }
    for column in now_nullable {
        out.push(format!(
            "ALTER TABLE {q} ALTER COLUMN {} SET NOT NULL",
            ident(column)
        ));
    }
    for (name, def) in &target.constraints {
        match live.constraints.get(name) {
            Some(l) if l == def => {}
            Some(_) => out.push(format!(
                "ALTER TABLE {q} DROP CONSTRAINT {n}, ADD CONSTRAINT {n} {def}",
                n = ident(name)
            )),
            None => out.push(format!(
                "ALTER TABLE {q} ADD CONSTRAINT {} {def}",
                ident(name)
            )),
        }
    }
    for (name, def) in &target.indexes {
        match live.indexes.get(name) {
            Some(l) if l == def => {}
            Some(_) => {
                out.push(format!("DROP INDEX {}", ident(name)));
                out.push(def.clone());
            }
            None => out.push(def.clone()),
        }
    }
    out
}

/// The draft's own enabled triggers on `table` (a Supabase `updated_at` stamp, say) are
/// switched off while adoption's backfill and renumbering `UPDATE`s run, so they cannot
/// rewrite the rows; their modes are kept in a temporary table for [`resume_triggers`].
fn pause_triggers(table: &str) -> String {
    format!(
        "DO $adopt$ DECLARE r record; BEGIN \
         CREATE TEMP TABLE IF NOT EXISTS adopt_paused_triggers (table_name text, name text, mode \"char\") ON COMMIT DROP; \
         FOR r IN SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = {rel}::regclass AND NOT tgisinternal AND tgenabled <> 'D' LOOP \
         INSERT INTO pg_temp.adopt_paused_triggers VALUES ({name}, r.tgname, r.tgenabled); \
         EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', {rel}, r.tgname); END LOOP; END $adopt$",
        rel = literal(&ident(table)),
        name = literal(table)
    )
}

/// Turns the triggers [`pause_triggers`] switched off back on, each in its former mode.
fn resume_triggers(table: &str) -> String {
    format!(
        "DO $adopt$ DECLARE r record; BEGIN \
         FOR r IN DELETE FROM pg_temp.adopt_paused_triggers WHERE table_name = {name} RETURNING * LOOP \
         EXECUTE format('ALTER TABLE %s ENABLE %s TRIGGER %I', {rel}, \
         CASE r.mode WHEN 'A' THEN 'ALWAYS' WHEN 'R' THEN 'REPLICA' ELSE '' END, r.name); END LOOP; END $adopt$",
        rel = literal(&ident(table)),
        name = literal(table)
    )
}

/// Foreign keys from tables outside the schema into it, as `child.constraint -> parent`.
/// Moving rows to quarantine would break or cascade into those tables, so adoption
/// refuses to quarantine while there are any.
pub(crate) async fn outside_references<C: ConnectionTrait>(
    db: &C,
    schema: &Schema,
) -> Result<Vec<String>, DbErr> {
    let names: Vec<String> = schema
        .tables
        .keys()
        .map(|t| format!("'{}'", t.replace('\'', "''")))
        .collect();
    let list = names.join(", ");
    let sql = format!(
        "SELECT c.conrelid::regclass::text AS child, c.conname::text AS name, c.confrelid::regclass::text AS parent \
         FROM pg_constraint c WHERE c.contype = 'f' \
         AND c.confrelid::regclass::text IN ({list}) AND c.conrelid::regclass::text NOT IN ({list}) \
         ORDER BY 1, 2"
    );
    let rows = db
        .query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?;
    let mut out = BTreeMap::new();
    for row in rows {
        let child: String = row.try_get("", "child")?;
        let name: String = row.try_get("", "name")?;
        let parent: String = row.try_get("", "parent")?;
        out.insert(
            format!("{child}.{name}"),
            format!("{child}.{name} -> {parent}"),
        );
    }
    Ok(out.into_values().collect())
}
