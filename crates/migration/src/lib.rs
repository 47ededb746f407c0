//! The tools around the schema's migration history (the history itself, and how to apply
//! it, is the `migration-history` crate, re-exported here): the `migration` CLI and what it
//! is built from.
//!
//! [`cli`] (`up`, `down`, `status`, `fresh`, `refresh`, `reset`, `generate`, `schema`,
//! `check`, `adopt`, `typescript`, `supabase`), [`adopt`] (taking over a database that has
//! the product's draft schema), [`inspect`] (a normalised view of a live schema and the
//! differences between two), [`scratch`] (what the history produces, on a scratch
//! database), [`generate`] (scaffolding a new migration), [`typescript`] (interfaces for
//! web clients) and [`supabase`] (the history as Supabase CLI migration files).
//!
//! An application needs none of this: `dal` links only `migration-history`.

pub use migration_history::{
    Migrator, applied_versions, checksum, columns, has_table, locked, sources,
};
pub use sea_orm_migration::prelude::*;

pub mod adopt;
pub mod cli;
pub mod generate;
pub mod inspect;
pub mod registry;
pub mod scratch;
pub mod supabase;
#[doc(hidden)]
pub mod template;
pub mod typescript;
