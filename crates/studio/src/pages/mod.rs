//! The pages, one file per concern.

pub mod apply;
pub mod edit;
pub mod fields;
pub mod graph;
pub mod schema;
pub mod sync;
pub mod tables;
pub mod values;

use axum::http::StatusCode;
use axum::response::Response;
use dal::DalError;
use entities::schema::Table;

use crate::Studio;
use crate::html::error_page;

/// The registry table called `name`, or a 404 page.
pub fn table_or_404(studio: &Studio, name: &str) -> Result<&'static Table, Response> {
    entities::schema::table(name).ok_or_else(|| {
        error_page(
            studio,
            StatusCode::NOT_FOUND,
            "No such table",
            &format!("the schema has no table {name:?}"),
        )
    })
}

/// A failed read as a page: the typed error in words, never a connection string (the
/// library's errors carry none).
pub fn failure(studio: &Studio, error: &DalError) -> Response {
    let status = match error {
        DalError::NotFound { .. } => StatusCode::NOT_FOUND,
        DalError::InvalidValue { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_page(studio, status, "Could not read that", &error.to_string())
}
