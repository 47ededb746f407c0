//! The migration commands, as a library so tests drive exactly what the binary runs.

use clap::{Parser, Subcommand};
use dal_config::{AppEnv, Config, ConnectError};
use sea_orm_migration::sea_orm::{DatabaseConnection, DbErr};
use sea_orm_migration::{MigrationStatus, MigratorTrait};

use crate::Migrator;

/// `migration [--dangerously-drop-web-data] <command>`.
#[derive(Parser, Debug)]
#[command(
    name = "migration",
    about = "Apply and inspect the schema's migration history"
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

/// A migration command.
#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
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

impl Command {
    /// Whether the command drops tables and so needs confirmation on a web database.
    pub fn drops_data(self) -> bool {
        matches!(
            self,
            Command::Down { .. } | Command::Fresh | Command::Refresh | Command::Reset
        )
    }

    /// The command's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Command::Up { .. } => "up",
            Command::Down { .. } => "down",
            Command::Status => "status",
            Command::Fresh => "fresh",
            Command::Refresh => "refresh",
            Command::Reset => "reset",
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
    command: Command,
    confirmed: bool,
) -> Result<Vec<MigrationState>, CliError> {
    if config.app_env == AppEnv::Web && command.drops_data() && !confirmed {
        return Err(CliError::Refused {
            command: command.name(),
            target: config.describe_target(),
        });
    }
    // One connection: SQLite pragmas such as `foreign_keys` are per connection, and
    // `fresh` switches them off and on again around its drops.
    let db = dal_config::connect(&config.clone().with_max_connections(1)).await?;
    let result = run(&db, command).await;
    db.close().await?;
    result
}

async fn run(db: &DatabaseConnection, command: Command) -> Result<Vec<MigrationState>, CliError> {
    match command {
        Command::Up { num } => Migrator::up(db, num).await?,
        Command::Down { num } => Migrator::down(db, Some(num)).await?,
        Command::Status => {}
        Command::Fresh => Migrator::fresh(db).await?,
        Command::Refresh => Migrator::refresh(db).await?,
        Command::Reset => Migrator::reset(db).await?,
    }
    status(db).await.map_err(CliError::from)
}

/// Every migration of the history and whether `db` has it applied.
pub async fn status(db: &DatabaseConnection) -> Result<Vec<MigrationState>, DbErr> {
    Ok(Migrator::get_migration_with_status(db)
        .await?
        .iter()
        .map(|m| MigrationState {
            name: m.name().to_owned(),
            applied: m.status() == MigrationStatus::Applied,
        })
        .collect())
}
