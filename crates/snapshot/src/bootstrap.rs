//! A new device's first sync from the server's snapshot of its user's rows, instead of
//! paging through a full pull.

use std::path::Path;

use sync::http::HttpTransport;

use crate::error::{Result, SnapshotError};
use crate::file;
use crate::import::{Imported, import};

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
    let fetched = transport.download_snapshot(&download).await;
    let imported = match fetched {
        Ok(_) => server_made(&download).await,
        Err(e) => Err(SnapshotError::Transport(e)),
    };
    match imported {
        Ok(()) => import(&download, local, false).await,
        Err(e) => Err(e),
    }
}

/// Refuses a snapshot that is not a replica the server made (no pull cursor).
async fn server_made(path: &Path) -> Result<()> {
    let meta = crate::import::check(path).await?;
    if meta.pull_from.is_none() {
        return Err(SnapshotError::NotASnapshot {
            path: path.to_owned(),
            why: "it is not a replica made by the sync server (no pull cursor)".into(),
        });
    }
    Ok(())
}
