//! The schema's one migration history, applied the same way to SQLite and Postgres: what
//! an application links (through `dal`), without the tools around it.
//!
//! Each migration is a Rust source that builds its DDL with sea-query; the few places the
//! two dialects differ (column types, defaults, checks that keep SQLite's text honest) are
//! in [`columns`], so a migration reads as the schema it creates. Every migration runs in
//! a transaction on both backends (sea-orm-migration only does that on Postgres by default),
//! so a failed migration leaves nothing behind, and [`locked::up`] applies everything
//! pending in one transaction holding the migration lock. [`checksum`] records each applied
//! migration's source digest, to notice one edited after it was applied.
//!
//! The CLI (`cargo run -p migration -- up`, `check`, `adopt`, ...) and the tools that keep
//! the history honest (drift check, DDL dumps, TypeScript and Supabase exports) are the
//! `migration` crate, which re-exports this one.
//!
//! ```no_run
//! use migration_history::{Migrator, MigratorTrait};
//! # async fn run(db: &sea_orm_migration::sea_orm::DatabaseConnection) -> Result<(), sea_orm_migration::DbErr> {
//! Migrator::up(db, None).await?; // apply everything pending (unlocked: prefer `locked::up`)
//! # Ok(()) }
//! ```

pub use sea_orm_migration::prelude::*;

pub use checksum::{applied_versions, has_table};

pub mod checksum;
pub mod columns;
pub mod locked;
pub mod notify;
pub mod synced;

/// The tooling's scratch databases, for the tests inside migrations (one compares its frozen
/// column list with the tables at that point of the history).
#[cfg(test)]
use migration::scratch;

/// Declares the migration history: one module per migration, oldest first. `migration
/// generate` appends a line here.
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
    m20261201_023900_task_leases,
    m20261202_120000_sync_removals,
    m20261207_040000_sync_client_users,
    m20261207_041000_sync_notify,
    m20261207_050000_link_policies,
    m20261207_160000_value_check_fast_paths,
    m20261207_190000_server_rows_unchecked,
    m20261207_234000_sync_notify_owners,
}
