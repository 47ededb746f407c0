//! Postgres bulk insert: one `INSERT ... SELECT FROM UNNEST(...)` statement for any number
//! of rows, each column bound as a single array literal. One round trip and a handful of
//! bind parameters, where a multi-row `VALUES` needs a parameter per value (at most 65535).

use chrono::SubsecRound;
use dal_config::Backend;
use sea_orm::sea_query::{ArrayType, ColumnType, Value};
use sea_orm::{DbBackend, DbErr, Statement};

use super::values;
use crate::error::RefusedValue;

/// What to do with a row whose primary key exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Conflict {
    /// Fail the statement (a `Conflict` error).
    Fail,
    /// Leave the existing row (`ON CONFLICT DO NOTHING`).
    Skip,
    /// Overwrite every column but the key and these.
    Overwrite(Vec<String>),
}

/// `INSERT INTO table (columns) SELECT ... FROM UNNEST($1::type[], ...)`; `rows` hold one
/// value per column, in `columns` order.
pub(crate) fn unnest_insert(
    table: &str,
    columns: &[(String, ColumnType)],
    key: &[String],
    rows: Vec<Vec<Value>>,
    conflict: &Conflict,
) -> Result<Statement, DbErr> {
    let mut literals: Vec<String> = columns.iter().map(|_| String::from("{")).collect();
    for (r, row) in rows.into_iter().enumerate() {
        for (c, mut value) in row.into_iter().enumerate() {
            values::adapt(Backend::Postgres, &mut value).map_err(RefusedValue::into_db_err)?;
            let literal = &mut literals[c];
            if r > 0 {
                literal.push(',');
            }
            match element_text(value)? {
                None => literal.push_str("NULL"),
                Some(text) => push_quoted(literal, &text),
            }
        }
    }
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let names: Vec<String> = columns.iter().map(|(n, _)| quote(n)).collect();
    let mut params = Vec::new();
    let mut selected = Vec::new();
    for (i, (name, ty)) in columns.iter().enumerate() {
        let (param_type, cast) = pg_types(ty);
        params.push(format!("${}::{param_type}[]", i + 1));
        selected.push(match cast {
            Some(cast) => format!("{}::{cast}", quote(name)),
            None => quote(name),
        });
    }
    let mut sql = format!(
        "INSERT INTO {} ({}) SELECT {} FROM UNNEST({}) AS t({})",
        quote(table),
        names.join(", "),
        selected.join(", "),
        params.join(", "),
        names.join(", ")
    );
    let key_list = key.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
    match conflict {
        Conflict::Fail => {}
        Conflict::Skip => sql.push_str(&format!(" ON CONFLICT ({key_list}) DO NOTHING")),
        Conflict::Overwrite(keep) => {
            let sets: Vec<String> = columns
                .iter()
                .map(|(n, _)| n)
                .filter(|n| !key.contains(n) && !keep.contains(n))
                .map(|n| format!("{} = EXCLUDED.{}", quote(n), quote(n)))
                .collect();
            sql.push_str(&format!(
                " ON CONFLICT ({key_list}) DO UPDATE SET {}",
                sets.join(", ")
            ));
        }
    }
    let values: Vec<Value> = literals
        .into_iter()
        .map(|mut l| {
            l.push('}');
            Value::String(Some(l))
        })
        .collect();
    Ok(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
}

/// The array element type a column is bound as, and the cast its element needs.
fn pg_types(ty: &ColumnType) -> (&'static str, Option<&'static str>) {
    match ty {
        ColumnType::Uuid => ("uuid", None),
        // An array per row cannot go in a (rectangular) multi-dimensional array: each row's
        // list travels as the text of an array literal and is cast back.
        ColumnType::Array(inner) if matches!(**inner, ColumnType::Uuid) => ("text", Some("uuid[]")),
        ColumnType::Json | ColumnType::JsonBinary => ("jsonb", None),
        ColumnType::TimestampWithTimeZone => ("timestamptz", None),
        ColumnType::Integer => ("int4", None),
        ColumnType::BigInteger => ("int8", None),
        ColumnType::SmallInteger => ("int2", None),
        ColumnType::Boolean => ("bool", None),
        _ => ("text", None),
    }
}

/// A value as the text Postgres parses for its element type; `None` for NULL.
fn element_text(value: Value) -> Result<Option<String>, DbErr> {
    Ok(match value {
        Value::String(s) => s,
        Value::Uuid(u) => u.map(|u| u.hyphenated().to_string()),
        Value::Json(j) => j.map(|j| j.to_string()),
        Value::ChronoDateTimeUtc(t) => t.map(|t| {
            t.trunc_subsecs(6)
                .format("%Y-%m-%d %H:%M:%S%.6f+00")
                .to_string()
        }),
        Value::Int(i) => i.map(|i| i.to_string()),
        Value::BigInt(i) => i.map(|i| i.to_string()),
        Value::SmallInt(i) => i.map(|i| i.to_string()),
        Value::Bool(b) => b.map(|b| b.to_string()),
        Value::Enum(e) => match e {
            sea_orm::sea_query::OptionEnum::Some(v) => Some(v.value.to_string()),
            sea_orm::sea_query::OptionEnum::None(_) => None,
        },
        Value::Array(ArrayType::Uuid, items) => items.map(|items| {
            let ids: Vec<String> = items
                .iter()
                .filter_map(|v| match v {
                    Value::Uuid(Some(u)) => Some(u.hyphenated().to_string()),
                    _ => None,
                })
                .collect();
            format!("{{{}}}", ids.join(","))
        }),
        other => {
            return Err(DbErr::Type(format!(
                "bulk insert cannot bind {other:?}; use single-row inserts for this table"
            )));
        }
    })
}

/// Appends `text` as a double-quoted array element.
fn push_quoted(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_quote_every_element_and_spell_null() {
        let columns = vec![
            ("id".to_owned(), ColumnType::Uuid),
            ("name".to_owned(), ColumnType::Text),
            (
                "deps".to_owned(),
                ColumnType::Array(std::sync::Arc::new(ColumnType::Uuid)),
            ),
        ];
        let id = uuid::Uuid::nil();
        let rows = vec![
            vec![
                Value::Uuid(Some(id)),
                Value::String(Some("a \"quoted\" \\ {x}, y".into())),
                Value::Array(ArrayType::Uuid, Some(Box::new(vec![Value::Uuid(Some(id))]))),
            ],
            vec![
                Value::Uuid(Some(id)),
                Value::String(None),
                Value::Array(ArrayType::Uuid, Some(Box::new(vec![]))),
            ],
        ];
        let stmt = unnest_insert("t", &columns, &["id".to_owned()], rows, &Conflict::Skip).unwrap();
        assert!(stmt.sql.contains("SELECT \"id\", \"name\", \"deps\"::uuid[] FROM UNNEST($1::uuid[], $2::text[], $3::text[])"), "{}", stmt.sql);
        assert!(
            stmt.sql.ends_with("ON CONFLICT (\"id\") DO NOTHING"),
            "{}",
            stmt.sql
        );
        let values = stmt.values.unwrap().0;
        assert_eq!(
            values[1],
            Value::String(Some(r#"{"a \"quoted\" \\ {x}, y",NULL}"#.into()))
        );
        assert_eq!(
            values[2],
            Value::String(Some(format!(r#"{{"{{{id}}}","{{}}"}}"#)))
        );
    }
}
