//! `tasks`: units of work with a status, JSON parameters and dependencies on other tasks.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Id, IdList, TaskStatus};

/// A row of `tasks`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Id,
    /// What kind of work this is; workers claim by type.
    pub task_type: String,
    /// Arbitrary parameters (`jsonb` / JSON text).
    #[sea_orm(column_type = "JsonBinary")]
    pub params: Json,
    /// One of the six statuses; enforced by a CHECK on both backends.
    pub status: TaskStatus,
    /// Ids of the tasks this one waits for (`uuid[]` / JSON array text).
    pub dependant_on: IdList,
    /// Where the result was written, once there is one.
    pub output_location: Option<String>,
    /// When the row was created (UTC, microseconds).
    pub created_at: DateTimeUtc,
    /// Last change (UTC, microseconds).
    pub updated_at: DateTimeUtc,
    /// Owning project; deleting it deletes the task.
    pub project_id: Id,
    /// The row's version for optimistic concurrency: 1 when created, one more with every
    /// write, by the library or anyone else (a trigger keeps it). An update names the
    /// version it read and is refused as stale if the row has moved on. Local to each
    /// database; not synced (see `sync_version` in the README's sync section).
    pub row_version: i64,
    /// The worker that claimed the task last (kept after it finishes, to say who did the
    /// work); `None` for a task never claimed.
    pub claimed_by: Option<String>,
    /// While the task is `In Progress` under a lease: when the lease lapses, after which
    /// the next claim of its type may take the task over (or end it `Failed` once it has
    /// had `max_attempts` claims). `None` otherwise, and for a task put `In Progress`
    /// without a claim (it never lapses).
    pub lease_expires_at: Option<DateTimeUtc>,
    /// How many times the task was claimed (0 until the first claim).
    pub attempts: i32,
    /// How many claims the task may have (at least 1; 3 unless set when created): once it
    /// has had this many, a lapsed lease or a failure ends it `Failed` instead of handing
    /// it out again.
    pub max_attempts: i32,
    /// Why the last attempt failed: the reason the worker gave, or a lapsed lease.
    pub last_error: Option<String>,
}

/// Foreign keys of `tasks`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `tasks.project_id -> projects.id`
    #[sea_orm(
        belongs_to = "super::project::Entity",
        from = "Column::ProjectId",
        to = "super::project::Column::Id",
        on_delete = "Cascade"
    )]
    Project,
}

impl Related<super::project::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Project.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
