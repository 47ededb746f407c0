//! The migration commands, as a library so tests drive exactly what the binary runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use dal_config::{AppEnv, Config, ConnectError};
use sea_orm_migration::sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement,
};
use sea_orm_migration::{MigrationStatus, MigratorTrait};

use crate::locked::{self, Route};
use crate::{Migrator, checksum, inspect, scratch};

/// `migration [--dangerously-drop-web-data] <command>`.
#[derive(Parser, Debug)]
#[command(
    name = "migration",
    about = "Apply, inspect and check the schema's migration history"
)]
pub struct Cli {
    /// Allow commands that drop tables (down, fresh, refresh, reset) on an APP_ENV=web
    /// database. On Supabase, `fresh` drops every table in the `public` schema.
    #[arg(long, global = true)]
    pub dangerously_drop_web_data: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Every command.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Commands that apply or roll back migrations.
    #[command(flatten)]
    Migrate(MigrateCommand),
    /// Scaffold a new migration file and add it to the history.
    Generate {
        /// What it does, in snake_case, e.g. `add_task_priority`.
        name: String,
        /// The history crate's `src` directory (`crates/migration-history/src`).
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../migration-history/src"))]
        dir: PathBuf,
    },
    /// Print the DDL the migration history produces on a backend (from a scratch database).
    Schema {
        /// Which backend. `postgres` needs APP_ENV=web: a scratch schema is created in the
        /// configured database and dropped again.
        #[arg(long, value_enum)]
        backend: SchemaBackend,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare the configured database with the migration history; exit 1 on a difference.
    Check,
    /// Take over a database that has the product's draft schema (print the plan; apply it
    /// with --apply).
    Adopt(crate::adopt::AdoptOptions),
    /// Print TypeScript types for the schema.
    Typescript {
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write each migration as a Supabase CLI migration file (`supabase db push`). Needs
    /// APP_ENV=web: the migrations run there in a transaction that is rolled back.
    Supabase {
        /// The directory to write into, e.g. `supabase/migrations`.
        #[arg(long)]
        out: PathBuf,
    },
}

/// The backends `schema` can describe.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaBackend {
    /// SQLite.
    Sqlite,
    /// Postgres.
    Postgres,
}

/// A command that applies or rolls back migrations.
#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrateCommand {
    /// Apply pending migrations (all, or the next N).
    Up {
        /// How many to apply.
        #[arg(short = 'n', long)]
        num: Option<u32>,
    },
    /// Roll back applied migrations (the last one, or the last N).
    Down {
        /// How many to roll back.
        #[arg(short = 'n', long, default_value_t = 1)]
        num: u32,
    },
    /// List every migration and whether it is applied.
    Status,
    /// Drop every table in the database, then apply all migrations.
    Fresh,
    /// Roll back every applied migration, then apply all migrations.
    Refresh,
    /// Roll back every applied migration.
    Reset,
}

impl MigrateCommand {
    /// Whether the command drops tables and so needs confirmation on a web database.
    pub fn drops_data(self) -> bool {
        matches!(
            self,
            MigrateCommand::Down { .. }
                | MigrateCommand::Fresh
                | MigrateCommand::Refresh
                | MigrateCommand::Reset
        )
    }

    /// The command's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MigrateCommand::Up { .. } => "up",
            MigrateCommand::Down { .. } => "down",
            MigrateCommand::Status => "status",
            MigrateCommand::Fresh => "fresh",
            MigrateCommand::Refresh => "refresh",
            MigrateCommand::Reset => "reset",
        }
    }
}

/// A migration's name and whether it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    /// The migration's name, e.g. `m20250601_000001_initial_schema`.
    pub name: String,
    /// Whether it is applied.
    pub applied: bool,
}

/// Why a command did not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A destructive command against a web database without the confirmation flag.
    #[error(
        "refusing to run `{command}` against the APP_ENV=web database {target}: it drops tables and their data. \
         Re-run with --dangerously-drop-web-data if that is what you mean."
    )]
    Refused {
        /// The command.
        command: &'static str,
        /// The database (password hidden).
        target: String,
    },
    /// A command that changes the schema, against a SQLite database opened read-only.
    #[error("refusing to run `{command}` against {target}: it is opened read-only")]
    ReadOnly {
        /// The command.
        command: &'static str,
        /// The database.
        target: String,
    },
    /// The command needs a Postgres database and the configuration names none.
    #[error(
        "`schema --backend postgres` needs APP_ENV=web and a DATABASE_URL (a scratch schema is created there and dropped)"
    )]
    NeedsPostgres,
    /// The database could not be opened.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The migrator failed.
    #[error("{0}")]
    Migration(#[from] DbErr),
}

/// Runs `command` on the database `config` names and returns the status afterwards.
///
/// Destructive commands on `APP_ENV=web` need `confirmed` (the
/// `--dangerously-drop-web-data` flag).
pub async fn execute(
    config: &Config,
    command: MigrateCommand,
    confirmed: bool,
) -> Result<Vec<MigrationState>, CliError> {
    if config.app_env == AppEnv::Web && command.drops_data() && !confirmed {
        return Err(CliError::Refused {
            command: command.name(),
            target: config.describe_target(),
        });
    }
    let read_only = matches!(
        config.target,
        dal_config::DatabaseTarget::Sqlite { mode, .. } if mode.is_read_only()
    );
    if read_only && command != MigrateCommand::Status {
        return Err(CliError::ReadOnly {
            command: command.name(),
            target: config.describe_target(),
        });
    }
    let db = open(config).await?;
    let result = run(&db, Route::of(config), command).await;
    db.close().await?;
    result
}

/// One connection: a command is one transaction, and needs no more.
async fn open(config: &Config) -> Result<DatabaseConnection, CliError> {
    Ok(dal_config::connect(&config.clone().with_max_connections(1)).await?)
}

async fn run(
    db: &DatabaseConnection,
    route: Route,
    command: MigrateCommand,
) -> Result<Vec<MigrationState>, CliError> {
    if command == MigrateCommand::Status && route == Route::Session {
        return Ok(status(db).await?);
    }
    // Every command that writes runs as `dal::Database::migrate` does: in one transaction
    // holding the migration lock, so it serialises with every other migrator and a failure
    // leaves nothing behind. Behind a transaction-mode pooler a statement outside a
    // transaction may run on any server session, so `status` is one such transaction too.
    Ok(locked::in_locked_transaction(db, route, move |tx| {
        Box::pin(async move {
            apply(tx, command).await?;
            status(tx).await
        })
    })
    .await?)
}

/// Applies `command` and records the checksums of what is applied afterwards. It takes the
/// transaction [`locked::in_locked_transaction`] holds: no write runs without the lock.
async fn apply(tx: &DatabaseTransaction, command: MigrateCommand) -> Result<(), DbErr> {
    match command {
        // Exactly what `locked::up` (and so `dal::Database::migrate`) runs.
        MigrateCommand::Up { num } => return locked::apply_pending(tx, num).await,
        MigrateCommand::Down { num } => Migrator::down(tx, Some(num)).await?,
        MigrateCommand::Status => return Ok(()),
        MigrateCommand::Fresh => {
            if tx.get_database_backend() == DbBackend::Sqlite {
                drop_sqlite_tables_children_first(tx).await?;
            }
            Migrator::fresh(tx).await?
        }
        MigrateCommand::Refresh => Migrator::refresh(tx).await?,
        MigrateCommand::Reset => Migrator::reset(tx).await?,
    }
    checksum::record(tx).await
}

/// Drops every SQLite table, each after the tables that reference it. sea-orm-migration's
/// `fresh` switches foreign keys off around its drops, which SQLite ignores inside a
/// transaction; with them on, dropping a table first deletes its rows and follows the
/// foreign keys of the tables referencing it, which must not be gone by then ("no such
/// table"). Should the references form a cycle, the rest is dropped with the checks
/// deferred to the commit, by when every table is made again, empty.
async fn drop_sqlite_tables_children_first(tx: &DatabaseTransaction) -> Result<(), DbErr> {
    let rows = tx
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT m.name AS child, f.\"table\" AS parent FROM sqlite_master AS m \
             LEFT JOIN pragma_foreign_key_list(m.name) AS f \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        ))
        .await?;
    // Each table and the other tables it references.
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in rows {
        let child: String = row.try_get("", "child")?;
        let parent: Option<String> = row.try_get("", "parent")?;
        let entry = parents.entry(child.clone()).or_default();
        if let Some(parent) = parent.filter(|p| *p != child) {
            entry.insert(parent);
        }
    }
    while !parents.is_empty() {
        let unreferenced = parents
            .keys()
            .find(|t| !parents.values().any(|ps| ps.contains(*t)))
            .cloned();
        let table = match unreferenced {
            Some(table) => table,
            None => {
                tx.execute_unprepared("PRAGMA defer_foreign_keys = ON")
                    .await?;
                parents.keys().next().cloned().expect("not empty")
            }
        };
        tx.execute_unprepared(&format!("DROP TABLE \"{}\"", table.replace('"', "\"\"")))
            .await?;
        parents.remove(&table);
    }
    Ok(())
}

/// Every migration of the history and whether `db` has it applied.
pub async fn status<C: ConnectionTrait>(db: &C) -> Result<Vec<MigrationState>, DbErr> {
    Ok(Migrator::get_migration_with_status(db)
        .await?
        .iter()
        .map(|m| MigrationState {
            name: m.name().to_owned(),
            applied: m.status() == MigrationStatus::Applied,
        })
        .collect())
}

/// The DDL the migration history produces on `backend`; `config` names the Postgres
/// database to make a scratch schema in.
pub async fn schema(backend: SchemaBackend, config: Option<&Config>) -> Result<String, CliError> {
    let like = match backend {
        SchemaBackend::Sqlite => Config::sqlite("scratch.db"),
        SchemaBackend::Postgres => match config {
            Some(c) if c.app_env == AppEnv::Web => c.clone(),
            _ => return Err(CliError::NeedsPostgres),
        },
    };
    Ok(scratch::expected_schema(&like).await?.ddl())
}

/// How the configured database departs from the migration history: pending or unknown
/// migrations, migrations edited after they were applied, and every structural
/// difference (tables, columns, types, nullability, defaults, constraints, indexes,
/// triggers; on Postgres also functions, sequences, row-level security and policies).
/// Empty when they match.
pub async fn check(config: &Config) -> Result<Vec<String>, CliError> {
    let db = open(config).await?;
    let route = Route::of(config);
    let result = async {
        let (mut problems, live) = match route {
            Route::Session => (checksum::verify(&db).await?, inspect::inspect(&db).await?),
            Route::TransactionPooler { .. } => {
                locked::in_locked_transaction(&db, route, |tx| {
                    Box::pin(async move {
                        Ok((checksum::verify(tx).await?, inspect::inspect(tx).await?))
                    })
                })
                .await?
            }
        };
        let expected = scratch::expected_schema(config).await?;
        problems.extend(live.differences(&expected));
        Ok::<_, DbErr>(problems)
    }
    .await;
    db.close().await?;
    Ok(result?)
}
