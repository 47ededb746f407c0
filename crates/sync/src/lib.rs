//! Offline-first sync between a local SQLite replica and the Postgres server.
//!
//! Every write to the local database is recorded, in the same transaction, in an outbox
//! (by triggers, so every write path is covered: repositories, bulk inserts, the
//! seeder). [`SyncEngine`] pushes the outbox to the server in batches and pulls the
//! server's changes back, in the background, with retries. The server decides conflicts
//! by the order changes reach it, never by client clocks (see [`server`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use dal::prelude::*;
//! use sync::{PostgresTransport, SyncClient, SyncEngine, SyncOptions};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let local = Database::connect(&Config::sqlite("./local.db")).await?;
//! let server = Database::connect(&Config::postgres("postgres://app@db.example.com/app?sslmode=require")?).await?;
//! let client = SyncClient::open(local.clone()).await?;
//! let engine = SyncEngine::start(client, Arc::new(PostgresTransport::new(server)), SyncOptions::default());
//! // The application uses `local` as always; writes sync in the background.
//! local.users().create(NewUser::default()).await?;
//! engine.sync_now().await?;                 // or wait for the next interval
//! println!("{:?}", engine.status().await);  // pending, dead-lettered, last success, last error
//! engine.shutdown().await;
//! # Ok(()) }
//! ```

pub mod client;
pub mod engine;
pub mod protocol;
pub mod server;
pub mod snapshot;
pub mod tables;
pub mod transport;
mod wire;

pub use client::{DeadLetter, SyncClient, SyncError};
pub use engine::{SyncEngine, SyncOptions, SyncStatus};
pub use server::{PostgresTransport, Server};
pub use transport::{Transport, TransportError};
