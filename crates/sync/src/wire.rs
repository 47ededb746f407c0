//! Converting between the wire's text forms and database values.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{ArrayType, Value};
use sea_orm::{QueryResult, TryGetError};
use serde_json::Value as Json;
use uuid::Uuid;

use crate::protocol::RowValues;
use crate::tables::{Kind, Table};

/// SQL selecting `table`'s row in wire form on Postgres, every column as SQLite stores it
/// (aliases are the column names).
pub(crate) fn pg_select(table: &Table) -> String {
    format!("SELECT {} FROM \"{}\"", pg_columns(table), table.name)
}

/// The select list of [`pg_select`], also what a write's `RETURNING` names to give back
/// the row it wrote in wire form.
pub(crate) fn pg_columns(table: &Table) -> String {
    let mut columns = vec!["id::text AS id".to_owned()];
    for column in table.wire_columns() {
        let (name, kind) = (column.name, column.kind);
        let quoted = format!("\"{name}\"");
        columns.push(match kind {
            Kind::Uuid | Kind::Json => format!("{quoted}::text AS {quoted}"),
            Kind::Timestamp => format!(
                "to_char({quoted} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS {quoted}"
            ),
            Kind::UuidList => format!("array_to_json({quoted})::text AS {quoted}"),
            Kind::Int => format!("{quoted}::bigint AS {quoted}"),
            Kind::Text | Kind::Bool => quoted,
        });
    }
    format!("{}, sync_txid::text AS sync_txid", columns.join(", "))
}

/// Reads a row selected with [`pg_select`] (or a SQLite row of the same columns).
pub(crate) fn read_row(table: &Table, row: &QueryResult) -> Result<RowValues, TryGetError> {
    let read = if let Some(pg) = row.try_as_pg_row() {
        read_sqlx_row(table, pg)
    } else if let Some(sqlite) = row.try_as_sqlite_row() {
        read_sqlx_row(table, sqlite)
    } else {
        Err("a row from neither Postgres nor SQLite".to_owned())
    };
    read.map_err(|e| TryGetError::DbErr(sea_orm::DbErr::Custom(e)))
}

/// [`read_row`] straight from sqlx: every pulled row comes this way, and going through
/// sea-orm's `Option<T>` formats an error message for each NULL cell (a sixth of a
/// pull's server time went to that and to name lookups). A boolean is Postgres's
/// `boolean` or SQLite's `0`/`1` (sqlx decodes both).
fn read_sqlx_row<'r, R>(table: &Table, row: &'r R) -> Result<RowValues, String>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    &'r str: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let text = |name| cell::<R, &'r str>(row, name);
    let mut values = RowValues::new();
    let id = text("id")?.ok_or("the row has no id")?;
    values.insert("id".into(), Json::String(id.to_owned()));
    for column in table.wire_columns() {
        let (name, kind) = (column.name, column.kind);
        let value = match kind {
            Kind::Int => cell::<R, i64>(row, name)?.map(Json::from),
            Kind::Bool => cell::<R, bool>(row, name)?.map(Json::Bool),
            // In the form a local write produces (compact, keys sorted), not Postgres's
            // `jsonb` text: otherwise the replica's capture would see every JSON column of
            // an updated row as changed, and send (and win with) an unchanged value.
            Kind::Json => text(name)?.map(|t| Json::String(canonical_json(t))),
            _ => text(name)?.map(|t| Json::String(t.to_owned())),
        };
        values.insert(name.into(), value.unwrap_or(Json::Null));
    }
    Ok(values)
}

/// Column `name` of `row`; a column the select list does not name reads as NULL, as
/// sea-orm's `Option<T>` does.
fn cell<'r, R, T>(row: &'r R, name: &'static str) -> Result<Option<T>, String>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    match row.try_get::<Option<T>, _>(name) {
        Ok(value) => Ok(value),
        Err(sqlx::Error::ColumnNotFound(_)) => Ok(None),
        Err(other) => Err(other.to_string()),
    }
}

/// `text` in the canonical form a local write stores (`entities::json`: numbers in one
/// form, compact, keys sorted); left as it is if it does not parse.
fn canonical_json(text: &str) -> String {
    match entities::json::parse(text.as_bytes()) {
        Ok(doc) => doc.to_string(),
        Err(_) => text.to_owned(),
    }
}

/// A wire value as a database value for a column of `kind`; `Err` names what is wrong.
pub(crate) fn to_value(kind: Kind, value: &Json) -> Result<Value, String> {
    if value.is_null() {
        return Ok(match kind {
            Kind::Uuid => Value::Uuid(None),
            Kind::Json => Value::Json(None),
            Kind::Timestamp => Value::ChronoDateTimeUtc(None),
            Kind::UuidList => Value::Array(ArrayType::Uuid, None),
            Kind::Int => Value::BigInt(None),
            Kind::Bool => Value::Bool(None),
            Kind::Text => Value::String(None),
        });
    }
    let text = || {
        value
            .as_str()
            .ok_or_else(|| format!("expected text, got {value}"))
    };
    Ok(match kind {
        Kind::Uuid => Value::Uuid(Some(Uuid::parse_str(text()?).map_err(|e| e.to_string())?)),
        Kind::Text => Value::String(Some(text()?.to_owned())),
        Kind::Json => {
            let doc = match value {
                Json::String(s) => {
                    entities::json::parse(s.as_bytes()).map_err(|e| e.to_string())?
                }
                other => other.clone(),
            };
            Value::Json(Some(Box::new(doc)))
        }
        Kind::Timestamp => Value::ChronoDateTimeUtc(Some(parse_timestamp(text()?)?)),
        Kind::UuidList => {
            let ids: Vec<Uuid> = match value {
                Json::String(s) => serde_json::from_str(s).map_err(|e| e.to_string())?,
                other => serde_json::from_value(other.clone()).map_err(|e| e.to_string())?,
            };
            Value::Array(
                ArrayType::Uuid,
                Some(Box::new(
                    ids.into_iter().map(|u| Value::Uuid(Some(u))).collect(),
                )),
            )
        }
        Kind::Int => Value::BigInt(Some(
            value
                .as_i64()
                .ok_or_else(|| format!("expected an integer, got {value}"))?,
        )),
        Kind::Bool => Value::Bool(Some(match value {
            Json::Bool(b) => *b,
            Json::Number(n) => n.as_i64() == Some(1),
            other => return Err(format!("expected a boolean, got {other}")),
        })),
    })
}

/// Parses the wire's timestamp form (RFC 3339 in general).
pub(crate) fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc).trunc_subsecs(6))
        .map_err(|e| format!("{text:?} is not a timestamp: {e}"))
}

/// The wire's timestamp form.
pub(crate) fn format_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}
