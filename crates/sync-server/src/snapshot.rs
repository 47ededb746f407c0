//! `GET /v1/snapshot`: a new device's first sync as one file. The server exports the
//! authenticated user's rows from one consistent snapshot into a SQLite replica (the
//! snapshot crate's format, checked by the client before use), whose pull cursor is the
//! snapshot's point, and streams it; the device then goes on with incremental pulls.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use snapshot::{ExportOptions, Scope};
use sync::http::ErrorCode;

use crate::App;
use crate::api::{Failure, authenticate};

/// Exports the user's rows and sends the file.
pub(crate) async fn download(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let user = authenticate(&app, &headers).await?;
    // Held until the file is sent (it moves into the body's stream).
    let Ok(permit) = app.snapshot_permits.clone().try_acquire_owned() else {
        return Err(Failure::new(
            ErrorCode::Unavailable,
            "too many snapshots are being made; try again shortly, or pull",
        ));
    };
    let path = std::env::temp_dir().join(format!("dal-sync-snapshot-{}.db", uuid::Uuid::new_v4()));
    let options = ExportOptions {
        scope: Scope::User(user),
        ..ExportOptions::new("the sync server")
    };
    let made = snapshot::export(&app.db, &path, &options, |_| {}).await;
    let meta = match made {
        Ok(meta) => meta,
        Err(e) => {
            tracing::warn!(%user, error = %e, "snapshot export failed");
            return Err(Failure::new(
                ErrorCode::Unavailable,
                "the snapshot could not be made; try again, or pull",
            ));
        }
    };
    // Opened, then unlinked, with no await between (a request dropped there would leave
    // the file behind): it lives as long as the response reads it, and nothing is left
    // behind whatever becomes of the connection.
    let file = std::fs::File::open(&path).map(tokio::fs::File::from_std);
    let _ = std::fs::remove_file(&path);
    let file = file.map_err(|e| {
        tracing::warn!(%user, error = %e, "snapshot file vanished");
        Failure::new(
            ErrorCode::Unavailable,
            "the snapshot could not be read; try again",
        )
    })?;
    let length = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    tracing::info!(%user, rows = meta.total_rows(), bytes = length, "snapshot");
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file).map(move |chunk| {
        let _held = &permit;
        chunk
    }));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/vnd.sqlite3".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        body,
    )
        .into_response())
}
