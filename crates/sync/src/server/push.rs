//! Push bookkeeping: which entries of a client are settled (`sync_clients`), what became
//! of each (`sync_log`, which also says which columns each version changed, the input
//! of the conflict rule), the conflicts recorded (`sync_conflicts`), and the rows the
//! client gets back with its acknowledgement.

use std::collections::{BTreeSet, HashMap, HashSet};

use dal::DalError;
use dal::prelude::*;
use sea_orm::{ConnectionTrait, Value};
use serde_json::Value as Json;
use uuid::Uuid;

use super::acting::Actor;
use super::bulk::{self, Planned, SetPath};
use super::conflict::{Conflict, Contested};
use super::pull::ancestors_of;
use super::write::{apply_entry, current};
use super::{Outcome, statement};
use crate::protocol::{Entry, PushAck, PushBatch, RowValues};
use crate::tables::{self, tables};
use crate::wire;

/// A batch's result: acknowledged, or refused because it does not follow on, or because
/// it reuses a settled sequence number for a different write.
pub(super) enum Settled {
    Ack(PushAck),
    Gap(i64),
    Diverged(i64),
}

/// Applies `batch`, its rows read and written as `actor` (see [`Actor`]).
pub(super) async fn apply_batch(
    uow: &UnitOfWork,
    actor: Actor,
    batch: &PushBatch,
) -> dal::Result<Settled> {
    let client = Value::Uuid(Some(batch.client_id));
    uow.execute_raw(statement(
        uow,
        "INSERT INTO sync_clients (client_id) VALUES ($1) ON CONFLICT (client_id) DO NOTHING",
        vec![client.clone()],
    ))
    .await?;
    let row = uow
        .query_one_raw(statement(
            uow,
            "SELECT last_seq FROM sync_clients WHERE client_id = $1 FOR UPDATE",
            vec![client.clone()],
        ))
        .await?
        .ok_or_else(|| DalError::not_found("sync client", batch.client_id))?;
    let mut last: i64 = row.try_get("", "last_seq")?;
    // Already settled entries (a retried batch) are passed over; the rest must follow on
    // without a hole, checked before anything is written.
    let follows_on = batch
        .entries
        .iter()
        .map(|e| e.seq)
        .filter(|seq| *seq > last)
        .zip(last + 1..)
        .all(|(seq, expected)| seq == expected);
    if !follows_on {
        return Ok(Settled::Gap(last));
    }
    if let Some(seq) = reused_sequence(uow, batch, last).await? {
        return Ok(Settled::Diverged(seq));
    }
    let mut touched: BTreeSet<(&'static str, Uuid)> = BTreeSet::new();
    let settled_before = last;
    let pending: Vec<&Entry> = batch
        .entries
        .iter()
        .filter(|e| e.seq > settled_before)
        .collect();
    let mut known = Some(Written::new());
    apply_entries(
        uow,
        actor,
        batch.client_id,
        &pending,
        &mut touched,
        &mut known,
    )
    .await?;
    if let Some(entry) = pending.last() {
        last = entry.seq;
    }
    // Positions written by different clients may now tie or leave gaps: renumber each
    // group an entry touched (timeline entries within their shot).
    if !touched.is_empty() {
        known = None;
        actor.rows(uow).await?;
        for (table, group) in touched {
            if let Some(positions) =
                tables::table(table).and_then(|t| tables::operations(t).positions)
            {
                (positions.renumber)(uow, Id(group)).await?;
            }
        }
        actor.books(uow).await?;
    }
    uow.execute_raw(statement(
        uow,
        "UPDATE sync_clients SET last_seq = $2, updated_at = now() WHERE client_id = $1",
        vec![client.clone(), last.into()],
    ))
    .await?;
    // Rejections of the whole batch, including entries settled by an earlier attempt
    // whose answer was lost, so the client dead-letters them either way.
    let (low, high) = (
        batch.entries.iter().map(|e| e.seq).min().unwrap_or(0),
        batch.entries.iter().map(|e| e.seq).max().unwrap_or(0),
    );
    let rejected = uow
        .query_all_raw(statement(
            uow,
            "SELECT seq, outcome, table_name, row_id FROM sync_log WHERE client_id = $1 \
             AND seq BETWEEN $2 AND $3 AND outcome LIKE 'rejected%' ORDER BY seq",
            vec![client, low.into(), high.into()],
        ))
        .await?;
    // As the user: the rows sent back are only those the user may see (an entry naming
    // another user's row gets `None`, as for a row that does not exist).
    actor.rows(uow).await?;
    let rows = rows_after(
        uow,
        batch.entries.iter().map(|e| (e.table.as_str(), e.row_id)),
        known.unwrap_or_default(),
    )
    .await?;
    actor.books(uow).await?;
    let rejected = rejected
        .iter()
        .map(|r| {
            Ok((
                r.try_get::<i64>("", "seq")?,
                r.try_get::<String>("", "outcome")?,
            ))
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    Ok(Settled::Ack(PushAck {
        last_seq: last,
        rejected,
        rows,
    }))
}

/// Rows set-based runs wrote, by table order and id, as their writes returned them (in
/// wire form), so the answer need not read them again.
type Written = HashMap<(usize, Uuid), RowValues>;

/// Applies `pending` in order: runs the set-based path can take in bulk (see
/// [`bulk`](super::bulk)), the rest one by one. `known` collects the rows the runs wrote,
/// and is dropped (`None`) once an entry goes the per-entry way: its delete may cascade
/// to them, its update may write one of them again.
async fn apply_entries(
    uow: &UnitOfWork,
    actor: Actor,
    client: Uuid,
    pending: &[&Entry],
    touched: &mut BTreeSet<(&'static str, Uuid)>,
    known: &mut Option<Written>,
) -> dal::Result<()> {
    let mut set = SetPath::new(actor, client);
    let mut window = bulk::MAX_WINDOW;
    let mut next = 0;
    while next < pending.len() {
        let end = (next + window).min(pending.len());
        let run = if set.may_go_in_bulk(pending[next]) {
            set.plan(uow, &pending[next..end]).await?
        } else {
            Vec::new()
        };
        if run.is_empty() {
            *known = None;
            apply_one(uow, actor, client, pending[next], touched).await?;
            next += 1;
            window = bulk::MIN_WINDOW;
            continue;
        }
        // A run as long as the window suggests more of the same ahead; a shorter one that
        // the entries ahead are mixed: look less far, so few rows are read twice.
        window = if run.len() == end - next {
            (window * 2).min(bulk::MAX_WINDOW)
        } else {
            (run.len() * 2).clamp(bulk::MIN_WINDOW, bulk::MAX_WINDOW)
        };
        next += run.len();
        apply_run(uow, actor, client, &set, run, touched, known).await?;
    }
    Ok(())
}

/// Applies a planned run in one savepoint; if its statements fail, splits it in halves
/// down to single entries, which take the per-entry path (and are refused alone).
async fn apply_run(
    uow: &UnitOfWork,
    actor: Actor,
    client: Uuid,
    set: &SetPath,
    run: Vec<Planned<'_>>,
    touched: &mut BTreeSet<(&'static str, Uuid)>,
    known: &mut Option<Written>,
) -> dal::Result<()> {
    let mut todo = vec![run];
    while let Some(mut run) = todo.pop() {
        if run.len() == 1 {
            *known = None;
            apply_one(uow, actor, client, run[0].entry, touched).await?;
            continue;
        }
        let attempt = uow.begin().await?;
        match set.write(&attempt, &run).await {
            Ok(rows) => {
                attempt.commit().await?;
                set.log(uow, &run, &rows).await?;
                if let Some(known) = known {
                    for (planned, row) in run.iter().zip(rows) {
                        known.insert(
                            (tables::order(planned.table.name), planned.entry.row_id),
                            row,
                        );
                    }
                }
            }
            Err(_) => {
                let _ = attempt.rollback().await;
                let second = run.split_off(run.len() / 2);
                todo.push(second);
                todo.push(run);
            }
        }
    }
    Ok(())
}

/// Applies one entry in a savepoint of its own (a refused entry rolls back alone) and
/// logs what became of it.
pub(super) async fn apply_one(
    uow: &UnitOfWork,
    actor: Actor,
    client: Uuid,
    entry: &Entry,
    touched: &mut BTreeSet<(&'static str, Uuid)>,
) -> dal::Result<()> {
    let attempt = uow.begin().await?;
    let outcome = match apply_entry(&attempt, actor, client, entry, touched).await {
        Ok(outcome) => {
            attempt.commit().await?;
            outcome
        }
        Err(e) if refuses_for_good(&e) => {
            let _ = attempt.rollback().await;
            Outcome::Rejected(e.to_string())
        }
        // Anything else says nothing about the entry (a lost connection, a full
        // disk): the whole batch is tried again later.
        Err(e) => return Err(e),
    };
    let row_version = match (&outcome, tables::table(&entry.table)) {
        (Outcome::Applied, Some(table)) => current(uow, table, entry.row_id)
            .await?
            .map(|row| version(&row)),
        _ => None,
    };
    uow.execute_raw(statement(
        uow,
        "INSERT INTO sync_log (client_id, seq, table_name, row_id, op, outcome, entry_digest, changed_columns, row_version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        vec![
            Value::Uuid(Some(client)),
            entry.seq.into(),
            storable(&entry.table).into(),
            Value::Uuid(Some(entry.row_id)),
            op_name(entry).into(),
            storable(&outcome.label()).into(),
            entry.digest().into(),
            changed_columns(entry),
            row_version.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// The entry's operation as the log spells it.
pub(super) fn op_name(entry: &Entry) -> String {
    format!("{:?}", entry.op).to_lowercase()
}

/// The columns the entry changed, as the log keeps them.
fn changed_columns(entry: &Entry) -> Value {
    Value::Array(
        sea_orm::sea_query::ArrayType::String,
        Some(Box::new(
            entry
                .changes
                .keys()
                .map(|c| Value::from(storable(c)))
                .collect(),
        )),
    )
}

/// The first entry of `batch` at or below `last` (settled before) whose write differs
/// from the one the server settled under its number; `None` when all are retries.
async fn reused_sequence(
    uow: &UnitOfWork,
    batch: &PushBatch,
    last: i64,
) -> dal::Result<Option<i64>> {
    let settled: Vec<&Entry> = batch.entries.iter().filter(|e| e.seq <= last).collect();
    let (Some(low), Some(high)) = (
        settled.iter().map(|e| e.seq).min(),
        settled.iter().map(|e| e.seq).max(),
    ) else {
        return Ok(None);
    };
    let logged = uow
        .query_all_raw(statement(
            uow,
            "SELECT seq, entry_digest FROM sync_log WHERE client_id = $1 AND seq BETWEEN $2 AND $3 \
             AND entry_digest IS NOT NULL",
            vec![Value::Uuid(Some(batch.client_id)), low.into(), high.into()],
        ))
        .await?;
    let mut digests = HashMap::new();
    for row in &logged {
        digests.insert(
            row.try_get::<i64>("", "seq")?,
            row.try_get::<String>("", "entry_digest")?,
        );
    }
    Ok(settled
        .iter()
        .find(|e| digests.get(&e.seq).is_some_and(|d| *d != e.digest()))
        .map(|e| e.seq))
}

/// `text` as the log can keep it: a client's table or column name (and a refusal quoting
/// it) may hold NUL, which Postgres text cannot store; failing to log a refused entry
/// would refuse its whole batch as trouble, retried by the client for ever.
pub(super) fn storable(text: &str) -> String {
    text.replace('\0', "\u{fffd}")
}

/// Whether an entry's failure is the server saying no to that write (it is refused and
/// dead-lettered) rather than trouble applying it (the batch is tried again).
fn refuses_for_good(e: &DalError) -> bool {
    matches!(
        e,
        DalError::NotFound { .. }
            | DalError::Conflict { .. }
            | DalError::MissingParent { .. }
            | DalError::InvalidValue { .. }
            | DalError::PermissionDenied { .. }
            | DalError::SyncRefused { .. }
    )
}

/// The server's version of every row entries wrote (`(table, id)`, in entry order), as it
/// stands now (`None`: the server has no such row), after the parents those rows need.
/// Rows in `known` are taken from there (the caller vouches they are current), the rest
/// read.
pub(super) async fn rows_after<'a>(
    uow: &UnitOfWork,
    entries: impl Iterator<Item = (&'a str, Uuid)>,
    mut known: Written,
) -> dal::Result<Vec<(String, Uuid, Option<RowValues>)>> {
    let mut written: Vec<(usize, Uuid)> = Vec::new();
    let mut seen = HashSet::new();
    for (table, row_id) in entries {
        let index = tables::order(table);
        if index < tables().len() && seen.insert((index, row_id)) {
            written.push((index, row_id));
        }
    }
    written.sort_by_key(|(index, _)| *index);
    let mut found: Vec<(usize, RowValues)> = Vec::new();
    let mut rows = Vec::new();
    for (index, table) in tables().iter().enumerate() {
        let ids: Vec<Uuid> = written
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, id)| *id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        let mut by_id: HashMap<Uuid, RowValues> = ids
            .iter()
            .filter_map(|id| Some((*id, known.remove(&(index, *id))?)))
            .collect();
        let unknown: Vec<Value> = ids
            .iter()
            .filter(|id| !by_id.contains_key(id))
            .map(|id| Value::Uuid(Some(*id)))
            .collect();
        let sql = format!("{} WHERE id = ANY($1)", wire::pg_select(table));
        let read = if unknown.is_empty() {
            Vec::new()
        } else {
            let array = Value::Array(sea_orm::sea_query::ArrayType::Uuid, Some(Box::new(unknown)));
            uow.query_all_raw(statement(uow, &sql, vec![array])).await?
        };
        for row in read {
            let values =
                wire::read_row(table, &row).map_err(|e| DalError::from(sea_orm::DbErr::from(e)))?;
            if let Some(id) = values
                .get("id")
                .and_then(Json::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
            {
                by_id.insert(id, values);
            }
        }
        for id in ids {
            let values = by_id.remove(&id);
            if let Some(values) = &values {
                found.push((index, values.clone()));
            }
            rows.push((table.name.to_owned(), id, values));
        }
    }
    let mut answer: Vec<(String, Uuid, Option<RowValues>)> = ancestors_of(uow, &found)
        .await?
        .into_iter()
        .filter_map(|(table, values)| {
            let id = values
                .get("id")
                .and_then(Json::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())?;
            Some((table, id, Some(values)))
        })
        .collect();
    answer.extend(rows);
    Ok(answer)
}

/// What other writers changed in `row` between the entry's base version and now, from the
/// log of the versions sync wrote. The client's own earlier entries never conflict with
/// it; they are why a base can be behind without anyone else having written.
pub(super) async fn contested_columns(
    uow: &UnitOfWork,
    client: Uuid,
    entry: &Entry,
    row: &RowValues,
) -> dal::Result<Contested> {
    if version(row) <= entry.base_version {
        return Ok(Contested::none());
    }
    let log = uow
        .query_all_raw(statement(
            uow,
            "SELECT client_id, array_to_string(changed_columns, ',') AS columns, row_version \
             FROM sync_log WHERE row_id = $1 AND table_name = $2 \
             AND row_version > $3 AND row_version <= $4",
            vec![
                Value::Uuid(Some(entry.row_id)),
                entry.table.clone().into(),
                entry.base_version.into(),
                version(row).into(),
            ],
        ))
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get("", "client_id")?,
                r.try_get("", "columns")?,
                r.try_get("", "row_version")?,
            ))
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    Ok(contested_from(&log, client, entry.base_version, row))
}

/// The columns of `row` other writers changed since `base`, from the log of the versions
/// sync wrote after it (`(writer, changed columns joined by commas, version)`): exactly
/// those when the log accounts for every version since, else every column (when the last
/// writer is someone else).
pub(super) fn contested_from(
    log: &[(Uuid, String, i64)],
    client: Uuid,
    base: i64,
    row: &RowValues,
) -> Contested {
    let now = version(row);
    if now <= base {
        return Contested::none();
    }
    let mut versions = HashSet::new();
    let mut columns = HashSet::new();
    for (writer, changed, row_version) in log {
        versions.insert(*row_version);
        if *writer != client {
            columns.extend(changed.split(',').map(str::to_owned));
        }
    }
    if versions.len() as i64 == now - base {
        Contested::Columns(columns)
    } else {
        Contested::Unknown(last_writer(row) != Some(client))
    }
}

/// The row's `sync_version` (0 when it has none).
pub(super) fn version(row: &RowValues) -> i64 {
    row.get("sync_version").and_then(Json::as_i64).unwrap_or(0)
}

/// The client that wrote the row last, if a client did.
fn last_writer(row: &RowValues) -> Option<Uuid> {
    row.get("device_id")
        .and_then(Json::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// Records a value lost to another writer.
pub(super) async fn record_conflict(
    uow: &UnitOfWork,
    client: Uuid,
    entry: &Entry,
    conflict: &Conflict,
) -> dal::Result<()> {
    let json = |v: &Option<Json>| Value::Json(v.as_ref().map(|v| Box::new(v.clone())));
    uow.execute_raw(statement(
        uow,
        "INSERT INTO sync_conflicts (client_id, seq, table_name, row_id, column_name, losing_value, winning_value, rule) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        vec![
            Value::Uuid(Some(client)),
            entry.seq.into(),
            entry.table.clone().into(),
            Value::Uuid(Some(entry.row_id)),
            conflict.column.clone().into(),
            json(&conflict.losing),
            json(&conflict.winning),
            conflict.rule.into(),
        ],
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use dal::SyncRefusal;

    use super::*;

    #[test]
    fn a_refusal_dead_letters_and_trouble_retries() {
        let refusal = DalError::sync_refused(SyncRefusal::UnsyncedTable {
            table: "sync_log".into(),
        });
        assert!(refuses_for_good(&refusal));
        assert_eq!(refusal.kind(), dal::ErrorKind::SyncRefused);
        assert!(!refusal.is_retryable());
        assert!(!refuses_for_good(&DalError::database("a full disk")));
    }
}
