//! Every synced row of a database, in one comparable form: for checking that a replica
//! has converged with the server (tests, diagnostics).

use std::collections::BTreeMap;

use dal::{Backend, Database};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::Value as Json;

use crate::protocol::RowValues;
use crate::tables::{Kind, tables};
use crate::wire;

/// `(table, id)` to the row's values, tombstones included. JSON documents and uuid lists
/// are parsed, so the same document compares equal whatever its spacing.
pub type Snapshot = BTreeMap<(String, String), RowValues>;

/// Reads every synced row of `db` (SQLite or Postgres).
pub async fn snapshot(db: &Database) -> dal::Result<Snapshot> {
    let mut out = Snapshot::new();
    for table in tables().iter() {
        let sql = match db.backend() {
            Backend::Postgres => wire::pg_select(table),
            Backend::Sqlite => {
                let columns: Vec<String> = table
                    .wire_columns()
                    .map(|c| format!("\"{}\"", c.name))
                    .collect();
                format!("SELECT id, {} FROM \"{}\"", columns.join(", "), table.name)
            }
        };
        let rows = db
            .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
            .await?;
        for row in rows {
            let mut values = wire::read_row(table, &row).map_err(sea_orm::DbErr::from)?;
            for column in table.wire_columns() {
                if matches!(column.kind, Kind::Json | Kind::UuidList)
                    && let Some(Json::String(text)) = values.get(column.name)
                    && let Ok(parsed) = entities::json::parse(text.as_bytes())
                {
                    values.insert(column.name.to_owned(), parsed);
                }
            }
            let id = values
                .get("id")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_owned();
            out.insert((table.name.to_owned(), id), values);
        }
    }
    Ok(out)
}
