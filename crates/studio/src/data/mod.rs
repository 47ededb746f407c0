//! Reading any table of the schema generically: the tables and their columns come from
//! the schema registry ([`entities::schema`]), never from a list of Studio's own, so a
//! table added to the entities appears here without a change.
//!
//! Every value is read as the text SQLite stores (the sync wire's form: canonical uuid
//! text, uuid lists and JSON as JSON text, timestamps as `YYYY-MM-DDTHH:MM:SS.ffffffZ`,
//! booleans as `true`/`false`), so both backends show, sort and filter alike.

pub mod rows;
pub mod sql;

use std::collections::BTreeMap;

use dal::{DalError, Database};
use entities::schema::{self, Kind, Table};

/// Facts read from the live database once at start.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// Per table, the columns rows may be sorted by besides `id`: the first column of an
    /// index (a b-tree one: not a uuid list's GIN index), when it is a non-null column of
    /// the registry.
    pub sortable: BTreeMap<&'static str, Vec<&'static str>>,
}

impl Facts {
    /// Reads the indexes of every table of the registry.
    pub async fn read(db: &Database) -> Result<Facts, DalError> {
        let live = migration::inspect::inspect(db)
            .await
            .map_err(DalError::from)?;
        let mut sortable = BTreeMap::new();
        for table in schema::tables() {
            let mut columns: Vec<&'static str> = Vec::new();
            if let Some(found) = live.tables.get(table.name) {
                for definition in found.indexes.values() {
                    let Some(first) = first_index_column(definition) else {
                        continue;
                    };
                    let Some(column) = table.column(&first) else {
                        continue;
                    };
                    if column.nullable || column.kind == Kind::UuidList || column.name == "id" {
                        continue;
                    }
                    if !columns.contains(&column.name) {
                        columns.push(column.name);
                    }
                }
            }
            columns.sort_unstable();
            sortable.insert(table.name, columns);
        }
        Ok(Facts { sortable })
    }

    /// Whether rows of `table` may be sorted by `column`.
    pub fn can_sort(&self, table: &Table, column: &str) -> bool {
        column == "id"
            || self
                .sortable
                .get(table.name)
                .is_some_and(|c| c.contains(&column))
    }
}

/// The first column of a `CREATE INDEX` statement as either backend prints it
/// (`ON "tasks" ("project_id")`, `ON tasks USING btree (project_id, ...)`); `None` for a
/// GIN index or a definition it cannot read.
pub fn first_index_column(definition: &str) -> Option<String> {
    if definition.contains("USING gin") {
        return None;
    }
    let after_on = &definition[definition.find(" ON ")? + 4..];
    let open = after_on.find('(')?;
    let rest = &after_on[open + 1..];
    let end = rest.find([',', ')'])?;
    let name = rest[..end].trim().trim_matches('"');
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_column_of_either_backends_index() {
        assert_eq!(
            first_index_column(r#"CREATE INDEX "tasks_project_id_idx" ON "tasks" ("project_id")"#)
                .as_deref(),
            Some("project_id")
        );
        assert_eq!(
            first_index_column(
                "CREATE INDEX tasks_queued_idx ON tasks USING btree (task_type, created_at, id) WHERE x"
            )
            .as_deref(),
            Some("task_type")
        );
        assert_eq!(
            first_index_column(
                "CREATE INDEX tasks_dependant_on_idx ON tasks USING gin (dependant_on)"
            ),
            None
        );
    }
}
