//! `cargo run -p seed`: migrate the configured database and seed it.

use std::process::ExitCode;

use dal::Database;

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
    let config = match dal::Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "seeding {} (APP_ENV={})",
        config.describe_target(),
        config.app_env
    );
    let result = async {
        let db = Database::connect(&config).await?;
        let report = seed::seed(&db).await?;
        db.close().await?;
        Ok::<_, dal::DalError>(report)
    }
    .await;
    match result {
        Ok(report) => {
            print!("{report}");
            println!("dummy user: {}", seed::DUMMY_USER_ID);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
