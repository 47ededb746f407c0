//! The tables: every table with its row count, a table's rows a page at a time, one row.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use entities::schema::{self, Table};
use serde::Deserialize;

use crate::Studio;
use crate::data::rows::{self, Selection};
use crate::html::{error_page, esc, href, page, segment};
use crate::pages::values::cell;
use crate::pages::{failure, table_or_404};

/// Rows per page unless `limit` says otherwise.
pub const PAGE_SIZE: u64 = 50;
/// The most rows one page shows.
pub const MAX_PAGE_SIZE: u64 = 500;

/// `GET /`: every table of the schema registry with its live and tombstoned row counts.
pub async fn index(State(studio): State<Arc<Studio>>) -> Response {
    let mut missing: Vec<&str> = Vec::new();
    for table in schema::tables() {
        match studio.db.has_table(table.name).await {
            Ok(true) => {}
            Ok(false) => missing.push(table.name),
            Err(e) => return failure(&studio, &e),
        }
    }
    let mut body = String::new();
    if !missing.is_empty() {
        body.push_str(&format!(
            "<p class=\"notice\" id=\"not-migrated\">This database lacks {}: its migrations \
             are not (all) applied. See <a href=\"/schema\">the schema page</a>.</p>",
            esc(&missing.join(", "))
        ));
    }
    body.push_str("<table id=\"tables\"><tr><th>table</th><th>rows</th><th>tombstoned</th></tr>");
    for table in schema::tables() {
        if missing.contains(&table.name) {
            body.push_str(&format!(
                "<tr data-table=\"{name}\" class=\"missing\"><td>{name}</td><td colspan=\"2\" class=\"muted\">not in this database</td></tr>",
                name = esc(table.name),
            ));
            continue;
        }
        let live = rows::count(&studio.db, table, &Selection::default()).await;
        let all = rows::count(
            &studio.db,
            table,
            &Selection {
                show_deleted: true,
                ..Selection::default()
            },
        )
        .await;
        let (live, all) = match (live, all) {
            (Ok(live), Ok(all)) => (live, all),
            (Err(e), _) | (_, Err(e)) => return failure(&studio, &e),
        };
        body.push_str(&format!(
            "<tr data-table=\"{name}\"><td><a href=\"/tables/{path}\">{name}</a></td><td class=\"count\">{live}</td><td>{dead}</td></tr>",
            name = esc(table.name),
            path = segment(table.name),
            dead = all - live,
        ));
    }
    body.push_str("</table>");
    page(&studio, "Tables", &body)
}

/// The query of a table listing.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ListParams {
    /// Sort column (`id` or an indexed one).
    pub sort: Option<String>,
    /// Keyset position: the sort value of the last row shown.
    pub after: Option<String>,
    /// Keyset position: the id of the last row shown.
    pub after_id: Option<String>,
    /// Filter column.
    pub column: Option<String>,
    /// Filter value.
    pub value: Option<String>,
    /// `1`: show tombstoned rows too.
    pub deleted: Option<String>,
    /// Rows per page.
    pub limit: Option<u64>,
}

fn nonempty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// `GET /tables/{table}`: rows in keyset pages, sorted, filtered, tombstones on request.
pub async fn listing(
    State(studio): State<Arc<Studio>>,
    Path(name): Path<String>,
    Query(params): Query<ListParams>,
) -> Response {
    let table = match table_or_404(&studio, &name) {
        Ok(table) => table,
        Err(response) => return response,
    };
    let refuse =
        |message: String| error_page(&studio, StatusCode::BAD_REQUEST, "Bad request", &message);
    let sort_name = nonempty(&params.sort).unwrap_or("id");
    if !studio.facts.can_sort(table, sort_name) {
        return refuse(format!(
            "{} cannot be sorted by {sort_name:?}: only by id or an indexed column",
            table.name
        ));
    }
    let sort = table.column(sort_name);
    let filter = match (nonempty(&params.column), params.value.as_deref()) {
        (Some(column), Some(value)) if !value.is_empty() => match table.column(column) {
            Some(column) => {
                if let Err(e) = rows::check_value(column, value) {
                    return failure(&studio, &e);
                }
                Some((column, value.to_owned()))
            }
            None => return refuse(format!("{} has no column {column:?}", table.name)),
        },
        _ => None,
    };
    let after = match (params.after.clone(), nonempty(&params.after_id)) {
        (Some(value), Some(id)) => Some((value, id.to_owned())),
        _ => None,
    };
    let show_deleted = params.deleted.as_deref() == Some("1");
    let selection = Selection {
        sort,
        after,
        filter,
        show_deleted,
        limit: params.limit.unwrap_or(PAGE_SIZE).clamp(1, MAX_PAGE_SIZE),
    };
    let (listing, total) = match (
        rows::page(&studio.db, table, &selection).await,
        rows::count(&studio.db, table, &selection).await,
    ) {
        (Ok(listing), Ok(total)) => (listing, total),
        (Err(e), _) | (_, Err(e)) => return failure(&studio, &e),
    };
    let mut body = controls(&studio, table, &params, sort_name, show_deleted);
    body.push_str(&format!("<p class=\"muted\">{total} matching rows</p>"));
    body.push_str("<table id=\"rows\"><tr>");
    for column in &table.columns {
        body.push_str(&format!("<th>{}</th>", esc(column.name)));
    }
    body.push_str("</tr>");
    for row in &listing.rows {
        let deleted = row.get(table, "deleted") == Some("true");
        body.push_str(&format!(
            "<tr class=\"row{}\" data-id=\"{}\">",
            if deleted { " tombstone" } else { "" },
            esc(row.get(table, "id").unwrap_or_default())
        ));
        for (column, value) in table.columns.iter().zip(&row.values) {
            body.push_str(&format!(
                "<td>{}</td>",
                cell(table, column, value.as_deref())
            ));
        }
        body.push_str("</tr>");
    }
    body.push_str("</table>");
    if let Some((value, id)) = &listing.next {
        let mut pairs = carried(&params, sort_name, show_deleted);
        pairs.push(("after", value.as_str()));
        pairs.push(("after_id", id.as_str()));
        let limit = selection.limit.to_string();
        pairs.push(("limit", limit.as_str()));
        body.push_str(&format!(
            "<p><a id=\"next\" href=\"{}\">next page →</a></p>",
            href(&format!("/tables/{}", segment(table.name)), &pairs)
        ));
    }
    page(&studio, table.name, &body)
}

/// The listing's settings a link to another page keeps.
fn carried<'a>(
    params: &'a ListParams,
    sort: &'a str,
    show_deleted: bool,
) -> Vec<(&'a str, &'a str)> {
    let mut pairs = vec![("sort", sort)];
    if let (Some(column), Some(value)) = (nonempty(&params.column), nonempty(&params.value)) {
        pairs.push(("column", column));
        pairs.push(("value", value));
    }
    if show_deleted {
        pairs.push(("deleted", "1"));
    }
    pairs
}

/// The filter, sort and tombstone switch, as one `GET` form.
fn controls(
    studio: &Studio,
    table: &Table,
    params: &ListParams,
    sort: &str,
    show_deleted: bool,
) -> String {
    let options = |selected: &str, names: &mut dyn Iterator<Item = &str>| {
        names
            .map(|n| {
                format!(
                    "<option{}>{}</option>",
                    if n == selected { " selected" } else { "" },
                    esc(n)
                )
            })
            .collect::<String>()
    };
    let filter_column = nonempty(&params.column).unwrap_or("");
    let sortable = studio
        .facts
        .sortable
        .get(table.name)
        .cloned()
        .unwrap_or_default();
    let mut new_link = String::new();
    if studio.writable && crate::pages::edit::creatable(table.name) {
        new_link = format!(
            " · <a id=\"new\" href=\"/tables/{}/new\">new row</a>",
            segment(table.name)
        );
    }
    format!(
        "<form method=\"get\" id=\"controls\">filter <select name=\"column\"><option value=\"\"></option>{}</select> \
         = <input name=\"value\" value=\"{}\" size=\"40\"> sort by <select name=\"sort\">{}</select> \
         <label style=\"display:inline\"><input type=\"checkbox\" name=\"deleted\" value=\"1\"{}> show tombstoned rows</label> \
         <button>show</button></form><p><a href=\"/tables/{}\">first page</a>{new_link}</p>",
        options(filter_column, &mut table.columns.iter().map(|c| c.name)),
        esc(params.value.as_deref().unwrap_or("")),
        options(
            sort,
            &mut std::iter::once("id").chain(sortable.iter().copied())
        ),
        if show_deleted { " checked" } else { "" },
        segment(table.name),
    )
}

/// `GET /tables/{table}/rows/{id}`: one row, with links to the rows under it, its
/// pictures, and (when writable) its edit form.
pub async fn row(
    State(studio): State<Arc<Studio>>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let table = match table_or_404(&studio, &name) {
        Ok(table) => table,
        Err(response) => return response,
    };
    let row = match rows::get(&studio.db, table, &id).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return error_page(
                &studio,
                StatusCode::NOT_FOUND,
                "No such row",
                &format!("{} has no row {id}", table.name),
            );
        }
        Err(e) => return failure(&studio, &e),
    };
    let mut body = String::from("<table id=\"row\">");
    for (column, value) in table.columns.iter().zip(&row.values) {
        body.push_str(&format!(
            "<tr data-column=\"{name}\"><th>{name}</th><td>{}</td></tr>",
            cell(table, column, value.as_deref()),
            name = esc(column.name),
        ));
    }
    body.push_str("</table>");
    body.push_str(&related(table, &id));
    if row.get(table, "deleted") == Some("true") {
        body.push_str("<p class=\"notice\">This row is tombstoned (deleted; kept for sync).</p>");
    } else if studio.writable {
        body.push_str(&crate::pages::edit::edit_section(
            &studio, table, &row, None,
        ));
    }
    page(&studio, &format!("{} {}", table.name, id), &body)
}

/// Links to the rows that hang off this one (children by foreign key) and its pictures.
fn related(table: &Table, id: &str) -> String {
    let mut links = Vec::new();
    for child in schema::tables() {
        for parent in child.parents.iter().filter(|p| p.table == table.name) {
            links.push(format!(
                "<a href=\"{}\">{} with {} = this</a>",
                href(
                    &format!("/tables/{}", segment(child.name)),
                    &[("column", parent.column), ("value", id)]
                ),
                esc(child.name),
                esc(parent.column)
            ));
        }
    }
    match table.name {
        "projects" => links.push(format!(
            "<a id=\"graph\" href=\"/projects/{}/graph\">task graph</a>",
            segment(id)
        )),
        "shots" => links.push(format!(
            "<a id=\"timeline\" href=\"/shots/{}/timeline\">timeline</a>",
            segment(id)
        )),
        _ => {}
    }
    if links.is_empty() {
        return String::new();
    }
    format!("<p>{}</p>", links.join(" · "))
}

/// `GET /find/{id}`: the row with this id, in whichever table has it.
pub async fn find(State(studio): State<Arc<Studio>>, Path(id): Path<String>) -> Response {
    match rows::find(&studio.db, &id).await {
        Ok(Some(table)) => Redirect::to(&format!(
            "/tables/{}/rows/{}",
            segment(table.name),
            segment(&id)
        ))
        .into_response(),
        Ok(None) => error_page(
            &studio,
            StatusCode::NOT_FOUND,
            "No such row",
            &format!("no table has a row {id}"),
        ),
        Err(e) => failure(&studio, &e),
    }
}
