//! The schema's shape, written once as SeaORM entities.
//!
//! Six tables (`users`, `projects`, `tasks`, `generations`, `shots`, `shot_generations`) and
//! the value types their columns hold. The same entities are used on SQLite and on Postgres;
//! the storage differences (uuid as `TEXT`, arrays as JSON text, ...) are handled by the
//! column types in this crate and by the `dal` crate's connection, never by the caller.
//!
//! Two column types are this crate's own rather than plain `uuid::Uuid` / `Vec<Uuid>`:
//! sqlx decodes a `Uuid` on SQLite only from a 16-byte BLOB, and SeaORM cannot bind an
//! array there at all. [`Id`] and [`IdList`] read both representations (a native `uuid` /
//! `uuid[]` on Postgres, canonical text / a JSON array on SQLite) and dereference to the
//! plain types, so application code still works with `Uuid` and `Vec<Uuid>`.
//!
//! JSON columns hold `serde_json::Value`; [`json`] gives every document one form on both
//! backends (numbers of any size kept exactly, Postgres's and SQLite's spellings of a
//! number read alike).
//!
//! ```
//! use entities::{Id, IdList, TaskStatus};
//!
//! let a = Id::new();
//! let list = IdList::from(vec![a]);
//! assert!(list.contains(&a));
//! assert_eq!(TaskStatus::InProgress.as_str(), "In Progress");
//! ```

mod id;
mod id_list;
mod task_status;

pub mod generation;
pub mod json;
pub mod project;
pub mod schema;
pub mod shot;
pub mod shot_generation;
pub mod task;
pub mod user;

pub mod prelude;

pub use id::Id;
pub use id_list::IdList;
pub use task_status::{TaskStatus, UnknownTaskStatus};
