//! Every value a column accepts is one the library reads, on both backends.
//!
//! Other programs write these tables too (the web app through Supabase, a DBA with psql,
//! a script with the sqlite3 CLI). Before this migration each database accepted values the
//! library could not read, or read but could not match. Now each column either holds only
//! what the library reads, or refuses the rest at write time, with a constraint error
//! (`InvalidValue` in the library) on both backends:
//!
//! | column kind | Postgres (CHECK) | SQLite (BEFORE INSERT / UPDATE trigger) |
//! |---|---|---|
//! | timestamp | years 0001–9999, no `infinity` | a real date and time: no `2026-02-30`, hour 24, second 60 or year 0000 |
//! | JSON | nesting of at most 1000 arrays/objects (SQLite's `json_valid` limit) | text; no string or key holding NUL or an unpaired UTF-16 surrogate (`"\ud800"`), which `jsonb` refuses |
//! | uuid list | one dimension, no NULL elements | text; every element a canonical (lowercase, hyphenated) uuid string |
//! | uuid, text | (the types) | text (not a BLOB); text without NUL |
//! | integers | (the types) | integers (not text or real); `position` in the 32-bit range |
//!
//! SQLite triggers check a column on insert, and on update only when the update changes
//! it, so rows written before this migration stay updatable; the library reports any of
//! them it cannot read as `Undecodable`. Existing uuid lists on SQLite in another uuid form
//! the previous reader accepted (upper case, braces, no hyphens, `urn:uuid:`) are rewritten
//! in canonical form first. On Postgres the constraints are validated against existing
//! rows: a row that violates one (say an `infinity` timestamp) stops the migration with the
//! constraint's name, and nothing is applied.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// Adds the value checks of every table (see the module docs).
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261130_203628_values_every_reader_reads"
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Uuid,
    Text,
    OptText,
    Timestamp,
    OptTimestamp,
    Json,
    UuidList,
    Int32,
    Int64,
}

/// Every column of the six tables but the ones whose existing CHECK already admits only
/// readable values (`status`, `deleted`), as of this migration.
const TABLES: [(&str, &[(&str, Kind)]); 6] = [
    (
        "users",
        &[
            ("id", Kind::Uuid),
            ("email", Kind::OptText),
            ("display_name", Kind::OptText),
            ("created_at", Kind::Timestamp),
            ("sync_version", Kind::Int64),
            ("last_modified_at", Kind::OptTimestamp),
            ("device_id", Kind::OptText),
        ],
    ),
    (
        "projects",
        &[
            ("id", Kind::Uuid),
            ("name", Kind::Text),
            ("user_id", Kind::Uuid),
            ("created_at", Kind::Timestamp),
            ("sync_version", Kind::Int64),
            ("last_modified_at", Kind::OptTimestamp),
            ("device_id", Kind::OptText),
        ],
    ),
    (
        "tasks",
        &[
            ("id", Kind::Uuid),
            ("task_type", Kind::Text),
            ("params", Kind::Json),
            ("dependant_on", Kind::UuidList),
            ("output_location", Kind::OptText),
            ("created_at", Kind::Timestamp),
            ("updated_at", Kind::Timestamp),
            ("project_id", Kind::Uuid),
            ("sync_version", Kind::Int64),
            ("last_modified_at", Kind::OptTimestamp),
            ("device_id", Kind::OptText),
        ],
    ),
    (
        "generations",
        &[
            ("id", Kind::Uuid),
            ("tasks", Kind::UuidList),
            ("location", Kind::OptText),
            ("type", Kind::OptText),
            ("created_at", Kind::Timestamp),
            ("updated_at", Kind::Timestamp),
            ("project_id", Kind::Uuid),
            ("sync_version", Kind::Int64),
            ("last_modified_at", Kind::OptTimestamp),
            ("device_id", Kind::OptText),
        ],
    ),
    (
        "shots",
        &[
            ("id", Kind::Uuid),
            ("name", Kind::Text),
            ("created_at", Kind::Timestamp),
            ("updated_at", Kind::Timestamp),
            ("project_id", Kind::Uuid),
            ("sync_version", Kind::Int64),
            ("last_modified_at", Kind::OptTimestamp),
            ("device_id", Kind::OptText),
        ],
    ),
    (
        "shot_generations",
        &[
            ("id", Kind::Uuid),
            ("shot_id", Kind::Uuid),
            ("generation_id", Kind::Uuid),
            ("position", Kind::Int32),
            ("sync_version", Kind::Int64),
            ("last_modified_at", Kind::OptTimestamp),
            ("device_id", Kind::OptText),
        ],
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// Every migration runs in a transaction, on SQLite too: none stays half-applied.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            for (table, columns) in TABLES {
                for (column, kind) in columns {
                    if let Some(check) = postgres_check(column, *kind) {
                        db.execute_unprepared(&format!(
                            "ALTER TABLE \"{table}\" ADD CONSTRAINT \"{table}_{column}_check\" CHECK ({check})"
                        ))
                        .await?;
                    }
                }
            }
            return Ok(());
        }
        for (table, columns) in TABLES {
            for (column, kind) in columns {
                if *kind == Kind::UuidList {
                    db.execute_unprepared(&canonicalise_sqlite_list(table, column))
                        .await?;
                }
            }
            for sql in sqlite_triggers(table, columns) {
                db.execute_unprepared(&sql).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (table, columns) in TABLES {
            if manager.get_database_backend() == DbBackend::Postgres {
                for (column, kind) in columns {
                    if postgres_check(column, *kind).is_some() {
                        db.execute_unprepared(&format!(
                            "ALTER TABLE \"{table}\" DROP CONSTRAINT \"{table}_{column}_check\""
                        ))
                        .await?;
                    }
                }
            } else {
                for event in ["insert", "update"] {
                    db.execute_unprepared(&format!(
                        "DROP TRIGGER IF EXISTS \"{table}_values_{event}\""
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }
}

/// The Postgres CHECK for a column of `kind`, where its type alone admits values the
/// library cannot read.
fn postgres_check(column: &str, kind: Kind) -> Option<String> {
    let c = format!("\"{column}\"");
    match kind {
        Kind::Timestamp | Kind::OptTimestamp => Some(format!(
            "{c} >= '0001-01-01 00:00:00+00'::timestamptz AND {c} < '10000-01-01 00:00:00+00'::timestamptz"
        )),
        Kind::Json => Some(format!(
            "NOT jsonb_path_exists({c}, 'strict $.**{{1000 to last}} ? (@.type() == \"array\" || @.type() == \"object\")')"
        )),
        // CASE, so `array_position` never sees a multidimensional array (it would raise).
        Kind::UuidList => Some(format!(
            "CASE WHEN array_ndims({c}) IS NULL THEN true WHEN array_ndims({c}) = 1 THEN array_position({c}, NULL) IS NULL ELSE false END"
        )),
        Kind::Uuid | Kind::Text | Kind::OptText | Kind::Int32 | Kind::Int64 => None,
    }
}

/// A GLOB pattern matching exactly a canonical lowercase hyphenated uuid.
fn uuid_glob() -> String {
    [8, 4, 4, 4, 12]
        .iter()
        .map(|n| "[0-9a-f]".repeat(*n))
        .collect::<Vec<_>>()
        .join("-")
}

/// True when text `x` holds a NUL or an unpaired UTF-16 surrogate (which SQLite decodes
/// from `\ud800`-style escapes to the bytes ED A0..BF ..; valid UTF-8 never has them).
fn bad_string(x: &str) -> String {
    let surrogates: Vec<String> = (0xA0..=0xBF)
        .map(|b| format!("instr(CAST({x} AS BLOB), x'ED{b:02X}') > 0"))
        .collect();
    format!(
        "(instr({x}, char(0)) > 0 OR (instr(CAST({x} AS BLOB), x'ED') > 0 AND ({})))",
        surrogates.join(" OR ")
    )
}

/// The condition under which value `v` (e.g. `NEW."params"`) of `kind` is refused, and
/// what the error says. A timestamp is real when it survives a round trip through a
/// Julian day number (`2026-02-30`, hour 24 or second 60 come back different or NULL;
/// `strftime` of the text alone does not normalise on older SQLite versions). Conditions that call JSON functions are guarded by `json_valid`
/// through CASE, so malformed JSON reaches the column's own CHECK (a constraint error)
/// instead of failing inside the trigger.
fn sqlite_refusal(v: &str, kind: Kind) -> (String, &'static str) {
    let not_text = format!("typeof({v}) <> 'text'");
    match kind {
        Kind::Uuid => (not_text, "must be a uuid as text"),
        Kind::Text => (
            format!("({not_text} OR instr({v}, char(0)) > 0)"),
            "must be text without NUL characters",
        ),
        Kind::OptText => (
            format!("({v} IS NOT NULL AND ({not_text} OR instr({v}, char(0)) > 0))"),
            "must be text without NUL characters",
        ),
        Kind::Timestamp | Kind::OptTimestamp => (
            format!(
                "({v} IS NOT NULL AND ({not_text} \
                 OR strftime('%Y-%m-%dT%H:%M:%S', julianday(substr({v}, 1, 19))) IS NOT substr({v}, 1, 19) \
                 OR substr({v}, 1, 4) = '0000'))"
            ),
            "must be a real instant YYYY-MM-DDTHH:MM:SS.ffffffZ in the years 0001-9999",
        ),
        Kind::Json => (
            format!(
                "({not_text} OR CASE WHEN json_valid({v}) THEN EXISTS (SELECT 1 FROM json_tree({v}) AS j \
                 WHERE (j.type = 'text' AND {}) OR (typeof(j.key) = 'text' AND {})) ELSE 0 END)",
                bad_string("j.atom"),
                bad_string("j.key")
            ),
            "JSON strings and keys must not hold NUL characters or unpaired surrogates",
        ),
        Kind::UuidList => (
            format!(
                "({not_text} OR CASE WHEN json_valid({v}) THEN EXISTS (SELECT 1 FROM json_each({v}) AS e \
                 WHERE e.type <> 'text' OR NOT (e.value GLOB '{}')) ELSE 0 END)",
                uuid_glob()
            ),
            "must be a JSON array of canonical (lowercase, hyphenated) uuid strings",
        ),
        Kind::Int32 => (
            format!("(typeof({v}) <> 'integer' OR {v} NOT BETWEEN -2147483648 AND 2147483647)"),
            "must be an integer in the 32-bit range",
        ),
        Kind::Int64 => (format!("typeof({v}) <> 'integer'"), "must be an integer"),
    }
}

/// `<table>_values_insert` (every column) and `<table>_values_update` (the columns an
/// update changes).
fn sqlite_triggers(table: &str, columns: &[(&str, Kind)]) -> [String; 2] {
    let checks = |update: bool| -> String {
        columns
            .iter()
            .map(|(column, kind)| {
                let v = format!("NEW.\"{column}\"");
                let (refused, what) = sqlite_refusal(&v, *kind);
                let changed = if update {
                    format!("{v} IS NOT OLD.\"{column}\" AND ")
                } else {
                    String::new()
                };
                format!("SELECT RAISE(ABORT, '{table}.{column}: {what}') WHERE {changed}{refused};")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let names: Vec<String> = columns.iter().map(|(c, _)| format!("\"{c}\"")).collect();
    [
        format!(
            "CREATE TRIGGER \"{table}_values_insert\" BEFORE INSERT ON \"{table}\" BEGIN {} END",
            checks(false)
        ),
        format!(
            "CREATE TRIGGER \"{table}_values_update\" BEFORE UPDATE OF {} ON \"{table}\" BEGIN {} END",
            names.join(", "),
            checks(true)
        ),
    ]
}

/// Rewrites, in canonical form, the lists of `table.column` holding uuids in the other
/// forms the previous reader accepted (any case, braces, no hyphens, `urn:uuid:`).
/// Elements that are not uuids are left as they are (the library reports such a row).
fn canonicalise_sqlite_list(table: &str, column: &str) -> String {
    let hex32 = "[0-9a-f]".repeat(32);
    let canonical_glob = uuid_glob();
    // s: lower case, without `urn:uuid:` and braces; h: s without hyphens.
    let s = "(CASE WHEN lower(e.value) GLOB 'urn:uuid:*' THEN substr(lower(e.value), 10) \
             WHEN e.value GLOB '{*}' THEN substr(lower(e.value), 2, length(e.value) - 2) \
             ELSE lower(e.value) END)";
    let h = format!("replace({s}, '-', '')");
    let canonical = format!(
        "CASE WHEN e.type = 'text' AND {h} GLOB '{hex32}' AND (length({s}) = 32 OR {s} GLOB '{canonical_glob}') \
         THEN substr({h}, 1, 8) || '-' || substr({h}, 9, 4) || '-' || substr({h}, 13, 4) || '-' || \
         substr({h}, 17, 4) || '-' || substr({h}, 21) ELSE e.value END"
    );
    format!(
        "UPDATE \"{table}\" SET \"{column}\" = (SELECT json_group_array({canonical} ORDER BY e.key) \
         FROM json_each(\"{table}\".\"{column}\") AS e) \
         WHERE json_valid(\"{column}\") AND json_type(\"{column}\") = 'array' AND EXISTS (\
         SELECT 1 FROM json_each(\"{table}\".\"{column}\") AS e \
         WHERE e.type = 'text' AND NOT (e.value GLOB '{canonical_glob}') AND ({canonical}) GLOB '{canonical_glob}')"
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// `TABLES` is frozen with this migration, so it is compared with the columns the six
    /// tables have right after it: every one but `status` and `deleted` must be named.
    #[tokio::test]
    async fn the_frozen_column_kinds_name_every_column_the_tables_have_here() {
        let dir = tempfile::tempdir().unwrap();
        let config = dal_config::Config::sqlite(dir.path().join("frozen.db"));
        let name = Migration.name().to_owned();
        let steps = crate::sources()
            .iter()
            .position(|(source, _)| *source == name)
            .expect("the migration is in the history")
            + 1;
        let schema = crate::scratch::migrated_schema(&config, Some(steps as u32))
            .await
            .unwrap();
        for (table, columns) in TABLES {
            let live: BTreeSet<&str> = schema.tables[table]
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .filter(|name| !matches!(*name, "status" | "deleted"))
                .collect();
            let frozen: BTreeSet<&str> = columns.iter().map(|(name, _)| *name).collect();
            assert_eq!(live, frozen, "{table}: live columns vs. the frozen kinds");
        }
    }
}
