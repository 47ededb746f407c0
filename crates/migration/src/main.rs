//! `cargo run -p migration -- <command>`: apply, roll back and inspect the migration history
//! on the database the environment names (`APP_ENV`, `DATABASE_URL`, `.env`), chosen by the
//! same rules as the library.

use std::process::ExitCode;

use clap::Parser;
use dal_config::Config;
use migration::cli::{Cli, execute};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| "sea_orm_migration=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "database: {} (APP_ENV={})",
        config.describe_target(),
        config.app_env
    );
    match execute(&config, cli.command, cli.dangerously_drop_web_data).await {
        Ok(states) => {
            for state in &states {
                let mark = if state.applied { "applied" } else { "pending" };
                println!("{mark:<8} {}", state.name);
            }
            let applied = states.iter().filter(|s| s.applied).count();
            println!("{applied} of {} migrations applied", states.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
