//! Submitted forms to repository calls: create, edit (with the version the form was
//! read at) and delete, one arm per table.

use std::collections::HashMap;

use dal::prelude::*;
use entities::schema::Table;

use super::fields::{
    Errors, Field, FieldKind, Reader, Refused, attribute, create_fields, edit_fields,
};
use crate::data::rows;

fn read<T>(reader: Reader<'_>, value: Option<T>) -> Result<T, Refused> {
    match value {
        Some(value) if reader.errors.is_empty() => Ok(value),
        _ => Err(Refused::Invalid(reader.errors)),
    }
}

/// Saves an edit of row `id`, read at `version`: `Stale` if the row moved on since.
pub async fn edit(
    db: &Database,
    table: &Table,
    id: Id,
    version: i64,
    form: &HashMap<String, String>,
) -> Result<(), Refused> {
    let fields = edit_fields(table.name);
    let mut r = Reader::new(form);
    let written = match table.name {
        "users" => {
            let patch = (r.optional("email"), r.optional("display_name"));
            let (email, name) = read(r, Some(patch))?;
            let mut patch = UserPatch::new().email(email).display_name(name);
            patch = patch.if_version(version);
            db.users().patch(id, patch).await.map(drop)
        }
        "projects" => {
            let name = r.text("name");
            let mut patch = ProjectPatch::new().name(read(r, name)?);
            patch = patch.if_version(version);
            db.projects().patch(id, patch).await.map(drop)
        }
        "shots" => {
            let name = r.text("name");
            let mut patch = ShotPatch::new().name(read(r, name)?);
            patch = patch.if_version(version);
            db.shots().patch(id, patch).await.map(drop)
        }
        "tasks" => {
            let values = (
                r.text("task_type"),
                r.status("status"),
                r.json("params"),
                r.uuids("dependant_on"),
            );
            let output = r.optional("output_location");
            let (task_type, status, params, deps) = match values {
                (Some(a), Some(b), Some(c), Some(d)) => read(r, Some((a, b, c, d)))?,
                _ => return Err(Refused::Invalid(r.errors)),
            };
            let mut patch = TaskPatch::new()
                .task_type(task_type)
                .status(status)
                .params(params)
                .dependant_on(deps);
            patch = match output {
                Some(location) => patch.output_location(location),
                None => patch.clear_output_location(),
            };
            patch = patch.if_version(version);
            db.tasks().patch(id, patch).await.map(drop)
        }
        "generations" => {
            let tasks = r.uuids("tasks");
            let (location, kind) = (r.optional("location"), r.optional("type"));
            let tasks = read(r, tasks)?;
            let mut patch = GenerationPatch::new()
                .tasks(tasks)
                .location(location)
                .generation_type(kind);
            patch = patch.if_version(version);
            db.generations().patch(id, patch).await.map(drop)
        }
        "shot_generations" => {
            let position = r.optional_int("position");
            match read(r, position)? {
                Some(position) => match move_if_version(db, id, position, version).await {
                    Ok(true) => Ok(()),
                    Ok(false) => return Err(Refused::Stale),
                    Err(e) => Err(e),
                },
                None => Ok(()),
            }
        }
        _ => return Err(not_here(table, "edited")),
    };
    match written {
        Ok(()) => Ok(()),
        Err(e) => Err(refusal(db, table, fields, form, &e).await),
    }
}

/// Moves timeline entry `id` to `position` only if it is still at `version`: the
/// repository's move takes no version, but it bumps the moved entry's version exactly
/// once (entries it shifts are others), under the shot's lock, so the entry was at
/// `version` when moved exactly when it comes back at `version + 1`; otherwise the move
/// is rolled back.
async fn move_if_version(db: &Database, id: Id, position: i32, version: i64) -> dal::Result<bool> {
    let uow = db.begin().await?;
    let moved = uow.shots().move_in_timeline(id, position).await?;
    if moved.row_version != version + 1 {
        uow.rollback().await?;
        return Ok(false);
    }
    uow.commit().await?;
    Ok(true)
}

/// The refusal for `error`; a missing parent the database did not name (SQLite names
/// none) is looked for among the form's references, so it is shown at its field.
async fn refusal(
    db: &Database,
    table: &Table,
    fields: &[Field],
    form: &HashMap<String, String>,
    error: &DalError,
) -> Refused {
    if matches!(error, DalError::MissingParent { .. }) && error.column().is_none() {
        for field in fields {
            let value = form.get(field.name).map(String::as_str).unwrap_or("");
            if let Some(message) = missing_reference(db, table, field, value).await {
                return Refused::Invalid(Errors::from([(field.name.to_owned(), message)]));
            }
        }
    }
    attribute(table, fields, error)
}

/// Why `value` of a reference field names nothing, if it does not.
async fn missing_reference(
    db: &Database,
    table: &Table,
    field: &Field,
    value: &str,
) -> Option<String> {
    let live = |row: Option<rows::Row>, of: &Table| {
        row.is_some_and(|r| r.get(of, "deleted") != Some("true"))
    };
    match field.kind {
        FieldKind::Uuid => {
            let parent = table.parents.iter().find(|p| p.column == field.name)?;
            let of = entities::schema::table(parent.table)?;
            let row = rows::get(db, of, value.trim()).await.ok()?;
            (!live(row, of))
                .then(|| format!("no {} row has this id: the parent does not exist", of.name))
        }
        FieldKind::UuidList => {
            for id in value
                .split(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '"'))
                .filter(|p| !p.is_empty())
            {
                let found = rows::find(db, id).await.ok()?;
                let row = match found {
                    Some(of) => rows::get(db, of, id)
                        .await
                        .ok()?
                        .filter(|r| r.get(of, "deleted") != Some("true")),
                    None => None,
                };
                if row.is_none() {
                    return Some(format!("{id} names no row: it does not exist"));
                }
            }
            None
        }
        _ => None,
    }
}

/// Creates a row from the form; its id.
pub async fn create(
    db: &Database,
    table: &Table,
    form: &HashMap<String, String>,
) -> Result<Id, Refused> {
    let fields = create_fields(table.name);
    let mut r = Reader::new(form);
    let created = match table.name {
        "users" => {
            let (email, name) = (r.optional("email"), r.optional("display_name"));
            let mut new = NewUser::new();
            if let Some(email) = email {
                new = new.email(email);
            }
            if let Some(name) = name {
                new = new.display_name(name);
            }
            db.users().create(new).await.map(|u| u.id)
        }
        "projects" => {
            let values = (r.uuid("user_id"), r.text("name"));
            let (user, name) = match values {
                (Some(a), Some(b)) => read(r, Some((a, b)))?,
                _ => return Err(Refused::Invalid(r.errors)),
            };
            db.projects()
                .create(NewProject::new(user, name))
                .await
                .map(|p| p.id)
        }
        "shots" => {
            let values = (r.uuid("project_id"), r.text("name"));
            let (project, name) = match values {
                (Some(a), Some(b)) => read(r, Some((a, b)))?,
                _ => return Err(Refused::Invalid(r.errors)),
            };
            db.shots()
                .create(NewShot::new(project, name))
                .await
                .map(|s| s.id)
        }
        "tasks" => {
            let values = (
                r.uuid("project_id"),
                r.text("task_type"),
                r.status("status"),
                r.json("params"),
                r.uuids("dependant_on"),
            );
            let (project, task_type, status, params, deps) = match values {
                (Some(a), Some(b), Some(c), Some(d), Some(e)) => read(r, Some((a, b, c, d, e)))?,
                _ => return Err(Refused::Invalid(r.errors)),
            };
            db.tasks()
                .create(NewTask::new(project, task_type, params, status).dependant_on(deps))
                .await
                .map(|t| t.id)
        }
        "generations" => {
            let values = (r.uuid("project_id"), r.uuids("tasks"));
            let (location, kind) = (r.optional("location"), r.optional("type"));
            let (project, tasks) = match values {
                (Some(a), Some(b)) => read(r, Some((a, b)))?,
                _ => return Err(Refused::Invalid(r.errors)),
            };
            let mut new = NewGeneration::new(project).tasks(tasks);
            if let Some(location) = location {
                new = new.location(location);
            }
            if let Some(kind) = kind {
                new = new.generation_type(kind);
            }
            db.generations().create(new).await.map(|g| g.id)
        }
        "shot_generations" => {
            let values = (
                r.uuid("shot_id"),
                r.uuid("generation_id"),
                r.optional_int("position"),
            );
            let (shot, generation, position) = match values {
                (Some(a), Some(b), Some(c)) => read(r, Some((a, b, c)))?,
                _ => return Err(Refused::Invalid(r.errors)),
            };
            db.shots()
                .add_to_timeline(shot, generation, position)
                .await
                .map(|l| l.id)
        }
        _ => return Err(not_here(table, "created")),
    };
    match created {
        Ok(id) => Ok(id),
        Err(e) => Err(refusal(db, table, fields, form, &e).await),
    }
}

/// Deletes row `id` through its repository (a tombstone, with what hangs off it).
pub async fn delete(db: &Database, table: &Table, id: Id) -> Result<(), Refused> {
    let deleted = match table.name {
        "users" => db.users().delete(id).await,
        "projects" => db.projects().delete(id).await,
        "tasks" => db.tasks().delete(id).await,
        "generations" => db.generations().delete(id).await,
        "shots" => db.shots().delete(id).await,
        "shot_generations" => db.shots().remove_from_timeline(id).await,
        _ => return Err(not_here(table, "deleted")),
    };
    deleted.map_err(|e| attribute(table, &[], &e))
}

fn not_here(table: &Table, what: &str) -> Refused {
    Refused::Invalid(super::fields::Errors::from([(
        String::new(),
        format!(
            "rows of {} cannot be {what} here: it has no repository",
            table.name
        ),
    )]))
}
