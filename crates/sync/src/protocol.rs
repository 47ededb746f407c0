//! What travels between a client and the server. Serializable, so a transport may carry
//! it over any wire; the direct Postgres transport passes it as it is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A row as the wire carries it: column name to value, in SQLite's text forms (see
/// [`Kind`](crate::tables::Kind)).
pub type RowValues = BTreeMap<String, serde_json::Value>;

/// What a local write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A new row.
    Insert,
    /// Changed columns of a row.
    Update,
    /// The row was deleted (tombstoned).
    Delete,
}

impl Op {
    /// The outbox's spelling.
    pub fn parse(s: &str) -> Option<Op> {
        match s {
            "insert" => Some(Op::Insert),
            "update" => Some(Op::Update),
            "delete" => Some(Op::Delete),
            _ => None,
        }
    }
}

/// One outbox entry: a client's local write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The client's sequence number: 1, 2, 3, ... with no gaps.
    pub seq: i64,
    /// The table written.
    pub table: String,
    /// The row's id.
    pub row_id: Uuid,
    /// What was done.
    pub op: Op,
    /// The columns the write changed, with their new values.
    pub changes: RowValues,
    /// The row's `sync_version` the write was based on.
    pub base_version: i64,
    /// The client's clock at the write: information only, never used for ordering.
    pub client_time: String,
}

impl Entry {
    /// A digest of what the entry writes (table, row, operation, changes, base version;
    /// not the client's clock), which the server keeps to tell a retry from a different
    /// write that reuses a sequence number.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        use std::fmt::Write as _;
        // The JSON array `[table, row_id, op, changes, base_version]`, serialised straight
        // from the entry (the same text as building it as a `Value` first, without
        // copying the changes: a push computes this for every entry).
        let canonical = serde_json::to_vec(&(
            &self.table,
            &self.row_id,
            &self.op,
            &self.changes,
            self.base_version,
        ))
        .unwrap_or_default();
        let mut hex = String::with_capacity(64);
        for byte in Sha256::digest(&canonical) {
            let _ = write!(hex, "{byte:02x}");
        }
        hex
    }
}

/// A batch of entries, in sequence order, from one client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushBatch {
    /// The client (a random id persisted in its database).
    pub client_id: Uuid,
    /// The entries.
    pub entries: Vec<Entry>,
}

/// The server's answer to a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushAck {
    /// Every entry up to this sequence number is settled (applied or rejected) on the
    /// server: the client may forget them.
    pub last_seq: i64,
    /// Entries of the batch the server refused for good, with the reason: the client
    /// keeps them in its dead-letter table.
    pub rejected: Vec<(i64, String)>,
    /// The server's version, after the batch, of every row the batch's entries wrote
    /// (`None`: the server has no such row), after the parents those rows need:
    /// `(table, id, row)`. The client stores each one it has no later change of its own
    /// for, which undoes a refused change and catches up with what a pull passed over
    /// while the change was waiting.
    pub rows: Vec<(String, Uuid, Option<RowValues>)>,
}

/// What a replica asks when it takes a new client id (see
/// [`SyncClient::reidentify`](crate::SyncClient::reidentify)): which of these entries,
/// sent under `client_id`, has the server settled as exactly these writes? An entry the
/// server settled under its number with the same [`Entry::digest`] is on the server
/// already (applied, passed over as a no-op, or refused) and must not be sent again; any
/// other entry (a number the server never settled, or settled as a different write) has
/// not reached it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettledQuery {
    /// The client id the entries were queued under.
    pub client_id: Uuid,
    /// `(seq, digest)` of each entry asked about.
    pub entries: Vec<(i64, String)>,
}

/// The server's answer to a [`SettledQuery`]. A client the server does not know, and,
/// through the sync server, a client bound to another user, get the same empty answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettledReply {
    /// The sequence numbers, of those asked, that the server settled as the same write.
    pub settled: Vec<i64>,
    /// Of those, the ones it refused for good, with the reason (as in
    /// [`PushAck::rejected`]).
    pub rejected: Vec<(i64, String)>,
    /// The server's version of every row the settled entries wrote, as in
    /// [`PushAck::rows`] (scoped to the user through the sync server).
    pub rows: Vec<(String, Uuid, Option<RowValues>)>,
}

/// Where a pull is: the window of transaction ids it covers and how far into it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    /// Changes from transactions with ids at or above this (the last pull's upper bound;
    /// 0 for a full pull).
    pub from_txid: u64,
    /// The upper bound of this pull, fixed by its first page (`None` on the first page).
    pub to_txid: Option<u64>,
    /// Resume after this row: `(table index, txid, row id)`; txid 0 with the nil id means
    /// from that table's first row.
    pub after: Option<(usize, u64, Uuid)>,
    /// At most this many changed rows (parents added for them come on top).
    pub limit: usize,
}

/// One page of a pull.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PullPage {
    /// The window's upper bound: every transaction below it had finished when the pull
    /// began, so no change below it can appear later.
    pub to_txid: u64,
    /// Rows, parents before children: `(table, values)`.
    pub rows: Vec<(String, RowValues)>,
    /// Where the next page starts; `None` when the window is exhausted.
    pub next: Option<(usize, u64, Uuid)>,
    /// Rows that left the replica's view in the window, `(table, id)`: deleted on the
    /// server (by any writer: a plain SQL `DELETE` too), or, in a pull made as a user,
    /// given to another user. The client deletes each with everything under it, as the
    /// server's cascade did. They come after the window's changed rows, paged with them.
    #[serde(default)]
    pub removed: Vec<(String, Uuid)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest as first defined (and stored in every server's `sync_log`): it must not
    /// change, or retried batches would read as reused sequence numbers.
    fn first_digest(e: &Entry) -> String {
        use sha2::{Digest, Sha256};
        let canonical = serde_json::json!([e.table, e.row_id, e.op, e.changes, e.base_version]);
        Sha256::digest(canonical.to_string().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn the_digest_is_the_one_servers_have_stored() {
        let changes: RowValues = serde_json::from_str(
            r#"{"params": {"z": [1, 2.5, -3e10, null], "a": "\u00e9\"\n\u0000"},
                "status": "Queued", "attempts": 12345678901234567890, "deleted": false,
                "dependant_on": "[\"6f1c0000-0000-4000-8000-000000000000\"]",
                "last_error": null, "name": "日本 \ud83d\ude00 \\ / <>&'"}"#,
        )
        .unwrap();
        for (op, base) in [(Op::Insert, 0), (Op::Update, 7), (Op::Delete, -1)] {
            let entry = Entry {
                seq: 3,
                table: "tasks\u{0}\"".into(),
                row_id: Uuid::from_u128(0x1234_5678_9abc_4def_8123_4567_89ab_cdef),
                op,
                changes: changes.clone(),
                base_version: base,
                client_time: "2026-01-01T00:00:00.000000Z".into(),
            };
            assert_eq!(entry.digest(), first_digest(&entry));
            assert_eq!(entry.digest().len(), 64);
        }
    }
}
