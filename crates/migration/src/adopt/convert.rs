//! How each column's live value becomes the value the migrations' schema holds: one SQL
//! expression per column over the live row `t`, used both to check rows before anything
//! changes and to change them.
//!
//! Backfills (a NULL where the migrations say NOT NULL), on both backends:
//!
//! | column | value |
//! |---|---|
//! | `created_at` | the row's `updated_at` if it has one, else the adoption's time |
//! | `updated_at` | the row's `created_at` if it has one, else the adoption's time |
//! | a column with a default (`status`, the uuid lists, ...) | the default (`'Pending'`, empty list) |
//! | `shot_generations.position` | renumbered, see [`RENUMBER`] |
//! | a foreign key (`project_id`, `shot_id`, `generation_id`) | none: the row needs a decision |
//!
//! SQLite values written by Drizzle are converted as well: INTEGER Unix milliseconds
//! become `YYYY-MM-DDTHH:MM:SS.ffffffZ`, uuids and the uuids in lists are lower-cased.
//! Values that do not convert are kept as they were, so the migrations' CHECKs (and the
//! row checks in `decide`) report them with the value.

use sea_orm_migration::sea_orm::sea_query::ColumnType;
use sea_orm_migration::sea_orm::{ColumnTrait, DbBackend, EntityTrait, IdenStatic, Iterable};

use super::shape::parents;
use crate::inspect::Table;

/// `shot_generations.position` is renumbered, not filled: dense `0..n` per shot, in the
/// current order (by position, NULLs last, then by id), as the library's timeline requires.
pub(crate) const RENUMBER: (&str, &str, &str) = ("shot_generations", "position", "shot_id");

/// A quoted identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A quoted string literal.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// What kind of value a column holds, from the entities (the schema's one declaration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Uuid,
    UuidList,
    Timestamp,
    Other,
}

fn entity_kinds<E: EntityTrait>() -> (String, Vec<(String, Kind)>) {
    let columns = E::Column::iter()
        .map(|c| {
            let kind = match c.def().get_column_type() {
                ColumnType::Uuid => Kind::Uuid,
                ColumnType::Array(inner) if matches!(**inner, ColumnType::Uuid) => Kind::UuidList,
                ColumnType::TimestampWithTimeZone
                | ColumnType::Timestamp
                | ColumnType::DateTime => Kind::Timestamp,
                _ => Kind::Other,
            };
            (c.as_str().to_owned(), kind)
        })
        .collect();
    (E::default().table_name().to_owned(), columns)
}

/// The kind of `table.column`; [`Kind::Other`] for a column no entity declares.
pub(crate) fn kind(table: &str, column: &str) -> Kind {
    let entities = [
        entity_kinds::<entities::user::Entity>(),
        entity_kinds::<entities::project::Entity>(),
        entity_kinds::<entities::task::Entity>(),
        entity_kinds::<entities::generation::Entity>(),
        entity_kinds::<entities::shot::Entity>(),
        entity_kinds::<entities::shot_generation::Entity>(),
    ];
    entities
        .iter()
        .filter(|(t, _)| t == table)
        .flat_map(|(_, cols)| cols.iter())
        .find(|(c, _)| c == column)
        .map_or(Kind::Other, |(_, k)| *k)
}

/// One column of the migrations' table and how its value is made, in two steps: `raw`
/// converts the stored value (SQL over the live row `t`), `value` backfills it (SQL over
/// the row of raw values, also named `t`). On Postgres `raw` is the column itself, so
/// `value` also works over the live row, as the backfill `UPDATE` uses it.
#[derive(Clone, Debug)]
pub(crate) struct Conversion {
    /// The column.
    pub column: String,
    /// The converted value, over the live row `t`.
    pub raw: String,
    /// The final value, over the row of `raw` values `t`.
    pub value: String,
    /// Whether `value` fills NULLs of a column that exists in the live table.
    pub fills: bool,
}

/// The converted rows of `table` as a subquery: `adopt_row_id` (the id as stored) and
/// every column of the migrations' table.
pub(crate) fn converted_rows(
    backend: DbBackend,
    table: &str,
    conversions: &[Conversion],
) -> String {
    let id = match backend {
        DbBackend::Postgres => "t.\"id\"::text",
        _ => "CAST(t.\"id\" AS TEXT)",
    };
    let raw: Vec<String> = conversions
        .iter()
        .map(|c| format!("{} AS {}", c.raw, ident(&c.column)))
        .collect();
    let value: Vec<String> = conversions
        .iter()
        .map(|c| format!("{} AS {}", c.value, ident(&c.column)))
        .collect();
    format!(
        "SELECT t.adopt_row_id, {} FROM (SELECT {id} AS adopt_row_id, {} FROM {} AS t) AS t",
        value.join(", "),
        raw.join(", "),
        ident(table)
    )
}

/// A GLOB pattern matching exactly a canonical lowercase uuid.
pub(crate) fn uuid_glob() -> String {
    [8, 4, 4, 4, 12]
        .iter()
        .map(|n| "[0-9a-f]".repeat(*n))
        .collect::<Vec<_>>()
        .join("-")
}

/// `x` if it is a JSON array, else NULL; never raises on malformed JSON (CASE is lazy).
pub(crate) fn sqlite_json_array(x: &str) -> String {
    format!("CASE WHEN json_valid({x}) THEN CASE WHEN json_type({x}) = 'array' THEN {x} END END")
}

/// Unix milliseconds (INTEGER) as `YYYY-MM-DDTHH:MM:SS.ffffffZ`; NULL when out of range.
/// Floor division, so times before 1970 convert too.
fn sqlite_millis_to_text(x: &str) -> String {
    let ms = format!("((({x} % 1000) + 1000) % 1000)");
    format!(
        "strftime('%Y-%m-%dT%H:%M:%S', ({x} - {ms}) / 1000, 'unixepoch') || '.' || printf('%03d', {ms}) || '000Z'"
    )
}

/// The conversions of one table: one per column of `target`, in its order. `now` is the
/// adoption's time as an SQL expression.
pub(crate) fn conversions(
    backend: DbBackend,
    table: &str,
    live: &Table,
    target: &Table,
    now: &str,
) -> Vec<Conversion> {
    let foreign_keys: Vec<String> = parents(target).into_iter().map(|(c, _)| c).collect();
    let has_column = |c: &str| target.columns.iter().any(|x| x.name == c);
    target
        .columns
        .iter()
        .map(|column| {
            let name = column.name.as_str();
            let live_column = live.columns.iter().find(|x| x.name == name);
            let raw = match live_column {
                None => match backend {
                    DbBackend::Postgres => format!("CAST(NULL AS {})", column.data_type),
                    _ => "NULL".to_owned(),
                },
                Some(_) => raw(backend, table, name),
            };
            let needs_fill = !column.nullable
                && live_column.is_none_or(|l| l.nullable)
                && (table, name) != (RENUMBER.0, RENUMBER.1);
            let t = format!("t.{}", ident(name));
            let fill = if !needs_fill || name == "id" || foreign_keys.iter().any(|f| f == name) {
                None
            } else if name == "created_at" || name == "updated_at" {
                let other = if name == "created_at" {
                    "updated_at"
                } else {
                    "created_at"
                };
                Some(if has_column(other) {
                    format!("t.{}, {now}", ident(other))
                } else {
                    now.to_owned()
                })
            } else {
                column.default.clone()
            };
            Conversion {
                column: name.to_owned(),
                raw,
                value: match &fill {
                    Some(fill) => format!("coalesce({t}, {fill})"),
                    None => t,
                },
                fills: fill.is_some() && live_column.is_some(),
            }
        })
        .collect()
}

/// The stored value of `table.column` converted to the migrations' form, over the live row
/// `t`: the column itself on Postgres; on SQLite by the column's kind.
fn raw(backend: DbBackend, table: &str, column: &str) -> String {
    let t = format!("t.{}", ident(column));
    if backend != DbBackend::Sqlite {
        return t;
    }
    match kind(table, column) {
        Kind::Uuid => format!("lower({t})"),
        Kind::UuidList => format!(
            "CASE WHEN ({}) IS NOT NULL THEN (SELECT json_group_array(lower(value) ORDER BY key) FROM json_each({t})) ELSE {t} END",
            sqlite_json_array(&t)
        ),
        Kind::Timestamp => format!(
            "CASE WHEN typeof({t}) = 'integer' THEN coalesce({}, {t}) ELSE {t} END",
            sqlite_millis_to_text(&t)
        ),
        Kind::Other => t,
    }
}
