//! The schema's one migration history, applied the same way to SQLite and Postgres, and
//! the tools that keep it honest.
//!
//! Each migration is a Rust source that builds its DDL with sea-query; the few places the
//! two dialects differ (column types, defaults, checks that keep SQLite's text honest) are
//! in [`columns`], so a migration reads as the schema it creates. Every migration runs in
//! a transaction on both backends (sea-orm-migration only does that on Postgres by default),
//! so a failed migration leaves nothing behind.
//!
//! Around the history: [`cli`] (`up`, `down`, `status`, `fresh`, `refresh`, `reset`,
//! `generate`, `schema`, `check`, `adopt`, `typescript`, `supabase`), [`adopt`] (taking over
//! a database that has the product's draft schema), [`inspect`] (a normalised view of a live
//! schema and the differences between two), [`checksum`] (applied migrations whose source
//! changed), [`typescript`] (interfaces for web clients) and [`supabase`] (the history
//! as Supabase CLI migration files).
//!
//! ```no_run
//! use migration::{Migrator, MigratorTrait};
//! # async fn run(db: &sea_orm_migration::sea_orm::DatabaseConnection) -> Result<(), sea_orm_migration::DbErr> {
//! Migrator::up(db, None).await?; // apply everything pending
//! # Ok(()) }
//! ```

pub use sea_orm_migration::prelude::*;

pub use checksum::{applied_versions, has_table};

pub mod adopt;
pub mod checksum;
pub mod cli;
pub mod columns;
pub mod generate;
pub mod inspect;
pub mod locked;
pub mod scratch;
pub mod supabase;
#[doc(hidden)]
pub mod template;
pub mod typescript;

/// Declares the migration history: one module per migration, oldest first. `generate`
/// appends a line here.
macro_rules! history {
    ($($module:ident),+ $(,)?) => {
        $(mod $module;)+

        /// The migration history, oldest first.
        pub struct Migrator;

        #[async_trait::async_trait]
        impl MigratorTrait for Migrator {
            fn migrations() -> Vec<Box<dyn MigrationTrait>> {
                vec![$(Box::new($module::Migration)),+]
            }
        }

        /// Each migration's name and source text, for checksums.
        pub fn sources() -> Vec<(&'static str, &'static str)> {
            vec![$((stringify!($module), include_str!(concat!(stringify!($module), ".rs")))),+]
        }
    };
}

history! {
    m20250601_000001_initial_schema,
    m20250602_000001_row_level_security,
    m20250603_000001_sync,
    m20261123_112756_sync_pull_order_index,
    m20261123_112940_sync_log_details,
    m20261130_203628_values_every_reader_reads,
    m20261130_232000_row_versions,
}
