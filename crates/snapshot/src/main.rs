//! `cargo run -p snapshot -- export --out FILE [--user ID] | check FILE | import FILE`:
//! snapshots of the database APP_ENV / DATABASE_URL name (default: ./local.db).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use dal::{Config, Database};
use dal_config::DatabaseTarget;
use snapshot::{ExportOptions, Meta, Progress, Scope};
use uuid::Uuid;

/// Snapshots of the configured database: export, check, import.
#[derive(Parser)]
#[command(name = "snapshot")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a consistent snapshot of the configured database to a new file: a local
    /// database whole, or a Postgres database's rows (all, or one user's with --user).
    Export {
        /// The file to write; it must not exist.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Postgres only: just this user's rows (their user row, projects and everything
        /// under them).
        #[arg(long, value_name = "USER_ID")]
        user: Option<Uuid>,
    },
    /// Check a snapshot (integrity, metadata, checksum, schema version) and describe it.
    Check {
        /// The snapshot.
        file: PathBuf,
    },
    /// Replace the configured local database with a snapshot (with the application
    /// closed); the previous database is kept only until the new one is in place.
    Import {
        /// The snapshot.
        file: PathBuf,
        /// Keep the previous database beside it as `<name>.before-import-<time>`.
        #[arg(long)]
        keep_previous: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Export { out, user } => {
            let config = Config::from_env()?;
            let db = Database::connect(&config).await?;
            let options = ExportOptions {
                scope: user.map_or(Scope::All, Scope::User),
                ..ExportOptions::new(config.describe_target())
            };
            let started = Instant::now();
            let mut last = Instant::now();
            let made = snapshot::export(&db, &out, &options, |step| match step {
                Progress::Copying { table, rows } if last.elapsed() >= Duration::from_secs(1) => {
                    eprintln!("copying {table}: {rows} rows");
                    last = Instant::now();
                }
                Progress::Measuring => eprintln!("counting and checksumming"),
                _ => {}
            })
            .await;
            db.close().await?;
            let meta = made?;
            println!(
                "wrote {} in {:.1}s",
                out.display(),
                started.elapsed().as_secs_f64()
            );
            describe(&meta);
        }
        Command::Check { file } => {
            let meta = snapshot::check(&file).await?;
            println!("{}: a good snapshot", file.display());
            describe(&meta);
        }
        Command::Import {
            file,
            keep_previous,
        } => {
            let config = Config::from_env()?;
            let DatabaseTarget::Sqlite { path, .. } = &config.target else {
                return Err(
                    "import replaces a local SQLite database; APP_ENV names Postgres".into(),
                );
            };
            let imported = snapshot::import(&file, path, keep_previous).await?;
            println!("imported {} as {}", file.display(), path.display());
            if let Some(from) = &imported.migrated_from {
                println!(
                    "migrated forward from {from} to {}",
                    Database::latest_schema_version()
                );
            }
            if let Some(previous) = &imported.previous {
                println!("the previous database is kept at {}", previous.display());
            }
            describe(&imported.meta);
        }
    }
    Ok(())
}

fn describe(meta: &Meta) {
    println!("  schema version  {}", meta.schema_version);
    println!("  made at         {}", meta.made_at.to_rfc3339());
    println!("  made from       {}", meta.made_from);
    println!("  scope           {}", meta.scope);
    println!("  checksum        {}", meta.checksum);
    if let Some(cursor) = meta.pull_from {
        println!("  pull cursor     {cursor}");
    }
    for (table, rows) in &meta.row_counts {
        println!("  {table:<24}{rows:>10} rows");
    }
}
