//! A new device's first sync from the server's snapshot of its user's rows, instead of
//! paging through a full pull.

use std::path::Path;

use sync::http::HttpTransport;

use crate::error::{Result, SnapshotError};
use crate::file;
use crate::import::{Imported, check, import_checked};

/// Downloads the server's snapshot of the token's user (`GET /v1/snapshot`), checks it
/// and puts it in place as the new local database `local`, which must not exist. Open it
/// with `sync::SyncClient::open` as usual: it gets a client id of its own, pushes none
/// of the downloaded rows back, and its first pull starts at the snapshot's point, so a
/// change committed while the snapshot was made arrives then.
///
/// ```no_run
/// # async fn run(transport: sync::http::HttpTransport) -> Result<(), Box<dyn std::error::Error>> {
/// let local = std::path::Path::new("local.db");
/// if !local.exists() {
///     snapshot::bootstrap(&transport, local).await?;
/// }
/// let db = dal::Database::connect(&dal::Config::sqlite(local)).await?;
/// let client = sync::SyncClient::open(db).await?; // then sync as usual
/// # Ok(()) }
/// ```
pub async fn bootstrap(transport: &HttpTransport, local: &Path) -> Result<Imported> {
    file::refuse_existing(local)?;
    let download = file::beside(
        local,
        &format!(".download-{}", uuid::Uuid::new_v4().simple()),
    );
    let _download = file::Temporary(&download);
    transport
        .download_snapshot(&download)
        .await
        .map_err(SnapshotError::Transport)?;
    let meta = check(&download).await?;
    // Only a replica the server made has the pull cursor to go on from.
    if meta.pull_from.is_none() {
        return Err(SnapshotError::NotASnapshot {
            path: download.clone(),
            why: "it is not a replica made by the sync server (no pull cursor)".into(),
        });
    }
    import_checked(meta, &download, local, false).await
}
