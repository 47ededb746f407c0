//! `cargo run -p migration -- <command>`: apply, roll back, inspect and check the migration
//! history on the database the environment names (`APP_ENV`, `DATABASE_URL`, `.env`),
//! chosen by the same rules as the library.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use dal_config::Config;
use migration::cli::{self, Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // `adopt` migrates scratch databases to compare with; their progress is not news.
    let quiet = matches!(cli.command, Command::Adopt(_));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
                if quiet {
                    "warn"
                } else {
                    "sea_orm_migration=info,warn"
                }
                .into()
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn config() -> Result<Config, String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    eprintln!(
        "database: {} (APP_ENV={}{})",
        config.describe_target(),
        config.app_env,
        if config.behind_transaction_pooler() {
            ", through a transaction pooler"
        } else {
            ""
        }
    );
    Ok(config)
}

fn emit(text: &str, out: Option<&Path>) -> Result<(), String> {
    match out {
        Some(path) => {
            std::fs::write(path, text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Migrate(command) => {
            let states = cli::execute(&config()?, command, cli.dangerously_drop_web_data)
                .await
                .map_err(|e| e.to_string())?;
            for state in &states {
                let mark = if state.applied { "applied" } else { "pending" };
                println!("{mark:<8} {}", state.name);
            }
            let applied = states.iter().filter(|s| s.applied).count();
            println!("{applied} of {} migrations applied", states.len());
        }
        Command::Generate { name, dir } => {
            let file = migration::generate::generate(&dir, &name, chrono::Utc::now())
                .map_err(|e| e.to_string())?;
            println!(
                "created {} and added it to the history in lib.rs",
                file.display()
            );
        }
        Command::Schema { backend, out } => {
            let config = match backend {
                cli::SchemaBackend::Sqlite => None,
                cli::SchemaBackend::Postgres => Some(config()?),
            };
            let ddl = cli::schema(backend, config.as_ref())
                .await
                .map_err(|e| e.to_string())?;
            emit(&ddl, out.as_deref())?;
        }
        Command::Check => {
            let problems = cli::check(&config()?).await.map_err(|e| e.to_string())?;
            if !problems.is_empty() {
                println!("the database differs from the migration history:");
                for problem in &problems {
                    println!("  - {problem}");
                }
                return Ok(ExitCode::FAILURE);
            }
            println!("the database matches the migration history");
        }
        Command::Adopt(options) => {
            let outcome = migration::adopt::adopt(&config()?, options)
                .await
                .map_err(|e| e.to_string())?;
            print!("{outcome}");
        }
        Command::Typescript { out } => emit(&migration::typescript::render(), out.as_deref())?,
        Command::Supabase { out } => {
            let files = migration::supabase::export(&config()?)
                .await
                .map_err(|e| e.to_string())?;
            migration::supabase::write(&files, &out).map_err(|e| e.to_string())?;
            eprintln!("wrote {} files to {}", files.len(), out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
