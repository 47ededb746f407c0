//! The set-based path of a push: a run of entries the conflict rule settles plainly (an
//! insert of a new id, an update of a live row that loses nothing to another writer) is
//! applied with a handful of statements instead of seven or so per entry: one locked
//! read of the run's rows, one read of their parents' tombstones, one of the conflict log,
//! then a bulk `INSERT`/`UPDATE` per table and set of columns, and one `sync_log` insert.
//!
//! The result is the one the per-entry path ([`super::push::apply_one`]) would give,
//! entry by entry in order, because a run only holds entries whose outcome cannot depend
//! on another entry of the run: each row at most once, no deletes (they cascade), no
//! positioned tables (renumbered), no table with a unique constraint besides its key (a
//! multi-row statement would check it in no particular order), and a parent only if it
//! exists live or is inserted earlier in the run. Anything else, and any run whose
//! statements fail, goes through the per-entry path (a failed run is split in halves
//! first, so one bad entry is refused alone and the rest still go in bulk).

use std::collections::{BTreeMap, HashMap, HashSet};

use dal::prelude::*;
use sea_orm::sea_query::ArrayType;
use sea_orm::{ConnectionTrait, Value};
use serde_json::Value as Json;
use uuid::Uuid;

use super::acting::Actor;
use super::columns::{self, ColumnTypes, Text};
use super::conflict::{self, Contested, Decision};
use super::history::{contested_from, version};
use super::push::{op_name, storable};
use super::statement;
use super::write::{assignments, writable_table};
use crate::protocol::{Entry, Op, RowValues};
use crate::tables::{self, Table};
use crate::wire;

/// The most entries one locked read looks ahead over.
pub(super) const MAX_WINDOW: usize = 2000;
/// The look-ahead after an entry went through the per-entry path.
pub(super) const MIN_WINDOW: usize = 16;

/// One entry the set-based path applies: an insert or a plain update, with the values to
/// write (by column name, `id` included) in their text form.
pub(super) struct Planned<'e> {
    pub entry: &'e Entry,
    pub table: &'static Table,
    insert: bool,
    values: BTreeMap<String, Text>,
}

/// The set-based path of one push.
pub(super) struct SetPath {
    actor: Actor,
    client: Uuid,
    /// Tables with a unique constraint besides the key, read on first use.
    unique: Option<HashSet<String>>,
    /// The synced tables' column types, read on first use.
    types: Option<ColumnTypes>,
}

impl SetPath {
    pub(super) fn new(actor: Actor, client: Uuid) -> SetPath {
        SetPath {
            actor,
            client,
            unique: None,
            types: None,
        }
    }

    /// Whether `entry` may go in a run at all, without reading anything.
    pub(super) fn may_go_in_bulk(&self, entry: &Entry) -> bool {
        let Some(table) = tables::table(&entry.table) else {
            return false;
        };
        entry.op != Op::Delete
            && !conflict::deletes(entry)
            && tables::operations(table).positions.is_none()
            && !self
                .unique
                .as_ref()
                .is_some_and(|unique| unique.contains(table.name))
    }

    /// The longest run at the start of `entries` the set-based path can apply, from one
    /// locked read of their rows (acting as the user) and of the conflict log (as the
    /// server). Starts and ends acting as the server.
    pub(super) async fn plan<'e>(
        &mut self,
        uow: &UnitOfWork,
        entries: &[&'e Entry],
    ) -> dal::Result<Vec<Planned<'e>>> {
        if self.unique.is_none() {
            self.unique = Some(unique_tables(uow).await?);
        }
        if self.types.is_none() {
            self.types = Some(ColumnTypes::read(uow).await?);
        }
        // The candidates: what can be told without the rows.
        let mut seen = HashSet::new();
        let candidates: Vec<&Entry> = entries
            .iter()
            .copied()
            .take_while(|e| {
                self.may_go_in_bulk(e)
                    && writable_table(e).is_ok()
                    && seen.insert((e.table.as_str(), e.row_id))
            })
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        self.actor.rows(uow).await?;
        let rows = locked_rows(uow, &candidates).await?;
        let parents = parent_states(uow, &candidates).await?;
        self.actor.books(uow).await?;
        let contested = self.contested(uow, &candidates, &rows).await?;

        let mut run = Vec::new();
        let mut inserted: HashSet<(&str, Uuid)> = HashSet::new();
        for entry in candidates {
            let table = writable_table(entry)?;
            let existing = rows.get(&(table.name, entry.row_id));
            let parents_live =
                table
                    .parents
                    .iter()
                    .all(|parent| match uuid_in(&entry.changes, parent.column) {
                        None => true,
                        Some(id) => {
                            parents.get(&(parent.table, id)) == Some(&false)
                                || inserted.contains(&(parent.table, id))
                        }
                    });
            let none = Contested::none();
            let contested = contested.get(&(table.name, entry.row_id)).unwrap_or(&none);
            let insert = match conflict::decide(table, entry, existing, contested) {
                Decision::Insert => true,
                Decision::Update { conflicts } if conflicts.is_empty() => false,
                _ => break,
            };
            let Some(values) = self.values(table, entry) else {
                break;
            };
            if !parents_live {
                break;
            }
            if insert {
                inserted.insert((table.name, entry.row_id));
            }
            run.push(Planned {
                entry,
                table,
                insert,
                values,
            });
        }
        Ok(run)
    }

    /// The entry's values in their text form, with the server's metadata; `None` when
    /// one has no text form that Postgres reads back as the per-entry path would write it.
    fn values(&self, table: &Table, entry: &Entry) -> Option<BTreeMap<String, Text>> {
        let mut values = BTreeMap::new();
        values.insert("id".into(), Some(entry.row_id.to_string()));
        for (column, value) in assignments(table, self.client, entry, &entry.changes).ok()? {
            values.insert(column, columns::text_of(value)?);
        }
        Some(values)
    }

    /// What other writers changed since each candidate's base, from one read of the log.
    async fn contested(
        &self,
        uow: &UnitOfWork,
        candidates: &[&Entry],
        rows: &HashMap<(&'static str, Uuid), RowValues>,
    ) -> dal::Result<HashMap<(&'static str, Uuid), Contested>> {
        let behind: Vec<(&Entry, &'static str, &RowValues)> = candidates
            .iter()
            .filter_map(|e| {
                let table = tables::table(&e.table)?;
                let row = rows.get(&(table.name, e.row_id))?;
                (!conflict::is_tombstone(row) && version(row) > e.base_version)
                    .then_some((*e, table.name, row))
            })
            .collect();
        let mut answer = HashMap::new();
        if behind.is_empty() {
            return Ok(answer);
        }
        let array = |kind, values: Vec<Value>| Value::Array(kind, Some(Box::new(values)));
        let log = uow
            .query_all_raw(statement(
                uow,
                "SELECT l.table_name, l.row_id, l.client_id, \
                 array_to_string(l.changed_columns, ',') AS columns, l.row_version \
                 FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::bigint[]) AS q(t, id, base, now) \
                 JOIN sync_log l ON l.row_id = q.id AND l.table_name = q.t \
                 AND l.row_version > q.base AND l.row_version <= q.now",
                vec![
                    array(
                        ArrayType::String,
                        behind.iter().map(|(_, t, _)| Value::from(*t)).collect(),
                    ),
                    array(
                        ArrayType::Uuid,
                        behind
                            .iter()
                            .map(|(e, _, _)| Value::Uuid(Some(e.row_id)))
                            .collect(),
                    ),
                    array(
                        ArrayType::BigInt,
                        behind
                            .iter()
                            .map(|(e, _, _)| Value::from(e.base_version))
                            .collect(),
                    ),
                    array(
                        ArrayType::BigInt,
                        behind
                            .iter()
                            .map(|(_, _, row)| Value::from(version(row)))
                            .collect(),
                    ),
                ],
            ))
            .await?;
        let mut by_row: HashMap<(String, Uuid), Vec<LogRow>> = HashMap::new();
        for row in &log {
            by_row
                .entry((row.try_get("", "table_name")?, row.try_get("", "row_id")?))
                .or_default()
                .push((
                    row.try_get("", "client_id")?,
                    row.try_get("", "columns")?,
                    row.try_get("", "row_version")?,
                ));
        }
        for (entry, table, row) in behind {
            let log = by_row
                .remove(&(table.to_owned(), entry.row_id))
                .unwrap_or_default();
            let contested = contested_from(&log, self.client, entry.base_version, row);
            answer.insert((table, entry.row_id), contested);
        }
        Ok(answer)
    }

    /// Writes `run` as the actor in the savepoint `attempt`, and returns each entry's
    /// row as the write left it, in wire form (in the run's order). Starts and ends acting
    /// as the server.
    pub(super) async fn write(
        &self,
        attempt: &UnitOfWork,
        run: &[Planned<'_>],
    ) -> dal::Result<Vec<RowValues>> {
        self.actor.rows(attempt).await?;
        // Parents before children (the registry's order), inserts before updates (an
        // update may move a row under a parent the run inserts).
        let mut groups: BTreeMap<(usize, bool, Vec<&str>), Vec<&Planned>> = BTreeMap::new();
        for planned in run {
            let columns = planned.values.keys().map(String::as_str).collect();
            groups
                .entry((tables::order(planned.table.name), !planned.insert, columns))
                .or_default()
                .push(planned);
        }
        let types = self
            .types
            .as_ref()
            .ok_or_else(|| DalError::database("a set write before its plan"))?;
        let mut written: HashMap<(usize, Uuid), RowValues> = HashMap::new();
        for ((order, update, columns), planned) in groups {
            let spec = planned[0].table;
            let table = spec.name;
            let returning = wire::pg_columns(spec);
            let mut casts = Vec::new();
            for (n, column) in columns.iter().enumerate() {
                casts.push(format!("u.c{n}::{}", types.of(table, column)?));
            }
            let unnest: Vec<String> = (1..=columns.len())
                .map(|n| format!("${n}::text[]"))
                .collect();
            let aliases: Vec<String> = (0..columns.len()).map(|n| format!("c{n}")).collect();
            let from = format!("unnest({}) AS u({})", unnest.join(", "), aliases.join(", "));
            let sql = if update {
                let id = columns.iter().position(|c| *c == "id").unwrap_or_default();
                let sets: Vec<String> = columns
                    .iter()
                    .zip(&casts)
                    .filter(|(c, _)| **c != "id")
                    .map(|(c, cast)| format!("\"{c}\" = {cast}"))
                    .collect();
                format!(
                    "UPDATE \"{table}\" AS t SET {} FROM {from} WHERE t.id = {} \
                     RETURNING {returning}",
                    sets.join(", "),
                    casts[id]
                )
            } else {
                let list: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
                format!(
                    "INSERT INTO \"{table}\" ({}) SELECT {} FROM {from} RETURNING {returning}",
                    list.join(", "),
                    casts.join(", ")
                )
            };
            let parameters = columns
                .iter()
                .map(|column| {
                    Value::from(columns::array_literal(
                        planned
                            .iter()
                            .map(|p| p.values.get(*column).unwrap_or(&None)),
                    ))
                })
                .collect();
            let returned = attempt
                .query_all_raw(statement(attempt, &sql, parameters))
                .await?;
            if returned.len() != planned.len() {
                return Err(DalError::database(format!(
                    "a set write to {table} wrote {} rows of {}",
                    returned.len(),
                    planned.len()
                )));
            }
            for row in &returned {
                let values = wire::read_row(spec, row)
                    .map_err(|e| DalError::from(sea_orm::DbErr::from(e)))?;
                let id = uuid_in(&values, "id").ok_or_else(|| {
                    DalError::database("a set write returned a row without its id")
                })?;
                written.insert((order, id), values);
            }
        }
        self.actor.books(attempt).await?;
        run.iter()
            .map(|p| {
                written
                    .remove(&(tables::order(p.table.name), p.entry.row_id))
                    .ok_or_else(|| DalError::database("a set write lost a row"))
            })
            .collect()
    }

    /// Logs the applied `run` (with each entry's row as the write left it) in one insert,
    /// its columns bound as typed arrays (no JSON document to build and parse).
    pub(super) async fn log(
        &self,
        uow: &UnitOfWork,
        run: &[Planned<'_>],
        rows: &[RowValues],
    ) -> dal::Result<()> {
        let array = |kind, values: Vec<Value>| Value::Array(kind, Some(Box::new(values)));
        let column = |f: &dyn Fn(&Planned) -> Value| run.iter().map(f).collect::<Vec<_>>();
        uow.execute_raw(statement(
            uow,
            // A run's entries only change columns of their table (`writable_table`), whose
            // names hold no comma: the list travels joined and is split back.
            "INSERT INTO sync_log (client_id, seq, table_name, row_id, op, outcome, entry_digest, changed_columns, row_version) \
             SELECT $1, u.seq, u.t, u.id, u.op, 'applied', u.digest, string_to_array(u.columns, ','), u.version \
             FROM unnest($2::bigint[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::bigint[]) \
             AS u(seq, t, id, op, digest, columns, version)",
            vec![
                Value::Uuid(Some(self.client)),
                array(ArrayType::BigInt, column(&|p| p.entry.seq.into())),
                array(ArrayType::String, column(&|p| storable(&p.entry.table).into())),
                array(ArrayType::Uuid, column(&|p| Value::Uuid(Some(p.entry.row_id)))),
                array(ArrayType::String, column(&|p| op_name(p.entry).into())),
                array(ArrayType::String, column(&|p| p.entry.digest().into())),
                array(
                    ArrayType::String,
                    column(&|p| {
                        let names: Vec<String> =
                            p.entry.changes.keys().map(|c| storable(c)).collect();
                        names.join(",").into()
                    }),
                ),
                array(
                    ArrayType::BigInt,
                    rows.iter().map(|row| Value::from(version(row))).collect(),
                ),
            ],
        ))
        .await?;
        Ok(())
    }
}

/// A version in the conflict log: `(writer, changed columns joined by commas, version)`.
type LogRow = (Uuid, String, i64);

/// A parent id the entry's changes name.
fn uuid_in(changes: &RowValues, column: &str) -> Option<Uuid> {
    changes
        .get(column)
        .and_then(Json::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// The candidates' rows, locked (as the per-entry path locks each one).
async fn locked_rows(
    uow: &UnitOfWork,
    candidates: &[&Entry],
) -> dal::Result<HashMap<(&'static str, Uuid), RowValues>> {
    let mut rows = HashMap::new();
    for table in tables::tables() {
        let ids: Vec<Value> = candidates
            .iter()
            .filter(|e| e.table == table.name)
            .map(|e| Value::Uuid(Some(e.row_id)))
            .collect();
        if ids.is_empty() {
            continue;
        }
        let sql = format!("{} WHERE id = ANY($1) FOR UPDATE", wire::pg_select(table));
        let array = Value::Array(ArrayType::Uuid, Some(Box::new(ids)));
        for row in uow.query_all_raw(statement(uow, &sql, vec![array])).await? {
            let values =
                wire::read_row(table, &row).map_err(|e| DalError::from(sea_orm::DbErr::from(e)))?;
            if let Some(id) = uuid_in(&values, "id") {
                rows.insert((table.name, id), values);
            }
        }
    }
    Ok(rows)
}

/// Whether each parent the candidates name is a tombstone (absent: no such row), read
/// `FOR SHARE` as the per-entry path does, so a concurrent delete waits for the push.
async fn parent_states(
    uow: &UnitOfWork,
    candidates: &[&Entry],
) -> dal::Result<HashMap<(&'static str, Uuid), bool>> {
    let mut wanted: BTreeMap<&'static str, HashSet<Uuid>> = BTreeMap::new();
    for entry in candidates {
        let Some(table) = tables::table(&entry.table) else {
            continue;
        };
        for parent in &table.parents {
            if let Some(id) = uuid_in(&entry.changes, parent.column) {
                wanted.entry(parent.table).or_default().insert(id);
            }
        }
    }
    let mut states = HashMap::new();
    for (parent, ids) in wanted {
        let array = Value::Array(
            ArrayType::Uuid,
            Some(Box::new(
                ids.into_iter().map(|id| Value::Uuid(Some(id))).collect(),
            )),
        );
        let rows = uow
            .query_all_raw(statement(
                uow,
                &format!("SELECT id, deleted FROM \"{parent}\" WHERE id = ANY($1) FOR SHARE"),
                vec![array],
            ))
            .await?;
        for row in rows {
            states.insert(
                (parent, row.try_get::<Uuid>("", "id")?),
                row.try_get::<bool>("", "deleted")?,
            );
        }
    }
    Ok(states)
}

/// The synced tables with a unique constraint besides their key.
async fn unique_tables(uow: &UnitOfWork) -> dal::Result<HashSet<String>> {
    let rows = uow
        .query_all_raw(statement(
            uow,
            "SELECT DISTINCT c.relname::text AS name FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid \
             WHERE i.indisunique AND NOT i.indisprimary AND c.relnamespace = current_schema()::regnamespace",
            vec![],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<String>("", "name")?))
        .collect()
}
