//! Whether a live database agrees with the schema registry (`entities::schema`): the one
//! guard that makes forgetting a step of a schema change loud.
//!
//! For every registry table it compares four encodings of the same facts: the entity's
//! columns (with the sync metadata the registry adds), the live table's columns and
//! foreign keys, the columns the SQLite capture triggers record (Postgres stamps whole
//! rows: its stamp trigger must exist), and on Postgres the owner policy and the function
//! naming the owners a change notifies, which must be the ones [`synced::owner_rule`] and
//! [`notify::function_body`] build from the registry's parent path. A column added
//! to an entity but not to the database, added by a migration but not to the entity, or
//! added to both without rebuilding the capture triggers, is a difference.

use std::collections::BTreeSet;

use entities::schema::Table;
use migration_history::{notify, synced};
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

async fn strings<C: ConnectionTrait>(
    db: &C,
    sql: String,
    column: &str,
) -> Result<Vec<String>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?;
    rows.iter()
        .map(|r| r.try_get::<String>("", column))
        .collect()
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The path from `table` to `users` through first parents, as [`synced::owner_rule`]
/// takes it.
pub fn owner_path(tables: &[Table], table: &Table) -> Vec<(&'static str, &'static str)> {
    let mut path = Vec::new();
    let mut current = table;
    while let Some(parent) = current.parents.first() {
        path.push((parent.column, parent.table));
        match tables.iter().find(|t| t.name == parent.table) {
            Some(next) if path.len() <= tables.len() => current = next,
            _ => break,
        }
    }
    path
}

/// The path to `users` through each parent column of `table`, the first parent's first
/// (as [`synced::owner_check`] takes them): through a parent, then that parent's
/// [`owner_path`].
pub fn parent_paths(tables: &[Table], table: &Table) -> Vec<Vec<(&'static str, &'static str)>> {
    let mut paths = vec![owner_path(tables, table)];
    for parent in table.parents.iter().skip(1) {
        let mut path = vec![(parent.column, parent.table)];
        if let Some(next) = tables.iter().find(|t| t.name == parent.table) {
            path.extend(owner_path(tables, next));
        }
        paths.push(path);
    }
    paths
}

/// How `db` departs from `tables`, one sentence each; empty when they agree.
///
/// `db` must be a transaction (a `dal::UnitOfWork`, a SeaORM `DatabaseTransaction`): on
/// Postgres the policies are compared by printing the registry's rule on a scratch table
/// inside a savepoint that is rolled back, which needs one session throughout (a
/// transaction-mode pooler gives one only inside a transaction).
pub async fn differences<C: ConnectionTrait>(
    db: &C,
    tables: &[Table],
) -> Result<Vec<String>, DbErr> {
    let backend = db.get_database_backend();
    let mut out = Vec::new();
    for table in tables {
        let name = table.name;
        let live_columns = synced::live_columns(db, name).await?;
        if live_columns.is_empty() {
            out.push(format!(
                "table {name} is in the registry but not in the database"
            ));
            continue;
        }
        let live: BTreeSet<&str> = live_columns.iter().map(String::as_str).collect();
        let registered: BTreeSet<&str> = table.columns.iter().map(|c| c.name).collect();
        for column in registered.difference(&live) {
            out.push(format!(
                "{name}.{column} is in the entity (registry) but not in the database"
            ));
        }
        for column in live.difference(&registered) {
            out.push(format!(
                "{name}.{column} is in the database but not in the entity (registry)"
            ));
        }

        let live_parents: BTreeSet<(String, String)> = match backend {
            DbBackend::Sqlite => {
                let sql = format!(
                    "SELECT \"from\" || ' ' || \"table\" AS fk FROM pragma_foreign_key_list({})",
                    quoted(name)
                );
                strings(db, sql, "fk").await?
            }
            _ => {
                let sql = format!(
                    "SELECT a.attname || ' ' || c.confrelid::regclass::text AS fk FROM pg_constraint c \
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
                     WHERE c.contype = 'f' AND c.conrelid = to_regclass({})",
                    quoted(name)
                );
                strings(db, sql, "fk").await?
            }
        }
        .into_iter()
        .filter_map(|fk| fk.split_once(' ').map(|(c, t)| (c.to_owned(), t.trim_matches('"').to_owned())))
        .collect();
        let registered_parents: BTreeSet<(String, String)> = table
            .parents
            .iter()
            .map(|p| (p.column.to_owned(), p.table.to_owned()))
            .collect();
        for (column, parent) in registered_parents.difference(&live_parents) {
            out.push(format!(
                "{name}.{column} references {parent} in the entity but not in the database"
            ));
        }
        for (column, parent) in live_parents.difference(&registered_parents) {
            out.push(format!(
                "{name}.{column} references {parent} in the database but not in the entity"
            ));
        }

        match backend {
            DbBackend::Sqlite => capture_differences(db, table, &mut out).await?,
            _ => postgres_differences(db, tables, table, &mut out).await?,
        }
    }
    Ok(out)
}

/// The SQLite capture triggers must record exactly the registry's data columns.
async fn capture_differences<C: ConnectionTrait>(
    db: &C,
    table: &Table,
    out: &mut Vec<String>,
) -> Result<(), DbErr> {
    let name = table.name;
    let registered: BTreeSet<String> = table.data_columns().map(str::to_owned).collect();
    for op in ["insert", "update"] {
        let trigger = format!("{name}_capture_{op}");
        let sql = strings(
            db,
            format!(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = {}",
                quoted(&trigger)
            ),
            "sql",
        )
        .await?;
        let Some(sql) = sql.first() else {
            out.push(format!("{name}: capture trigger {trigger} is missing"));
            continue;
        };
        // Both triggers name each captured column as `NEW."column"` (the insert in its
        // json_object, the update in its change test), and nothing else that way.
        let captured: BTreeSet<String> = sql
            .split("NEW.\"")
            .skip(1)
            .filter_map(|rest| rest.split_once('"').map(|(c, _)| c.to_owned()))
            .collect();
        for column in registered.difference(&captured) {
            out.push(format!(
                "{name}.{column} is not captured by {trigger} (rebuild it: migration_history::synced::rebuild_capture)"
            ));
        }
        for column in captured.difference(&registered) {
            out.push(format!(
                "{name}.{column} is captured by {trigger} but is not a data column of the registry"
            ));
        }
    }
    Ok(())
}

/// Rows leaving a synced table reach the replicas only through its removal triggers
/// (`synced::removal_triggers`), whose moved trigger must watch the registry's first
/// parent: the step towards the owner.
async fn removal_differences<C: ConnectionTrait>(
    db: &C,
    table: &Table,
    out: &mut Vec<String>,
) -> Result<(), DbErr> {
    let name = table.name;
    let parent = table.parents.first();
    let mut wanted = vec![
        format!("{name}_sync_removal"),
        format!("{name}_sync_truncate"),
    ];
    if parent.is_some() {
        wanted.push(format!("{name}_sync_moved"));
    }
    let live = strings(
        db,
        format!(
            "SELECT tgname::text AS name FROM pg_trigger WHERE tgrelid = to_regclass({})",
            quoted(name)
        ),
        "name",
    )
    .await?;
    for trigger in wanted.iter().filter(|t| !live.contains(t)) {
        out.push(format!(
            "{name}: trigger {trigger} is missing (migration_history::synced::owner_policy creates it)"
        ));
    }
    // The moved trigger watches the first step of the row's path to its owner.
    if let Some(parent) = parent {
        let watched = strings(
            db,
            format!(
                "SELECT a.attname::text AS name FROM pg_trigger t JOIN pg_attribute a \
                 ON a.attrelid = t.tgrelid AND a.attnum = ANY (t.tgattr) \
                 WHERE t.tgrelid = to_regclass({}) AND t.tgname = {}",
                quoted(name),
                quoted(&format!("{name}_sync_moved"))
            ),
            "name",
        )
        .await?;
        if !watched.is_empty() && watched != [parent.column] {
            out.push(format!(
                "{name}: trigger {name}_sync_moved watches {} but the registry's first parent is {} (rebuild it: migration_history::synced::owner_policy)",
                watched.join(", "),
                parent.column
            ));
        }
    }
    Ok(())
}

/// A change reaches its owners' online clients only through the table's notify triggers
/// (`migration_history::notify`), whose function must name the owners over the
/// registry's parent path, as the table's owner (a writer's rights would miss some).
async fn notify_differences<C: ConnectionTrait>(
    db: &C,
    tables: &[Table],
    table: &Table,
    out: &mut Vec<String>,
) -> Result<(), DbErr> {
    let name = table.name;
    let live = strings(
        db,
        format!(
            "SELECT tgname::text AS name FROM pg_trigger WHERE tgrelid = to_regclass({})",
            quoted(name)
        ),
        "name",
    )
    .await?;
    for trigger in notify::trigger_names(name) {
        if !live.contains(&trigger) {
            out.push(format!(
                "{name}: the live-update trigger {trigger} is missing (migration_history::synced::owner_policy creates it)"
            ));
        }
    }
    if live.contains(&format!("{name}_sync_notify")) {
        out.push(format!(
            "{name}: trigger {name}_sync_notify wakes every client on each change (replace it: migration_history::synced::owner_policy)"
        ));
    }
    let function = format!("dal_sync_notify_{name}");
    let found = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT prosrc AS body, prosecdef AS definer FROM pg_proc WHERE proname = {}",
                quoted(&function)
            ),
        ))
        .await?;
    let Some(row) = found.first() else {
        return Ok(());
    };
    if row.try_get::<String>("", "body")? != notify::function_body(&owner_path(tables, table)) {
        out.push(format!(
            "{name}: {function}() does not follow the registry's parent path (rebuild it: migration_history::synced::owner_policy)"
        ));
    }
    if !row.try_get::<bool>("", "definer")? {
        out.push(format!(
            "{name}: {function}() runs with the writer's rights, so it misses owners of rows the writer cannot read (rebuild it: migration_history::synced::owner_policy)"
        ));
    }
    Ok(())
}

/// Postgres stamps every synced row with its version (one trigger per table, whatever the
/// columns), and guards it with the owner policy the registry's parent path gives.
async fn postgres_differences<C: ConnectionTrait>(
    db: &C,
    tables: &[Table],
    table: &Table,
    out: &mut Vec<String>,
) -> Result<(), DbErr> {
    let name = table.name;
    let has = |trigger: String| async move {
        strings(
            db,
            format!(
                "SELECT tgname::text AS name FROM pg_trigger WHERE tgrelid = to_regclass({}) AND tgname = {}",
                quoted(name),
                quoted(&trigger)
            ),
            "name",
        )
        .await
        .map(|found| !found.is_empty())
    };
    if !has(format!("{name}_sync_stamp")).await? {
        out.push(format!(
            "{name}: the sync stamp trigger {name}_sync_stamp is missing"
        ));
    }
    notify_differences(db, tables, table, out).await?;
    removal_differences(db, table, out).await?;
    let policy = format!("{name}_owner");
    let live = strings(
        db,
        format!(
            "SELECT coalesce(pg_get_expr(polqual, polrelid), '') || ' WITH CHECK ' || \
             coalesce(pg_get_expr(polwithcheck, polrelid), '') AS rule FROM pg_policy \
             WHERE polrelid = to_regclass({}) AND polname = {}",
            quoted(name),
            quoted(&policy)
        ),
        "rule",
    )
    .await?;
    let Some(live) = live.first() else {
        out.push(format!(
            "{name}: row-level security policy {policy} is missing"
        ));
        return Ok(());
    };
    // The registry's rule as Postgres prints it: put it on a scratch table of the same
    // shape, in a transaction that is rolled back.
    let (rule, check) = (
        synced::owner_rule(&owner_path(tables, table)),
        synced::owner_check(&parent_paths(tables, table)),
    );
    let probe = format!("dal_registry_probe_{name}");
    db.execute_unprepared("SAVEPOINT dal_registry_probe")
        .await?;
    let printed = async {
        db.execute_unprepared(&format!("CREATE TEMP TABLE {probe} (LIKE {name})"))
            .await?;
        db.execute_unprepared(&format!(
            "CREATE POLICY p ON {probe} USING ({rule}) WITH CHECK ({check})"
        ))
        .await?;
        strings(
            db,
            format!(
                "SELECT pg_get_expr(polqual, polrelid) || ' WITH CHECK ' || \
                 pg_get_expr(polwithcheck, polrelid) AS rule FROM pg_policy WHERE polrelid = to_regclass({})",
                quoted(&probe)
            ),
            "rule",
        )
        .await
    }
    .await;
    db.execute_unprepared("ROLLBACK TO SAVEPOINT dal_registry_probe")
        .await?;
    db.execute_unprepared("RELEASE SAVEPOINT dal_registry_probe")
        .await?;
    let printed = printed?;
    let expected = printed
        .first()
        .map(|r| r.replace(&probe, name))
        .unwrap_or_default();
    if *live != expected {
        out.push(format!(
            "{name}: policy {policy} is `{live}` but the registry's parent path gives `{expected}`"
        ));
    }
    Ok(())
}
