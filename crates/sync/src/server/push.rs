//! Push bookkeeping: which entries of a client are settled (`sync_clients`), what became
//! of each (`sync_log`, which also says which columns each version changed, the input
//! of the conflict rule; read in `history.rs`), and the order entries are applied in:
//! runs set-based, the rest one by one. The rows the client gets back are `answer.rs`'s.

use std::collections::{BTreeSet, HashMap};

use dal::DalError;
use dal::prelude::*;
use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use super::acting::Actor;
use super::answer::{Written, rows_after};
use super::bulk::{self, Planned, SetPath};
use super::history::version;
use super::write::{apply_entry, current};
use super::{Outcome, statement};
use crate::protocol::{Entry, PushAck, PushBatch};
use crate::tables;

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
