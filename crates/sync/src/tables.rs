//! The synced tables: the schema registry ([`entities::schema`]), which the entities
//! drive, with the library's per-table operations ([`dal::tables`]). Nothing in the sync
//! engine lists tables or columns of its own: a column added to an entity (and its
//! migration) travels without a change here.

pub use entities::schema::{Column, Kind, Parent, Role, Table, order, table, tables};

/// The library's operations on the rows of `table` (deletes, positions).
pub fn operations(table: &Table) -> &'static dal::tables::TableOperations {
    dal::tables::named(table.name).expect("the registry and its operations list the same tables")
}
