//! What a database is before adoption: current, already managed by the history, the
//! product's draft, or neither.
//!
//! "The draft" is recognised by comparing the live catalog with two reference schemas
//! made on scratch databases: the draft's own DDL ([`DRAFT_POSTGRES`], [`DRAFT_SQLITE`])
//! and what the history's first migration creates. Every element of the six tables must
//! be one of the two: a column the draft has (with the draft's type) or the migrations
//! have (with their type), and on Postgres, where tables are altered in place, every
//! constraint and index must be the draft's or the migrations' under the same name.
//! Nullability and defaults may be anything (adoption sets them), and anything missing
//! that the draft does not have either (the migrations' extra columns, constraints,
//! indexes) is added. So a draft a DBA already tightened by hand is still recognised.

use std::collections::{BTreeMap, BTreeSet};

use dal_config::{Backend, Config};
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, DbErr};

use crate::inspect::{METADATA_TABLES, Schema, Table, between, inspect, unquote};
use crate::{checksum, scratch};

/// The draft schema of dual-database-design.md §3, as created on Postgres.
pub const DRAFT_POSTGRES: &str = include_str!("draft_postgres.sql");
/// The draft schema as drizzle-kit wrote it for SQLite (§9).
pub const DRAFT_SQLITE: &str = include_str!("draft_sqlite.sql");

/// The reference schemas, each read from a scratch database of the configured backend.
pub(crate) struct Shapes {
    /// The draft's DDL.
    pub draft: Schema,
    /// The history's first migration: what adoption turns the draft into.
    pub target: Schema,
    /// The whole history: what `check` compares with.
    pub full: Schema,
}

impl Shapes {
    pub(crate) async fn load(config: &Config) -> Result<Shapes, DbErr> {
        let ddl = match config.backend() {
            Backend::Sqlite => DRAFT_SQLITE,
            Backend::Postgres => DRAFT_POSTGRES,
        };
        Ok(Shapes {
            draft: scratch::schema_of(config, ddl).await?,
            target: scratch::migrated_schema(config, Some(1)).await?,
            full: scratch::expected_schema(config).await?,
        })
    }

    /// The first migration's tables, parents before children.
    pub(crate) fn table_order(&self) -> Vec<String> {
        let mut order: Vec<String> = Vec::new();
        let mut left: Vec<&String> = self.target.tables.keys().collect();
        while !left.is_empty() {
            let before = left.len();
            left.retain(|name| {
                let ready = parents(&self.target.tables[*name])
                    .iter()
                    .all(|(_, p)| p == *name || order.contains(p));
                if ready {
                    order.push((*name).clone());
                }
                !ready
            });
            if left.len() == before {
                // A cycle cannot happen in this schema; keep the rest in name order.
                order.extend(left.drain(..).cloned());
            }
        }
        order
    }
}

/// The foreign keys of a table as `(column, parent table)`.
pub(crate) fn parents(table: &Table) -> Vec<(String, String)> {
    table.foreign_keys()
}

/// Foreign keys from tables outside the schema (`live` minus `target`) into it, as
/// `child.column -> parent`.
pub(crate) fn outside_references(live: &Schema, target: &Schema) -> Vec<String> {
    live.tables
        .iter()
        .filter(|(name, _)| !target.tables.contains_key(*name))
        .flat_map(|(name, table)| {
            parents(table)
                .into_iter()
                .filter(|(_, parent)| target.tables.contains_key(parent))
                .map(move |(column, parent)| format!("{name}.{column} -> {parent}"))
        })
        .collect()
}

/// The column lists of a table's primary key and unique constraints.
pub(crate) fn unique_keys(table: &Table) -> Vec<Vec<String>> {
    table
        .constraints
        .values()
        .filter_map(|def| {
            let cols =
                between(def, "PRIMARY KEY (", ")").or_else(|| between(def, "UNIQUE (", ")"))?;
            Some(cols.split(',').map(|c| unquote(c.trim())).collect())
        })
        .collect()
}

/// The CHECK constraints of a table as `(name, expression)`.
pub(crate) fn checks(table: &Table) -> Vec<(String, String)> {
    table
        .constraints
        .iter()
        .filter_map(|(name, def)| {
            let expr = def.strip_prefix("CHECK ")?;
            let name = name.strip_prefix("check ").unwrap_or(name);
            Some((name.to_owned(), expr.to_owned()))
        })
        .collect()
}

/// What the live database is.
pub(crate) enum State {
    /// The history is recorded, fully applied, and the database matches it.
    Current,
    /// The history is recorded but the database is behind or differs.
    Managed(Vec<String>),
    /// The draft (possibly partly tightened by hand): adoptable. `extra` lists tables
    /// outside the schema, which adoption leaves alone.
    Draft { live: Schema, extra: Vec<String> },
    /// Neither the draft nor the history: the differences.
    Neither(Vec<String>),
}

/// Reads the live catalog (inside the adoption's transaction) and classifies it.
pub(crate) async fn classify<C: ConnectionTrait>(db: &C, shapes: &Shapes) -> Result<State, DbErr> {
    let applied = checksum::applied_versions(db).await?;
    let live = inspect(db).await?;
    if !applied.is_empty() || checksum::has_table(db, checksum::TABLE).await? {
        let mut problems = checksum::verify(db).await?;
        problems.extend(live.differences(&shapes.full));
        return Ok(if problems.is_empty() {
            State::Current
        } else {
            State::Managed(problems)
        });
    }
    if !shapes
        .target
        .tables
        .keys()
        .any(|t| live.tables.contains_key(t))
    {
        return Ok(State::Neither(vec![format!(
            "none of the draft's tables ({}) is here; an empty database is set up by `migration up`",
            shapes
                .target
                .tables
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )]));
    }
    let mut differences = Vec::new();
    let mut extra = Vec::new();
    for name in live.tables.keys() {
        if shapes.target.tables.contains_key(name) || METADATA_TABLES.contains(&name.as_str()) {
            continue;
        }
        if shapes.full.tables.contains_key(name) {
            differences.push(format!(
                "table {name} belongs to a later migration, but no migration is recorded as applied"
            ));
        } else {
            extra.push(name.clone());
        }
    }
    for (name, want) in &shapes.target.tables {
        match live.tables.get(name) {
            None => differences.push(format!("table {name} is missing")),
            Some(table) => table_differences(
                name,
                table,
                shapes.draft.tables.get(name),
                want,
                live.backend,
                &mut differences,
            ),
        }
    }
    Ok(if differences.is_empty() {
        State::Draft { live, extra }
    } else {
        State::Neither(differences)
    })
}

/// How `live` departs from both the draft's and the migrations' version of a table.
fn table_differences(
    name: &str,
    live: &Table,
    draft: Option<&Table>,
    target: &Table,
    backend: DbBackend,
    out: &mut Vec<String>,
) {
    let empty = Table::default();
    let draft = draft.unwrap_or(&empty);
    let find = |t: &'_ Table, c: &str| t.columns.iter().find(|x| x.name == c).cloned();
    for column in &live.columns {
        let allowed: BTreeSet<String> = [find(draft, &column.name), find(target, &column.name)]
            .into_iter()
            .flatten()
            .map(|c| c.data_type.to_ascii_lowercase())
            .collect();
        if allowed.is_empty() {
            out.push(format!(
                "{name}.{} ({}) is neither in the draft nor in the migrations",
                column.name, column.data_type
            ));
        } else if !allowed.contains(&column.data_type.to_ascii_lowercase()) {
            out.push(format!(
                "{name}.{} has type {} but the draft and the migrations say {}",
                column.name,
                column.data_type,
                allowed.into_iter().collect::<Vec<_>>().join(" or ")
            ));
        }
    }
    for column in &draft.columns {
        if find(live, &column.name).is_none() {
            out.push(format!(
                "{name}.{} is missing (the draft has it)",
                column.name
            ));
        }
    }
    if backend == DbBackend::Sqlite {
        // Tables are rebuilt: their constraints and indexes are replaced whatever they are.
        return;
    }
    for (key, def) in &live.constraints {
        known(
            name,
            "constraint",
            key,
            def,
            &draft.constraints,
            &target.constraints,
            out,
        );
    }
    for (key, def) in &live.indexes {
        known(
            name,
            "index",
            key,
            def,
            &draft.indexes,
            &target.indexes,
            out,
        );
    }
}

/// Records `key` unless the draft or the migrations define it exactly so.
fn known(
    table: &str,
    what: &str,
    key: &str,
    def: &str,
    draft: &BTreeMap<String, String>,
    target: &BTreeMap<String, String>,
    out: &mut Vec<String>,
) {
    if draft.get(key).map(String::as_str) != Some(def)
        && target.get(key).map(String::as_str) != Some(def)
    {
        out.push(format!(
            "{table}: {what} {key} ({def}) is neither the draft's nor the migrations'"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(constraints: &[(&str, &str)]) -> Table {
        Table {
            constraints: constraints
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Table::default()
        }
    }

    #[test]
    fn reads_keys_and_checks_as_either_backend_reports_them() {
        let postgres = table(&[
            ("tasks_pkey", "PRIMARY KEY (id)"),
            (
                "tasks_project_id_fkey",
                "FOREIGN KEY (project_id) REFERENCES projects(id) ON DELETE CASCADE",
            ),
            (
                "tasks_status_check",
                "CHECK ((status = ANY (ARRAY['Pending'::text])))",
            ),
        ]);
        let sqlite = table(&[
            ("primary key", "PRIMARY KEY (id)"),
            (
                "foreign key (project_id)",
                "REFERENCES projects(id) ON UPDATE NO ACTION ON DELETE CASCADE",
            ),
            ("tasks_status_check", "CHECK (\"status\" IN ('Pending'))"),
            ("unique (email)", "UNIQUE (email)"),
        ]);
        let fk = vec![("project_id".to_owned(), "projects".to_owned())];
        assert_eq!(parents(&postgres), fk);
        assert_eq!(parents(&sqlite), fk);
        assert_eq!(unique_keys(&postgres), vec![vec!["id".to_owned()]]);
        assert_eq!(
            unique_keys(&sqlite),
            vec![vec!["id".to_owned()], vec!["email".to_owned()]]
        );
        assert_eq!(
            checks(&sqlite),
            vec![(
                "tasks_status_check".to_owned(),
                "(\"status\" IN ('Pending'))".to_owned()
            )]
        );
        assert_eq!(checks(&postgres).len(), 1);
    }
}
