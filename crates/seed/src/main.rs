//! `cargo run -p seed [-- --from-dir DIR [--watch] | --scale N] [--out FILE]`: migrate the
//! configured database and seed it, or seed a new database into a snapshot file to ship.

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
    /// Seed a new database and write it as a snapshot FILE (see the snapshot crate) to
    /// ship, instead of seeding the configured database. The same inputs give the same
    /// checksum; with SOURCE_DATE_EPOCH set, a byte-identical file.
    #[arg(long, value_name = "FILE", conflicts_with = "watch")]
    out: Option<PathBuf>,
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
    let Some(out) = cli.out.clone() else {
        return seed_into(dal::Config::from_env()?, &cli).await;
    };
    if out.exists() {
        return Err(snapshot::SnapshotError::Exists { path: out }.into());
    }
    // Seeded in a work file beside the snapshot, which is removed whatever happens.
    let mut name = out.file_name().unwrap_or_default().to_owned();
    name.push(format!(".seeding-{}", std::process::id()));
    let work = out.with_file_name(name);
    let seeded = async {
        let code = seed_into(dal::Config::sqlite(&work), &cli).await?;
        if code != ExitCode::SUCCESS {
            return Err("fixtures were refused: no snapshot written".into());
        }
        let db = Database::connect(&dal::Config::sqlite(&work)).await?;
        let options = snapshot::ExportOptions {
            reproducible_at: Some(source_date()?),
            ..snapshot::ExportOptions::new(made_from(&cli))
        };
        let exported = snapshot::export(&db, &out, &options, |_| {}).await;
        db.close().await?;
        let meta = exported?;
        println!(
            "wrote {}: {} rows, {}",
            out.display(),
            meta.total_rows(),
            meta.checksum
        );
        Ok::<_, Box<dyn std::error::Error>>(code)
    }
    .await;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = work.clone().into_os_string();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
    seeded
}

/// The snapshot's time: `SOURCE_DATE_EPOCH` (seconds), as reproducible builds set it,
/// or now.
fn source_date() -> Result<chrono::DateTime<chrono::Utc>, Box<dyn std::error::Error>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
            .ok_or_else(|| format!("SOURCE_DATE_EPOCH={text:?} is not a time in seconds").into()),
        Err(_) => Ok(chrono::Utc::now()),
    }
}

/// What the snapshot says it was made from: the seeder's inputs.
fn made_from(cli: &Cli) -> String {
    let mut from = String::from("seed");
    if let Some(n) = cli.scale {
        from.push_str(&format!(" --scale {n}"));
    }
    if let Some(dir) = &cli.from_dir {
        from.push_str(&format!(" --from-dir {}", dir.display()));
    }
    from
}

async fn seed_into(config: dal::Config, cli: &Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
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
