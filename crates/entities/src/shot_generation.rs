//! `shot_generations`: the ordered link between a shot and its generations (its timeline).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::Id;

/// A row of `shot_generations`: generation `generation_id` at `position` in shot `shot_id`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "shot_generations")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Id,
    /// The shot; deleting it deletes this link.
    pub shot_id: Id,
    /// The generation; deleting it deletes this link.
    pub generation_id: Id,
    /// Place in the shot's timeline; the library keeps positions dense `0..n`.
    pub position: i32,
    /// The row's version for optimistic concurrency: 1 when created, one more with every
    /// write, by the library or anyone else (a trigger keeps it). An update names the
    /// version it read and is refused as stale if the row has moved on. Local to each
    /// database; not synced (see `sync_version` in the README's sync section).
    pub row_version: i64,
}

/// Foreign keys of `shot_generations`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `shot_generations.shot_id -> shots.id`
    #[sea_orm(
        belongs_to = "super::shot::Entity",
        from = "Column::ShotId",
        to = "super::shot::Column::Id",
        on_delete = "Cascade"
    )]
    Shot,
    /// `shot_generations.generation_id -> generations.id`
    #[sea_orm(
        belongs_to = "super::generation::Entity",
        from = "Column::GenerationId",
        to = "super::generation::Column::Id",
        on_delete = "Cascade"
    )]
    Generation,
}

impl Related<super::shot::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Shot.def()
    }
}

impl Related<super::generation::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Generation.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
