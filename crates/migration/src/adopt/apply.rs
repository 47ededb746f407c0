//! Running a plan inside the adoption's transaction, then proving the result: the tables
//! must match the first migration exactly before it is recorded as applied, the whole
//! database must match the history after the rest of it ran, and every row must be
//! accounted for. Any failure rolls the whole adoption back.
//!
//! The draft's own triggers, functions and row-level security policies (a Supabase
//! `updated_at` stamp, say) are kept as they were: neither proof counts them, and
//! `migration check` names them afterwards as not in the migrations.

use std::fmt;

use sea_orm_migration::sea_orm::{
    ActiveValue, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, Statement,
};
use sea_orm_migration::{MigratorTrait, seaql_migrations};

use super::AdoptError;
use super::plan::{Plan, count_rows};
use super::quarantine;
use super::shape::Shapes;
use crate::inspect::{Schema, Table, inspect};
use crate::{Migrator, checksum};

/// What an applied adoption did.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The plan it ran.
    pub plan: Plan,
    /// Rows per table afterwards, parents first.
    pub rows_after: Vec<(String, u64)>,
    /// Rows moved to the quarantine, per table.
    pub quarantined: Vec<(String, u64)>,
    /// Rows added, per table: the users `--add-missing-users` added (0 elsewhere).
    pub added: Vec<(String, u64)>,
    /// The number of migrations in the history, all applied now.
    pub migrations: usize,
}

/// Runs `plan` and the history, and checks the result. The caller commits.
pub(crate) async fn apply(
    db: &DatabaseTransaction,
    plan: Plan,
    shapes: &Shapes,
) -> Result<Applied, AdoptError> {
    let drafts_own = inspect(db).await?;
    for sql in &plan.statements {
        db.execute_unprepared(sql).await?;
    }
    let order = shapes.table_order();
    let tables = only(&inspect(db).await?, &order);
    let mut problems = tables.differences(&shapes.target);
    if plan.backend == DbBackend::Sqlite {
        for (name, table) in &tables.tables {
            if table.create_sql != shapes.target.tables[name].create_sql {
                problems.push(format!(
                    "{name}: the rebuilt table's DDL differs from the migration's"
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(AdoptError::Verification(problems));
    }

    Migrator::install(db).await?;
    seaql_migrations::Entity::insert(seaql_migrations::ActiveModel {
        version: ActiveValue::Set(plan.first_migration.clone()),
        applied_at: ActiveValue::Set(chrono::Utc::now().timestamp()),
    })
    .exec(db)
    .await?;
    checksum::record(db).await?;
    Migrator::up(db, None).await?;
    checksum::record(db).await?;

    let mut problems = checksum::verify(db).await?;
    problems.extend(
        without_drafts_own(inspect(db).await?, &drafts_own, &shapes.full)
            .differences(&shapes.full)
            .into_iter()
            .filter(|p| {
                !plan
                    .left_alone
                    .iter()
                    .any(|t| *p == format!("table {t} is not in the migrations"))
            }),
    );
    if plan.backend == DbBackend::Sqlite {
        let broken = db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT \"table\" AS t, rowid AS r, parent AS p FROM pragma_foreign_key_check",
            ))
            .await?;
        for row in broken {
            let table: String = row.try_get("", "t")?;
            let parent: String = row.try_get("", "p")?;
            problems.push(format!("{table}: a row refers to a missing {parent} row"));
        }
    }
    if !problems.is_empty() {
        return Err(AdoptError::Verification(problems));
    }

    let rows_after = count_rows(db, &order).await?;
    let quarantined: Vec<(String, u64)> = order
        .iter()
        .map(|t| {
            let n = plan.decisions.iter().filter(|d| d.table == *t).count();
            (t.clone(), n as u64)
        })
        .collect();
    let added: Vec<(String, u64)> = order
        .iter()
        .map(|t| {
            let n = match &plan.missing_users {
                Some(m) if t == super::missing_users::USERS => m.added.len(),
                _ => 0,
            };
            (t.clone(), n as u64)
        })
        .collect();
    let mut unbalanced = Vec::new();
    for ((((table, before), (_, after)), (_, moved)), (_, new)) in plan
        .rows
        .iter()
        .zip(&rows_after)
        .zip(&quarantined)
        .zip(&added)
    {
        if before + new != after + moved {
            unbalanced.push(format!(
                "{table}: {before} rows before, {new} added, {after} after and {moved} quarantined"
            ));
        }
    }
    if !unbalanced.is_empty() {
        return Err(AdoptError::Verification(unbalanced));
    }
    Ok(Applied {
        plan,
        rows_after,
        quarantined,
        added,
        migrations: Migrator::migrations().len(),
    })
}

/// `schema` reduced to the tables of `order`, and to what the first migration makes of
/// them: columns, constraints and indexes (it makes no trigger or policy, and the draft's
/// own are kept).
fn only(schema: &Schema, order: &[String]) -> Schema {
    Schema::of_tables(
        schema.backend,
        schema
            .tables
            .iter()
            .filter(|(name, _)| order.contains(name))
            .map(|(n, t)| {
                let table = Table {
                    triggers: Default::default(),
                    policies: Default::default(),
                    row_security: false,
                    force_row_security: false,
                    ..t.clone()
                };
                (n.clone(), table)
            })
            .collect(),
    )
}

/// `adopted` without the triggers, policies and functions the draft had (`draft`) and the
/// history does not make (`history`): adoption keeps them as they were.
fn without_drafts_own(mut adopted: Schema, draft: &Schema, history: &Schema) -> Schema {
    for (name, table) in &mut adopted.tables {
        let (Some(before), Some(wanted)) = (draft.tables.get(name), history.tables.get(name))
        else {
            continue;
        };
        table
            .triggers
            .retain(|t, _| wanted.triggers.contains_key(t) || !before.triggers.contains_key(t));
        table
            .policies
            .retain(|p, _| wanted.policies.contains_key(p) || !before.policies.contains_key(p));
    }
    adopted
        .functions
        .retain(|f, _| history.functions.contains_key(f) || !draft.functions.contains_key(f));
    adopted
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Adopted: the database now matches the migration history (all {} migrations applied, in one transaction).",
            self.migrations
        )?;
        // The `added` column only with --add-missing-users: the output is as before without.
        let adding = self.plan.missing_users.is_some();
        let added = |n: &dyn fmt::Display| {
            if adding {
                format!(" {:>8}", n.to_string())
            } else {
                String::new()
            }
        };
        writeln!(
            f,
            "\n  {:<18} {:>8} {:>8} {:>12}{}",
            "table",
            "before",
            "after",
            "quarantined",
            added(&"added")
        )?;
        for ((((table, before), (_, after)), (_, moved)), (_, new)) in self
            .plan
            .rows
            .iter()
            .zip(&self.rows_after)
            .zip(&self.quarantined)
            .zip(&self.added)
        {
            writeln!(
                f,
                "  {table:<18} {before:>8} {after:>8} {moved:>12}{}",
                added(new)
            )?;
        }
        let moved: u64 = self.quarantined.iter().map(|(_, n)| n).sum();
        if moved > 0 {
            writeln!(
                f,
                "\n{moved} row{} moved to {} (table_name, row_id, row_data, reason, quarantined_at).",
                if moved == 1 { "" } else { "s" },
                quarantine::TABLE
            )?;
        }
        for (((table, before), (_, after)), (_, new)) in self
            .plan
            .rows
            .iter()
            .zip(&self.rows_after)
            .zip(&self.added)
            .filter(|(_, (_, new))| *new > 0)
        {
            writeln!(
                f,
                "{table}: {before} before, {after} after, {new} added (id only, named by projects; --add-missing-users)."
            )?;
        }
        if let Some(m) = self
            .plan
            .missing_users
            .as_ref()
            .filter(|m| !m.not_in_auth.is_empty())
        {
            writeln!(
                f,
                "Not added (not in auth.users): {}.",
                m.not_in_auth.join(", ")
            )?;
        }
        if !self.plan.left_alone.is_empty() {
            writeln!(
                f,
                "Left alone: {} (`migration check` lists them).",
                self.plan.left_alone.join(", ")
            )?;
        }
        Ok(())
    }
}
