//! Reading rows into models, column by column, by position.
//!
//! Every value the schema admits on either backend is read here (see the README's "Schema
//! and type mapping"); anything else (a row written while a constraint was missing,
//! invalid UTF-8 on SQLite, which no schema can check) is a
//! [`DalError::Undecodable`] naming the table, the row's id and the column, never a panic
//! or a bare driver error. Each reader accepts exactly what the schema guarantees:
//!
//! | value | Postgres | SQLite |
//! |---|---|---|
//! | id | `uuid` | uuid text |
//! | text | `text` | `TEXT` (UTF-8) |
//! | timestamp | `timestamptz` within years 1..=9999 (no infinities) | `YYYY-MM-DDTHH:MM:SS.ffffffZ` |
//! | JSON | `jsonb`, nesting ≤ [`MAX_DEPTH`](entities::json::MAX_DEPTH) | JSON text, the same |
//! | uuid list | one-dimensional `uuid[]` without NULLs, any lower bound | JSON array of canonical uuid strings |
//! | status | one of the six strings | the same |
//! | position | `integer` | `INTEGER` in `i32` |
//!
//! JSON is parsed here rather than by sqlx (whose `serde_json` stops at 128 levels) and
//! canonicalised ([`entities::json`]), so both backends give equal values.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use entities::{Id, IdList, TaskStatus};
use sea_orm::QueryResult;
use sqlx::postgres::{PgRow, PgValueFormat};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, TypeInfo, ValueRef};
use uuid::Uuid;

use crate::DalError;
use crate::dialect::values::SQLITE_TIMESTAMP_FORMAT;

mod models;

/// One result row, on either backend.
#[derive(Clone, Copy)]
pub(crate) enum Raw<'r> {
    Pg(&'r PgRow),
    Sqlite(&'r SqliteRow),
}

/// Why one cell could not be read (becomes the `reason` of [`DalError::Undecodable`]).
type Cell<T> = Result<T, String>;

impl<'r> Raw<'r> {
    pub(crate) fn of(row: &'r QueryResult) -> Result<Raw<'r>, DalError> {
        if let Some(pg) = row.try_as_pg_row() {
            Ok(Raw::Pg(pg))
        } else if let Some(sqlite) = row.try_as_sqlite_row() {
            Ok(Raw::Sqlite(sqlite))
        } else {
            Err(DalError::database(
                "a row from a backend this library does not use",
            ))
        }
    }

    /// The name of column `i`, for checking a statement's layout in debug builds.
    fn name(&self, i: usize) -> Option<&str> {
        use sqlx::Column;
        match self {
            Raw::Pg(r) => r.columns().get(i).map(|c| c.name()),
            Raw::Sqlite(r) => r.columns().get(i).map(|c| c.name()),
        }
    }

    pub(crate) fn is_null(&self, i: usize) -> bool {
        match self {
            Raw::Pg(r) => r.try_get_raw(i).map(|v| v.is_null()).unwrap_or(true),
            Raw::Sqlite(r) => r.try_get_raw(i).map(|v| v.is_null()).unwrap_or(true),
        }
    }

    fn opt_str(&self, i: usize) -> Cell<Option<&'r str>> {
        match self {
            Raw::Pg(r) => r.try_get::<Option<&str>, _>(i),
            Raw::Sqlite(r) => r.try_get::<Option<&str>, _>(i),
        }
        .map_err(|e| e.to_string())
    }

    fn str(&self, i: usize) -> Cell<&'r str> {
        self.opt_str(i)?.ok_or_else(null)
    }

    pub(crate) fn id(&self, i: usize) -> Cell<Id> {
        match self {
            Raw::Pg(r) => r.try_get::<Uuid, _>(i).map(Id).map_err(|e| e.to_string()),
            Raw::Sqlite(_) => {
                let text = self.str(i)?;
                Uuid::parse_str(text)
                    .map(Id)
                    .map_err(|e| format!("not a uuid: {e}"))
            }
        }
    }

    pub(crate) fn text(&self, i: usize) -> Cell<String> {
        self.str(i).map(str::to_owned)
    }

    pub(crate) fn opt_text(&self, i: usize) -> Cell<Option<String>> {
        Ok(self.opt_str(i)?.map(str::to_owned))
    }

    pub(crate) fn status(&self, i: usize) -> Cell<TaskStatus> {
        self.str(i)?
            .parse()
            .map_err(|e: entities::UnknownTaskStatus| e.to_string())
    }

    pub(crate) fn int32(&self, i: usize) -> Cell<i32> {
        match self {
            Raw::Pg(r) => r.try_get::<i32, _>(i).map_err(|e| e.to_string()),
            Raw::Sqlite(r) => {
                let wide = r.try_get::<i64, _>(i).map_err(|e| e.to_string())?;
                i32::try_from(wide).map_err(|_| format!("{wide} is outside the 32-bit range"))
            }
        }
    }

    pub(crate) fn int64(&self, i: usize) -> Cell<i64> {
        match self {
            Raw::Pg(r) => r.try_get::<i64, _>(i),
            Raw::Sqlite(r) => r.try_get::<i64, _>(i),
        }
        .map_err(|e| e.to_string())
    }

    pub(crate) fn timestamp(&self, i: usize) -> Cell<DateTime<Utc>> {
        let t = match self {
            Raw::Pg(r) => pg_timestamp(r, i)?,
            Raw::Sqlite(_) => {
                let text = self.str(i)?;
                NaiveDateTime::parse_from_str(text, SQLITE_TIMESTAMP_FORMAT)
                    .map_err(|e| format!("not a timestamp in the stored format: {e}"))?
                    .and_utc()
            }
        };
        if !(1..=9999).contains(&t.year()) {
            return Err(format!("year {} is outside 1..=9999", t.year()));
        }
        Ok(t)
    }

    pub(crate) fn opt_timestamp(&self, i: usize) -> Cell<Option<DateTime<Utc>>> {
        if self.is_null(i) {
            return Ok(None);
        }
        self.timestamp(i).map(Some)
    }

    pub(crate) fn json(&self, i: usize) -> Cell<serde_json::Value> {
        let text: &[u8] = match self {
            Raw::Pg(r) => {
                let value = r.try_get_raw(i).map_err(|e| e.to_string())?;
                if value.is_null() {
                    return Err(null());
                }
                let jsonb = value.type_info().name() == "JSONB";
                let bytes = value.as_bytes().map_err(|e| e.to_string())?;
                match (value.format(), jsonb, bytes.split_first()) {
                    // Binary jsonb is a version byte (1) and the text.
                    (PgValueFormat::Binary, true, Some((1, text))) => text,
                    (PgValueFormat::Binary, true, _) => {
                        return Err("unsupported jsonb format version".to_owned());
                    }
                    _ => bytes,
                }
            }
            Raw::Sqlite(_) => self.str(i)?.as_bytes(),
        };
        entities::json::parse(text).map_err(|e| format!("not a JSON document: {e}"))
    }

    pub(crate) fn id_list(&self, i: usize) -> Cell<IdList> {
        match self {
            Raw::Pg(r) => {
                let value = r.try_get_raw(i).map_err(|e| e.to_string())?;
                if value.is_null() {
                    return Err(null());
                }
                match value.format() {
                    PgValueFormat::Binary => {
                        pg_uuid_array(value.as_bytes().map_err(|e| e.to_string())?)
                    }
                    PgValueFormat::Text => r
                        .try_get::<Vec<Uuid>, _>(i)
                        .map(IdList::from)
                        .map_err(|e| e.to_string()),
                }
            }
            Raw::Sqlite(_) => sqlite_uuid_list(self.str(i)?),
        }
    }
}

fn null() -> String {
    "NULL in a column that is never NULL".to_owned()
}

/// A `timestamptz` in binary form (microseconds since 2000-01-01 UTC), without the
/// overflow panic of sqlx's chrono conversion on `infinity` or far years.
fn pg_timestamp(row: &PgRow, i: usize) -> Cell<DateTime<Utc>> {
    let value = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if value.is_null() {
        return Err(null());
    }
    if value.format() == PgValueFormat::Text {
        return row
            .try_get::<DateTime<Utc>, _>(i)
            .map_err(|e| e.to_string());
    }
    let bytes: [u8; 8] = value
        .as_bytes()
        .map_err(|e| e.to_string())?
        .try_into()
        .map_err(|_| "a timestamp that is not 8 bytes".to_owned())?;
    let micros = i64::from_be_bytes(bytes);
    match micros {
        i64::MAX => return Err("infinity".to_owned()),
        i64::MIN => return Err("-infinity".to_owned()),
        _ => {}
    }
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| "no epoch".to_owned())?;
    epoch
        .checked_add_signed(TimeDelta::microseconds(micros))
        .ok_or_else(|| "outside the range of chrono".to_owned())
}

/// A `uuid[]` in binary array form: dimensions, flags, element type, then per dimension
/// its length and lower bound, then each element as a length and 16 bytes.
fn pg_uuid_array(mut buf: &[u8]) -> Cell<IdList> {
    fn take<const N: usize>(buf: &mut &[u8]) -> Cell<[u8; N]> {
        if buf.len() < N {
            return Err("a truncated array".to_owned());
        }
        let (head, rest) = buf.split_at(N);
        *buf = rest;
        Ok(head.try_into().unwrap_or([0; N]))
    }
    let ndim = i32::from_be_bytes(take::<4>(&mut buf)?);
    if ndim == 0 {
        return Ok(IdList::new());
    }
    if ndim != 1 {
        return Err(format!(
            "a {ndim}-dimensional array; a list has one dimension"
        ));
    }
    let _flags = take::<4>(&mut buf)?;
    let _element_type = take::<4>(&mut buf)?;
    let len = i32::from_be_bytes(take::<4>(&mut buf)?);
    // Any lower bound: `'[0:1]={…}'` is the same list to `unnest` and `= ANY`.
    let _lower_bound = take::<4>(&mut buf)?;
    let len = usize::try_from(len).map_err(|_| "a negative array length".to_owned())?;
    let mut ids = Vec::with_capacity(len);
    for _ in 0..len {
        match i32::from_be_bytes(take::<4>(&mut buf)?) {
            -1 => return Err("a NULL element".to_owned()),
            16 => ids.push(Uuid::from_bytes(take::<16>(&mut buf)?)),
            n => return Err(format!("an element of {n} bytes")),
        }
    }
    Ok(ids.into_iter().collect())
}

/// A uuid list on SQLite: a JSON array of canonical (lowercase, hyphenated) uuid strings,
/// the only form the schema admits. Anything else would read, but `ready` and
/// `dependants_of` compare the text, so it is reported rather than read.
fn sqlite_uuid_list(text: &str) -> Cell<IdList> {
    let items: Vec<std::borrow::Cow<'_, str>> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON array of strings: {e}"))?;
    items
        .iter()
        .map(|item| {
            let id = Uuid::parse_str(item).map_err(|e| format!("element {item:?}: {e}"))?;
            let mut buf = Uuid::encode_buffer();
            if id.hyphenated().encode_lower(&mut buf) != item.as_ref() {
                return Err(format!("element {item:?} is not a canonical uuid"));
            }
            Ok(id)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(IdList::from)
}

/// A model read from a row of its table, by position.
pub(crate) trait FromRow: Sized {
    /// The table, as errors name it.
    const TABLE: &'static str;
    /// Its columns, in the order the entity selects them (its field order).
    const COLUMNS: &'static [&'static str];
    /// Reads the model from the columns starting at `at`.
    fn from_row(row: Raw<'_>, at: usize) -> Result<Self, DalError>;
}

/// Reads the cells of one model, naming the row in any error. The id is read first.
pub(crate) struct Cells<'r> {
    row: Raw<'r>,
    at: usize,
    table: &'static str,
    columns: &'static [&'static str],
    next: usize,
    id: String,
}

impl<'r> Cells<'r> {
    /// Starts reading a row of `M`; its first column is the id.
    pub(crate) fn start<M: FromRow>(row: Raw<'r>, at: usize) -> Result<(Cells<'r>, Id), DalError> {
        let mut cells = Cells {
            row,
            at,
            table: M::TABLE,
            columns: M::COLUMNS,
            next: 0,
            id: String::new(),
        };
        let id = match row.id(at) {
            Ok(id) => id,
            Err(reason) => {
                // Name the row by whatever the id column holds.
                cells.id = row
                    .opt_str(at)
                    .ok()
                    .flatten()
                    .map_or_else(|| "(unreadable id)".to_owned(), str::to_owned);
                return Err(cells.fail(0, reason));
            }
        };
        cells.id = id.to_string();
        cells.next = 1;
        Ok((cells, id))
    }

    /// Reads the next column with `read`.
    pub(crate) fn next<T>(
        &mut self,
        read: impl FnOnce(&Raw<'r>, usize) -> Cell<T>,
    ) -> Result<T, DalError> {
        let column = self.next;
        self.next += 1;
        let i = self.at + column;
        debug_assert!(
            self.row
                .name(i)
                .is_some_and(|name| name.ends_with(self.columns[column])),
            "{}: column {i} is {:?}, expected {}",
            self.table,
            self.row.name(i),
            self.columns[column]
        );
        read(&self.row, i).map_err(|reason| self.fail(column, reason))
    }

    fn fail(&self, column: usize, reason: String) -> DalError {
        DalError::Undecodable {
            table: self.table,
            id: self.id.clone(),
            column: self.columns[column],
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{IdenStatic, Iterable};

    fn names<C: Iterable + IdenStatic>() -> Vec<&'static str> {
        C::iter().map(|c| c.as_str()).collect()
    }

    #[test]
    fn decoders_follow_the_entities_column_order() {
        use entities::*;
        assert_eq!(names::<user::Column>(), user::Model::COLUMNS);
        assert_eq!(names::<project::Column>(), project::Model::COLUMNS);
        assert_eq!(names::<task::Column>(), task::Model::COLUMNS);
        assert_eq!(names::<generation::Column>(), generation::Model::COLUMNS);
        assert_eq!(names::<shot::Column>(), shot::Model::COLUMNS);
        assert_eq!(
            names::<shot_generation::Column>(),
            shot_generation::Model::COLUMNS
        );
    }

    #[test]
    fn uuid_arrays_read_any_lower_bound_and_refuse_nulls_and_dimensions() {
        let id = Uuid::now_v7();
        let mut one = Vec::new();
        for word in [1i32, 0, 2950, 1, 0] {
            one.extend(word.to_be_bytes());
        }
        one.extend(16i32.to_be_bytes());
        one.extend(id.as_bytes());
        assert_eq!(pg_uuid_array(&one).unwrap().0, vec![id]);
        let mut with_null = one[..20].to_vec();
        with_null[12..16].copy_from_slice(&1i32.to_be_bytes());
        with_null.extend((-1i32).to_be_bytes());
        assert!(pg_uuid_array(&with_null).is_err());
        assert!(pg_uuid_array(&2i32.to_be_bytes()).is_err());
        assert_eq!(pg_uuid_array(&0i32.to_be_bytes()).unwrap(), IdList::new());
    }

    #[test]
    fn sqlite_lists_hold_canonical_uuids_only() {
        let id = Uuid::now_v7();
        assert_eq!(
            sqlite_uuid_list(&format!("[\"{id}\"]")).unwrap().0,
            vec![id]
        );
        assert_eq!(sqlite_uuid_list("[]").unwrap(), IdList::new());
        let upper = id.hyphenated().to_string().to_uppercase();
        assert!(sqlite_uuid_list(&format!("[\"{upper}\"]")).is_err());
        assert!(sqlite_uuid_list(&format!("[\"{{{id}}}\"]")).is_err());
        assert!(sqlite_uuid_list("[\"not-a-uuid\"]").is_err());
        assert!(sqlite_uuid_list("[1]").is_err());
        assert!(sqlite_uuid_list("{}").is_err());
    }
}
