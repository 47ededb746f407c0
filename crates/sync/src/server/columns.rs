//! Many rows' values bound as a few parameters: each column of a set write travels as one
//! Postgres array literal of the values' text forms (`{"…","…",NULL}`), unnested and cast
//! to the column's type in the statement, as a hand-written `unnest` of typed arrays
//! would. Text keeps SQL `NULL` apart from every value (the binder's typed arrays cannot
//! hold one), and Postgres reads each value with its type's own input function: the same
//! value the per-entry path's bound parameter gives.

use chrono::{Datelike, SubsecRound};
use dal::prelude::*;
use sea_orm::sea_query::ArrayType;
use sea_orm::{ConnectionTrait, Value};
use std::collections::HashMap;

use super::statement;
use crate::tables;
use crate::wire;

/// A value in the text form its column's type reads (`None`: SQL `NULL`).
pub(super) type Text = Option<String>;

/// `value` as the text its column reads back into the same value; `None` for a value with
/// no such form here (a JSON document that is `null`, kept apart from SQL `NULL` only by
/// the per-entry path; a timestamp outside the years that path accepts; a type sync does
/// not write), which sends the entry to the per-entry path.
pub(super) fn text_of(value: Value) -> Option<Text> {
    Some(match value {
        Value::Uuid(id) => id.map(|id| id.to_string()),
        Value::String(s) => s,
        Value::Json(Some(doc)) if doc.is_null() => return None,
        Value::Json(doc) => doc.map(|doc| doc.to_string()),
        Value::ChronoDateTimeUtc(None) => None,
        Value::ChronoDateTimeUtc(Some(t)) if (1..=9999).contains(&t.year()) => {
            Some(wire::format_timestamp(t.trunc_subsecs(6)))
        }
        Value::Array(ArrayType::Uuid, None) => None,
        Value::Array(ArrayType::Uuid, Some(items)) => {
            let ids = (*items)
                .into_iter()
                .map(|item| match item {
                    Value::Uuid(Some(id)) => Some(id.to_string()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            Some(format!("{{{}}}", ids.join(",")))
        }
        Value::BigInt(n) => n.map(|n| n.to_string()),
        Value::Bool(b) => b.map(|b| b.to_string()),
        _ => return None,
    })
}

/// `values` as one Postgres array literal of text.
pub(super) fn array_literal<'v>(values: impl Iterator<Item = &'v Text>) -> String {
    let mut out = String::from("{");
    for (n, value) in values.enumerate() {
        if n > 0 {
            out.push(',');
        }
        match value {
            None => out.push_str("NULL"),
            Some(text) => {
                out.push('"');
                for c in text.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
    out
}

/// Each synced table's column types as Postgres spells them (`format_type`), for the
/// casts of a set write.
pub(super) struct ColumnTypes(HashMap<(String, String), String>);

impl ColumnTypes {
    /// Reads the synced tables' column types.
    pub(super) async fn read(uow: &UnitOfWork) -> dal::Result<ColumnTypes> {
        let names: Vec<Value> = tables::tables()
            .iter()
            .map(|t| Value::from(t.name))
            .collect();
        let rows = uow
            .query_all_raw(statement(
                uow,
                "SELECT c.relname::text AS table_name, a.attname::text AS column_name, \
                 format_type(a.atttypid, a.atttypmod) AS column_type \
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                 WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY($1) \
                 AND a.attnum > 0 AND NOT a.attisdropped",
                vec![Value::Array(ArrayType::String, Some(Box::new(names)))],
            ))
            .await?;
        let mut types = HashMap::new();
        for row in rows {
            types.insert(
                (
                    row.try_get("", "table_name")?,
                    row.try_get("", "column_name")?,
                ),
                row.try_get("", "column_type")?,
            );
        }
        Ok(ColumnTypes(types))
    }

    /// The type of `table.column`.
    pub(super) fn of(&self, table: &str, column: &str) -> dal::Result<&str> {
        self.0
            .get(&(table.to_owned(), column.to_owned()))
            .map(String::as_str)
            .ok_or_else(|| DalError::database(format!("no column {table}.{column} on the server")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_quote_every_value_and_keep_null_apart() {
        let values = [
            Some("plain".to_owned()),
            None,
            Some("NULL".to_owned()),
            Some(r#"a "quoted" \ back{,}"#.to_owned()),
            Some(String::new()),
        ];
        assert_eq!(
            array_literal(values.iter()),
            r#"{"plain",NULL,"NULL","a \"quoted\" \\ back{,}",""}"#
        );
        assert_eq!(array_literal([].iter()), "{}");
    }

    #[test]
    fn a_json_null_goes_the_per_entry_way() {
        assert_eq!(
            text_of(Value::Json(Some(Box::new(serde_json::Value::Null)))),
            None
        );
        assert_eq!(text_of(Value::Json(None)), Some(None));
        assert_eq!(
            text_of(Value::Json(Some(Box::new(
                serde_json::json!({"a": [1, "x"]})
            )))),
            Some(Some(r#"{"a":[1,"x"]}"#.to_owned()))
        );
    }
}
