//! SQLite's catalog: `sqlite_master` (tables, indexes, triggers) and the `pragma_*`
//! table functions.

use std::collections::BTreeMap;

use sea_orm_migration::sea_orm::{ConnectionTrait, DbErr, QueryResult, Statement};

use super::{Column, Table, normalise};

async fn rows<C: ConnectionTrait>(
    db: &C,
    sql: &str,
    args: Vec<sea_orm_migration::sea_orm::Value>,
) -> Result<Vec<QueryResult>, DbErr> {
    db.query_all_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        args,
    ))
    .await
}

pub(super) async fn tables<C: ConnectionTrait>(db: &C) -> Result<BTreeMap<String, Table>, DbErr> {
    let mut tables = BTreeMap::new();
    let listed = rows(
        db,
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        vec![],
    )
    .await?;
    for row in listed {
        let name: String = row.try_get("", "name")?;
        let sql: String = row.try_get("", "sql")?;
        let mut table = Table {
            create_sql: Some(normalise(&sql)),
            ..Table::default()
        };

        for c in rows(db, "SELECT name, type, \"notnull\" AS nn, dflt_value, pk FROM pragma_table_info(?) ORDER BY cid", vec![name.clone().into()]).await? {
            let pk: i32 = c.try_get("", "pk")?;
            let nn: i32 = c.try_get("", "nn")?;
            table.columns.push(Column {
                name: c.try_get("", "name")?,
                data_type: c.try_get("", "type")?,
                // A primary key column is NOT NULL in effect only when declared so; keep
                // what the catalog says.
                nullable: nn == 0 && pk == 0,
                default: c.try_get::<Option<String>>("", "dflt_value")?.map(|d| normalise(&d)),
            });
        }

        for fk in rows(db, "SELECT \"table\" AS parent, \"from\" AS col, \"to\" AS target, on_update, on_delete FROM pragma_foreign_key_list(?) ORDER BY id, seq", vec![name.clone().into()]).await? {
            let col: String = fk.try_get("", "col")?;
            let parent: String = fk.try_get("", "parent")?;
            let target: String = fk.try_get("", "target")?;
            let on_update: String = fk.try_get("", "on_update")?;
            let on_delete: String = fk.try_get("", "on_delete")?;
            table.constraints.insert(
                format!("foreign key ({col})"),
                format!("REFERENCES {parent}({target}) ON UPDATE {on_update} ON DELETE {on_delete}"),
            );
        }

        for (key, def) in checks(&sql) {
            table.constraints.insert(key, def);
        }

        for ix in rows(
            db,
            "SELECT name, \"unique\" AS uq, origin FROM pragma_index_list(?)",
            vec![name.clone().into()],
        )
        .await?
        {
            let index: String = ix.try_get("", "name")?;
            let unique: i32 = ix.try_get("", "uq")?;
            let origin: String = ix.try_get("", "origin")?;
            let cols: Vec<String> = rows(
                db,
                "SELECT name FROM pragma_index_info(?) ORDER BY seqno",
                vec![index.clone().into()],
            )
            .await?
            .iter()
            .map(|r| {
                r.try_get::<Option<String>>("", "name")
                    .map(Option::unwrap_or_default)
            })
            .collect::<Result<_, _>>()?;
            let cols = cols.join(", ");
            match origin.as_str() {
                // Implicit indexes of PRIMARY KEY / UNIQUE: named by SQLite, so key them
                // by what they enforce.
                "pk" => {
                    table
                        .constraints
                        .insert("primary key".into(), format!("PRIMARY KEY ({cols})"));
                }
                "u" => {
                    table
                        .constraints
                        .insert(format!("unique ({cols})"), format!("UNIQUE ({cols})"));
                }
                _ => {
                    let sql: Option<String> = rows(
                        db,
                        "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?",
                        vec![index.clone().into()],
                    )
                    .await?
                    .first()
                    .map(|r| r.try_get("", "sql"))
                    .transpose()?;
                    let def = sql.map(|s| normalise(&s)).unwrap_or_else(|| {
                        format!(
                            "CREATE {}INDEX {index} ON {name} ({cols})",
                            if unique == 1 { "UNIQUE " } else { "" }
                        )
                    });
                    table.indexes.insert(index, def);
                }
            }
        }
        for trigger in rows(
            db,
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
            vec![name.clone().into()],
        )
        .await?
        {
            // As written (a `--` comment in the body ends at a line break); compared
            // with white space collapsed.
            let sql: String = trigger.try_get("", "sql")?;
            table
                .triggers
                .insert(trigger.try_get("", "name")?, sql.trim().to_owned());
        }
        tables.insert(name, table);
    }
    Ok(tables)
}

/// The CHECK constraints of a `CREATE TABLE` statement, keyed by their name
/// (`CONSTRAINT name CHECK (...)`) or, unnamed, by their expression.
fn checks(sql: &str) -> Vec<(String, String)> {
    let sql = normalise(sql);
    let upper = sql.to_ascii_uppercase();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = upper[from..].find("CHECK (").map(|i| i + from) {
        let open = at + "CHECK ".len();
        let mut depth = 0;
        let mut quoted = false;
        let mut end = open;
        for (i, ch) in sql[open..].char_indices() {
            match ch {
                '\'' => quoted = !quoted,
                '(' if !quoted => depth += 1,
                ')' if !quoted => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        let def = format!("CHECK {}", &sql[open..end]);
        let before = sql[..at].trim_end();
        let name = before
            .strip_suffix('"')
            .and_then(|b| b.rfind('"').map(|q| (q, b)))
            .filter(|(q, b)| {
                b[..*q]
                    .trim_end()
                    .to_ascii_uppercase()
                    .ends_with("CONSTRAINT")
            })
            .map(|(q, b)| b[q + 1..].to_owned());
        found.push((name.unwrap_or_else(|| format!("check {def}")), def));
        from = end.max(at + 1);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::checks;

    #[test]
    fn finds_named_and_unnamed_checks_with_nested_parentheses() {
        let sql = r#"CREATE TABLE t ( "a" TEXT CONSTRAINT "t_a_check" CHECK ("a" IN ('x', 'y)')), "b" INT CHECK (b > (1)) )"#;
        assert_eq!(
            checks(sql),
            vec![
                (
                    "t_a_check".to_owned(),
                    r#"CHECK ("a" IN ('x', 'y)'))"#.to_owned()
                ),
                (
                    "check CHECK (b > (1))".to_owned(),
                    "CHECK (b > (1))".to_owned()
                ),
            ]
        );
    }
}
