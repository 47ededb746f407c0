//! `projects`: a user's unit of work; everything else hangs off a project.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::Id;

/// A row of `projects`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "projects")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Id,
    /// Display name.
    pub name: String,
    /// Owner; deleting the user deletes the project.
    pub user_id: Id,
    /// When the row was created (UTC, microseconds).
    pub created_at: DateTimeUtc,
    /// The row's version for optimistic concurrency: 1 when created, one more with every
    /// write, by the library or anyone else (a trigger keeps it). An update names the
    /// version it read and is refused as stale if the row has moved on. Local to each
    /// database; not synced (see `sync_version` in the README's sync section).
    pub row_version: i64,
}

/// Foreign keys into and out of `projects`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `projects.user_id -> users.id`
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
    /// `tasks.project_id`
    #[sea_orm(has_many = "super::task::Entity")]
    Tasks,
    /// `generations.project_id`
    #[sea_orm(has_many = "super::generation::Entity")]
    Generations,
    /// `shots.project_id`
    #[sea_orm(has_many = "super::shot::Entity")]
    Shots,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl Related<super::task::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tasks.def()
    }
}

impl Related<super::generation::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Generations.def()
    }
}

impl Related<super::shot::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Shots.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
