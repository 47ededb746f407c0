//! What a form may change in each table, how its text is read, and how it reaches the
//! repositories: the only per-table code of Studio, since each table has a repository
//! of its own (validation, typed errors and optimistic concurrency come from there).

use std::collections::{BTreeMap, HashMap};

use dal::prelude::*;
use entities::schema::Table;
use serde_json::Value;

/// How a field's text is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// Text, required.
    Text,
    /// Text; empty means NULL.
    OptionalText,
    /// A JSON document.
    Json,
    /// One of the task statuses.
    Status,
    /// A uuid.
    Uuid,
    /// Uuids, one per line (or separated by commas or spaces).
    UuidList,
    /// A whole number; empty means "not given".
    OptionalInt,
}

/// One field of a form.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// The column it writes.
    pub name: &'static str,
    /// How its text is read.
    pub kind: FieldKind,
}

/// `Field { name, kind }`, in a form that a `&'static` array can hold.
macro_rules! f {
    ($name:literal, $kind:ident) => {
        Field {
            name: $name,
            kind: $kind,
        }
    };
}

use FieldKind::*;

/// The fields an edit of a `table` row may change (empty: not editable here).
pub fn edit_fields(table: &str) -> &'static [Field] {
    match table {
        "users" => &[f!("email", OptionalText), f!("display_name", OptionalText)],
        "projects" | "shots" => &[f!("name", Text)],
        "tasks" => &[
            f!("task_type", Text),
            f!("status", Status),
            f!("params", Json),
            f!("dependant_on", UuidList),
            f!("output_location", OptionalText),
        ],
        "generations" => &[
            f!("tasks", UuidList),
            f!("location", OptionalText),
            f!("type", OptionalText),
        ],
        "shot_generations" => &[f!("position", OptionalInt)],
        _ => &[],
    }
}

/// The fields a new `table` row is made from (empty: not creatable here).
pub fn create_fields(table: &str) -> &'static [Field] {
    match table {
        "users" => &[f!("email", OptionalText), f!("display_name", OptionalText)],
        "projects" => &[f!("user_id", Uuid), f!("name", Text)],
        "tasks" => &[
            f!("project_id", Uuid),
            f!("task_type", Text),
            f!("status", Status),
            f!("params", Json),
            f!("dependant_on", UuidList),
        ],
        "generations" => &[
            f!("project_id", Uuid),
            f!("tasks", UuidList),
            f!("location", OptionalText),
            f!("type", OptionalText),
        ],
        "shots" => &[f!("project_id", Uuid), f!("name", Text)],
        "shot_generations" => &[
            f!("shot_id", Uuid),
            f!("generation_id", Uuid),
            f!("position", OptionalInt),
        ],
        _ => &[],
    }
}

/// Field errors in plain words, by field (`""`: about the form as a whole).
pub type Errors = BTreeMap<String, String>;

/// A submitted form's text, read field by field.
pub struct Reader<'a> {
    form: &'a HashMap<String, String>,
    /// What did not read.
    pub errors: Errors,
}

impl<'a> Reader<'a> {
    /// Reads `form`.
    pub fn new(form: &'a HashMap<String, String>) -> Reader<'a> {
        Reader {
            form,
            errors: Errors::new(),
        }
    }

    fn raw(&self, name: &str) -> &'a str {
        self.form.get(name).map(String::as_str).unwrap_or("")
    }

    fn fail<T>(&mut self, name: &str, message: String) -> Option<T> {
        self.errors.insert(name.to_owned(), message);
        None
    }

    /// Required text.
    pub fn text(&mut self, name: &str) -> Option<String> {
        let text = self.raw(name);
        if text.trim().is_empty() {
            return self.fail(name, "must not be empty".into());
        }
        Some(text.to_owned())
    }

    /// Text, `None` when empty.
    pub fn optional(&mut self, name: &str) -> Option<String> {
        Some(self.raw(name))
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    }

    /// A JSON document.
    pub fn json(&mut self, name: &str) -> Option<Value> {
        match serde_json::from_str(self.raw(name)) {
            Ok(value) => Some(value),
            Err(e) => self.fail(name, format!("not valid JSON: {e}")),
        }
    }

    /// A task status.
    pub fn status(&mut self, name: &str) -> Option<TaskStatus> {
        let text = self.raw(name).trim();
        match text.parse::<TaskStatus>() {
            Ok(status) => Some(status),
            Err(_) => {
                let admitted: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
                self.fail(
                    name,
                    format!(
                        "{text:?} is not a status the schema admits; it admits {}",
                        admitted.join(", ")
                    ),
                )
            }
        }
    }

    /// A uuid.
    pub fn uuid(&mut self, name: &str) -> Option<Id> {
        let text = self.raw(name).trim();
        match uuid::Uuid::parse_str(text) {
            Ok(id) => Some(Id(id)),
            Err(_) => self.fail(name, format!("{text:?} is not a uuid")),
        }
    }

    /// Uuids, one per line, or separated by commas or spaces; a JSON array reads too.
    pub fn uuids(&mut self, name: &str) -> Option<Vec<Id>> {
        let text = self.raw(name);
        let mut ids = Vec::new();
        for part in text
            .split(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '"'))
            .filter(|p| !p.is_empty())
        {
            match uuid::Uuid::parse_str(part) {
                Ok(id) => ids.push(Id(id)),
                Err(_) => return self.fail(name, format!("{part:?} is not a uuid")),
            }
        }
        Some(ids)
    }

    /// A whole number, `None` when empty.
    pub fn optional_int(&mut self, name: &str) -> Option<Option<i32>> {
        let text = self.raw(name).trim();
        if text.is_empty() {
            return Some(None);
        }
        match text.parse::<i32>() {
            Ok(n) => Some(Some(n)),
            Err(_) => self.fail(name, format!("{text:?} is not a whole number")),
        }
    }
}

/// Why a write did not happen.
#[derive(Debug)]
pub enum Refused {
    /// The form did not read, or the repository refused a value: errors by field.
    Invalid(Errors),
    /// The row changed since the form was loaded.
    Stale,
}

impl From<Errors> for Refused {
    fn from(errors: Errors) -> Self {
        Refused::Invalid(errors)
    }
}

/// The field an error of the repository is about, and what to say there.
pub fn attribute(table: &Table, fields: &[Field], error: &DalError) -> Refused {
    let on = |field: Option<&str>, message: String| {
        let field = field
            .filter(|f| fields.iter().any(|x| x.name == *f))
            .unwrap_or("");
        Refused::Invalid(Errors::from([(field.to_owned(), message)]))
    };
    match error {
        DalError::Stale { .. } => Refused::Stale,
        DalError::Conflict { .. } => match error.column() {
            Some(column) => on(
                Some(column),
                format!("another row of {} already has this {column}", table.name),
            ),
            None => on(None, format!("conflicts with an existing row: {error}")),
        },
        DalError::MissingParent { .. } => {
            // SQLite names no column for a foreign-key failure: when the form has one
            // reference field, it is that one.
            let references: Vec<&str> = fields
                .iter()
                .filter(|f| matches!(f.kind, Uuid | UuidList))
                .map(|f| f.name)
                .collect();
            let column = error.column().or(match references.as_slice() {
                [only] => Some(*only),
                _ => None,
            });
            on(
                column,
                "names a row that does not exist (a missing parent)".to_owned(),
            )
        }
        DalError::InvalidValue { .. } => {
            let column = error.column().or_else(|| {
                let constraint = error.constraint()?;
                fields
                    .iter()
                    .map(|f| f.name)
                    .find(|name| constraint.contains(name))
            });
            on(column, format!("refused: {error}"))
        }
        other => on(None, other.to_string()),
    }
}
