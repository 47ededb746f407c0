//! What Postgres keeps beside the tables: triggers, functions, row-level security and
//! its policies, rewrite rules, and sequences; each as the statement that makes it, with the schema's
//! name left out (see [`unqualify`]).

use sea_orm_migration::sea_orm::{ConnectionTrait, DbErr};

use super::postgres::{rows, unqualify};
use super::{Schema, Sequence, normalise};

/// User triggers, with the mode of any not simply enabled (`tgenabled`: `O` enabled,
/// `D` disabled, `R` replica only, `A` always).
const TRIGGERS: &str = r#"
SELECT c.relname::text AS table_name, t.tgname::text AS name,
       pg_get_triggerdef(t.oid) AS def, t.tgenabled::text AS mode,
       quote_ident(c.relname) AS rel, quote_ident(t.tgname) AS ident
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND NOT t.tgisinternal"#;

/// Functions and procedures of the schema, but those an extension brings.
const FUNCTIONS: &str = r#"
SELECT p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS name,
       pg_get_functiondef(p.oid) AS def
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = current_schema() AND p.prokind IN ('f', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')"#;

const ROW_SECURITY: &str = r#"
SELECT c.relname::text AS table_name, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"#;

const POLICIES: &str = r#"
SELECT p.tablename::text AS table_name, p.policyname::text AS name,
       format('CREATE POLICY %I ON %I AS %s FOR %s TO %s', p.policyname, p.tablename, p.permissive,
              p.cmd, (SELECT string_agg(quote_ident(r), ', ' ORDER BY r) FROM unnest(p.roles) r))
         || coalesce(' USING (' || p.qual || ')', '')
         || coalesce(' WITH CHECK (' || p.with_check || ')', '') AS def
FROM pg_policies p
WHERE p.schemaname = current_schema()"#;

/// Rewrite rules on tables (`pg_rules` leaves out the `ON SELECT` rules of views).
const RULES: &str = r#"
SELECT r.tablename::text AS table_name, r.rulename::text AS name, r.definition AS def
FROM pg_rules r
WHERE r.schemaname = current_schema()"#;

/// Sequences but those of identity columns (made by the column's own DDL), with the
/// column owning them.
const SEQUENCES: &str = r#"
SELECT c.relname::text AS name,
       format('CREATE SEQUENCE %I AS %s INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s CACHE %s %s',
              c.relname, format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin, s.seqmax,
              s.seqstart, s.seqcache, CASE WHEN s.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END) AS def,
       (SELECT quote_ident(t.relname) || '.' || quote_ident(a.attname)
        FROM pg_depend d
        JOIN pg_class t ON t.oid = d.refobjid
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
          AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a') AS owned_by
FROM pg_class c
JOIN pg_sequence s ON s.seqrelid = c.oid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind = 'S'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'i')"#;

/// Adds the schema's triggers, functions, row-level security and sequences to `schema`
/// (whose tables are read already); `name` is the schema's name.
pub(super) async fn read<C: ConnectionTrait>(
    db: &C,
    name: &str,
    schema: &mut Schema,
) -> Result<(), DbErr> {
    // Function bodies are kept as Postgres prints them, line breaks and all (a `--`
    // comment ends at one), and compared with white space collapsed.
    let plain = |def: String| unqualify(name, def.trim());
    for row in rows(db, TRIGGERS).await? {
        let table: String = row.try_get("", "table_name")?;
        let mut def = normalise(&plain(row.try_get("", "def")?));
        let mode: String = row.try_get("", "mode")?;
        let switch = match mode.as_str() {
            "D" => Some("DISABLE"),
            "R" => Some("ENABLE REPLICA"),
            "A" => Some("ENABLE ALWAYS"),
            _ => None,
        };
        if let Some(switch) = switch {
            let rel: String = row.try_get("", "rel")?;
            let ident: String = row.try_get("", "ident")?;
            def.push_str(&format!(";\nALTER TABLE {rel} {switch} TRIGGER {ident}"));
        }
        if let Some(t) = schema.tables.get_mut(&table) {
            t.triggers.insert(row.try_get("", "name")?, def);
        }
    }
    for row in rows(db, FUNCTIONS).await? {
        schema
            .functions
            .insert(row.try_get("", "name")?, plain(row.try_get("", "def")?));
    }
    for row in rows(db, ROW_SECURITY).await? {
        let table: String = row.try_get("", "table_name")?;
        if let Some(t) = schema.tables.get_mut(&table) {
            t.row_security = row.try_get("", "enabled")?;
            t.force_row_security = row.try_get("", "forced")?;
        }
    }
    for row in rows(db, POLICIES).await? {
        let table: String = row.try_get("", "table_name")?;
        if let Some(t) = schema.tables.get_mut(&table) {
            let def = normalise(&plain(row.try_get("", "def")?));
            t.policies.insert(row.try_get("", "name")?, def);
        }
    }
    for row in rows(db, RULES).await? {
        let table: String = row.try_get("", "table_name")?;
        if let Some(t) = schema.tables.get_mut(&table) {
            let def = normalise(&plain(row.try_get("", "def")?));
            t.rules.insert(row.try_get("", "name")?, def);
        }
    }
    for row in rows(db, SEQUENCES).await? {
        schema.sequences.insert(
            row.try_get("", "name")?,
            Sequence {
                definition: row.try_get("", "def")?,
                owned_by: row.try_get("", "owned_by")?,
            },
        );
    }
    Ok(())
}
