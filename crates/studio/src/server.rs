//! The routes. Every one sits behind [`auth::guard`]; `GET`s only read, and every `POST`
//! is refused unless it carries the CSRF token from Studio's own page.

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

use crate::pages::{edit, graph, schema, sync, tables};
use crate::{Studio, auth};

/// Studio's router on `studio`.
pub fn router(studio: Arc<Studio>) -> Router {
    Router::new()
        .route("/", get(tables::index))
        .route("/tables/{table}", get(tables::listing))
        .route("/tables/{table}/rows/{id}", get(tables::row))
        .route("/find/{id}", get(tables::find))
        .route(
            "/tables/{table}/new",
            get(edit::new_form).post(edit::create),
        )
        .route("/tables/{table}/rows/{id}/edit", post(edit::save))
        .route(
            "/tables/{table}/rows/{id}/delete",
            get(edit::confirm_delete).post(edit::delete),
        )
        .route("/projects/{id}/graph", get(graph::project_graph))
        .route("/shots/{id}/timeline", get(graph::shot_timeline))
        .route("/schema", get(schema::page_handler))
        .route("/sync", get(sync::page_handler))
        .route(
            "/sync/dead-letters/{seq}/{action}",
            get(sync::confirm).post(sync::act),
        )
        .layer(from_fn_with_state(studio.clone(), auth::guard))
        .with_state(studio)
}
