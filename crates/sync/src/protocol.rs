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
        let canonical = serde_json::json!([
            self.table,
            self.row_id,
            self.op,
            self.changes,
            self.base_version
        ]);
        Sha256::digest(canonical.to_string().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
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
