//! Column and constraint builders: the one place where the DDL differs per backend.
//!
//! | kind | Postgres | SQLite |
//! |---|---|---|
//! | id | `uuid` `DEFAULT gen_random_uuid()` | `TEXT`, canonical lowercase (CHECK), v4 default |
//! | uuid reference | `uuid` | `TEXT`, canonical lowercase (CHECK) |
//! | uuid list | `uuid[] DEFAULT '{}'` | `TEXT DEFAULT '[]'`, a JSON array (CHECK) |
//! | JSON | `jsonb` | `TEXT`, valid JSON (CHECK) |
//! | timestamp | `timestamptz DEFAULT now()` | `TEXT` `YYYY-MM-DDTHH:MM:SS.ffffffZ` (CHECK), which sorts as time sorts |
//!
//! Constraint and index names follow Postgres's own defaults (`<table>_<column>_fkey`,
//! `<table>_<column>_check`, `<table>_<column>_idx`), so a database created from the
//! product's original SQL and one created here carry the same names.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// Builds the columns of one table for one backend.
pub struct Columns {
    backend: DbBackend,
    table: &'static str,
}

const HEX: &str = "[0-9a-f]";

/// A GLOB pattern matching exactly a canonical lowercase hyphenated uuid.
fn uuid_glob() -> String {
    [8, 4, 4, 4, 12]
        .iter()
        .map(|n| HEX.repeat(*n))
        .collect::<Vec<_>>()
        .join("-")
}

/// A GLOB pattern matching exactly `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub const TIMESTAMP_GLOB: &str = "[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z";

/// SQLite's `now()` in the stored format: `%f` gives milliseconds, padded to microseconds.
const SQLITE_NOW: &str = "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')";

/// A random (v4) uuid in canonical text, for rows inserted on SQLite without an id.
const SQLITE_RANDOM_UUID: &str = "(lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))))";

impl Columns {
    /// Builders for `table` on `backend`.
    pub fn new(backend: DbBackend, table: &'static str) -> Self {
        Columns { backend, table }
    }

    fn is_sqlite(&self) -> bool {
        self.backend == DbBackend::Sqlite
    }

    fn check_name(&self, column: &str) -> String {
        format!("{}_{column}_check", self.table)
    }

    /// The primary key `id`.
    pub fn id(&self) -> ColumnDef {
        let mut col = self.uuid("id");
        col.primary_key();
        if self.is_sqlite() {
            col.default(Expr::cust(SQLITE_RANDOM_UUID));
        } else {
            col.default(Expr::cust("gen_random_uuid()"));
        }
        col
    }

    /// A `NOT NULL` uuid, e.g. a foreign key.
    pub fn uuid(&self, name: &'static str) -> ColumnDef {
        let mut col = ColumnDef::new(Alias::new(name));
        col.not_null();
        if self.is_sqlite() {
            col.custom(Alias::new("TEXT")).check((
                Alias::new(self.check_name(name)),
                Expr::cust(format!("\"{name}\" GLOB '{}'", uuid_glob())),
            ));
        } else {
            col.uuid();
        }
        col
    }

    /// A `NOT NULL` list of uuids, empty by default.
    pub fn uuid_list(&self, name: &'static str) -> ColumnDef {
        let mut col = ColumnDef::new(Alias::new(name));
        col.not_null();
        if self.is_sqlite() {
            col.custom(Alias::new("TEXT"))
                .default(Expr::cust("'[]'"))
                .check((
                    Alias::new(self.check_name(name)),
                    Expr::cust(format!(
                        "json_valid(\"{name}\") AND json_type(\"{name}\") = 'array'"
                    )),
                ));
        } else {
            col.custom(Alias::new("uuid[]")).default(Expr::cust("'{}'"));
        }
        col
    }

    /// A `NOT NULL` JSON document.
    pub fn json(&self, name: &'static str) -> ColumnDef {
        let mut col = ColumnDef::new(Alias::new(name));
        col.not_null();
        if self.is_sqlite() {
            col.custom(Alias::new("TEXT")).check((
                Alias::new(self.check_name(name)),
                Expr::cust(format!("json_valid(\"{name}\")")),
            ));
        } else {
            col.custom(Alias::new("jsonb"));
        }
        col
    }

    /// A `NOT NULL` UTC timestamp defaulting to now.
    pub fn timestamp(&self, name: &'static str) -> ColumnDef {
        let mut col = ColumnDef::new(Alias::new(name));
        col.not_null();
        if self.is_sqlite() {
            col.custom(Alias::new("TEXT"))
                .default(Expr::cust(SQLITE_NOW))
                .check((
                    Alias::new(self.check_name(name)),
                    Expr::cust(format!("\"{name}\" GLOB '{TIMESTAMP_GLOB}'")),
                ));
        } else {
            col.custom(Alias::new("timestamptz"))
                .default(Expr::cust("now()"));
        }
        col
    }

    /// A `NOT NULL` text column.
    pub fn text(&self, name: &'static str) -> ColumnDef {
        let mut col = self.optional_text(name);
        col.not_null();
        col
    }

    /// A nullable text column.
    pub fn optional_text(&self, name: &'static str) -> ColumnDef {
        let mut col = ColumnDef::new(Alias::new(name));
        col.custom(Alias::new(if self.is_sqlite() { "TEXT" } else { "text" }));
        col
    }

    /// A `NOT NULL` integer defaulting to `default`.
    pub fn integer(&self, name: &'static str, default: i32) -> ColumnDef {
        let mut col = ColumnDef::new(Alias::new(name));
        col.custom(Alias::new(if self.is_sqlite() {
            "INTEGER"
        } else {
            "integer"
        }))
        .not_null()
        .default(default);
        col
    }

    /// A `NOT NULL` 64-bit integer defaulting to `default`.
    pub fn big_integer(&self, name: &'static str, default: i64) -> ColumnDef {
        let mut col = ColumnDef::new(Alias::new(name));
        col.custom(Alias::new(if self.is_sqlite() {
            "INTEGER"
        } else {
            "bigint"
        }))
        .not_null()
        .default(default);
        col
    }

    /// A `NOT NULL` boolean defaulting to `default` (SQLite: 0 or 1, CHECKed).
    pub fn boolean(&self, name: &'static str, default: bool) -> ColumnDef {
        let mut col = ColumnDef::new(Alias::new(name));
        col.not_null();
        if self.is_sqlite() {
            col.custom(Alias::new("INTEGER"))
                .default(i32::from(default))
                .check((
                    Alias::new(self.check_name(name)),
                    Expr::cust(format!("\"{name}\" IN (0, 1)")),
                ));
        } else {
            col.custom(Alias::new("boolean")).default(default);
        }
        col
    }

    /// A nullable UTC timestamp (SQLite: the fixed text format, CHECKed when present).
    /// No default: SQLite cannot add a column whose default is not a constant.
    pub fn optional_timestamp(&self, name: &'static str) -> ColumnDef {
        let mut col = ColumnDef::new(Alias::new(name));
        if self.is_sqlite() {
            col.custom(Alias::new("TEXT")).check((
                Alias::new(self.check_name(name)),
                Expr::cust(format!(
                    "\"{name}\" IS NULL OR \"{name}\" GLOB '{TIMESTAMP_GLOB}'"
                )),
            ));
        } else {
            col.custom(Alias::new("timestamptz"));
        }
        col
    }

    /// A `NOT NULL` text column restricted to `allowed`, by a CHECK on both backends.
    pub fn text_in(&self, name: &'static str, allowed: &[&str], default: &str) -> ColumnDef {
        let mut col = self.text(name);
        let list = allowed
            .iter()
            .map(|s| format!("'{}'", s.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ");
        col.default(default.to_owned()).check((
            Alias::new(self.check_name(name)),
            Expr::cust(format!("\"{name}\" IN ({list})")),
        ));
        col
    }

    /// `FOREIGN KEY (column) REFERENCES parent (id) ON DELETE CASCADE`, named as Postgres would.
    pub fn cascade_to(
        &self,
        column: &'static str,
        parent: &'static str,
    ) -> ForeignKeyCreateStatement {
        ForeignKey::create()
            .name(format!("{}_{column}_fkey", self.table))
            .from(Alias::new(self.table), Alias::new(column))
            .to(Alias::new(parent), Alias::new("id"))
            .on_delete(ForeignKeyAction::Cascade)
            .to_owned()
    }

    /// The index every foreign key gets, named as Postgres would name it.
    pub fn index_on(&self, column: &'static str) -> IndexCreateStatement {
        Index::create()
            .name(format!("{}_{column}_idx", self.table))
            .table(Alias::new(self.table))
            .col(Alias::new(column))
            .to_owned()
    }
}
