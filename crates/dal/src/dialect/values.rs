//! How values are bound: the type-mapping table of the design, applied to every statement.
//!
//! | value | Postgres | SQLite |
//! |---|---|---|
//! | uuid | `uuid` | canonical lowercase hyphenated text |
//! | uuid list | `uuid[]` | JSON array text |
//! | JSON | `jsonb` | JSON text |
//! | timestamp | `timestamptz`, truncated to microseconds | `YYYY-MM-DDTHH:MM:SS.ffffffZ` |
//!
//! Values that only one backend could store are refused on both, before the database sees
//! them, so the same call fails the same way everywhere: NUL characters in text or JSON
//! (Postgres rejects them, SQLite would keep them) and years outside 1..=9999 (SQLite's
//! sortable text format has four digits). JSON nested deeper than
//! [`MAX_DEPTH`](entities::json::MAX_DEPTH) is refused too (both schemas would refuse it),
//! and JSON numbers are written in their canonical form ([`entities::json`]).

use chrono::{DateTime, Datelike, SubsecRound, Utc};
use dal_config::Backend;
use sea_orm::sea_query::{ArrayType, Value};
use sea_orm::{DbErr, Statement};

use crate::error::RefusedValue;

/// The stored text form of a timestamp on SQLite; fixed width, so it sorts as time sorts.
pub(crate) const SQLITE_TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// Rewrites `stmt`'s values for `backend` and refuses values that cannot be stored alike.
pub(crate) fn prepare(backend: Backend, mut stmt: Statement) -> Result<Statement, DbErr> {
    if let Some(values) = stmt.values.as_mut() {
        for value in values.0.iter_mut() {
            adapt(backend, value).map_err(RefusedValue::into_db_err)?;
        }
    }
    Ok(stmt)
}

pub(crate) fn adapt(backend: Backend, value: &mut Value) -> Result<(), RefusedValue> {
    let sqlite = backend == Backend::Sqlite;
    match value {
        Value::String(Some(text)) => check_text(text)?,
        Value::Json(json) => {
            if let Some(json) = json {
                check_json(json)?;
                entities::json::canonicalize(json);
            }
            if sqlite {
                *value = Value::String(json.as_ref().map(|j| j.to_string()));
            }
        }
        Value::ChronoDateTimeUtc(t) => *value = timestamp(backend, t.map(|t| t))?,
        Value::ChronoDateTimeWithTimeZone(t) => {
            *value = timestamp(backend, t.map(|t| t.with_timezone(&Utc)))?
        }
        Value::ChronoDateTimeLocal(t) => {
            *value = timestamp(backend, t.map(|t| t.with_timezone(&Utc)))?
        }
        // A timestamp without a zone is taken as UTC, the only zone the schema stores;
        // bound as it is, it would compare as `YYYY-MM-DD HH:MM:SS` text on SQLite.
        Value::ChronoDateTime(t) => *value = timestamp(backend, t.map(|t| t.and_utc()))?,
        Value::ChronoDate(_) | Value::ChronoTime(_) => {
            return Err(RefusedValue(
                "dates and times of day without a timestamp have no column here; compare \
                 with a DateTime<Utc>"
                    .to_owned(),
            ));
        }
        Value::Uuid(id) if sqlite => {
            *value = Value::String(id.map(|id| id.hyphenated().to_string()));
        }
        Value::Array(ArrayType::Uuid, items) if sqlite => {
            let text = match items {
                Some(items) => Some(uuid_list_json(items)?),
                None => None,
            };
            *value = Value::String(text);
        }
        Value::Array(kind, _) if sqlite => {
            return Err(RefusedValue(format!(
                "arrays of {kind:?} cannot be stored on SQLite; only uuid lists are mapped"
            )));
        }
        // Elements get the checks and the truncation of single values.
        Value::Array(_, Some(items)) => {
            for item in items.iter_mut() {
                adapt(backend, item)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Truncates to microseconds (what Postgres keeps) and checks the year fits both backends.
fn timestamp(backend: Backend, t: Option<DateTime<Utc>>) -> Result<Value, RefusedValue> {
    let Some(t) = t else {
        return Ok(match backend {
            Backend::Sqlite => Value::String(None),
            Backend::Postgres => Value::ChronoDateTimeUtc(None),
        });
    };
    if !(1..=9999).contains(&t.year()) {
        return Err(RefusedValue(format!(
            "timestamp {t} is outside the years 1..=9999 that both backends store"
        )));
    }
    let t = t.trunc_subsecs(6);
    Ok(match backend {
        Backend::Sqlite => Value::String(Some(t.format(SQLITE_TIMESTAMP_FORMAT).to_string())),
        Backend::Postgres => Value::ChronoDateTimeUtc(Some(t)),
    })
}

fn uuid_list_json(items: &[Value]) -> Result<String, RefusedValue> {
    let ids = items
        .iter()
        .map(|item| match item {
            Value::Uuid(Some(id)) => Ok(*id),
            other => Err(RefusedValue(format!(
                "a uuid list holds a non-uuid {other:?}"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(entities::IdList::from(ids).to_json_text())
}

fn check_text(text: &str) -> Result<(), RefusedValue> {
    if text.contains('\0') {
        return Err(RefusedValue(
            "text contains a NUL character (\\0), which Postgres cannot store".to_owned(),
        ));
    }
    Ok(())
}

/// Refuses NUL characters (Postgres `jsonb` cannot store them) and nesting deeper than
/// both schemas accept. Iterative, so a hostile depth cannot exhaust the stack.
fn check_json(json: &serde_json::Value) -> Result<(), RefusedValue> {
    use entities::json::MAX_DEPTH;
    let nul = || {
        RefusedValue(
            "JSON contains a NUL character (\\u0000), which Postgres jsonb cannot store".to_owned(),
        )
    };
    // (value, containers enclosing it and itself)
    let mut pending = vec![(json, 0usize)];
    while let Some((value, depth)) = pending.pop() {
        let depth = depth + usize::from(value.is_array() || value.is_object());
        if depth > MAX_DEPTH {
            return Err(RefusedValue(format!(
                "JSON nested more than {MAX_DEPTH} levels deep, which neither backend stores"
            )));
        }
        match value {
            serde_json::Value::String(s) if s.contains('\0') => return Err(nul()),
            serde_json::Value::Array(items) => pending.extend(items.iter().map(|v| (v, depth))),
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    if key.contains('\0') {
                        return Err(nul());
                    }
                    pending.push((v, depth));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sqlite_timestamps_are_fixed_width_and_sort_as_time() {
        let early = Utc.with_ymd_and_hms(999, 1, 2, 3, 4, 5).unwrap();
        let late = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
            + chrono::Duration::nanoseconds(123_456_789);
        let text = |t| match timestamp(Backend::Sqlite, Some(t)).unwrap() {
            Value::String(Some(s)) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(text(early), "0999-01-02T03:04:05.000000Z");
        assert_eq!(text(late), "2026-01-02T03:04:05.123456Z");
        assert!(text(early) < text(late));
    }

    #[test]
    fn a_naive_timestamp_is_taken_as_utc_on_both() {
        let naive = Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .unwrap()
            .naive_utc();
        let mut sqlite = Value::ChronoDateTime(Some(naive));
        adapt(Backend::Sqlite, &mut sqlite).unwrap();
        assert_eq!(
            sqlite,
            Value::String(Some("2026-01-02T03:04:05.000000Z".into()))
        );
        let mut pg = Value::ChronoDateTime(Some(naive));
        adapt(Backend::Postgres, &mut pg).unwrap();
        assert_eq!(pg, Value::ChronoDateTimeUtc(Some(naive.and_utc())));
    }

    #[test]
    fn values_only_one_backend_could_store_are_refused_on_both() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let mut nul = Value::String(Some("a\0b".into()));
            assert!(adapt(backend, &mut nul).is_err());
            let mut json = Value::Json(Some(Box::new(serde_json::json!({"k": ["x\u{0}"]}))));
            assert!(adapt(backend, &mut json).is_err());
            let year_10000 = Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap();
            assert!(timestamp(backend, Some(year_10000)).is_err());
        }
    }
}
