//! Counting, paging, filtering and fetching rows of any registry table.

use dal::prelude::*;
use dal::{Backend, DalError};
use entities::schema::{self, Column, Kind, Role, Table};

use super::sql::{Query, ident, live_condition, order_of, order_value, push_match, text_of};

/// One row: its values as text (`None` for NULL), in the registry's column order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The values, one per column of the table.
    pub values: Vec<Option<String>>,
}

impl Row {
    /// The value of `column` of `table`.
    pub fn get(&self, table: &Table, column: &str) -> Option<&str> {
        let index = table.columns.iter().position(|c| c.name == column)?;
        self.values.get(index)?.as_deref()
    }
}

/// Which rows a listing shows.
#[derive(Clone, Debug, Default)]
pub struct Selection<'a> {
    /// Sort by this column, then by `id` (`None`: by `id`).
    pub sort: Option<&'a Column>,
    /// Keyset position: rows after this (sort value, id).
    pub after: Option<(String, String)>,
    /// Only rows whose column matches this text (a uuid list: contains it).
    pub filter: Option<(&'a Column, String)>,
    /// Show tombstoned rows too.
    pub show_deleted: bool,
    /// Rows per page.
    pub limit: u64,
}

/// A page of rows and where the next one starts.
#[derive(Clone, Debug)]
pub struct Listing {
    /// The rows.
    pub rows: Vec<Row>,
    /// The (sort value, id) to continue after, when there may be more.
    pub next: Option<(String, String)>,
}

/// Whether `table` has the tombstone column.
pub fn has_tombstone(table: &Table) -> bool {
    table.columns.iter().any(|c| c.role == Role::Tombstone)
}

fn select_list(backend: Backend, table: &Table) -> String {
    table
        .columns
        .iter()
        .map(|c| text_of(backend, c))
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_row(result: &dal::sql::QueryResult, width: usize) -> Result<Row, DalError> {
    let values = (0..width)
        .map(|i| result.try_get_by_index::<Option<String>>(i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(DalError::from)?;
    Ok(Row { values })
}

/// Refuses a value that cannot be compared with `column` (a uuid that does not parse).
pub fn check_value(column: &Column, text: &str) -> Result<(), DalError> {
    if matches!(column.kind, Kind::Uuid | Kind::UuidList) && uuid::Uuid::parse_str(text).is_err() {
        return Err(DalError::invalid(format!(
            "{}: {text:?} is not a uuid",
            column.name
        )));
    }
    if column.kind == Kind::Int && text.trim().parse::<i64>().is_err() {
        return Err(DalError::invalid(format!(
            "{}: {text:?} is not a whole number",
            column.name
        )));
    }
    Ok(())
}

fn push_where(query: &mut Query, backend: Backend, table: &Table, selection: &Selection<'_>) {
    query.push(" WHERE ");
    query.push(live_condition(
        has_tombstone(table) && !selection.show_deleted,
    ));
    if let Some((column, text)) = &selection.filter {
        query.push(" AND ");
        push_match(query, backend, column, text);
    }
}

/// How many rows of `table` are live (or all, with `show_deleted`), and match `filter`.
pub async fn count(
    db: &Database,
    table: &Table,
    selection: &Selection<'_>,
) -> Result<i64, DalError> {
    let backend = db.backend();
    let mut query = Query::new(backend);
    query.push(&format!("SELECT count(*) FROM {}", ident(table.name)));
    push_where(&mut query, backend, table, selection);
    let rows = db.query_sql(&query.sql, query.values).await?;
    let first = rows
        .first()
        .ok_or_else(|| DalError::database("count returned no row"))?;
    first.try_get_by_index::<i64>(0).map_err(DalError::from)
}

/// One page of `table`'s rows, in keyset order.
pub async fn page(
    db: &Database,
    table: &Table,
    selection: &Selection<'_>,
) -> Result<Listing, DalError> {
    let backend = db.backend();
    let id = table
        .column("id")
        .ok_or_else(|| DalError::invalid("the table has no id"))?;
    let sort = selection.sort.unwrap_or(id);
    let mut query = Query::new(backend);
    query.push(&format!(
        "SELECT {} FROM {}",
        select_list(backend, table),
        ident(table.name)
    ));
    push_where(&mut query, backend, table, selection);
    let (sort_key, id_key) = (order_of(backend, sort), order_of(backend, id));
    if let Some((after_value, after_id)) = &selection.after {
        let value = order_value(sort, after_value)
            .ok_or_else(|| DalError::invalid("the page position does not parse"))?;
        if sort.name == "id" {
            query.push(&format!(" AND {id_key} > "));
            query.bind(after_id.clone());
        } else {
            query.push(&format!(" AND ({sort_key} > "));
            query.bind(value.clone());
            query.push(&format!(" OR ({sort_key} = "));
            query.bind(value);
            query.push(&format!(" AND {id_key} > "));
            query.bind(after_id.clone());
            query.push("))");
        }
    }
    if sort.name == "id" {
        query.push(&format!(" ORDER BY {id_key}"));
    } else {
        query.push(&format!(" ORDER BY {sort_key}, {id_key}"));
    }
    query.push(&format!(" LIMIT {}", selection.limit + 1));
    let results = db.query_sql(&query.sql, query.values).await?;
    let mut rows = results
        .iter()
        .map(|r| read_row(r, table.columns.len()))
        .collect::<Result<Vec<_>, _>>()?;
    let more = rows.len() as u64 > selection.limit;
    rows.truncate(selection.limit as usize);
    let next = match rows.last() {
        Some(last) if more => Some((
            last.get(table, sort.name).unwrap_or_default().to_owned(),
            last.get(table, "id").unwrap_or_default().to_owned(),
        )),
        _ => None,
    };
    Ok(Listing { rows, next })
}

/// The row of `table` with this id, tombstoned or not.
pub async fn get(db: &Database, table: &Table, id: &str) -> Result<Option<Row>, DalError> {
    let backend = db.backend();
    let id_column = table
        .column("id")
        .ok_or_else(|| DalError::invalid("the table has no id"))?;
    check_value(id_column, id)?;
    let mut query = Query::new(backend);
    query.push(&format!(
        "SELECT {} FROM {} WHERE ",
        select_list(backend, table),
        ident(table.name)
    ));
    push_match(&mut query, backend, id_column, id);
    let results = db.query_sql(&query.sql, query.values).await?;
    results
        .first()
        .map(|r| read_row(r, table.columns.len()))
        .transpose()
}

/// The table whose row has this id (the first found in parent-first order), if any.
pub async fn find(db: &Database, id: &str) -> Result<Option<&'static Table>, DalError> {
    for table in schema::tables() {
        if get(db, table, id).await?.is_some() {
            return Ok(Some(table));
        }
    }
    Ok(None)
}
