//! Pull paging, in commit order.
//!
//! Every change stamps its row with the transaction id (`sync_txid`). A pull covers the
//! ids from the previous pull's upper bound up to the oldest transaction of this database
//! still open when the pull starts: every transaction below that bound has finished, so
//! no change can later appear in a window already read. A transaction still open when a
//! pull runs sits at or above the bound, so its rows are picked up by a later pull, and
//! changes committed after it wait for it: they are delayed, never lost. This closes the
//! hole in a `last_modified > last_sync` cursor, without making writers wait for one
//! another.

use std::collections::HashSet;

use dal::DalError;
use dal::prelude::*;
use sea_orm::{ConnectionTrait, Statement, Value};
use serde_json::Value as Json;
use uuid::Uuid;

use super::{removals, statement};
use crate::protocol::{PullPage, PullRequest, RowValues};
use crate::tables::{self, Table, tables};
use crate::wire;

/// The upper bound of a pull: the oldest transaction still open in this database, or the
/// snapshot's `xmax` if there is none. Transaction ids are cluster-wide, so the plain
/// snapshot `xmin` would let a long transaction in any other database of the cluster hold
/// every pull back. An open transaction is passed over only when `pg_stat_activity`
/// positively places it in another database or in an autovacuum worker (which never
/// writes synced rows); one it cannot place at all (it ended between the snapshot and
/// the activity read, or it is prepared) counts as ours, and `uncertain` says so.
const HORIZON: &str = "WITH s AS (SELECT pg_current_snapshot() AS snap), \
     here AS (SELECT oid FROM pg_database WHERE datname = current_database()), \
     a AS (SELECT backend_xid::text::numeric AS xid32, \
             coalesce(datid = (SELECT oid FROM here), false) \
               AND backend_type <> 'autovacuum worker' AS writes_here \
           FROM pg_stat_activity WHERE backend_xid IS NOT NULL), \
     c AS (SELECT x, (SELECT bool_or(a.writes_here) FROM a \
                      WHERE a.xid32 = x::text::numeric % 4294967296) AS writes_here \
           FROM s, pg_snapshot_xip(s.snap) AS x) \
     SELECT LEAST(pg_snapshot_xmax(s.snap), b.x)::text AS horizon, \
            (b.x IS NOT NULL AND b.writes_here IS NULL) AS uncertain \
     FROM s LEFT JOIN LATERAL (SELECT x, writes_here FROM c \
       WHERE writes_here IS NOT FALSE ORDER BY x LIMIT 1) b ON true";

/// How often [`horizon`] looks again when its bound is a transaction it could not place.
const HORIZON_ATTEMPTS: usize = 4;

/// [`HORIZON`], looked at again (each time with a fresh snapshot and activity view) while
/// its bound is a transaction it could not place: on a busy cluster that is nearly always
/// one of another database that just ended, and taking it as ours would hold the pull
/// back for no reason. After the last attempt the cautious bound stands.
pub(super) async fn horizon(db: &Database) -> dal::Result<u64> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let row = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), HORIZON))
            .await?
            .ok_or_else(|| DalError::database("the snapshot horizon query returned no row"))?;
        let bound: u64 = row
            .try_get::<String>("", "horizon")?
            .parse()
            .map_err(|_| DalError::database("the snapshot horizon is not a number"))?;
        let uncertain: bool = row.try_get("", "uncertain")?;
        if !uncertain || attempt == HORIZON_ATTEMPTS {
            return Ok(bound);
        }
    }
}

/// One page of the window `[request.from_txid, to)`: changed rows table by table, then
/// the removals (see `removals.rs`), `user`'s own only when the pull is scoped (the unit
/// of work then runs as the user, so row-level security hides every other row).
pub(super) async fn read_page(
    uow: &UnitOfWork,
    request: &PullRequest,
    to: u64,
    user: Option<Uuid>,
) -> dal::Result<PullPage> {
    let limit = request.limit.clamp(1, 10_000);
    let mut changed: Vec<(usize, RowValues)> = Vec::new();
    let mut next = None;
    let start = request.after.map_or(0, |(t, _, _)| t);
    for (index, table) in tables().iter().enumerate().skip(start) {
        let room = limit - changed.len();
        if room == 0 {
            // Full at a table boundary: the next page starts this table from its first row.
            next = Some((index, 0, Uuid::nil()));
            break;
        }
        let mut sql = format!(
            "{} WHERE sync_txid >= $1::text::xid8 AND sync_txid < $2::text::xid8",
            wire::pg_select(table)
        );
        let mut values: Vec<Value> =
            vec![request.from_txid.to_string().into(), to.to_string().into()];
        if let Some((_, txid, id)) = request.after.filter(|(t, _, _)| *t == index) {
            sql.push_str(" AND (sync_txid, id) > ($3::text::xid8, $4)");
            values.push(txid.to_string().into());
            values.push(Value::Uuid(Some(id)));
        }
        // Qualified: a bare name would order by the select list's text forms, in which
        // "1000" comes before "999" (and the index could not serve the order).
        sql.push_str(&format!(
            " ORDER BY \"{name}\".sync_txid, \"{name}\".id LIMIT {}",
            room + 1,
            name = table.name
        ));
        let rows = uow.query_all_raw(statement(uow, &sql, values)).await?;
        for (i, row) in rows.iter().enumerate() {
            if i == room {
                let last = &changed.last().expect("room > 0").1;
                let txid: u64 = last
                    .get("sync_txid")
                    .and_then(Json::as_str)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let id = last
                    .get("id")
                    .and_then(Json::as_str)
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .unwrap_or_default();
                next = Some((index, txid, id));
                break;
            }
            let mut values =
                wire::read_row(table, row).map_err(|e| DalError::from(sea_orm::DbErr::from(e)))?;
            let txid: String = row.try_get("", "sync_txid")?;
            values.insert("sync_txid".into(), Json::String(txid));
            changed.push((index, values));
        }
        if next.is_some() {
            break;
        }
    }
    let mut removed = Vec::new();
    // A first pull (from 0) skips them: the replica holds nothing the window's rows do
    // not bring, and the log of every removal ever made need not be read.
    if next.is_none() && request.from_txid > 0 {
        let room = limit - changed.len();
        if room == 0 {
            next = Some((removals::stage(), 0, Uuid::nil()));
        } else {
            let after = request
                .after
                .filter(|(t, txid, _)| *t == removals::stage() && *txid > 0)
                .map(|(_, txid, id)| (txid, id));
            (removed, next) =
                removals::read(uow, (request.from_txid, to), after, user, room).await?;
        }
    }
    let ancestors = ancestors_of(uow, &changed).await?;
    let mut rows: Vec<(String, RowValues)> = ancestors;
    rows.extend(changed.into_iter().map(|(i, mut v)| {
        v.remove("sync_txid");
        (tables()[i].name.to_owned(), v)
    }));
    Ok(PullPage {
        to_txid: to,
        rows,
        next,
        removed,
    })
}

/// The current rows of every parent (transitively) of `rows` that the page does not
/// carry, parents first, so the client can store the page whatever order the
/// transactions committed in.
pub(super) async fn ancestors_of(
    uow: &UnitOfWork,
    rows: &[(usize, RowValues)],
) -> dal::Result<Vec<(String, RowValues)>> {
    // Rows already known, by table and id: the page's own, then every parent asked for.
    // Only a table some link points at can be asked for (not tasks, say), so only its
    // rows need to be known.
    let parent_tables: HashSet<&str> = tables()
        .iter()
        .flat_map(|t| t.parents.iter().map(|p| p.table))
        .collect();
    let mut seen: HashSet<(&'static str, Uuid)> = rows
        .iter()
        .filter(|(i, _)| parent_tables.contains(tables()[*i].name))
        .filter_map(|(i, v)| {
            v.get("id")
                .and_then(Json::as_str)
                .and_then(|id| Uuid::parse_str(id).ok())
                .map(|id| (tables()[*i].name, id))
        })
        .collect();
    let mut fetched: Vec<(String, RowValues)> = Vec::new();
    // The rows whose parents are looked up next: the page's, then each fetched level
    // (by reference: a page's rows are not copied for this).
    let mut level_start = None;
    // Walk up one level at a time (tasks -> projects -> users), as far as parents go:
    // `seen` takes each row once, so a cycle of parents cannot keep the walk going.
    loop {
        let wanted: Vec<(&'static Table, &RowValues)> = match level_start {
            None => rows.iter().map(|(i, v)| (&tables()[*i], v)).collect(),
            Some(start) => fetched[start..]
                .iter()
                .map(|(t, v)| (tables::table(t).expect("synced"), v))
                .collect(),
        };
        let mut missing: Vec<(&'static str, Uuid)> = Vec::new();
        // Rows of a page mostly share their parent (a project's tasks): the link just
        // looked at is not parsed and looked up again.
        let mut previous: Option<(&'static str, &str)> = None;
        for (spec, values) in wanted {
            for parent in &spec.parents {
                let Some(text) = values.get(parent.column).and_then(Json::as_str) else {
                    continue;
                };
                if previous == Some((parent.table, text)) {
                    continue;
                }
                previous = Some((parent.table, text));
                if let Ok(id) = Uuid::parse_str(text)
                    && seen.insert((parent.table, id))
                {
                    missing.push((parent.table, id));
                }
            }
        }
        if missing.is_empty() {
            break;
        }
        level_start = Some(fetched.len());
        for parent in tables().iter() {
            let ids: Vec<Value> = missing
                .iter()
                .filter(|(t, _)| *t == parent.name)
                .map(|(_, id)| Value::Uuid(Some(*id)))
                .collect();
            if ids.is_empty() {
                continue;
            }
            let sql = format!(
                "{} WHERE id = ANY($1) ORDER BY \"{}\".id",
                wire::pg_select(parent),
                parent.name
            );
            let array = Value::Array(sea_orm::sea_query::ArrayType::Uuid, Some(Box::new(ids)));
            for row in uow.query_all_raw(statement(uow, &sql, vec![array])).await? {
                let values = wire::read_row(parent, &row)
                    .map_err(|e| DalError::from(sea_orm::DbErr::from(e)))?;
                fetched.push((parent.name.to_owned(), values));
            }
        }
    }
    fetched.sort_by_key(|(t, _)| tables::order(t));
    Ok(fetched)
}
