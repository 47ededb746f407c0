//! The sync server: devices push and pull over HTTP(S) with a user's token, and it alone
//! holds the database's credentials.
//!
//! * **Authentication**: bearer JWTs as Supabase issues them (HS256 with the project's
//!   secret, or ES256/RS256/EdDSA keys from a JWKS file or URL), `sub` = the user.
//! * **Authorization**: every push and pull runs as that user under the database's
//!   row-level security ([`sync::Server::push_as`], [`sync::Server::pull_as`]); a client
//!   id belongs to the first user who pushed under it; only that user may ask which of
//!   its entries the server has (`POST /v1/settled`, [`sync::Server::settled_as`], what a
//!   restored replica asks when it takes a new client id).
//! * **Live updates**: `GET /v1/events` (Server-Sent Events) tells a user's online
//!   clients to pull when rows of theirs change (Postgres `LISTEN`/`NOTIFY`; each
//!   notification names the owners of the rows written).
//! * **New devices**: `GET /v1/snapshot` sends the user's rows as one SQLite replica
//!   made from a consistent snapshot, to go on from with incremental pulls.
//! * **No state of its own**: any number of instances behind any load balancer share
//!   only Postgres.
//!
//! The protocol (paths, error bodies) is [`sync::http`].
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // DATABASE_URL=postgres://… SYNC_JWT_SECRET=… SYNC_LISTEN=0.0.0.0:8787
//! let config = sync_server::ServerConfig::from_env()?;
//! sync_server::run(config, std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod auth;
pub mod clients;
pub mod config;
pub mod events;
mod snapshot;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

use dal::Database;
use dal_config::DatabaseTarget;
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;

pub use auth::{AuthError, Verifier};
pub use config::{JwksSource, Limits, ServerConfig, ServerConfigError};
pub use events::Events;

/// What every request handler shares: nothing that is not also in Postgres.
pub struct App {
    /// The database.
    pub db: Database,
    /// The sync operations on it.
    pub server: sync::Server,
    /// Token checks.
    pub verifier: Verifier,
    /// Request limits.
    pub limits: Limits,
    /// Live-update fan-out.
    pub events: Arc<Events>,
    /// One per snapshot being made or sent (`Limits::snapshots`).
    snapshot_permits: Arc<tokio::sync::Semaphore>,
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be reached or migrated.
    #[error("the database: {0}")]
    Database(#[from] dal::DalError),
    /// The token keys could not be loaded.
    #[error(transparent)]
    Keys(#[from] auth::KeysError),
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

impl App {
    /// Connects to the database (applying pending migrations: one history for every
    /// instance, applied under a lock), loads the keys and, when a session connection is
    /// available, starts listening for changes.
    pub async fn start(config: &ServerConfig) -> Result<Arc<App>, StartError> {
        let db = Database::connect(&config.database).await?;
        db.migrate().await?;
        let verifier = Verifier::new(
            config.jwt_secret.as_deref(),
            config.jwks.clone(),
            &config.audience,
        )
        .await?
        .with_issuer(config.issuer.clone());
        let listen = config
            .listen_database
            .as_ref()
            .or((!config.database.behind_transaction_pooler()).then_some(&config.database));
        let listen_url = match listen.map(|c| &c.target) {
            Some(DatabaseTarget::Postgres { url }) => Some(url.expose_secret().to_owned()),
            _ => {
                tracing::warn!(
                    "live updates are off: DATABASE_URL goes through a transaction pooler, where LISTEN \
                     does not work; set SYNC_LISTEN_DATABASE_URL to a direct or session-pooler URL"
                );
                None
            }
        };
        Ok(App::new(db, verifier, config.limits, listen_url))
    }

    /// An app on `db` (migrated), listening for changes on `listen_url` (a session
    /// connection to the same database) when given.
    pub fn new(
        db: Database,
        verifier: Verifier,
        limits: Limits,
        listen_url: Option<String>,
    ) -> Arc<App> {
        let events = Arc::new(Events::default());
        if let Some(url) = listen_url {
            tokio::spawn(events::listen(url, events.clone()));
        }
        Arc::new(App {
            server: sync::Server::new(db.clone()),
            db,
            verifier,
            snapshot_permits: Arc::new(tokio::sync::Semaphore::new(limits.snapshots)),
            limits,
            events,
        })
    }
}

/// The routes with compression both ways, ready to serve.
pub fn router(app: Arc<App>) -> axum::Router {
    api::router(app)
        .layer(RequestDecompressionLayer::new())
        .layer(CompressionLayer::new())
}

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight
/// finish.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

/// [`serve`] over HTTPS with `tls` (see [`tls::load`]).
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(tls::TlsListener::new(listener, tls)?, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Starts the server of `config` and serves until `shutdown` completes.
pub async fn run(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls::load(cert, key)?),
        None => None,
    };
    let app = App::start(&config).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(addr = %config.listen, scheme, "sync server listening");
    let served = match tls {
        Some(tls) => serve_tls(listener, tls, app, shutdown).await,
        None => serve(listener, app, shutdown).await,
    };
    served.map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })
}

/// The `sync-server` program: settings from the environment, logs to stderr at
/// `RUST_LOG` (default `info`: requests by user id and counts, never tokens or row
/// contents), serving until SIGTERM or Ctrl-C, then finishing requests in flight.
pub async fn main_from_env() -> std::process::ExitCode {
    use std::process::ExitCode;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let config = match ServerConfig::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sync-server: {e}");
            return ExitCode::from(2);
        }
    };
    let shutdown = async {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
        tracing::info!("shutting down: finishing requests in flight");
    };
    match run(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sync-server: {e}");
            ExitCode::FAILURE
        }
    }
}
