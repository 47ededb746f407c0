//! `generations`: produced media, with the tasks that made them.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Id, IdList};

/// A row of `generations`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "generations")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Id,
    /// Ids of the tasks that produced this generation (`uuid[]` / JSON array text).
    pub tasks: IdList,
    /// Where the media lives.
    pub location: Option<String>,
    /// The column `"type"` (a keyword in Rust, so the field has another name).
    #[sea_orm(column_name = "type")]
    #[serde(rename = "type")]
    pub generation_type: Option<String>,
    /// When the row was created (UTC, microseconds).
    pub created_at: DateTimeUtc,
    /// Last change (UTC, microseconds).
    pub updated_at: DateTimeUtc,
    /// Owning project; deleting it deletes the generation.
    pub project_id: Id,
    /// The row's version for optimistic concurrency: 1 when created, one more with every
    /// write, by the library or anyone else (a trigger keeps it). An update names the
    /// version it read and is refused as stale if the row has moved on. Local to each
    /// database; not synced (see `sync_version` in the README's sync section).
    pub row_version: i64,
}

/// Foreign keys into and out of `generations`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `generations.project_id -> projects.id`
    #[sea_orm(
        belongs_to = "super::project::Entity",
        from = "Column::ProjectId",
        to = "super::project::Column::Id",
        on_delete = "Cascade"
    )]
    Project,
    /// `shot_generations.generation_id`
    #[sea_orm(has_many = "super::shot_generation::Entity")]
    ShotGenerations,
}

impl Related<super::project::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Project.def()
    }
}

impl Related<super::shot_generation::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ShotGenerations.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
