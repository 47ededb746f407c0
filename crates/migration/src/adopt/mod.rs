//! `migration adopt`: takes over a database that already has the product's draft schema
//! (dual-database-design.md §3 on Supabase, or a Drizzle-made `local.db`, §9) and the data
//! in it, so that from then on the migration history manages it.
//!
//! Adoption turns the draft into exactly what the history's *first* migration creates,
//! checks that against a scratch database migrated to just that migration, records it as
//! applied (with its checksum), and then lets the ordinary history apply every later
//! migration, all in one transaction. Later migrations are never listed here, so adoption
//! stays right as the history grows.
//!
//! * `shape`: is this the draft, the history, or neither?
//! * `convert`: each column's value in the new schema (backfills, SQLite conversions).
//! * `decide`: rows that cannot satisfy the new constraints (orphans, bad values).
//! * `missing_users`: `--add-missing-users`, id-only users for projects that name them.
//! * `postgres` / `sqlite`: altering in place / rebuilding tables.
//! * [`quarantine`]: where `--quarantine` moves the rows that need a decision.
//! * `plan` / `apply`: the plan printed without `--apply`, and running it.
//!
//! Without `--apply` nothing changes: the plan is made in a transaction that is rolled
//! back (it only writes temporary tables). The transaction is the one every migration
//! command runs in ([`crate::locked::in_locked_transaction_then`]): on Postgres it holds
//! the same advisory lock as `dal::Database::migrate`; on SQLite `--apply` takes the
//! write lock up front (`BEGIN IMMEDIATE`). Behind a transaction-mode pooler nothing
//! outlives it: it starts and ends with `DEALLOCATE ALL` (SeaORM's statements are named),
//! sets the statement timeout with `SET LOCAL`, and its temporary tables are `ON COMMIT
//! DROP` (gone on rollback too); the reference schemas are scratch schemas that each live
//! inside one transaction of their own ([`crate::scratch`]).

mod apply;
mod convert;
mod decide;
mod missing_users;
mod plan;
mod postgres;
pub mod quarantine;
mod shape;
mod sqlite;

use std::fmt;

use dal_config::{Backend, Config, ConnectError};
use sea_orm_migration::sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement,
};

use crate::locked::{self, Finish, Route};

pub use apply::Applied;
pub use decide::Decision;
pub use missing_users::{AddedUser, MissingUsers};
pub use plan::Plan;
pub use shape::{DRAFT_POSTGRES, DRAFT_SQLITE};

/// `migration adopt [--apply] [--quarantine] [--add-missing-users]`.
#[derive(clap::Args, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdoptOptions {
    /// Apply the plan, in one transaction. Without it, only print the plan.
    #[arg(long)]
    pub apply: bool,
    /// Move rows that cannot satisfy the new constraints to the `dal_adopt_quarantine`
    /// table (with the row as JSON and the reason) instead of refusing.
    #[arg(long)]
    pub quarantine: bool,
    /// Add an id-only user for every uuid that projects name as `user_id` but that has no
    /// `users` row (on Postgres with an `auth.users` table: only the ids found there),
    /// instead of leaving those projects to a decision.
    #[arg(long)]
    pub add_missing_users: bool,
}

/// What `adopt` found or did.
#[derive(Debug)]
pub enum Outcome {
    /// The database already has the whole history applied and matches it: nothing to do.
    Current,
    /// The plan, without `--apply`: nothing changed.
    Planned(Plan),
    /// The plan was applied and committed.
    Applied(Applied),
}

/// Why `adopt` changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// The database is neither the draft nor managed by the history.
    #[error(
        "refusing to adopt: this database matches neither the product's draft schema nor the migration history (nothing was changed):{}",
        bullets(.0)
    )]
    NotDraft(Vec<String>),
    /// The database already has a migration history, but is behind or differs from it.
    #[error(
        "refusing to adopt: this database already has a migration history; `migration up` applies what is pending and `migration check` shows the rest (nothing was changed):{}",
        bullets(.0)
    )]
    Managed(Vec<String>),
    /// `--apply` without `--quarantine`, and rows need a decision.
    #[error(
        "refusing to apply: {} row(s) cannot satisfy the new constraints (nothing was changed). \
         Fix or delete them yourself, or re-run with --quarantine to move them to {}:{}",
        .0.decisions.len(), quarantine::TABLE, indented(&.0.decision_lines())
    )]
    NeedsDecision(Box<Plan>),
    /// SQLite: triggers or views refer to the draft's tables, and rebuilding the tables
    /// would drop the triggers and break the views.
    #[error(
        "refusing to apply: adoption rebuilds the draft's tables on SQLite, which would drop or break these triggers and views (nothing was changed). \
         Drop them (their SQL is in sqlite_master), adopt, then recreate them:{}",
        bullets(.0)
    )]
    Dependents(Vec<String>),
    /// Rows would be quarantined, but tables outside the schema refer to the schema's
    /// tables by foreign key.
    #[error(
        "refusing to quarantine: tables outside the schema refer to its rows, so moving rows away would break or cascade into them (nothing was changed):{}",
        bullets(.0)
    )]
    ReferencedFromOutside(Vec<String>),
    /// The result did not match the history (a bug): rolled back.
    #[error(
        "adoption did not produce the migration history's schema, so it was rolled back (nothing was changed):{}",
        bullets(.0)
    )]
    Verification(Vec<String>),
    /// The database could not be opened.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A statement failed: rolled back.
    #[error("adoption failed and was rolled back (nothing was changed): {0}")]
    Database(DbErr),
}

impl From<DbErr> for AdoptError {
    fn from(e: DbErr) -> Self {
        AdoptError::Database(e)
    }
}

fn bullets(lines: &[String]) -> String {
    lines.iter().map(|l| format!("\n  - {l}")).collect()
}

fn indented(lines: &[String]) -> String {
    lines.iter().map(|l| format!("\n  {l}")).collect()
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Current => writeln!(
                f,
                "Nothing to do: this database already has every migration applied and matches the history."
            ),
            Outcome::Planned(plan) => write!(f, "{plan}"),
            Outcome::Applied(applied) => write!(f, "{applied}"),
        }
    }
}

/// Adopts the database `config` names: prints nothing, returns what it found or did.
///
/// Without `options.apply` it only makes the plan. With it, it applies the plan in one
/// transaction, refusing when rows need a decision unless `options.quarantine`. With
/// `options.add_missing_users`, users that projects name but that have no row are added
/// first (see [`MissingUsers`]), so those projects need no decision.
pub async fn adopt(config: &Config, options: AdoptOptions) -> Result<Outcome, AdoptError> {
    // The reference schemas come from scratch databases, before the live one is locked.
    let shapes = shape::Shapes::load(config).await?;
    // One connection: `foreign_keys` is per connection on SQLite.
    let db = dal_config::connect(&config.clone().with_max_connections(1)).await?;
    let sqlite = config.backend() == Backend::Sqlite;
    let result = async {
        if sqlite && options.apply {
            db.execute_unprepared("PRAGMA foreign_keys = OFF").await?;
        }
        run(&db, Route::of(config), shapes, options).await
    }
    .await;
    if sqlite && options.apply {
        // Best effort: the connection is closed next anyway.
        let _ = db.execute_unprepared("PRAGMA foreign_keys = ON").await;
    }
    db.close().await?;
    result
}

/// The adoption's one transaction, as every migration command runs it
/// ([`locked::in_locked_transaction_then`]): the migration lock, and behind a
/// transaction-mode pooler `SET LOCAL statement_timeout` and no prepared statement left on
/// the server session. Committed only when the plan was applied.
async fn run(
    db: &DatabaseConnection,
    route: Route,
    shapes: shape::Shapes,
    options: AdoptOptions,
) -> Result<Outcome, AdoptError> {
    let (outcome, _) = locked::in_locked_transaction_then(
        db,
        route,
        options.apply,
        move |tx| Box::pin(async move { in_transaction(tx, &shapes, options).await }),
        |(_, finish)| *finish,
    )
    .await?;
    Ok(outcome)
}

/// Everything inside the transaction; returns the outcome and how the transaction ends.
async fn in_transaction(
    tx: &DatabaseTransaction,
    shapes: &shape::Shapes,
    options: AdoptOptions,
) -> Result<(Outcome, Finish), AdoptError> {
    let backend = tx.get_database_backend();
    if backend == DbBackend::Sqlite && options.apply {
        let row = tx
            .query_one_raw(Statement::from_string(backend, "PRAGMA foreign_keys"))
            .await?;
        let on: i64 = row
            .map(|r| r.try_get("", "foreign_keys"))
            .transpose()?
            .unwrap_or(1);
        if on != 0 {
            return Err(AdoptError::Database(DbErr::Custom(
                "foreign_keys is still on for the adoption's connection".into(),
            )));
        }
    }
    let (live, left_alone) = match shape::classify(tx, shapes).await? {
        shape::State::Current => return Ok((Outcome::Current, Finish::Rollback)),
        shape::State::Managed(problems) => return Err(AdoptError::Managed(problems)),
        shape::State::Neither(differences) => return Err(AdoptError::NotDraft(differences)),
        shape::State::Draft { live, extra } => (live, extra),
    };
    let now = plan::now_sql(backend);
    let plan = plan::prepare(
        tx,
        &live,
        shapes,
        left_alone,
        &now,
        options.add_missing_users,
    )
    .await?;
    if !options.apply {
        return Ok((Outcome::Planned(plan), Finish::Rollback));
    }
    if !plan.dependents.is_empty() {
        return Err(AdoptError::Dependents(plan.dependents));
    }
    if !plan.decisions.is_empty() {
        if !options.quarantine {
            return Err(AdoptError::NeedsDecision(Box::new(plan)));
        }
        // Postgres: from any schema; SQLite has only the one.
        let outside = match backend {
            DbBackend::Postgres => postgres::outside_references(tx, &shapes.target).await?,
            _ => shape::outside_references(&live, &shapes.target),
        };
        if !outside.is_empty() {
            return Err(AdoptError::ReferencedFromOutside(outside));
        }
    }
    let applied = apply::apply(tx, plan, shapes).await?;
    Ok((Outcome::Applied(applied), Finish::Commit))
}
