//! A normalised view of a live schema, its DDL text, and the differences between two.
//!
//! [`inspect`] reads a database's catalog (SQLite: `sqlite_master` and the `pragma_*`
//! table functions; Postgres: `pg_catalog`) into a [`Schema`]: tables, columns (type,
//! nullability, default), constraints (primary key, unique, foreign keys with their
//! actions, CHECKs), indexes and triggers; on Postgres also the functions, sequences,
//! row-level security switches, policies and rewrite rules. [`Schema::ddl`] prints it as a script that
//! loads into an empty database; [`Schema::differences`] lists, in words, how a live
//! database departs from what the migration history produces.

mod ddl;
mod diff;
mod postgres;
mod routines;
mod sqlite;

use std::collections::BTreeMap;

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use crate::checksum;

/// Tables that belong to the migration tooling, not to the history's schema: the history's
/// own, `migration adopt`'s quarantine, and drizzle-kit's journal, which a Drizzle-made
/// database keeps after adoption.
pub const METADATA_TABLES: [&str; 4] = [
    "seaql_migrations",
    crate::checksum::TABLE,
    crate::adopt::quarantine::TABLE,
    "__drizzle_migrations",
];

/// A database schema, normalised for comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    /// The backend it was read from.
    pub backend: DbBackend,
    /// Tables by name (the migration tooling's own tables left out).
    pub tables: BTreeMap<String, Table>,
    /// Functions of the schema (Postgres) by name and argument types, e.g.
    /// `dal_sync_stamp()`, with their `CREATE OR REPLACE FUNCTION` text.
    pub functions: BTreeMap<String, String>,
    /// Sequences of the schema (Postgres) by name, such as a `bigserial`'s.
    pub sequences: BTreeMap<String, Sequence>,
    /// The migration history's bookkeeping: not compared (`checksum::verify` checks it),
    /// but part of the DDL, so a database loaded from it counts as migrated.
    pub bookkeeping: Bookkeeping,
}

/// A sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequence {
    /// Its `CREATE SEQUENCE` statement.
    pub definition: String,
    /// The column that owns it (`table.column`), dropped with it.
    pub owned_by: Option<String>,
}

/// The tables `seaql_migrations` and [`checksum::TABLE`] and their rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bookkeeping {
    /// The two tables, where they exist.
    pub tables: BTreeMap<String, Table>,
    /// The applied migrations, oldest first, with their recorded checksums.
    pub applied: Vec<(String, Option<String>)>,
}

/// One table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    /// Columns in table order.
    pub columns: Vec<Column>,
    /// Constraints by a stable key: the constraint's name where the backend keeps one,
    /// otherwise its kind and columns (SQLite foreign keys, for instance).
    pub constraints: BTreeMap<String, String>,
    /// Indexes by name, with their definition.
    pub indexes: BTreeMap<String, String>,
    /// The table's own DDL where the backend stores it (SQLite).
    pub create_sql: Option<String>,
    /// Triggers by name, with their `CREATE TRIGGER` statement (Postgres: followed by
    /// the `ALTER TABLE` that sets a mode other than enabled).
    pub triggers: BTreeMap<String, String>,
    /// Whether row-level security is enabled (Postgres).
    pub row_security: bool,
    /// Whether row-level security applies to the table's owner too (Postgres).
    pub force_row_security: bool,
    /// Row-level security policies by name, with their `CREATE POLICY` statement.
    pub policies: BTreeMap<String, String>,
    /// Rewrite rules by name, with their `CREATE RULE` statement (Postgres). The history
    /// makes none, but one added by hand rewrites writes (`DO INSTEAD NOTHING` drops
    /// every update) as silently as a trigger, so it is a difference too.
    pub rules: BTreeMap<String, String>,
}

impl Table {
    /// The table's foreign keys as `(column, parent table)`, read from the constraint
    /// definitions either backend reports (`FOREIGN KEY (c) REFERENCES p(id) ...` on
    /// Postgres, key `foreign key (c)` with `REFERENCES p(id) ...` on SQLite).
    pub fn foreign_keys(&self) -> Vec<(String, String)> {
        self.constraints
            .iter()
            .filter_map(|(key, def)| {
                let column = between(def, "FOREIGN KEY (", ")")
                    .or_else(|| between(key, "foreign key (", ")"))?;
                let parent = between(def, "REFERENCES ", "(")?;
                Some((unquote(column.trim()), unquote(parent.trim())))
            })
            .collect()
    }
}

/// One column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Type as the backend reports it.
    pub data_type: String,
    /// Whether it accepts NULL.
    pub nullable: bool,
    /// Default expression, if any.
    pub default: Option<String>,
}

/// Reads the schema of the database `db` is connected to (Postgres: the first schema of
/// the connection's `search_path`).
pub async fn inspect<C: ConnectionTrait>(db: &C) -> Result<Schema, DbErr> {
    let backend = db.get_database_backend();
    let mut schema = match backend {
        DbBackend::Sqlite => Schema::of_tables(backend, sqlite::tables(db).await?),
        DbBackend::Postgres => postgres::schema(db).await?,
        other => return Err(DbErr::Custom(format!("{other:?} is not supported"))),
    };
    for name in ["seaql_migrations", checksum::TABLE] {
        if let Some(table) = schema.tables.remove(name) {
            schema.bookkeeping.tables.insert(name.to_owned(), table);
        }
    }
    schema
        .tables
        .retain(|name, _| !METADATA_TABLES.contains(&name.as_str()));
    schema.bookkeeping.applied = applied(db).await?;
    Ok(schema)
}

/// The applied migrations and the checksums recorded for them.
async fn applied<C: ConnectionTrait>(db: &C) -> Result<Vec<(String, Option<String>)>, DbErr> {
    let versions = checksum::applied_versions(db).await?;
    let mut sums = BTreeMap::new();
    if checksum::has_table(db, checksum::TABLE).await? {
        let sql = format!("SELECT version, checksum FROM {}", checksum::TABLE);
        for row in db
            .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
            .await?
        {
            sums.insert(
                row.try_get::<String>("", "version")?,
                row.try_get::<String>("", "checksum")?,
            );
        }
    }
    Ok(versions
        .into_iter()
        .map(|v| {
            let sum = sums.remove(&v);
            (v, sum)
        })
        .collect())
}

impl Schema {
    /// A schema of only `tables`.
    pub fn of_tables(backend: DbBackend, tables: BTreeMap<String, Table>) -> Schema {
        Schema {
            backend,
            tables,
            functions: BTreeMap::new(),
            sequences: BTreeMap::new(),
            bookkeeping: Bookkeeping::default(),
        }
    }
}

/// Collapses runs of white space, so formatting never counts as a difference.
pub(crate) fn normalise(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text between the first `open` and the next `close` after it.
pub(crate) fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

/// A name without its identifier quotes.
pub(crate) fn unquote(name: &str) -> String {
    name.trim_matches(|c| c == '"' || c == '`').to_owned()
}
