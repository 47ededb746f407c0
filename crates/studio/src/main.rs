//! `cargo run -p studio [-- --port N] [--write [--dangerously-write-web-data]]`: a local
//! web page over the database `APP_ENV` / `DATABASE_URL` name (see the `studio` crate).

use std::process::ExitCode;

use clap::Parser;
use dal::Config;
use studio::Options;
use studio::options::DEFAULT_PORT;

/// Serve a local web page over the configured database (127.0.0.1 only).
#[derive(Parser)]
#[command(name = "studio")]
struct Cli {
    /// The address to listen on: 127.0.0.1 only (anything else is refused).
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// The port (0: any free one).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Allow edits (create, edit, delete rows; retry or discard dead letters). Without
    /// it Studio only reads.
    #[arg(long)]
    write: bool,
    /// With APP_ENV=web, --write is refused unless this is given too: the web database
    /// is usually the one users' data lives in.
    #[arg(long, requires = "write")]
    dangerously_write_web_data: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("studio: {e}");
            return ExitCode::from(2);
        }
    };
    let options = Options::at(std::net::SocketAddr::new(cli.host, cli.port))
        .writable(cli.write, cli.dangerously_write_web_data);
    if let Err(e) = options.check(config.app_env) {
        eprintln!("studio: {e}");
        return ExitCode::from(2);
    }
    let target = config.describe_target();
    let running = match studio::start(config, options).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("studio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mode = if options.write {
        "writable"
    } else {
        "read-only"
    };
    println!("studio on {target} ({mode})");
    println!("open {}", running.url_with_token());
    tokio::select! {
        served = running.wait() => match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("studio: {e}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
    }
}
