//! The schema's one migration history, applied the same way to SQLite and Postgres.
//!
//! Each migration is a Rust source that builds its DDL with sea-query; the few places the
//! two dialects differ (column types, defaults, checks that keep SQLite's text honest) are
//! in [`columns`], so a migration reads as the schema it creates. Every migration runs in
//! a transaction on both backends (sea-orm-migration only does that on Postgres by default),
//! so a failed migration leaves nothing behind.
//!
//! ```no_run
//! use migration::{Migrator, MigratorTrait};
//! # async fn run(db: &sea_orm_migration::sea_orm::DatabaseConnection) -> Result<(), sea_orm_migration::DbErr> {
//! Migrator::up(db, None).await?; // apply everything pending
//! # Ok(()) }
//! ```

pub use sea_orm_migration::prelude::*;

pub mod cli;
pub mod columns;
mod m20250601_000001_initial_schema;

/// The migration history, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20250601_000001_initial_schema::Migration)]
    }
}
