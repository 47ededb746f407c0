//! The schema registry: every table, its columns with their wire kinds, its parents and
//! its sync metadata, derived from the entities of this crate.
//!
//! The entities are the one declaration of a table's shape. Everything else that needs
//! to know it (the sync engine's client and server, the capture triggers' guard test, the
//! TypeScript generator, the seeder's reports, the tools) reads it from here, so adding a
//! column to an entity reaches them all; a test on both backends checks that the live
//! tables, the registry and the capture triggers agree.
//!
//! ```
//! use entities::schema::{self, Kind};
//!
//! let tasks = schema::table("tasks").unwrap();
//! assert_eq!(tasks.kind("dependant_on"), Some(Kind::UuidList));
//! assert_eq!(tasks.parents[0].table, "projects");
//! // Parents come before their children.
//! assert!(schema::order("projects") < schema::order("tasks"));
//! ```

use std::sync::LazyLock;

use sea_orm::sea_query::{ColumnType, TableRef};
use sea_orm::{ColumnTrait, EntityTrait, IdenStatic, Identity, Iterable, RelationTrait};

/// How a column's value is represented on the sync wire: exactly the text (or integer)
/// SQLite stores, whatever the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Canonical lowercase uuid text.
    Uuid,
    /// Text.
    Text,
    /// A JSON document, as its JSON text.
    Json,
    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    Timestamp,
    /// A JSON array of uuid strings, as its text.
    UuidList,
    /// An integer.
    Int,
    /// A boolean.
    Bool,
}

impl Kind {
    /// The kind of values a column of `column_type` holds.
    pub fn of(column_type: &ColumnType) -> Kind {
        match column_type {
            ColumnType::Uuid => Kind::Uuid,
            ColumnType::Array(inner) if matches!(**inner, ColumnType::Uuid) => Kind::UuidList,
            ColumnType::Json | ColumnType::JsonBinary => Kind::Json,
            ColumnType::TimestampWithTimeZone | ColumnType::Timestamp | ColumnType::DateTime => {
                Kind::Timestamp
            }
            ColumnType::Integer
            | ColumnType::BigInteger
            | ColumnType::SmallInteger
            | ColumnType::TinyInteger => Kind::Int,
            ColumnType::Boolean => Kind::Bool,
            _ => Kind::Text,
        }
    }
}

/// What a column is for, as far as sync is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The primary key `id`.
    Key,
    /// Application data: captured by the replica's triggers and writable by a client.
    Data,
    /// The tombstone flag (`deleted`): captured and writable like data.
    Tombstone,
    /// Sync metadata the server sets (`sync_version`, `last_modified_at`, `device_id`):
    /// sent on the wire, never captured nor written by a client.
    ServerSet,
    /// Local to each database and never synced (`row_version`).
    Local,
}

/// One column of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: &'static str,
    /// How its values travel.
    pub kind: Kind,
    /// Whether it accepts NULL.
    pub nullable: bool,
    /// What it is for.
    pub role: Role,
}

/// A foreign key: `column` references `table.id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parent {
    /// The referencing column of the child.
    pub column: &'static str,
    /// The referenced table.
    pub table: &'static str,
}

/// One table of the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// Its name.
    pub name: &'static str,
    /// Every column: the entity's, in declaration order, then the sync metadata.
    pub columns: Vec<Column>,
    /// Its foreign keys, in the entity's declaration order; the first leads towards the
    /// owning user (row-level security follows it).
    pub parents: Vec<Parent>,
}

/// The sync metadata every synced table carries besides the entity's own columns (added by
/// the `sync` migration; the entities do not expose them, the repositories hide
/// tombstones).
pub const SYNC_METADATA: [(&str, Kind, bool, Role); 4] = [
    ("deleted", Kind::Bool, false, Role::Tombstone),
    ("sync_version", Kind::Int, false, Role::ServerSet),
    ("last_modified_at", Kind::Timestamp, true, Role::ServerSet),
    ("device_id", Kind::Text, true, Role::ServerSet),
];

/// Entity columns local to each database, never synced.
pub const LOCAL_COLUMNS: [&str; 1] = ["row_version"];

/// The registry entry of entity `E`.
pub fn describe<E: EntityTrait>() -> Table {
    let name = E::default().table_name();
    let mut columns: Vec<Column> = E::Column::iter()
        .map(|column| {
            let def = column.def();
            let column_name = column.as_str();
            let role = if column_name == "id" {
                Role::Key
            } else if LOCAL_COLUMNS.contains(&column_name) {
                Role::Local
            } else {
                Role::Data
            };
            Column {
                name: column_name,
                kind: Kind::of(def.get_column_type()),
                nullable: def.is_null(),
                role,
            }
        })
        .collect();
    columns.extend(
        SYNC_METADATA
            .iter()
            .map(|&(name, kind, nullable, role)| Column {
                name,
                kind,
                nullable,
                role,
            }),
    );
    let parents = E::Relation::iter()
        .map(|relation| relation.def())
        // `belongs_to` is the side holding the foreign key; SeaORM marks it not the owner.
        .filter(|def| !def.is_owner)
        .filter_map(|def| {
            let (Identity::Unary(column), TableRef::Table(parent, _)) =
                (&def.from_col, &def.to_tbl)
            else {
                return None;
            };
            Some(Parent {
                column: leak(column.to_string()),
                table: leak(parent.1.to_string()),
            })
        })
        .collect();
    Table {
        name,
        columns,
        parents,
    }
}

/// Relation identifiers are built at run time; the registry lives for the program, so
/// its few names are kept for good (once each, in the registry's one initialisation).
fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

/// Calls `$callback!` with every entity of the schema, parents before children: the one
/// list of tables. Code that needs a per-table item for each entity (an implementation of
/// its own trait, say) expands this rather than keeping a list of its own, so a new entity
/// that lacks the item does not compile.
#[macro_export]
macro_rules! for_each_table {
    ($callback:ident) => {
        $callback! {
            $crate::user::Entity,
            $crate::project::Entity,
            $crate::task::Entity,
            $crate::generation::Entity,
            $crate::shot::Entity,
            $crate::shot_generation::Entity,
        }
    };
}

macro_rules! describe_all {
    ($($entity:ty),+ $(,)?) => {
        vec![$(describe::<$entity>()),+]
    };
}

static TABLES: LazyLock<Vec<Table>> = LazyLock::new(|| for_each_table!(describe_all));

/// Every table, parents before children.
pub fn tables() -> &'static [Table] {
    &TABLES
}

/// The table called `name`, if the schema has one.
pub fn table(name: &str) -> Option<&'static Table> {
    tables().iter().find(|t| t.name == name)
}

/// The position of `name` in parent-first order (past the end for an unknown name).
pub fn order(name: &str) -> usize {
    tables()
        .iter()
        .position(|t| t.name == name)
        .unwrap_or(tables().len())
}

impl Table {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The kind of `column`.
    pub fn kind(&self, column: &str) -> Option<Kind> {
        self.column(column).map(|c| c.kind)
    }

    /// The columns that travel on the wire: everything but `id` and the local ones.
    pub fn wire_columns(&self) -> impl Iterator<Item = &Column> + '_ {
        self.columns
            .iter()
            .filter(|c| !matches!(c.role, Role::Key | Role::Local))
    }

    /// The columns a replica's triggers capture and a client may write: the data and the
    /// tombstone (not `id`, not what the server sets, not the local version).
    pub fn data_columns(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns
            .iter()
            .filter(|c| matches!(c.role, Role::Data | Role::Tombstone))
            .map(|c| c.name)
    }

    /// The table's interface name for web clients: singular, in PascalCase
    /// (`shot_generations` → `ShotGeneration`).
    pub fn type_name(&self) -> String {
        let singular = self.name.strip_suffix('s').unwrap_or(self.name);
        singular
            .split('_')
            .map(|word| {
                let mut chars = word.chars();
                chars
                    .next()
                    .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                    .unwrap_or_default()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_are_derived_from_the_relations() {
        let names: Vec<&str> = tables().iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "users",
                "projects",
                "tasks",
                "generations",
                "shots",
                "shot_generations"
            ]
        );
        for (index, table) in tables().iter().enumerate() {
            for parent in &table.parents {
                assert!(
                    order(parent.table) < index,
                    "{}.{} references {}, which comes later",
                    table.name,
                    parent.column,
                    parent.table
                );
            }
        }
        let links = table("shot_generations").unwrap();
        assert_eq!(
            links.parents,
            [
                Parent {
                    column: "shot_id",
                    table: "shots"
                },
                Parent {
                    column: "generation_id",
                    table: "generations"
                }
            ]
        );
        assert!(table("users").unwrap().parents.is_empty());
    }

    #[test]
    fn kinds_and_roles_follow_the_entities() {
        let tasks = table("tasks").unwrap();
        assert_eq!(tasks.kind("id"), Some(Kind::Uuid));
        assert_eq!(tasks.kind("params"), Some(Kind::Json));
        assert_eq!(tasks.kind("created_at"), Some(Kind::Timestamp));
        assert_eq!(tasks.kind("status"), Some(Kind::Text));
        assert_eq!(tasks.kind("deleted"), Some(Kind::Bool));
        assert_eq!(tasks.column("row_version").unwrap().role, Role::Local);
        assert!(tasks.column("output_location").unwrap().nullable);
        assert!(
            !tasks
                .data_columns()
                .any(|c| c == "row_version" || c == "sync_version")
        );
        assert!(tasks.data_columns().any(|c| c == "deleted"));
        assert_eq!(
            table("shot_generations").unwrap().kind("position"),
            Some(Kind::Int)
        );
        assert_eq!(
            table("shot_generations").unwrap().type_name(),
            "ShotGeneration"
        );
        assert_eq!(table("users").unwrap().type_name(), "User");
    }
}
