//! Rows that left a pull's window: deleted on the server by any writer, or given to
//! another user (the `sync_removals` log, which Postgres's triggers keep; see migration
//! `m20261202_120000_sync_removals`).
//!
//! They are the last stage of a pull's window, after every table, paged like one: the
//! cursor `(tables().len(), txid, id)` carries the last removal's sequence number in the
//! id (a log row has no uuid of its own, and a row can be removed twice in one
//! transaction, so `(txid, row id)` would not name a place). A removal is passed over
//! when the row is in its table again, visible to the puller, with its last change
//! before the window's end (given back, or inserted again with its id): the window
//! carries that row, and deleting it would undo it. One that came back after the window
//! is still delivered; the row follows in the next window.

use dal::DalError;
use dal::prelude::*;
use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use super::statement;
use crate::tables::tables;

/// The stage index of removals in a pull cursor: after the tables.
pub(super) fn stage() -> usize {
    tables().len()
}

/// The cursor id of the removal with sequence number `seq`.
fn cursor_id(seq: i64) -> Uuid {
    Uuid::from_u64_pair(0, seq as u64)
}

/// Up to `room` removals of the window `[from, to)` after `after` (`(txid, id)` of a
/// cursor), the owner's only for `user` (`None`: every removal but owner changes, which
/// change nothing for a replica of every user). Returns them and the cursor after the
/// last one when more follow.
pub(super) async fn read(
    uow: &UnitOfWork,
    window: (u64, u64),
    after: Option<(u64, Uuid)>,
    user: Option<Uuid>,
    room: usize,
) -> dal::Result<(Vec<(String, Uuid)>, Option<(usize, u64, Uuid)>)> {
    let (from, to) = window;
    let mut values: Vec<Value> = vec![from.to_string().into(), to.to_string().into()];
    let mut sql = String::from(
        "SELECT r.seq, r.txid::text AS txid, r.table_name, r.row_id FROM sync_removals r \
         WHERE r.txid >= $1::text::xid8 AND r.txid < $2::text::xid8",
    );
    match user {
        Some(user) => {
            values.push(Value::Uuid(Some(user)));
            sql.push_str(&format!(" AND r.owner_id = ${}", values.len()));
        }
        None => sql.push_str(" AND r.reason <> 'moved'"),
    }
    if let Some((txid, id)) = after {
        let (_, seq) = id.as_u64_pair();
        values.push(txid.to_string().into());
        values.push((seq as i64).into());
        sql.push_str(&format!(
            " AND (r.txid, r.seq) > (${}::text::xid8, ${})",
            values.len() - 1,
            values.len()
        ));
    }
    for table in tables() {
        sql.push_str(&format!(
            " AND NOT (r.table_name = '{name}' AND EXISTS (SELECT 1 FROM \"{name}\" x \
             WHERE x.id = r.row_id AND x.sync_txid < $2::text::xid8))",
            name = table.name
        ));
    }
    sql.push_str(&format!(" ORDER BY r.txid, r.seq LIMIT {}", room + 1));
    let rows = uow.query_all_raw(statement(uow, &sql, values)).await?;
    let mut removed = Vec::with_capacity(rows.len().min(room));
    let mut next = None;
    let mut last: Option<(u64, i64)> = None;
    for (i, row) in rows.iter().enumerate() {
        if i == room {
            let (txid, seq) = last.expect("room > 0");
            next = Some((stage(), txid, cursor_id(seq)));
            break;
        }
        let txid: String = row.try_get("", "txid")?;
        let txid = txid
            .parse()
            .map_err(|_| DalError::database("a removal's transaction id is not a number"))?;
        last = Some((txid, row.try_get("", "seq")?));
        removed.push((row.try_get("", "table_name")?, row.try_get("", "row_id")?));
    }
    Ok((removed, next))
}
