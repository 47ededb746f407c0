//! `users`: the people who own projects.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::Id;

/// A row of `users`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Id,
    /// Unique when present.
    #[sea_orm(unique)]
    pub email: Option<String>,
    /// Name shown in the UI.
    pub display_name: Option<String>,
    /// When the row was created (UTC, microseconds).
    pub created_at: DateTimeUtc,
    /// The row's version for optimistic concurrency: 1 when created, one more with every
    /// write, by the library or anyone else (a trigger keeps it). An update names the
    /// version it read and is refused as stale if the row has moved on. Local to each
    /// database; not synced (see `sync_version` in the README's sync section).
    pub row_version: i64,
}

/// Foreign keys of `users`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `projects.user_id`
    #[sea_orm(has_many = "super::project::Entity")]
    Projects,
}

impl Related<super::project::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Projects.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
