//! The conflict rule, as a pure decision: what one pushed entry does to the row the
//! server has. It reads nothing and writes nothing; [`super::write`] gathers its inputs
//! (the current row, the columns others changed since the entry's base) and carries the
//! decision out.
//!
//! The server decides, in the order entries reach it; client clocks are never consulted.
//!
//! * An update based on the row's current version applies as it is.
//! * An update based on an older version (another client changed the row meanwhile) still
//!   applies, column by column: **the last write to reach the server wins each column it
//!   changes**; columns it did not change keep the other client's values. Every value it
//!   overwrites that another writer set since its base is recorded in `sync_conflicts`
//!   with both values (`sync_log` knows which columns each version changed).
//! * **A delete wins over a concurrent update**: an update of a tombstoned row is dropped
//!   (its values recorded as the losers), and a delete based on an older version still
//!   deletes (the values changed since are recorded).
//! * A tombstoned row comes back only through an explicit insert of the same id; an
//!   insert or update under a tombstoned parent is refused (a dead letter for its client;
//!   checked by [`super::write`] before the rule, as it needs the parents' rows).

use std::collections::HashSet;

use crate::protocol::{Entry, Op, RowValues};
use crate::tables::{Kind, Table};
use dal::SyncRefusal;
use serde_json::Value as Json;

/// What to do with one entry.
#[derive(Debug, PartialEq)]
pub(super) enum Decision {
    /// Nothing to write, for the reason given.
    Noop(&'static str),
    /// The entry is refused for good.
    Refuse(SyncRefusal),
    /// Insert a new row with the entry's values.
    Insert,
    /// Bring a tombstoned row back with the entry's values (an explicit insert).
    Recreate,
    /// Delete the live row; the conflicts are recorded once the delete has happened.
    Delete { conflicts: Vec<Conflict> },
    /// Write the entry's values over the live row, recording the conflicts.
    Update { conflicts: Vec<Conflict> },
    /// An update of a tombstoned row: the delete wins, nothing is written, and the
    /// update's values are recorded as the losers.
    Lost { conflicts: Vec<Conflict> },
}

/// One value lost to another writer, as `sync_conflicts` records it.
#[derive(Debug, PartialEq)]
pub(super) struct Conflict {
    pub column: String,
    /// The value overwritten or dropped (`None`: it had none).
    pub losing: Option<Json>,
    /// The value that stands (`None`: the row is deleted).
    pub winning: Option<Json>,
    pub rule: &'static str,
}

const DELETE_WINS: &str = "delete-wins";
const LAST_WRITE_WINS: &str = "last-write-to-arrive-wins";

/// Which columns of a row other writers changed since an entry's base version.
#[derive(Debug)]
pub(super) enum Contested {
    /// Exactly these: the log accounts for every version since the base.
    Columns(HashSet<String>),
    /// Some version since the base was written outside sync (directly on the server, or
    /// by a timeline renumbering): every column counts when the row's last writer is
    /// someone else (`true`).
    Unknown(bool),
}

impl Contested {
    /// No other writer since the base.
    pub fn none() -> Contested {
        Contested::Columns(HashSet::new())
    }

    fn contains(&self, column: &str) -> bool {
        match self {
            Contested::Columns(columns) => columns.contains(column),
            Contested::Unknown(others) => *others,
        }
    }
}

/// Whether the entry deletes its row: a delete, or an update that sets the tombstone.
pub(super) fn deletes(entry: &Entry) -> bool {
    entry.op == Op::Delete
        || entry
            .changes
            .get("deleted")
            .is_some_and(|d| d == &Json::Bool(true) || d == &Json::from(1))
}

/// Whether `row` is a tombstone.
pub(super) fn is_tombstone(row: &RowValues) -> bool {
    row.get("deleted") == Some(&Json::Bool(true))
}

/// The rule: what `entry` does to `existing` (the server's row, if any), given what
/// other writers changed in it since the entry's base (`contested`; only consulted for a
/// live row).
pub(super) fn decide(
    table: &Table,
    entry: &Entry,
    existing: Option<&RowValues>,
    contested: &Contested,
) -> Decision {
    if deletes(entry) {
        let Some(row) = existing else {
            return Decision::Noop("already gone");
        };
        if is_tombstone(row) {
            return Decision::Noop("already deleted");
        }
        // The delete wins; what others changed since its base is lost.
        let conflicts = table
            .data_columns()
            .filter(|c| *c != "deleted" && contested.contains(c))
            .map(|column| Conflict {
                column: column.to_owned(),
                losing: row.get(column).cloned(),
                winning: None,
                rule: DELETE_WINS,
            })
            .collect();
        return Decision::Delete { conflicts };
    }
    match existing {
        None if entry.op == Op::Insert => Decision::Insert,
        None => Decision::Refuse(SyncRefusal::RowMissing {
            table: table.name.to_owned(),
            id: entry.row_id,
        }),
        Some(row) if is_tombstone(row) && entry.op == Op::Insert => Decision::Recreate,
        Some(row) if is_tombstone(row) => Decision::Lost {
            conflicts: entry
                .changes
                .iter()
                .map(|(column, value)| Conflict {
                    column: column.clone(),
                    losing: Some(value.clone()),
                    winning: row.get(column.as_str()).cloned(),
                    rule: DELETE_WINS,
                })
                .collect(),
        },
        Some(row) => {
            let conflicts = entry
                .changes
                .iter()
                .filter_map(|(column, value)| {
                    let theirs = row.get(column.as_str());
                    // `updated_at` changes with every write: it follows the last one
                    // silently.
                    let lost = contested.contains(column)
                        && column != "updated_at"
                        && theirs != Some(value)
                        && !same_value(table, column, theirs, value);
                    lost.then(|| Conflict {
                        column: column.clone(),
                        losing: theirs.cloned(),
                        winning: Some(value.clone()),
                        rule: LAST_WRITE_WINS,
                    })
                })
                .collect();
            Decision::Update { conflicts }
        }
    }
}

/// Whether two wire values mean the same (JSON documents compare as documents).
fn same_value(table: &Table, column: &str, theirs: Option<&Json>, ours: &Json) -> bool {
    match (table.kind(column), theirs) {
        (Some(Kind::Json | Kind::UuidList), Some(Json::String(a))) => match ours {
            Json::String(b) => {
                let parse = |s: &str| entities::json::parse(s.as_bytes()).ok();
                parse(a) == parse(b)
            }
            _ => false,
        },
        (Some(Kind::Bool), Some(Json::Bool(a))) => {
            ours == &Json::Bool(*a) || ours.as_i64() == Some(i64::from(*a))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use uuid::Uuid;

    use super::*;
    use crate::tables;

    fn tasks() -> &'static Table {
        tables::table("tasks").expect("synced")
    }

    fn row(values: Json) -> RowValues {
        serde_json::from_value(values).expect("an object")
    }

    fn entry(op: Op, changes: Json, base_version: i64) -> Entry {
        Entry {
            seq: 1,
            table: "tasks".into(),
            row_id: Uuid::nil(),
            op,
            changes: row(changes),
            base_version,
            client_time: "2025-01-01T00:00:00.000000Z".into(),
        }
    }

    /// A live task at version 3, last written by someone else.
    fn live() -> RowValues {
        row(json!({
            "status": "Queued",
            "params": "{\"a\":1,\"b\":[1,2]}",
            "output_location": "s3://theirs",
            "updated_at": "2025-01-02T00:00:00.000000Z",
            "deleted": false,
            "sync_version": 3,
        }))
    }

    fn tombstone() -> RowValues {
        let mut row = live();
        row.insert("deleted".into(), Json::Bool(true));
        row
    }

    fn contested(columns: &[&str]) -> Contested {
        Contested::Columns(columns.iter().map(|c| (*c).to_owned()).collect())
    }

    fn conflict(
        column: &str,
        losing: Option<Json>,
        winning: Option<Json>,
        rule: &'static str,
    ) -> Conflict {
        Conflict {
            column: column.into(),
            losing,
            winning,
            rule,
        }
    }

    #[test]
    fn an_update_on_the_current_base_applies_without_conflicts() {
        let update = entry(Op::Update, json!({"status": "Complete"}), 3);
        assert_eq!(
            decide(tasks(), &update, Some(&live()), &Contested::none()),
            Decision::Update { conflicts: vec![] }
        );
    }

    #[test]
    fn an_update_on_an_older_base_wins_contested_columns_and_records_them() {
        let update = entry(
            Op::Update,
            json!({"status": "Complete", "output_location": "s3://ours"}),
            1,
        );
        // Only `status` was changed by someone else since version 1.
        assert_eq!(
            decide(tasks(), &update, Some(&live()), &contested(&["status"])),
            Decision::Update {
                conflicts: vec![conflict(
                    "status",
                    Some(json!("Queued")),
                    Some(json!("Complete")),
                    LAST_WRITE_WINS
                )]
            }
        );
        // A base the log cannot account for: every column counts against another writer,
        // none against the client's own.
        let Decision::Update { conflicts } =
            decide(tasks(), &update, Some(&live()), &Contested::Unknown(true))
        else {
            panic!("an update")
        };
        assert_eq!(conflicts.len(), 2);
        assert_eq!(
            decide(tasks(), &update, Some(&live()), &Contested::Unknown(false)),
            Decision::Update { conflicts: vec![] }
        );
    }

    #[test]
    fn the_same_document_in_another_form_is_no_conflict() {
        let same = entry(
            Op::Update,
            json!({"params": "{ \"b\": [1, 2], \"a\": 1 }"}),
            1,
        );
        assert_eq!(
            decide(tasks(), &same, Some(&live()), &contested(&["params"])),
            Decision::Update { conflicts: vec![] }
        );
        let other = entry(Op::Update, json!({"params": "{\"a\":2}"}), 1);
        assert_eq!(
            decide(tasks(), &other, Some(&live()), &contested(&["params"])),
            Decision::Update {
                conflicts: vec![conflict(
                    "params",
                    Some(json!("{\"a\":1,\"b\":[1,2]}")),
                    Some(json!("{\"a\":2}")),
                    LAST_WRITE_WINS
                )]
            }
        );
    }

    #[test]
    fn updated_at_is_never_recorded() {
        let update = entry(
            Op::Update,
            json!({"updated_at": "2025-01-03T00:00:00.000000Z"}),
            1,
        );
        assert_eq!(
            decide(tasks(), &update, Some(&live()), &contested(&["updated_at"])),
            Decision::Update { conflicts: vec![] }
        );
    }

    #[test]
    fn a_delete_of_a_live_row_wins_and_records_the_contested_values() {
        let delete = entry(Op::Delete, json!({}), 1);
        assert_eq!(
            decide(
                tasks(),
                &delete,
                Some(&live()),
                &contested(&["status", "deleted", "sync_version"])
            ),
            Decision::Delete {
                conflicts: vec![conflict("status", Some(json!("Queued")), None, DELETE_WINS)]
            }
        );
        // An update setting the tombstone is a delete too.
        let tombstoning = entry(Op::Update, json!({"deleted": 1}), 3);
        assert_eq!(
            decide(tasks(), &tombstoning, Some(&live()), &Contested::none()),
            Decision::Delete { conflicts: vec![] }
        );
    }

    #[test]
    fn a_delete_of_a_row_already_gone_does_nothing() {
        let delete = entry(Op::Delete, json!({}), 1);
        let none = Contested::none();
        assert_eq!(
            decide(tasks(), &delete, None, &none),
            Decision::Noop("already gone")
        );
        assert_eq!(
            decide(tasks(), &delete, Some(&tombstone()), &none),
            Decision::Noop("already deleted")
        );
    }

    #[test]
    fn an_update_of_a_tombstone_loses_and_its_values_are_recorded() {
        let update = entry(
            Op::Update,
            json!({"status": "Complete", "task_type": "render"}),
            3,
        );
        assert_eq!(
            decide(tasks(), &update, Some(&tombstone()), &Contested::none()),
            Decision::Lost {
                conflicts: vec![
                    conflict(
                        "status",
                        Some(json!("Complete")),
                        Some(json!("Queued")),
                        DELETE_WINS
                    ),
                    conflict("task_type", Some(json!("render")), None, DELETE_WINS),
                ]
            }
        );
    }

    #[test]
    fn an_insert_over_a_tombstone_recreates_the_row() {
        let insert = entry(Op::Insert, json!({"status": "Queued"}), 0);
        assert_eq!(
            decide(tasks(), &insert, Some(&tombstone()), &Contested::none()),
            Decision::Recreate
        );
    }

    #[test]
    fn an_update_of_a_missing_row_is_refused() {
        let update = entry(Op::Update, json!({"status": "Complete"}), 3);
        assert_eq!(
            decide(tasks(), &update, None, &Contested::none()),
            Decision::Refuse(SyncRefusal::RowMissing {
                table: "tasks".into(),
                id: Uuid::nil()
            })
        );
    }

    #[test]
    fn an_insert_of_a_new_row_inserts() {
        let insert = entry(Op::Insert, json!({"status": "Queued"}), 0);
        assert_eq!(
            decide(tasks(), &insert, None, &Contested::none()),
            Decision::Insert
        );
    }
}
