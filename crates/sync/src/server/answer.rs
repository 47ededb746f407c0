//! The rows a push's acknowledgement (or a settled reply) carries back: the server's
//! version of every row the entries wrote, after the parents those rows need, so the
//! replica ends with what the server holds even where a pull passed the change over.

use std::collections::{HashMap, HashSet};

use dal::DalError;
use dal::prelude::*;
use sea_orm::{ConnectionTrait, Value};
use serde_json::Value as Json;
use uuid::Uuid;

use super::pull::ancestors_of;
use super::statement;
use crate::protocol::RowValues;
use crate::tables::{self, tables};
use crate::wire;

/// Rows set-based runs wrote, by table order and id, as their writes returned them (in
/// wire form), so the answer need not read them again.
pub(super) type Written = HashMap<(usize, Uuid), RowValues>;

/// The server's version of every row entries wrote (`(table, id)`, in entry order), as it
/// stands now (`None`: the server has no such row), after the parents those rows need.
/// Rows in `known` are taken from there (the caller vouches they are current), the rest
/// read.
pub(super) async fn rows_after<'a>(
    uow: &UnitOfWork,
    entries: impl Iterator<Item = (&'a str, Uuid)>,
    mut known: Written,
) -> dal::Result<Vec<(String, Uuid, Option<RowValues>)>> {
    let mut written: Vec<(usize, Uuid)> = Vec::new();
    let mut seen = HashSet::new();
    for (table, row_id) in entries {
        let index = tables::order(table);
        if index < tables().len() && seen.insert((index, row_id)) {
            written.push((index, row_id));
        }
    }
    written.sort_by_key(|(index, _)| *index);
    let mut found: Vec<(usize, RowValues)> = Vec::new();
    let mut rows = Vec::new();
    for (index, table) in tables().iter().enumerate() {
        let ids: Vec<Uuid> = written
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, id)| *id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        let mut by_id: HashMap<Uuid, RowValues> = ids
            .iter()
            .filter_map(|id| Some((*id, known.remove(&(index, *id))?)))
            .collect();
        let unknown: Vec<Value> = ids
            .iter()
            .filter(|id| !by_id.contains_key(id))
            .map(|id| Value::Uuid(Some(*id)))
            .collect();
        let sql = format!("{} WHERE id = ANY($1)", wire::pg_select(table));
        let read = if unknown.is_empty() {
            Vec::new()
        } else {
            let array = Value::Array(sea_orm::sea_query::ArrayType::Uuid, Some(Box::new(unknown)));
            uow.query_all_raw(statement(uow, &sql, vec![array])).await?
        };
        for row in read {
            let values =
                wire::read_row(table, &row).map_err(|e| DalError::from(sea_orm::DbErr::from(e)))?;
            if let Some(id) = values
                .get("id")
                .and_then(Json::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
            {
                by_id.insert(id, values);
            }
        }
        for id in ids {
            let values = by_id.remove(&id);
            if let Some(values) = &values {
                found.push((index, values.clone()));
            }
            rows.push((table.name.to_owned(), id, values));
        }
    }
    let mut answer: Vec<(String, Uuid, Option<RowValues>)> = ancestors_of(uow, &found)
        .await?
        .into_iter()
        .filter_map(|(table, values)| {
            let id = values
                .get("id")
                .and_then(Json::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())?;
            Some((table, id, Some(values)))
        })
        .collect();
    answer.extend(rows);
    Ok(answer)
}
