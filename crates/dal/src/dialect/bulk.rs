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
    let mut by_column: Vec<Vec<Value>> = columns
        .iter()
        .map(|_| Vec::with_capacity(rows.len()))
        .collect();
    for row in rows {
        for (c, value) in row.into_iter().enumerate() {
            by_column[c].push(value);
        }
    }
    let values = by_column
        .into_iter()
        .map(column_parameter)
        .collect::<Result<Vec<Value>, DbErr>>()?;

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
    sql.push_str(&conflict_clause(table, conflict, columns, key));
    Ok(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
}

/// One column's values as one parameter: a typed array (sent in Postgres's binary
/// format) when the column has no NULL in this chunk and a type with an array binding,
/// otherwise the text of an array literal, which can spell NULL and nested lists.
/// A double-quoted identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The `ON CONFLICT` clause for `conflict` (empty for [`Conflict::Fail`]), the same on
/// both backends. An overwrite moves `row_version` on from the stored row's, never back to
/// the new row's, so a write based on a read from before the overwrite stays stale.
fn conflict_clause(
    table: &str,
    conflict: &Conflict,
    columns: &[(String, ColumnType)],
    key: &[String],
) -> String {
    let key_list = key.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
    match conflict {
        Conflict::Fail => String::new(),
        Conflict::Skip => format!(" ON CONFLICT ({key_list}) DO NOTHING"),
        Conflict::Overwrite(keep) => {
            let version = crate::repo::ROW_VERSION;
            let mut sets: Vec<String> = columns
                .iter()
                .map(|(n, _)| n)
                .filter(|n| !key.contains(n) && !keep.contains(n) && n.as_str() != version)
                .map(|n| format!("{} = excluded.{}", quote(n), quote(n)))
                .collect();
            if columns.iter().any(|(n, _)| n == version) {
                sets.push(format!(
                    "{v} = {}.{v} + 1",
                    quote(table),
                    v = quote(version)
                ));
            }
            format!(
                " ON CONFLICT ({key_list}) DO UPDATE SET {}",
                sets.join(", ")
            )
        }
    }
}

fn column_parameter(values: Vec<Value>) -> Result<Value, DbErr> {
    let kind = typed_array_kind(&values);
    if let Some(kind) = kind {
        let items = values
            .into_iter()
            .map(|v| match v {
                Value::Enum(sea_orm::sea_query::OptionEnum::Some(e)) => {
                    Value::String(Some(e.value.to_string()))
                }
                other => other,
            })
            .collect();
        return Ok(Value::Array(kind, Some(Box::new(items))));
    }
    let mut literal = String::from("{");
    for (i, mut value) in values.into_iter().enumerate() {
        values::adapt(Backend::Postgres, &mut value).map_err(RefusedValue::into_db_err)?;
        if i > 0 {
            literal.push(',');
        }
        match element_text(value)? {
            None => literal.push_str("NULL"),
            Some(text) => push_quoted(&mut literal, &text),
        }
    }
    literal.push('}');
    Ok(Value::String(Some(literal)))
}

/// The array type for a column whose values are all non-NULL and of one bindable kind.
fn typed_array_kind(values: &[Value]) -> Option<ArrayType> {
    let kind = match values.first()? {
        Value::Uuid(Some(_)) => ArrayType::Uuid,
        Value::String(Some(_)) | Value::Enum(sea_orm::sea_query::OptionEnum::Some(_)) => {
            ArrayType::String
        }
        Value::Json(Some(_)) => ArrayType::Json,
        Value::ChronoDateTimeUtc(Some(_)) => ArrayType::ChronoDateTimeUtc,
        Value::Int(Some(_)) => ArrayType::Int,
        _ => return None,
    };
    let same = values.iter().all(|v| {
        matches!(
            (&kind, v),
            (ArrayType::Uuid, Value::Uuid(Some(_)))
                | (ArrayType::String, Value::String(Some(_)))
                | (
                    ArrayType::String,
                    Value::Enum(sea_orm::sea_query::OptionEnum::Some(_))
                )
                | (ArrayType::Json, Value::Json(Some(_)))
                | (
                    ArrayType::ChronoDateTimeUtc,
                    Value::ChronoDateTimeUtc(Some(_))
                )
                | (ArrayType::Int, Value::Int(Some(_)))
        )
    });
    same.then_some(kind)
}

/// SQLite bulk insert: `INSERT INTO table (columns) SELECT value->>0, ... FROM json_each(?)`
/// with every row in one JSON array parameter. SQLite parses the JSON in C; there is one
/// bind parameter whatever the row count, and the statement text is the same for every
/// chunk, so it is prepared once.
pub(crate) fn json_each_insert(
    table: &str,
    columns: &[(String, ColumnType)],
    key: &[String],
    rows: Vec<Vec<Value>>,
    conflict: &Conflict,
) -> Result<Statement, DbErr> {
    let mut json = String::with_capacity(rows.len() * 160);
    json.push('[');
    for (r, row) in rows.into_iter().enumerate() {
        if r > 0 {
            json.push(',');
        }
        json.push('[');
        for (c, mut value) in row.into_iter().enumerate() {
            if c > 0 {
                json.push(',');
            }
            values::adapt(Backend::Sqlite, &mut value).map_err(RefusedValue::into_db_err)?;
            match value {
                Value::Int(Some(i)) => json.push_str(&i.to_string()),
                Value::BigInt(Some(i)) => json.push_str(&i.to_string()),
                Value::SmallInt(Some(i)) => json.push_str(&i.to_string()),
                Value::Bool(Some(b)) => json.push_str(if b { "1" } else { "0" }),
                // Everything else is stored as text on SQLite (the adapter made it so);
                // JSON documents travel as JSON strings, so their text is kept exactly.
                other => match element_text(other)? {
                    None => json.push_str("null"),
                    Some(text) => {
                        let quoted =
                            serde_json::to_string(&text).map_err(|e| DbErr::Json(e.to_string()))?;
                        json.push_str(&quoted);
                    }
                },
            }
        }
        json.push(']');
    }
    json.push(']');

    let names: Vec<String> = columns.iter().map(|(n, _)| quote(n)).collect();
    let selected: Vec<String> = (0..columns.len()).map(|i| format!("value->>{i}")).collect();
    // `WHERE true`: SQLite would otherwise read ON CONFLICT as a join's ON.
    let mut sql = format!(
        "INSERT INTO {} ({}) SELECT {} FROM json_each(?) WHERE true",
        quote(table),
        names.join(", "),
        selected.join(", ")
    );
    sql.push_str(&conflict_clause(table, conflict, columns, key));
    Ok(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        sql,
        [Value::String(Some(json))],
    ))
}

/// Appends `row` to `out` as one line of Postgres `COPY ... FROM STDIN` text:
/// tab-separated columns, `\\N` for NULL, backslash escapes. Values get the same checks
/// as bound ones (NUL, years, microseconds).
pub(crate) fn copy_line(out: &mut String, row: Vec<Value>) -> Result<(), DbErr> {
    for (c, mut value) in row.into_iter().enumerate() {
        values::adapt(Backend::Postgres, &mut value).map_err(RefusedValue::into_db_err)?;
        if c > 0 {
            out.push('\t');
        }
        match element_text(value)? {
            None => out.push_str("\\N"),
            Some(text)
                if !text
                    .bytes()
                    .any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r')) =>
            {
                out.push_str(&text)
            }
            Some(text) => {
                for ch in text.chars() {
                    match ch {
                        '\\' => out.push_str("\\\\"),
                        '\t' => out.push_str("\\t"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        other => out.push(other),
                    }
                }
            }
        }
    }
    out.push('\n');
    Ok(())
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
    fn copy_text_escapes_and_spells_null() {
        let rows = vec![vec![
            Value::String(Some("tab\there\nline \\ back".into())),
            Value::String(None),
            Value::Json(Some(Box::new(serde_json::json!({"k": "a\tb"})))),
        ]];
        let text = |rows: Vec<Vec<Value>>| -> Result<String, DbErr> {
            let mut out = String::new();
            for row in rows {
                copy_line(&mut out, row)?;
            }
            Ok(out)
        };
        assert_eq!(
            text(rows).unwrap(),
            "tab\\there\\nline \\\\ back\t\\N\t{\"k\":\"a\\\\tb\"}\n"
        );
        let nul = vec![vec![Value::String(Some("a\0".into()))]];
        assert!(text(nul).is_err());
    }

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
