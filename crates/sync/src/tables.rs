//! The synced tables: their columns, how each is written on the wire, and which parents a
//! row needs before it can be stored.

/// How a column is represented on the wire: exactly the text SQLite stores.
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

/// One synced table.
#[derive(Debug)]
pub struct Table {
    /// Its name.
    pub name: &'static str,
    /// Every column but `id`, with its kind; the last four are the sync metadata.
    pub columns: &'static [(&'static str, Kind)],
    /// `(column, parent table)` for each foreign key.
    pub parents: &'static [(&'static str, &'static str)],
}

use Kind::*;

const META: [(&str, Kind); 4] = [
    ("deleted", Bool),
    ("sync_version", Int),
    ("last_modified_at", Timestamp),
    ("device_id", Text),
];

macro_rules! columns {
    ($(($name:literal, $kind:ident)),* $(,)?) => {
        &[$(($name, $kind),)* META[0], META[1], META[2], META[3]]
    };
}

/// The synced tables, parents before children.
pub const TABLES: [Table; 6] = [
    Table {
        name: "users",
        columns: columns![
            ("email", Text),
            ("display_name", Text),
            ("created_at", Timestamp)
        ],
        parents: &[],
    },
    Table {
        name: "projects",
        columns: columns![("name", Text), ("user_id", Uuid), ("created_at", Timestamp)],
        parents: &[("user_id", "users")],
    },
    Table {
        name: "tasks",
        columns: columns![
            ("task_type", Text),
            ("params", Json),
            ("status", Text),
            ("dependant_on", UuidList),
            ("output_location", Text),
            ("created_at", Timestamp),
            ("updated_at", Timestamp),
            ("project_id", Uuid),
        ],
        parents: &[("project_id", "projects")],
    },
    Table {
        name: "generations",
        columns: columns![
            ("tasks", UuidList),
            ("location", Text),
            ("type", Text),
            ("created_at", Timestamp),
            ("updated_at", Timestamp),
            ("project_id", Uuid),
        ],
        parents: &[("project_id", "projects")],
    },
    Table {
        name: "shots",
        columns: columns![
            ("name", Text),
            ("created_at", Timestamp),
            ("updated_at", Timestamp),
            ("project_id", Uuid),
        ],
        parents: &[("project_id", "projects")],
    },
    Table {
        name: "shot_generations",
        columns: columns![
            ("shot_id", Uuid),
            ("generation_id", Uuid),
            ("position", Int)
        ],
        parents: &[("shot_id", "shots"), ("generation_id", "generations")],
    },
];

/// The table called `name`, if it is synced.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// The position of `name` in parent-first order.
pub fn order(name: &str) -> usize {
    TABLES
        .iter()
        .position(|t| t.name == name)
        .unwrap_or(TABLES.len())
}

impl Table {
    /// The kind of `column` (`id` is a uuid).
    pub fn kind(&self, column: &str) -> Option<Kind> {
        if column == "id" {
            return Some(Uuid);
        }
        self.columns
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, k)| *k)
    }

    /// The data columns: everything a client may change (all but `id` and the version,
    /// modification time and device, which the server sets).
    pub fn data_columns(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| !matches!(*c, "sync_version" | "last_modified_at" | "device_id"))
    }
}
