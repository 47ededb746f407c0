//! Postgres's catalog, for the first schema of the connection's `search_path`: tables,
//! columns, constraints and indexes here; triggers, functions, policies and sequences in
//! [`super::routines`].

use std::collections::BTreeMap;

use sea_orm_migration::sea_orm::{ConnectionTrait, DbErr, QueryResult, Statement};

use super::{Column, Schema, Table, normalise, routines};

pub(super) async fn rows<C: ConnectionTrait>(db: &C, sql: &str) -> Result<Vec<QueryResult>, DbErr> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
}

const COLUMNS: &str = r#"
SELECT c.relname::text AS table_name, a.attname::text AS column_name,
       format_type(a.atttypid, a.atttypmod) AS data_type, NOT a.attnotnull AS nullable,
       pg_get_expr(d.adbin, d.adrelid) AS default_expr
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
ORDER BY c.relname, a.attnum"#;

const CONSTRAINTS: &str = r#"
SELECT c.relname::text AS table_name, con.conname::text AS name, pg_get_constraintdef(con.oid) AS def
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema()"#;

/// Indexes other than those that back a constraint (listed with the constraint).
const INDEXES: &str = r#"
SELECT i.tablename::text AS table_name, i.indexname::text AS name, i.indexdef AS def
FROM pg_indexes i
WHERE i.schemaname = current_schema()
  AND NOT EXISTS (
      SELECT 1 FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
      WHERE n.nspname = current_schema() AND con.conname = i.indexname)"#;

pub(super) async fn schema<C: ConnectionTrait>(db: &C) -> Result<Schema, DbErr> {
    let name: String = rows(db, "SELECT current_schema()::text AS s")
        .await?
        .first()
        .ok_or_else(|| DbErr::Custom("no current schema".into()))?
        .try_get("", "s")?;
    let plain = |def: String| unqualify(&name, &normalise(&def));

    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for row in rows(db, COLUMNS).await? {
        let table: String = row.try_get("", "table_name")?;
        tables.entry(table).or_default().columns.push(Column {
            name: row.try_get("", "column_name")?,
            data_type: row.try_get("", "data_type")?,
            nullable: row.try_get("", "nullable")?,
            default: row
                .try_get::<Option<String>>("", "default_expr")?
                .map(plain),
        });
    }
    for row in rows(db, CONSTRAINTS).await? {
        let table: String = row.try_get("", "table_name")?;
        let def: String = row.try_get("", "def")?;
        tables
            .entry(table)
            .or_default()
            .constraints
            .insert(row.try_get("", "name")?, plain(def));
    }
    for row in rows(db, INDEXES).await? {
        let table: String = row.try_get("", "table_name")?;
        let def: String = row.try_get("", "def")?;
        tables
            .entry(table)
            .or_default()
            .indexes
            .insert(row.try_get("", "name")?, plain(def));
    }
    let mut schema = Schema::of_tables(sea_orm_migration::sea_orm::DbBackend::Postgres, tables);
    routines::read(db, &name, &mut schema).await?;
    Ok(schema)
}

/// Definitions name objects of the schema with its name as a prefix; ours are
/// unqualified, so the same schema compares equal whichever schema it lives in.
pub(super) fn unqualify(schema: &str, def: &str) -> String {
    // A function's fixed search path names its schema as a literal (the live notify
    // functions' `SET search_path TO '<schema>', 'pg_temp'`): written as the deployed
    // schema's, so a scratch schema compares equal to the live one.
    def.replace(&format!("\"{schema}\"."), "")
        .replace(&format!("{schema}."), "")
        .replace(
            &format!("search_path TO '{schema}'"),
            "search_path TO 'public'",
        )
}
