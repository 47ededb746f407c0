//! `cargo run -p seed [-- --from-dir DIR [--watch] | --scale N]`: migrate the configured
//! database and seed it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dal::Database;
use seed::WatchEvent;

/// Seed the database that APP_ENV / DATABASE_URL name (default: ./local.db).
#[derive(Parser)]
#[command(name = "seed")]
struct Cli {
    /// Also upsert the JSON fixture files in DIR (see the `seed::fixtures` docs for the format).
    #[arg(long, value_name = "DIR")]
    from_dir: Option<PathBuf>,
    /// With --from-dir: keep running and follow the directory (add, change, delete).
    #[arg(long, requires = "from_dir")]
    watch: bool,
    /// Also add N generated projects with shots, generations and tasks (idempotent).
    #[arg(long, value_name = "N")]
    scale: Option<usize>,
    /// How often --watch scans the directory, in milliseconds.
    #[arg(long, default_value_t = 300, value_name = "MS")]
    watch_interval_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let config = dal::Config::from_env()?;
    println!(
        "seeding {} (APP_ENV={}{})",
        config.describe_target(),
        config.app_env,
        if config.behind_transaction_pooler() {
            ", through a transaction pooler"
        } else {
            ""
        }
    );
    let db = Database::connect(&config).await?;
    let mut report = seed::seed(&db).await?;
    if let Some(n) = cli.scale {
        let long = n >= 1000;
        report.merge(
            seed::scale::scale(&db, n, |done, total| {
                if long {
                    eprintln!("scale: {done}/{total} projects");
                }
            })
            .await?,
        );
    }
    let mut code = ExitCode::SUCCESS;
    match (&cli.from_dir, cli.watch) {
        (Some(dir), false) => {
            let mut applied = seed::fixtures::Applied::default();
            let files = seed::fixtures::read_dir(dir)?;
            let (fixtures, errors) = seed::fixtures::apply_all(&db, files, &mut applied).await;
            report.merge(fixtures);
            for e in &errors {
                eprintln!("fixture refused: {e}");
            }
            if !errors.is_empty() {
                code = ExitCode::FAILURE;
            }
        }
        (Some(dir), true) => {
            print!("{report}");
            println!("watching {} (Ctrl-C to stop)", dir.display());
            let interval = Duration::from_millis(cli.watch_interval_ms.max(10));
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            seed::watch(&db, dir, interval, print_event, shutdown).await?;
            db.close().await?;
            return Ok(code);
        }
        _ => {}
    }
    print!("{report}");
    println!("dummy user: {}", seed::DUMMY_USER_ID);
    db.close().await?;
    Ok(code)
}

fn print_event(event: WatchEvent) {
    match event {
        WatchEvent::Loaded { report, errors } => {
            print!("{report}");
            for e in errors {
                eprintln!("fixture refused: {e}");
            }
        }
        WatchEvent::Applied { path, report } => {
            println!("applied {}: {} inserted", path.display(), report.inserted());
        }
        WatchEvent::Rejected(e) => eprintln!("fixture refused: {e}"),
        WatchEvent::Removed { path, .. } => println!("removed the records of {}", path.display()),
        WatchEvent::Failed { path, error } => {
            eprintln!(
                "could not remove the records of {}: {error}",
                path.display()
            )
        }
    }
}
