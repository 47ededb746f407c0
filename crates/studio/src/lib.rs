//! Studio: a local web page over the configured database, on either backend.
//!
//! `cargo run -p studio` opens the database `APP_ENV` / `DATABASE_URL` name (the same
//! rules as the library, [`dal::Config::from_env`]) and serves, on `127.0.0.1` only:
//!
//! * **Tables**: every table of the schema registry ([`entities::schema`]) with its row
//!   count; rows a page at a time (keyset paging by the primary key or an indexed
//!   column), filtered by a column's value, JSON pretty-printed, uuids and uuid lists as
//!   links to the rows they name, tombstoned rows hidden unless asked for.
//! * **Edits** through the repositories (so validation, typed errors and optimistic
//!   concurrency apply): errors next to the field, a stale edit shown beside the row as
//!   it is now.
//! * **Pictures**: a project's task graph as SVG, a shot's timeline as a strip.
//! * **Schema**: applied and pending migrations, the schema version, the drift check.
//! * **Sync**: a replica's outbox and dead letters (retry, discard), a server's
//!   conflict log.
//!
//! It is safe by default ([`auth`]): a random access token in the URL printed at start
//! (exchanged for an `HttpOnly`, `SameSite=Strict` cookie), a per-process CSRF token and
//! an `Origin` check on every `POST`, a `Host` check against DNS rebinding, read-only
//! unless started with `--write`, and on `APP_ENV=web` a second flag
//! (`--dangerously-write-web-data`) before any write. It never shows a password or the
//! connection string's secret.

pub mod auth;
pub mod data;
pub mod html;
pub mod options;
pub mod pages;
pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;

use dal::{Config, Database};
use tokio::net::TcpListener;

pub use options::{Options, OptionsError};

/// What the request handlers share.
pub struct Studio {
    /// The database.
    pub db: Database,
    /// The configuration it was opened with (the drift check opens its own scratch).
    pub config: Config,
    /// The access and CSRF tokens and the address they are bound to.
    pub access: auth::Access,
    /// Whether edits are allowed.
    pub writable: bool,
    /// Facts read from the live database once at start (sortable columns).
    pub facts: data::Facts,
}

/// Studio could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The options are refused (a non-loopback address, writes on `web` without the
    /// second flag).
    #[error(transparent)]
    Options(#[from] OptionsError),
    /// The database could not be opened or read.
    #[error("the database: {0}")]
    Database(#[from] dal::DalError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running Studio.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The shared state (tokens included).
    pub studio: Arc<Studio>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl Running {
    /// The URL to open, with the access token: print it to the person who started
    /// Studio, nowhere else.
    pub fn url_with_token(&self) -> String {
        format!("http://{}/?token={}", self.addr, self.studio.access.token())
    }

    /// The URL without the token.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and waits for requests in flight.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.stop.send(());
        self.server.await.unwrap_or(Ok(()))
    }

    /// Serves until the server ends (it does not end by itself).
    pub async fn wait(self) -> std::io::Result<()> {
        let _keep = self.stop;
        self.server.await.unwrap_or(Ok(()))
    }
}

/// Checks `options` against `config`, connects, and serves Studio on `options.listen`.
pub async fn start(config: Config, options: Options) -> Result<Running, StartError> {
    options.check(config.app_env)?;
    let db = Database::connect(&config).await?;
    start_on(db, config, options).await
}

/// [`start`] on a database already open.
pub async fn start_on(
    db: Database,
    config: Config,
    options: Options,
) -> Result<Running, StartError> {
    options.check(config.app_env)?;
    let listener =
        TcpListener::bind(options.listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: options.listen,
                source,
            })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: options.listen,
        source,
    })?;
    let facts = data::Facts::read(&db).await?;
    let studio = Arc::new(Studio {
        db,
        config,
        access: auth::Access::new(addr),
        writable: options.write,
        facts,
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = server::router(studio.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(Running {
        addr,
        studio,
        server,
        stop,
    })
}
