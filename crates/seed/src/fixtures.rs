//! Fixture files: JSON records that a directory holds and the database follows.
//!
//! One file holds any number of records of any tables, under one key per table:
//!
//! ```json
//! {
//!   "users":       [{ "key": "alice", "email": "alice@example.com", "display_name": "Alice" }],
//!   "projects":    [{ "key": "film", "user": "alice", "name": "Film" }],
//!   "tasks":       [{ "key": "render", "project": "film", "task_type": "render",
//!                     "params": { "frames": 24 }, "status": "Queued", "dependant_on": [] }],
//!   "generations": [{ "key": "still", "project": "film", "tasks": ["render"],
//!                     "location": "s3://b/still.png", "type": "image" }],
//!   "shots":       [{ "key": "opening", "project": "film", "name": "Opening",
//!                     "timeline": ["still"] }]
//! }
//! ```
//!
//! * Every record has a `key`; its id is derived from the table and the key (UUIDv5), so
//!   re-applying a file updates the same rows, and a file may refer to records of another
//!   file by key. A reference may also be a uuid, e.g. the dummy user's.
//! * A file is applied in one transaction: a file that does not parse, names an unknown
//!   field or status, repeats a key, or refers to a record that does not exist changes
//!   nothing, and is reported with its path and the reason.
//! * Applying a file overwrites its records (but not their `created_at`); records that
//!   left the file since it was last applied are deleted, and so are all the records of a
//!   file that is deleted while `--watch` runs.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use dal::{DalError, Database, Executor};
use entities::{Id, IdList, TaskStatus, generation, project, shot, shot_generation, task, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use uuid::Uuid;

use crate::dataset::{Dataset, Existing, count_existing, delete_ids};
use crate::report::{Counts, Report};
use crate::seed_id;

/// A fixture file that cannot be applied: its path and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixtureError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it (or what the database refused).
    pub reason: String,
    /// Whether it failed only because a record it refers to is missing (it may apply
    /// once another file is applied).
    pub missing_reference: bool,
}

impl fmt::Display for FixtureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for FixtureError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRecords {
    #[serde(default)]
    users: Vec<UserRecord>,
    #[serde(default)]
    projects: Vec<ProjectRecord>,
    #[serde(default)]
    tasks: Vec<TaskRecord>,
    #[serde(default)]
    generations: Vec<GenerationRecord>,
    #[serde(default)]
    shots: Vec<ShotRecord>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRecord {
    key: String,
    email: Option<String>,
    display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectRecord {
    key: String,
    user: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskRecord {
    key: String,
    project: String,
    task_type: String,
    #[serde(default = "empty_object")]
    params: serde_json::Value,
    status: String,
    #[serde(default)]
    dependant_on: Vec<String>,
    output_location: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerationRecord {
    key: String,
    project: String,
    #[serde(default)]
    tasks: Vec<String>,
    location: Option<String>,
    #[serde(rename = "type")]
    generation_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShotRecord {
    key: String,
    project: String,
    name: String,
    #[serde(default)]
    timeline: Vec<String>,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// The id a fixture reference names: a uuid as written, or the record with that key.
fn resolve(table: &str, reference: &str) -> Id {
    match Uuid::parse_str(reference) {
        Ok(uuid) => Id(uuid),
        Err(_) => seed_id(table, &format!("fixture/{reference}")),
    }
}

/// Parses a fixture file into rows; nothing touches the database.
pub fn parse(path: &Path, text: &str) -> Result<Dataset, FixtureError> {
    let fail = |reason: String| FixtureError {
        path: path.to_owned(),
        reason,
        missing_reference: false,
    };
    let records: FileRecords =
        serde_json::from_str(text).map_err(|e| fail(format!("not a valid fixture file: {e}")))?;

    let mut keys: HashSet<(&str, String)> = HashSet::new();
    let mut claim_key = |table: &'static str, key: &str| -> Result<Id, FixtureError> {
        if key.trim().is_empty() {
            return Err(fail(format!("a {table} record has an empty key")));
        }
        if !keys.insert((table, key.to_owned())) {
            return Err(fail(format!("{table} key {key:?} appears twice")));
        }
        Ok(resolve(table, key))
    };
    // Fixture rows get the apply time; an overwrite keeps the first `created_at`.
    let now = dal::clock::now();
    let mut data = Dataset::default();
    for r in &records.users {
        data.users.push(user::Model {
            row_version: 1,
            id: claim_key("users", &r.key)?,
            email: r.email.clone(),
            display_name: r.display_name.clone(),
            created_at: now,
        });
    }
    for r in &records.projects {
        data.projects.push(project::Model {
            row_version: 1,
            id: claim_key("projects", &r.key)?,
            name: r.name.clone(),
            user_id: resolve("users", &r.user),
            created_at: now,
        });
    }
    for r in &records.tasks {
        let status: TaskStatus = r
            .status
            .parse()
            .map_err(|e| fail(format!("task {:?}: {e}", r.key)))?;
        data.tasks.push(task::Model {
            row_version: 1,
            id: claim_key("tasks", &r.key)?,
            task_type: r.task_type.clone(),
            params: r.params.clone(),
            status,
            dependant_on: r
                .dependant_on
                .iter()
                .map(|d| resolve("tasks", d).uuid())
                .collect::<IdList>(),
            output_location: r.output_location.clone(),
            created_at: now,
            updated_at: now,
            project_id: resolve("projects", &r.project),
            claimed_by: None,
            lease_expires_at: None,
            attempts: 0,
            max_attempts: 3,
            last_error: None,
        });
    }
    for r in &records.generations {
        data.generations.push(generation::Model {
            row_version: 1,
            id: claim_key("generations", &r.key)?,
            tasks: r
                .tasks
                .iter()
                .map(|t| resolve("tasks", t).uuid())
                .collect::<IdList>(),
            location: r.location.clone(),
            generation_type: r.generation_type.clone(),
            created_at: now,
            updated_at: now,
            project_id: resolve("projects", &r.project),
        });
    }
    for r in &records.shots {
        let shot_id = claim_key("shots", &r.key)?;
        data.shots.push(shot::Model {
            row_version: 1,
            id: shot_id,
            name: r.name.clone(),
            created_at: now,
            updated_at: now,
            project_id: resolve("projects", &r.project),
        });
        for (position, g) in r.timeline.iter().enumerate() {
            data.shot_generations.push(shot_generation::Model {
                row_version: 1,
                id: seed_id("shot_generations", &format!("fixture/{}/{position}", r.key)),
                shot_id,
                generation_id: resolve("generations", g),
                position: position as i32,
            });
        }
    }
    Ok(data)
}

/// Applies one parsed file in one transaction. `previous` is what the file held when it
/// was last applied: its records that are gone now are deleted.
pub async fn apply(
    db: &Database,
    path: &Path,
    data: &Dataset,
    previous: Option<&Dataset>,
) -> Result<Report, FixtureError> {
    let fail = |e: DalError| FixtureError {
        path: path.to_owned(),
        missing_reference: matches!(e, DalError::MissingParent { .. }),
        reason: e.to_string(),
    };
    let uow = db.begin().await.map_err(fail)?;
    let mut report = Report::default();
    data.clone()
        .write(&uow, Existing::Overwrite, &mut report)
        .await
        .map_err(fail)?;
    check_task_references(&uow, data).await.map_err(fail)?;
    trim_timelines(&uow, data, &mut report)
        .await
        .map_err(fail)?;
    if let Some(previous) = previous {
        let now: HashSet<Id> = data.ids().into_iter().map(|(_, id)| id).collect();
        let gone: Vec<(&'static str, Id)> = previous
            .ids()
            .into_iter()
            .filter(|(_, id)| !now.contains(id))
            .collect();
        delete_records(&uow, &gone, &mut report)
            .await
            .map_err(fail)?;
    }
    uow.commit().await.map_err(fail)?;
    Ok(report)
}

/// Deletes every record of `data` (a file that was removed).
pub async fn remove(db: &Database, data: &Dataset) -> dal::Result<Report> {
    let uow = db.begin().await?;
    let mut report = Report::default();
    delete_records(&uow, &data.ids(), &mut report).await?;
    uow.commit().await?;
    Ok(report)
}

/// `dependant_on` and `generations.tasks` have no foreign key: check them here.
async fn check_task_references<E: Executor>(exec: &E, data: &Dataset) -> dal::Result<()> {
    let referenced: HashSet<Id> = data
        .tasks
        .iter()
        .flat_map(|t| t.dependant_on.iter())
        .chain(data.generations.iter().flat_map(|g| g.tasks.iter()))
        .copied()
        .collect();
    let referenced: Vec<Id> = referenced.into_iter().collect();
    let found = count_existing::<E, task::Entity>(exec, &referenced).await?;
    if found != referenced.len() as u64 {
        return Err(DalError::missing_parent(
            None,
            format!(
                "{} referenced task(s) do not exist",
                referenced.len() as u64 - found
            ),
        ));
    }
    Ok(())
}

/// A shot's timeline is the file's list: drop entries beyond it.
async fn trim_timelines<E: Executor>(
    exec: &E,
    data: &Dataset,
    report: &mut Report,
) -> dal::Result<()> {
    let keep: Vec<Id> = data.shot_generations.iter().map(|l| l.id).collect();
    for shot in &data.shots {
        let deleted = shot_generation::Entity::delete_many()
            .filter(shot_generation::Column::ShotId.eq(shot.id))
            .filter(shot_generation::Column::Id.is_not_in(keep.iter().copied()))
            .exec(exec)
            .await?
            .rows_affected;
        report.add(
            "shot_generations",
            Counts {
                deleted,
                ..Counts::default()
            },
        );
    }
    Ok(())
}

/// Deletes records children first (cascades would take the children anyway; this keeps
/// the counts honest).
async fn delete_records<E: Executor>(
    exec: &E,
    records: &[(&'static str, Id)],
    report: &mut Report,
) -> dal::Result<()> {
    for table in entities::schema::tables().iter().rev().map(|t| t.name) {
        let ids: Vec<Id> = records
            .iter()
            .filter(|(t, _)| *t == table)
            .map(|(_, id)| *id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        let deleted = delete_ids(exec, table, &ids).await?;
        report.add(
            table,
            Counts {
                deleted,
                ..Counts::default()
            },
        );
    }
    Ok(())
}

/// What a directory's fixture files hold, as last applied.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// Per file: the content's hash and its records.
    pub files: HashMap<PathBuf, (u64, Dataset)>,
}

/// The `*.json` files of `dir`, sorted by name, with their contents.
pub fn read_dir(dir: &Path) -> std::io::Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") && path.is_file() {
            match std::fs::read_to_string(&path) {
                Ok(text) => files.push((path, text)),
                // Vanished between listing and reading: the next scan sees it gone.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// A content hash, to notice changed files.
pub fn content_hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// Applies every fixture file in `files` (name order). A file refused only because it
/// refers to a record of a later file is retried after the others, until no more apply.
pub async fn apply_all(
    db: &Database,
    files: Vec<(PathBuf, String)>,
    applied: &mut Applied,
) -> (Report, Vec<FixtureError>) {
    let mut report = Report::default();
    let mut errors = Vec::new();
    let mut pending: Vec<(PathBuf, u64, Dataset)> = Vec::new();
    for (path, text) in files {
        match parse(&path, &text) {
            Ok(data) => pending.push((path, content_hash(&text), data)),
            Err(e) => errors.push(e),
        }
    }
    loop {
        let mut retry = Vec::new();
        let mut progressed = false;
        let mut last_errors = Vec::new();
        for (path, hash, data) in pending {
            let previous = applied.files.get(&path).map(|(_, d)| d);
            match apply(db, &path, &data, previous).await {
                Ok(r) => {
                    report.merge(r);
                    applied.files.insert(path, (hash, data));
                    progressed = true;
                }
                Err(e) if e.missing_reference => {
                    last_errors.push(e);
                    retry.push((path, hash, data));
                }
                Err(e) => errors.push(e),
            }
        }
        if retry.is_empty() || !progressed {
            errors.extend(last_errors);
            break;
        }
        pending = retry;
    }
    errors.sort_by(|a, b| a.path.cmp(&b.path));
    (report, errors)
}
