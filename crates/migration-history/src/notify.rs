//! Live updates addressed to the users a change concerns. Each synced table gets three
//! statement triggers (one per event, as Postgres allows transition tables on a trigger
//! of one event only) calling `dal_sync_notify_{table}()`, which finds the owners of the
//! rows the statement wrote, before and after, over the table's path to `users`, and
//! notifies [`NOTIFY_CHANNEL`] with their ids joined by commas. A sync server wakes only
//! those users' online clients; a statement touching more than [`MAX_NAMED_OWNERS`]
//! owners sends `*`, which wakes everyone, as does the empty payload of the first
//! version's `dal_sync_notify()`.
//!
//! The function is written for the table, with its path in plain SQL (a cached plan, as
//! the removal triggers are), and runs as its owner (`SECURITY DEFINER`, its search path
//! fixed to the tables' schema then `pg_temp`): the writer's rights would miss owners, as
//! a user under row-level security deleting their generation cascades to another user's
//! link to it, whose shot they cannot read, and would refuse the write of a role granted
//! only the table it writes. A statement that changes
//! no row notifies nobody. Postgres folds a transaction's identical notifications into
//! one, delivered at commit.
//!
//! ```
//! use migration_history::notify::owners_of;
//! assert_eq!(owners_of(&[], "dal_new"), "SELECT DISTINCT r.id AS owner FROM dal_new r");
//! assert_eq!(
//!     owners_of(&[("project_id", "projects"), ("user_id", "users")], "dal_old"),
//!     "SELECT DISTINCT a1.\"user_id\" AS owner FROM dal_old r \
//!      JOIN \"projects\" a1 ON a1.id = r.\"project_id\" WHERE a1.\"user_id\" IS NOT NULL"
//! );
//! ```

use sea_orm_migration::prelude::*;

pub use crate::synced::NOTIFY_CHANNEL;

/// The most owners one notification names; past it, it says `*` (everyone). A payload
/// must stay under 8000 bytes, and a uuid and its comma take 37.
pub const MAX_NAMED_OWNERS: usize = 200;

/// The events a table's notify triggers fire on, each with the trigger's name suffix and
/// its transition tables.
const EVENTS: [(&str, &str, &str); 3] = [
    ("INSERT", "inserted", "NEW TABLE AS dal_new"),
    (
        "UPDATE",
        "updated",
        "OLD TABLE AS dal_old NEW TABLE AS dal_new",
    ),
    ("DELETE", "deleted", "OLD TABLE AS dal_old"),
];

/// The names of `table`'s notify triggers.
pub fn trigger_names(table: &str) -> [String; 3] {
    EVENTS.map(|(_, suffix, _)| format!("{table}_sync_notify_{suffix}"))
}

/// The distinct owners of the rows of the transition table `rows` (aliased `r`), over
/// `path` (as [`crate::synced::owner_rule`] takes it: empty for `users` itself). A row
/// whose path is broken (its parent deleted in the same statement's cascade, whose own
/// trigger names the owner) has none.
pub fn owners_of(path: &[(&str, &str)], rows: &str) -> String {
    match path {
        [] => format!("SELECT DISTINCT r.id AS owner FROM {rows} r"),
        [(column, _)] => format!(
            "SELECT DISTINCT r.\"{column}\" AS owner FROM {rows} r WHERE r.\"{column}\" IS NOT NULL"
        ),
        [steps @ .., (last, _)] => {
            let mut from = format!("{rows} r");
            let mut previous = "r".to_owned();
            for (n, (column, table)) in steps.iter().enumerate() {
                let alias = format!("a{}", n + 1);
                from.push_str(&format!(
                    " JOIN \"{table}\" {alias} ON {alias}.id = {previous}.\"{column}\""
                ));
                previous = alias;
            }
            format!(
                "SELECT DISTINCT {previous}.\"{last}\" AS owner FROM {from} WHERE {previous}.\"{last}\" IS NOT NULL"
            )
        }
    }
}

/// The body of `dal_sync_notify_{table}()` (as `pg_proc.prosrc` keeps it).
pub fn function_body(path: &[(&str, &str)]) -> String {
    let count = |owners: String| {
        format!("SELECT count(*), string_agg(owner::text, ',') INTO n, owners FROM ({owners}) s;")
    };
    format!(
        " DECLARE owners text; n bigint; \
         BEGIN \
           IF TG_OP = 'INSERT' THEN {} \
           ELSIF TG_OP = 'DELETE' THEN {} \
           ELSE {} END IF; \
           IF n > 0 THEN \
             PERFORM pg_notify('{NOTIFY_CHANNEL}', CASE WHEN n > {MAX_NAMED_OWNERS} THEN '*' ELSE owners END); \
           END IF; \
           RETURN NULL; \
         END ",
        count(owners_of(path, "dal_new")),
        count(owners_of(path, "dal_old")),
        count(format!(
            "{} UNION {}",
            owners_of(path, "dal_new"),
            owners_of(path, "dal_old")
        )),
    )
}

/// The statements (re)creating `table`'s notify function and triggers, dropping the
/// first version's `{table}_sync_notify` (which woke every client).
pub fn notify_statements(table: &str, path: &[(&str, &str)]) -> Vec<String> {
    let mut statements = vec![
        format!(
            "CREATE OR REPLACE FUNCTION \"dal_sync_notify_{table}\"() RETURNS trigger LANGUAGE plpgsql AS $${}$$",
            function_body(path)
        ),
        // Run as the function's owner (the tables' owner), so the owners of every row are
        // found: a cascade under row-level security removes rows the writer cannot read
        // (another user's link to their generation), and a writer granted only the table
        // it writes may not read the path. Its search path is fixed to the tables' schema
        // with `pg_temp` last, so no caller's objects run with the owner's rights.
        format!(
            "DO $do$ BEGIN EXECUTE format('ALTER FUNCTION %I() SECURITY DEFINER SET search_path = %I, pg_temp', \
             'dal_sync_notify_{table}', current_schema()); END $do$"
        ),
        format!("DROP TRIGGER IF EXISTS \"{table}_sync_notify\" ON \"{table}\""),
    ];
    for ((event, _, transition), name) in EVENTS.iter().zip(trigger_names(table)) {
        statements.push(format!("DROP TRIGGER IF EXISTS \"{name}\" ON \"{table}\""));
        statements.push(format!(
            "CREATE TRIGGER \"{name}\" AFTER {event} ON \"{table}\" REFERENCING {transition} \
             FOR EACH STATEMENT EXECUTE FUNCTION \"dal_sync_notify_{table}\"()"
        ));
    }
    statements
}

/// (Re)creates, on Postgres, `table`'s notify function and triggers from its path to
/// `users` ([`crate::synced::owner_policy`] calls it). Nothing on SQLite.
pub async fn notify_triggers(
    manager: &SchemaManager<'_>,
    table: &str,
    path: &[(&str, &str)],
) -> Result<(), DbErr> {
    crate::synced::on_postgres(manager, notify_statements(table, path)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_path_joins_each_step_and_reads_the_last_column() {
        assert_eq!(
            owners_of(
                &[
                    ("shot_id", "shots"),
                    ("project_id", "projects"),
                    ("user_id", "users")
                ],
                "dal_new"
            ),
            "SELECT DISTINCT a2.\"user_id\" AS owner FROM dal_new r \
             JOIN \"shots\" a1 ON a1.id = r.\"shot_id\" \
             JOIN \"projects\" a2 ON a2.id = a1.\"project_id\" WHERE a2.\"user_id\" IS NOT NULL"
        );
        assert_eq!(
            owners_of(&[("user_id", "users")], "dal_old"),
            "SELECT DISTINCT r.\"user_id\" AS owner FROM dal_old r WHERE r.\"user_id\" IS NOT NULL"
        );
    }
}
