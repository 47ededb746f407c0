//! Offline-first sync between a local SQLite replica and the Postgres server.
//!
//! Every write to the local database is recorded, in the same transaction, in an outbox
//! (by triggers, so every write path is covered: repositories, bulk inserts, the
//! seeder). [`SyncEngine`] pushes the outbox to the server in batches and pulls the
//! server's changes back, in the background, with retries. The server decides conflicts
//! by the order changes reach it, never by client clocks (see [`server`]).
//!
//! An application turns it on by configuration; its own calls stay as they are:
//!
//! ```no_run
//! use dal::prelude::*;
//! use sync::SyncConfig;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let local = Database::connect(&Config::from_env()?).await?; // APP_ENV=local: ./local.db
//! // SYNC_DATABASE_URL=postgres://… turns sync on; unset, the application stays local-only.
//! let engine = match SyncConfig::from_env()? {
//!     Some(config) => Some(sync::start(local.clone(), config).await?),
//!     None => None,
//! };
//! // The application uses `local` as always; its writes sync in the background.
//! local.users().create(NewUser::default()).await?;
//! if let Some(engine) = engine {
//!     engine.sync_now().await?;                 // or wait for the next interval
//!     println!("{:?}", engine.status().await);  // pending, dead-lettered, last success, last error
//!     engine.shutdown().await;                  // the outbox is on disk: nothing is lost
//! }
//! # Ok(()) }
//! ```

mod apply;
pub mod client;
pub mod config;
mod dead_letters;
pub mod engine;
pub mod http;
mod outcome;
pub mod protocol;
mod push;
pub mod reidentify;
pub mod server;
pub mod snapshot;
mod store;
pub mod tables;
pub mod transport;
mod wire;

pub use client::{DeadLetter, SyncClient, SyncError};
pub use config::{SyncConfig, SyncConfigError, SyncServer, start, start_with};
pub use engine::{SyncEngine, SyncOptions, SyncStatus};
pub use outcome::LastSync;
pub use reidentify::Reidentified;
pub use server::{PostgresTransport, Server};
pub use transport::{Transport, TransportError};
