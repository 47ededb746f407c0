//! `--watch`: keep a directory's fixture files and the database in step.
//!
//! The directory is scanned every `interval`. A new or changed file is applied once its
//! content has stayed the same for one whole interval (so a file being written is not
//! applied half-way), and a deleted file's records are removed once it has stayed gone for
//! one interval. Scanning rather than OS file events keeps this portable and immune to
//! editors that save by rename.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dal::{DalError, Database};

use crate::fixtures::{self, Applied, FixtureError};
use crate::report::Report;

/// Something the watcher did.
#[derive(Debug)]
pub enum WatchEvent {
    /// The initial pass over the directory finished.
    Loaded {
        /// What it wrote.
        report: Report,
        /// Files it could not apply.
        errors: Vec<FixtureError>,
    },
    /// A new or changed file was applied.
    Applied {
        /// The file.
        path: PathBuf,
        /// What it wrote or deleted.
        report: Report,
    },
    /// A file could not be applied; the database is as it was.
    Rejected(FixtureError),
    /// A deleted file's records were removed.
    Removed {
        /// The file that went away.
        path: PathBuf,
        /// What was deleted.
        report: Report,
    },
    /// A deleted file's records could not be removed (they will be tried again).
    Failed {
        /// The file.
        path: PathBuf,
        /// Why.
        error: DalError,
    },
}

/// Applies `dir` and then follows it until `shutdown` completes, reporting each step to
/// `on_event`. Only an unreadable directory stops it early.
pub async fn watch(
    db: &Database,
    dir: &Path,
    interval: Duration,
    mut on_event: impl FnMut(WatchEvent) + Send,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut applied = Applied::default();
    let (report, errors) = fixtures::apply_all(db, fixtures::read_dir(dir)?, &mut applied).await;
    let mut rejected: HashMap<PathBuf, (u64, bool)> = errors
        .iter()
        .filter_map(|e| {
            let text = std::fs::read_to_string(&e.path).ok()?;
            Some((
                e.path.clone(),
                (fixtures::content_hash(&text), e.missing_reference),
            ))
        })
        .collect();
    on_event(WatchEvent::Loaded { report, errors });

    let mut unsettled: HashMap<PathBuf, u64> = HashMap::new();
    let mut vanishing: Vec<PathBuf> = Vec::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(interval) => {}
        }
        let files = fixtures::read_dir(dir)?;
        let present: Vec<&PathBuf> = files.iter().map(|(p, _)| p).collect();

        for (path, text) in &files {
            let hash = fixtures::content_hash(text);
            let known = applied.files.get(path).map(|(h, _)| *h) == Some(hash)
                || rejected.get(path).map(|(h, _)| *h) == Some(hash);
            if known {
                unsettled.remove(path);
                continue;
            }
            // Debounce: act only on content seen unchanged at the previous scan too.
            if unsettled.insert(path.clone(), hash) != Some(hash) {
                continue;
            }
            unsettled.remove(path);
            let previous = applied.files.get(path).map(|(_, d)| d.clone());
            let outcome = match fixtures::parse(path, text) {
                Ok(data) => fixtures::apply(db, path, &data, previous.as_ref())
                    .await
                    .map(|report| (data, report)),
                Err(e) => Err(e),
            };
            match outcome {
                Ok((data, report)) => {
                    applied.files.insert(path.clone(), (hash, data));
                    rejected.remove(path);
                    // Files waiting for a record this one may have provided: try again.
                    rejected.retain(|_, (_, missing_reference)| !*missing_reference);
                    on_event(WatchEvent::Applied {
                        path: path.clone(),
                        report,
                    });
                }
                Err(e) => {
                    rejected.insert(path.clone(), (hash, e.missing_reference));
                    on_event(WatchEvent::Rejected(e));
                }
            }
        }

        let gone: Vec<PathBuf> = applied
            .files
            .keys()
            .chain(rejected.keys())
            .filter(|p| !present.contains(p))
            .cloned()
            .collect();
        let mut still_vanishing = Vec::new();
        for path in gone {
            rejected.remove(&path);
            unsettled.remove(&path);
            if !vanishing.contains(&path) {
                still_vanishing.push(path);
                continue;
            }
            let Some((_, data)) = applied.files.get(&path) else {
                continue;
            };
            match fixtures::remove(db, data).await {
                Ok(report) => {
                    applied.files.remove(&path);
                    on_event(WatchEvent::Removed { path, report });
                }
                Err(error) => {
                    still_vanishing.push(path.clone());
                    on_event(WatchEvent::Failed { path, error });
                }
            }
        }
        vanishing = still_vanishing;
    }
}
