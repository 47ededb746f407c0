//! The plan: every statement adoption runs, every row that needs a decision, and the row
//! counts it starts from. Made inside the adoption's transaction, before anything in the
//! database changes (only temporary tables are written), so the plan printed without
//! `--apply` is exactly what `--apply` runs.

use std::fmt;

use sea_orm_migration::MigratorTrait;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::convert::{conversions, converted_rows, ident};
use super::decide::{self, Decision};
use super::missing_users::{self, MissingUsers};
use super::shape::Shapes;
use super::{postgres, quarantine, sqlite};
use crate::Migrator;
use crate::inspect::Schema;

/// What adopting a draft database will do.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The backend.
    pub backend: DbBackend,
    /// Rows per table before adoption, parents first.
    pub rows: Vec<(String, u64)>,
    /// Rows that cannot satisfy the migrations' constraints: `--apply` refuses while
    /// there are any, `--apply --quarantine` moves them to the quarantine first.
    pub decisions: Vec<Decision>,
    /// SQLite: the statements that stage the converted rows in temporary tables (also run
    /// to make the plan). Empty on Postgres, where conversions are in `statements`.
    /// (Users added by `--add-missing-users` are staged by [`MissingUsers::insert`].)
    pub conversions: Vec<String>,
    /// With `--add-missing-users`: the users added because projects name them.
    pub missing_users: Option<MissingUsers>,
    /// The statements that change the database, in order, in one transaction. When rows
    /// need a decision, the first [`Plan::quarantine_statements`] of them move those rows
    /// to the quarantine (run only with `--quarantine`).
    pub statements: Vec<String>,
    /// How many of `statements`, from the start, move rows to the quarantine.
    pub quarantine_statements: usize,
    /// The migration recorded as applied once the tables match it.
    pub first_migration: String,
    /// The rest of the history, applied afterwards as `migration up` does.
    pub later_migrations: Vec<String>,
    /// Tables outside the schema, left as they are (`migration check` lists them).
    pub left_alone: Vec<String>,
    /// SQLite: the triggers and views on the draft's tables (`trigger <name>`,
    /// `view <name>`), which rebuilding the tables would drop or break: `--apply` refuses
    /// while there are any. Always empty on Postgres, where tables are altered in place.
    pub dependents: Vec<String>,
}

/// The adoption's time as SQL: Postgres's transaction time, or a fixed text on SQLite
/// (whose `'now'` changes between statements).
pub(crate) fn now_sql(backend: DbBackend) -> String {
    match backend {
        DbBackend::Postgres => "now()".to_owned(),
        _ => format!("'{}'", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ")),
    }
}

async fn run<C: ConnectionTrait>(db: &C, statements: &[String]) -> Result<(), DbErr> {
    for sql in statements {
        db.execute_unprepared(sql).await?;
    }
    Ok(())
}

/// Counts the rows of each table of `order`.
pub(crate) async fn count_rows<C: ConnectionTrait>(
    db: &C,
    order: &[String],
) -> Result<Vec<(String, u64)>, DbErr> {
    let mut out = Vec::new();
    for table in order {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT count(*) AS n FROM {}", ident(table)),
            ))
            .await?
            .ok_or_else(|| DbErr::Custom(format!("no count for {table}")))?;
        let n: i64 = row.try_get("", "n")?;
        out.push((table.clone(), u64::try_from(n).unwrap_or(0)));
    }
    Ok(out)
}

/// Makes the plan for the draft database `live` (inside the adoption's transaction):
/// stages and checks the rows, counts them, and lists the statements.
pub(crate) async fn prepare<C: ConnectionTrait>(
    db: &C,
    live: &Schema,
    shapes: &Shapes,
    left_alone: Vec<String>,
    now: &str,
    add_missing_users: bool,
) -> Result<Plan, DbErr> {
    let backend = live.backend;
    let order = shapes.table_order();
    let table_conversions: Vec<_> = order
        .iter()
        .map(|t| {
            (
                t.clone(),
                conversions(backend, t, &live.tables[t], &shapes.target.tables[t], now),
            )
        })
        .collect();
    let conversions_of = |t: &str| {
        table_conversions
            .iter()
            .find(|(name, _)| name == t)
            .map(|(_, c)| c.as_slice())
            .unwrap_or_default()
    };

    let mut staging = Vec::new();
    if backend == DbBackend::Sqlite {
        for (table, convs) in &table_conversions {
            staging.extend(sqlite::stage(table, &shapes.target.tables[table], convs));
        }
    }
    run(db, &decide::create_statements(backend)).await?;
    run(db, &staging).await?;
    let converted = |t: &str| match backend {
        DbBackend::Postgres => format!("({})", converted_rows(backend, t, conversions_of(t))),
        _ => sqlite::staging(t),
    };
    let users = &shapes.target.tables[missing_users::USERS];
    let missing = if add_missing_users {
        Some(missing_users::find(db, users, &converted, now).await?)
    } else {
        None
    };
    // The row checks see the users to add: staged with the others on SQLite, added to
    // the converted users here on Postgres.
    let relation = |t: &str| match backend {
        DbBackend::Postgres if missing.is_some() && t == missing_users::USERS => {
            missing_users::with_added(&converted(t), users)
        }
        _ => converted(t),
    };
    for table in &order {
        run(
            db,
            &decide::statements(backend, table, &shapes.target.tables[table], &relation),
        )
        .await?;
    }
    let decisions = decide::read(db, &order).await?;
    let dependents = match backend {
        DbBackend::Sqlite => sqlite::dependents(db, &order).await?,
        _ => Vec::new(),
    };
    let rows = count_rows(db, &order).await?;

    let mut statements = Vec::new();
    if !decisions.is_empty() {
        statements.extend(quarantine::create(backend));
        for table in order.iter().rev() {
            if decisions.iter().any(|d| d.table == *table) {
                statements.extend(quarantine::move_rows(
                    backend,
                    table,
                    &live.tables[table],
                    now,
                ));
            }
        }
    }
    let quarantine_statements = statements.len();
    match backend {
        DbBackend::Postgres => {
            for (table, convs) in &table_conversions {
                statements.extend(postgres::statements(
                    table,
                    &live.tables[table],
                    &shapes.target.tables[table],
                    convs,
                ));
                if let Some(m) = missing.as_ref().filter(|_| table == missing_users::USERS) {
                    // After `users` gained its columns, before `projects` gains its key.
                    statements.push(m.insert.clone());
                }
            }
        }
        _ => {
            for table in &order {
                statements.extend(
                    sqlite::create_and_copy(table, &shapes.target.tables[table])
                        .map_err(DbErr::Custom)?,
                );
            }
            statements.extend(order.iter().rev().map(|t| sqlite::drop_old(t)));
            statements.extend(order.iter().map(|t| sqlite::rename(t)));
            for table in &order {
                statements.extend(shapes.target.tables[table].indexes.values().cloned());
            }
        }
    }
    let mut names = Migrator::migrations()
        .into_iter()
        .map(|m| m.name().to_owned());
    let first_migration = names.next().unwrap_or_default();
    Ok(Plan {
        backend,
        rows,
        decisions,
        conversions: staging,
        missing_users: missing,
        statements,
        quarantine_statements,
        first_migration,
        later_migrations: names.collect(),
        left_alone,
        dependents,
    })
}

impl Plan {
    /// The decisions as lines, grouped by table with a count.
    pub fn decision_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut current = "";
        for d in &self.decisions {
            if d.table != current {
                current = &d.table;
                let n = self.decisions.iter().filter(|x| x.table == d.table).count();
                out.push(format!(
                    "{}: {n} row{}",
                    d.table,
                    if n == 1 { "" } else { "s" }
                ));
            }
            out.push(format!("  {}  {}", d.row_id, d.reasons.join("; ")));
        }
        out
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match self.backend {
            DbBackend::Postgres => "Postgres",
            _ => "SQLite",
        };
        writeln!(
            f,
            "This {backend} database has the product's draft schema. Adoption plan (nothing has changed; run with --apply to apply it):"
        )?;
        writeln!(f, "\nRows now:")?;
        for (table, n) in &self.rows {
            writeln!(f, "  {table:<18} {n}")?;
        }
        if self.decisions.is_empty() {
            writeln!(f, "\nRows that need a decision: none")?;
        } else {
            writeln!(
                f,
                "\nRows that need a decision: {} (they cannot satisfy the new constraints)",
                self.decisions.len()
            )?;
            for line in self.decision_lines() {
                writeln!(f, "  {line}")?;
            }
            writeln!(
                f,
                "--apply refuses while any remain; --apply --quarantine first moves them to {} (statements 1-{}).",
                quarantine::TABLE,
                self.quarantine_statements
            )?;
        }
        if let Some(missing) = &self.missing_users {
            missing.describe(f, &self.statements)?;
        }
        if !self.left_alone.is_empty() {
            writeln!(
                f,
                "\nLeft alone (not part of the schema; `migration check` will list them): {}",
                self.left_alone.join(", ")
            )?;
        }
        if !self.dependents.is_empty() {
            writeln!(
                f,
                "\nTriggers and views on the draft's tables: {}\n--apply refuses while any remain: rebuilding the tables would drop or break them. \
                 Drop them (their SQL is in sqlite_master), adopt, then recreate them.",
                self.dependents.join(", ")
            )?;
        }
        if !self.conversions.is_empty() {
            writeln!(
                f,
                "\nConversion: the rows are converted into temporary tables (run for this plan too):"
            )?;
            for sql in &self.conversions {
                writeln!(f, "  {sql};")?;
            }
        }
        writeln!(f, "\nStatements, all in one transaction:")?;
        for (i, sql) in self.statements.iter().enumerate() {
            writeln!(f, "  {:>3}. {sql};", i + 1)?;
        }
        writeln!(
            f,
            "  then record {} as applied (seaql_migrations, and its checksum in {}),",
            self.first_migration,
            crate::checksum::TABLE
        )?;
        if self.later_migrations.is_empty() {
            writeln!(f, "  and commit.")
        } else {
            writeln!(
                f,
                "  apply the rest of the history as `migration up` does ({}),\n  check the result against the history, and commit.",
                self.later_migrations.join(", ")
            )
        }
    }
}
