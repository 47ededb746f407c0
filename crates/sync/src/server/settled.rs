//! Which entries of a client the server has settled as exactly the writes a replica still
//! holds: what a replica taking a new client id asks (see
//! [`SyncClient::reidentify`](crate::SyncClient::reidentify)). Read-only.
//!
//! An entry counts as settled when `sync_log` holds its client id and number with the
//! same digest ([`Entry::digest`](crate::protocol::Entry::digest), the one every push
//! logs): the write is on the server already (applied, a no-op, or refused), so the
//! replica drops it instead of sending it again under its new id. A number the server
//! settled as a different write (the history a restored or copied replica diverged from)
//! or never settled is not: that write has not reached the server.

use std::collections::HashMap;

use dal::prelude::*;
use sea_orm::sea_query::ArrayType;
use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

use super::acting::Actor;
use super::answer::rows_after;
use super::statement;
use crate::protocol::{SettledQuery, SettledReply};

/// Answers `query` as `actor`. Acting for a user, a client that is not bound to that user
/// (unknown, bound to another user, or used only through the direct transport) gets the
/// empty answer an unknown client gets, after the same single lookup.
pub(super) async fn settled(
    uow: &UnitOfWork,
    actor: Actor,
    query: &SettledQuery,
) -> dal::Result<SettledReply> {
    let client = Value::Uuid(Some(query.client_id));
    if let Actor::User(user) = actor {
        let owner = uow
            .query_one_raw(statement(
                uow,
                "SELECT user_id FROM sync_clients WHERE client_id = $1",
                vec![client.clone()],
            ))
            .await?
            .map(|row| row.try_get::<Option<Uuid>>("", "user_id"))
            .transpose()?
            .flatten();
        if owner != Some(user) {
            return Ok(SettledReply::default());
        }
    }
    let asked: HashMap<i64, &str> = query
        .entries
        .iter()
        .map(|(seq, digest)| (*seq, digest.as_str()))
        .collect();
    if asked.is_empty() {
        return Ok(SettledReply::default());
    }
    let seqs = Value::Array(
        ArrayType::BigInt,
        Some(Box::new(
            asked.keys().map(|seq| Value::BigInt(Some(*seq))).collect(),
        )),
    );
    let logged = uow
        .query_all_raw(statement(
            uow,
            "SELECT seq, entry_digest, outcome, table_name, row_id FROM sync_log \
             WHERE client_id = $1 AND seq = ANY($2) AND entry_digest IS NOT NULL ORDER BY seq",
            vec![client, seqs],
        ))
        .await?;
    let mut reply = SettledReply::default();
    let mut written: Vec<(String, Uuid)> = Vec::new();
    for row in &logged {
        let seq: i64 = row.try_get("", "seq")?;
        let digest: String = row.try_get("", "entry_digest")?;
        if asked.get(&seq) != Some(&digest.as_str()) {
            continue;
        }
        reply.settled.push(seq);
        let outcome: String = row.try_get("", "outcome")?;
        if outcome.starts_with("rejected") {
            reply.rejected.push((seq, outcome));
        }
        written.push((row.try_get("", "table_name")?, row.try_get("", "row_id")?));
    }
    if written.is_empty() {
        return Ok(reply);
    }
    // As the user: only the rows the user may see come back (another user's row reads as
    // one that does not exist, as in a push's answer).
    actor.rows(uow).await?;
    reply.rows = rows_after(
        uow,
        written.iter().map(|(t, id)| (t.as_str(), *id)),
        Default::default(),
    )
    .await?;
    actor.books(uow).await?;
    Ok(reply)
}
