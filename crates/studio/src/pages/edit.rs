//! Create, edit and delete rows through the repositories: errors next to the field in
//! plain words, and a stale edit shown beside the row as it is now instead of saved.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use dal::prelude::*;
use entities::schema::Table;

use super::fields::{Errors, Field, FieldKind, Refused, create_fields, edit_fields};
use super::{apply, failure, table_or_404};
use crate::Studio;
use crate::data::rows::{self, Row};
use crate::html::{error_page, esc, form, page, segment};
use crate::pages::values::pretty_json;

/// Whether rows of `table` can be created here.
pub fn creatable(table: &str) -> bool {
    !create_fields(table).is_empty()
}

fn read_only(studio: &Studio) -> Response {
    error_page(
        studio,
        StatusCode::FORBIDDEN,
        "Read-only",
        "studio was started without --write: it only reads",
    )
}

/// A row's stored value of `field` as a form shows it.
fn shown(table: &Table, row: &Row, field: &Field) -> String {
    let value = row.get(table, field.name).unwrap_or_default();
    match field.kind {
        FieldKind::Json => pretty_json(value),
        FieldKind::UuidList => serde_json::from_str::<Vec<String>>(value)
            .map(|ids| ids.join("\n"))
            .unwrap_or_else(|_| value.to_owned()),
        _ => value.to_owned(),
    }
}

fn input(field: &Field, value: &str, error: Option<&String>) -> String {
    let name = esc(field.name);
    let control = match field.kind {
        FieldKind::Json | FieldKind::UuidList => format!(
            "<textarea name=\"{name}\" id=\"field-{name}\" rows=\"6\" cols=\"60\">{}</textarea>",
            esc(value)
        ),
        FieldKind::Status => {
            let options: String = TaskStatus::ALL
                .iter()
                .map(|s| format!("<option value=\"{}\">", esc(s.as_str())))
                .collect();
            format!(
                "<input type=\"text\" name=\"{name}\" id=\"field-{name}\" value=\"{}\" list=\"statuses\">\
                 <datalist id=\"statuses\">{options}</datalist>",
                esc(value)
            )
        }
        _ => format!(
            "<input type=\"text\" name=\"{name}\" id=\"field-{name}\" value=\"{}\">",
            esc(value)
        ),
    };
    let error = error
        .map(|e| {
            format!(
                " <span class=\"error\" id=\"error-{name}\">{}</span>",
                esc(e)
            )
        })
        .unwrap_or_default();
    format!("<label for=\"field-{name}\">{name}</label>{control}{error}")
}

fn general_error(errors: &Errors) -> String {
    errors
        .get("")
        .map(|e| format!("<p class=\"error\" id=\"error\">{}</p>", esc(e)))
        .unwrap_or_default()
}

/// The edit form under a row (with the submitted values and errors after a refusal),
/// and the delete link.
pub fn edit_section(
    studio: &Studio,
    table: &Table,
    row: &Row,
    submitted: Option<(&HashMap<String, String>, &Errors)>,
) -> String {
    let id = row.get(table, "id").unwrap_or_default();
    let mut out = String::new();
    let fields = edit_fields(table.name);
    if !fields.is_empty() {
        let empty = Errors::new();
        let errors = submitted.map(|(_, e)| e).unwrap_or(&empty);
        // After a refusal the form keeps the version it was first read at, not the
        // row's version now: the user has not seen a change made meanwhile, and saving
        // the corrected form must find it stale rather than overwrite it.
        let version = match submitted {
            Some((form, _)) => form.get("row_version").map(String::as_str).unwrap_or(""),
            None => row.get(table, "row_version").unwrap_or_default(),
        };
        let mut inner = format!(
            "<input type=\"hidden\" name=\"row_version\" value=\"{}\">{}",
            esc(version),
            general_error(errors)
        );
        for field in fields {
            let value = match submitted {
                Some((form, _)) => form.get(field.name).cloned().unwrap_or_default(),
                None => shown(table, row, field),
            };
            inner.push_str(&input(field, &value, errors.get(field.name)));
        }
        inner.push_str("<p><button id=\"save\">save</button></p>");
        out.push_str("<h2>Edit</h2>");
        out.push_str(&form(
            studio,
            &format!("/tables/{}/rows/{}/edit", segment(table.name), segment(id)),
            &inner,
        ));
    }
    out.push_str(&format!(
        "<p><a id=\"delete\" href=\"/tables/{}/rows/{}/delete\">delete this row…</a></p>",
        segment(table.name),
        segment(id)
    ));
    out
}

fn parse_id(text: &str) -> Option<Id> {
    uuid::Uuid::parse_str(text).ok().map(Id)
}

/// The table named `name`, if this studio may write: how every write starts.
fn writable_table(studio: &Studio, name: &str) -> Result<&'static Table, Response> {
    if !studio.writable {
        return Err(read_only(studio));
    }
    table_or_404(studio, name)
}

/// The table and the row a write to one row names.
fn writable_row(studio: &Studio, name: &str, id: &str) -> Result<(&'static Table, Id), Response> {
    let table = writable_table(studio, name)?;
    let row_id = parse_id(id).ok_or_else(|| {
        error_page(
            studio,
            StatusCode::BAD_REQUEST,
            "Bad id",
            &format!("{id:?} is not a uuid"),
        )
    })?;
    Ok((table, row_id))
}

async fn current(studio: &Studio, table: &Table, id: &str) -> Result<Row, Response> {
    match rows::get(&studio.db, table, id).await {
        Ok(Some(row)) => Ok(row),
        Ok(None) => Err(error_page(
            studio,
            StatusCode::NOT_FOUND,
            "No such row",
            &format!("{} has no row {id}", table.name),
        )),
        Err(e) => Err(failure(studio, &e)),
    }
}

/// `POST /tables/{table}/rows/{id}/edit`.
pub async fn save(
    State(studio): State<Arc<Studio>>,
    Path((name, id)): Path<(String, String)>,
    Form(submitted): Form<HashMap<String, String>>,
) -> Response {
    let (table, row_id) = match writable_row(&studio, &name, &id) {
        Ok(found) => found,
        Err(response) => return response,
    };
    // Without the version the form was read at, an edit would overwrite whatever the
    // row holds now: refused, never saved blindly.
    let Some(version) = submitted
        .get("row_version")
        .and_then(|v| v.parse::<i64>().ok())
    else {
        return error_page(
            &studio,
            StatusCode::BAD_REQUEST,
            "Not saved",
            "the form carries no row_version (the version of the row it was read at): reload the row and edit it again",
        );
    };
    let refused = match apply::edit(&studio.db, table, row_id, version, &submitted).await {
        Ok(()) => {
            let to = format!("/tables/{}/rows/{}", segment(table.name), segment(&id));
            return Redirect::to(&to).into_response();
        }
        Err(refused) => refused,
    };
    let row = match current(&studio, table, &id).await {
        Ok(row) => row,
        Err(response) => return response,
    };
    match refused {
        Refused::Stale => stale(&studio, table, &row, &submitted),
        Refused::Invalid(errors) => {
            let body = format!(
                "<p class=\"error\">Not saved: see the fields below.</p>{}",
                edit_section(&studio, table, &row, Some((&submitted, &errors)))
            );
            let mut response = page(&studio, &format!("{} {}", table.name, id), &body);
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            response
        }
    }
}

/// The row changed since the form was loaded: both versions, and the choice.
fn stale(
    studio: &Studio,
    table: &Table,
    row: &Row,
    submitted: &HashMap<String, String>,
) -> Response {
    let id = row.get(table, "id").unwrap_or_default();
    let mut mine = String::from("<table id=\"mine\">");
    let mut theirs = String::from("<table id=\"theirs\">");
    let mut again = format!(
        "<input type=\"hidden\" name=\"row_version\" value=\"{}\">",
        esc(row.get(table, "row_version").unwrap_or_default())
    );
    for field in edit_fields(table.name) {
        let yours = submitted.get(field.name).cloned().unwrap_or_default();
        let now = shown(table, row, field);
        let marker = if yours.trim() != now.trim() {
            " class=\"changed\""
        } else {
            ""
        };
        mine.push_str(&format!(
            "<tr{marker}><th>{}</th><td><pre>{}</pre></td></tr>",
            esc(field.name),
            esc(&yours)
        ));
        theirs.push_str(&format!(
            "<tr{marker}><th>{}</th><td><pre>{}</pre></td></tr>",
            esc(field.name),
            esc(&now)
        ));
        again.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(field.name),
            esc(&yours)
        ));
    }
    mine.push_str("</table>");
    theirs.push_str("</table>");
    again.push_str("<button id=\"overwrite\">save mine over it</button>");
    let body = format!(
        "<p class=\"notice\" id=\"stale\">This row changed after you opened it (now at version {}). \
         Nothing was saved. Compare, then keep the row as it is now or save yours over it.</p>\
         <div class=\"side\"><div><h2>Your edit</h2>{mine}</div><div><h2>Now in the database</h2>{theirs}</div></div>\
         {}<p><a href=\"/tables/{}/rows/{}\">keep it as it is now</a></p>",
        esc(row.get(table, "row_version").unwrap_or_default()),
        form(
            studio,
            &format!("/tables/{}/rows/{}/edit", segment(table.name), segment(id)),
            &again
        ),
        segment(table.name),
        segment(id),
    );
    let mut response = page(
        studio,
        &format!("{} {id}: changed meanwhile", table.name),
        &body,
    );
    *response.status_mut() = StatusCode::CONFLICT;
    response
}

fn create_page(
    studio: &Studio,
    table: &Table,
    values: &HashMap<String, String>,
    errors: &Errors,
) -> Response {
    let mut inner = general_error(errors);
    for field in create_fields(table.name) {
        let value = values
            .get(field.name)
            .cloned()
            .unwrap_or_else(|| match field.kind {
                FieldKind::Json => "{}".to_owned(),
                FieldKind::Status => TaskStatus::Queued.as_str().to_owned(),
                _ => String::new(),
            });
        inner.push_str(&input(field, &value, errors.get(field.name)));
    }
    inner.push_str("<p><button id=\"create\">create</button></p>");
    let body = form(
        studio,
        &format!("/tables/{}/new", segment(table.name)),
        &inner,
    );
    page(studio, &format!("New row of {}", table.name), &body)
}

/// `GET /tables/{table}/new`: the form, prefilled from the query (`?project_id=...`).
pub async fn new_form(
    State(studio): State<Arc<Studio>>,
    Path(name): Path<String>,
    Query(prefill): Query<HashMap<String, String>>,
) -> Response {
    match writable_table(&studio, &name) {
        Ok(table) if creatable(table.name) => create_page(&studio, table, &prefill, &Errors::new()),
        Ok(table) => error_page(
            &studio,
            StatusCode::NOT_FOUND,
            "Not here",
            &format!("rows of {} are not created here", table.name),
        ),
        Err(response) => response,
    }
}

/// `POST /tables/{table}/new`.
pub async fn create(
    State(studio): State<Arc<Studio>>,
    Path(name): Path<String>,
    Form(submitted): Form<HashMap<String, String>>,
) -> Response {
    let table = match writable_table(&studio, &name) {
        Ok(table) => table,
        Err(response) => return response,
    };
    match apply::create(&studio.db, table, &submitted).await {
        Ok(id) => {
            Redirect::to(&format!("/tables/{}/rows/{}", segment(table.name), id.0)).into_response()
        }
        Err(Refused::Invalid(errors)) => {
            let mut response = create_page(&studio, table, &submitted, &errors);
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            response
        }
        Err(Refused::Stale) => failure(&studio, &DalError::invalid("a new row cannot be stale")),
    }
}

/// `GET /tables/{table}/rows/{id}/delete`: the confirmation.
pub async fn confirm_delete(
    State(studio): State<Arc<Studio>>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let table = match writable_table(&studio, &name) {
        Ok(table) => table,
        Err(response) => return response,
    };
    if let Err(response) = current(&studio, table, &id).await {
        return response;
    }
    let inner = format!(
        "<p>Delete {} row {}? Rows that belong to it are deleted with it.</p>\
         <button id=\"confirm\">delete</button> <a href=\"/tables/{}/rows/{}\">cancel</a>",
        esc(table.name),
        esc(&id),
        segment(table.name),
        segment(&id)
    );
    let action = format!(
        "/tables/{}/rows/{}/delete",
        segment(table.name),
        segment(&id)
    );
    page(&studio, "Delete?", &form(&studio, &action, &inner))
}

/// `POST /tables/{table}/rows/{id}/delete`.
pub async fn delete(
    State(studio): State<Arc<Studio>>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let (table, row_id) = match writable_row(&studio, &name, &id) {
        Ok(found) => found,
        Err(response) => return response,
    };
    match apply::delete(&studio.db, table, row_id).await {
        Ok(()) => Redirect::to(&format!("/tables/{}", segment(table.name))).into_response(),
        Err(Refused::Invalid(errors)) => error_page(
            &studio,
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not deleted",
            &errors.values().cloned().collect::<Vec<_>>().join("; "),
        ),
        Err(Refused::Stale) => failure(&studio, &DalError::invalid("stale delete")),
    }
}
