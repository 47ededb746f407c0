//! Shots and their timelines: the generations of a shot, in a dense order `0..n`.

use async_trait::async_trait;
use entities::shot::{self, Entity as ShotEntity};
use entities::shot_generation::{self as link, Entity as LinkEntity};
use entities::{Id, generation};
use sea_orm::Condition;
use sea_orm::sea_query::{Expr, ExprTrait, LockType};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Set,
};

use crate::decode::{FromRow, Raw};

use super::{
    BumpVersion, ShotPatch, deleted, find_by_id, found, insert_model, live, require_text,
    select_all, select_one, tombstone, update_live, update_returning,
};
use crate::{DalError, Executor, Result, UnitOfWork, clock};

/// A shot to create: [`NewShot::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct NewShot {
    /// The owning project; must exist.
    pub project_id: Id,
    /// Display name; must not be blank.
    pub name: String,
}

impl NewShot {
    /// A shot named `name` in `project_id`.
    pub fn new(project_id: Id, name: impl Into<String>) -> Self {
        NewShot {
            project_id,
            name: name.into(),
        }
    }
}

/// One place in a shot's timeline: the link row and its generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineEntry {
    /// The `shot_generations` row (its `id` names this place; a generation may appear twice).
    pub link: link::Model,
    /// The generation shown there.
    pub generation: generation::Model,
}

/// Shots and their timelines.
///
/// Timeline positions are always `0..n` without gaps: adding shifts the entries at and
/// after the position up, removing closes the gap, moving shifts the entries between.
/// Each operation is atomic, and concurrent operations on one shot are serialised (the
/// shot's row is locked on Postgres; SQLite has one writer at a time).
#[async_trait]
pub trait ShotRepository: Send + Sync {
    /// Creates a shot with a new id.
    async fn create(&self, new: NewShot) -> Result<shot::Model>;
    /// The shot with this id, or `NotFound`.
    async fn get(&self, id: Id) -> Result<shot::Model>;
    /// Writes `name` and `project_id` and sets `updated_at`, if the row is still at
    /// its `row_version` (the version read; [`DalError::Stale`](crate::DalError::Stale) and
    /// nothing written if someone wrote the row since), and returns it with its new version.
    async fn update(&self, shot: shot::Model) -> Result<shot::Model>;
    /// Writes only the columns `patch` sets, checking the version only if the patch names
    /// one ([`ShotPatch::if_version`]).
    async fn patch(&self, id: Id, patch: ShotPatch) -> Result<shot::Model>;
    /// Deletes the shot and its timeline (not the generations).
    async fn delete(&self, id: Id) -> Result<()>;
    /// A project's shots, oldest first.
    async fn list_for_project(&self, project_id: Id) -> Result<Vec<shot::Model>>;
    /// The shot's timeline in order, with each generation, in one statement whatever its
    /// length. `NotFound` if the shot does not exist.
    async fn timeline(&self, shot_id: Id) -> Result<Vec<TimelineEntry>>;
    /// Puts `generation_id` at `position` (clamped to the end; `None` appends; negative:
    /// `InvalidValue`), shifting
    /// later entries up. The generation must belong to the shot's project.
    async fn add_to_timeline(
        &self,
        shot_id: Id,
        generation_id: Id,
        position: Option<i32>,
    ) -> Result<link::Model>;
    /// Moves the entry `link_id` to `position` (clamped to the end; negative: `InvalidValue`).
    async fn move_in_timeline(&self, link_id: Id, position: i32) -> Result<link::Model>;
    /// Removes the entry `link_id`; later entries move down one.
    async fn remove_from_timeline(&self, link_id: Id) -> Result<()>;
}

/// [`ShotRepository`] over an executor.
pub struct Shots<'e, E> {
    exec: &'e E,
}

impl<'e, E: Executor> Shots<'e, E> {
    pub(crate) fn new(exec: &'e E) -> Self {
        Shots { exec }
    }

    /// Closes gaps and ties in the shot's positions, keeping their order (position, then
    /// id). For writers that set positions themselves, such as sync merging two clients'
    /// timelines; the repository's own operations keep them dense already. Behind the
    /// `internals` feature (the sync engine's), not part of the stable API.
    #[cfg(feature = "internals")]
    pub async fn renumber_timeline(&self, shot_id: Id) -> Result<()> {
        let uow = self.exec.begin().await?;
        match lock_shot(&uow, shot_id).await {
            Ok(_) => {}
            // A tombstoned or missing shot has no timeline to keep.
            Err(DalError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        }
        renumber(&uow, shot_id).await?;
        uow.commit().await
    }
}

/// Locks the shot for the rest of the unit of work and returns it, or `NotFound`.
pub(crate) async fn lock_shot(uow: &UnitOfWork, shot_id: Id) -> Result<shot::Model> {
    let query = ShotEntity::find_by_id(shot_id)
        .filter(live::<ShotEntity>())
        .lock(LockType::Update);
    found(select_one(uow, query).await?, "shot", shot_id)
}

/// How many entries the shot's timeline has.
async fn timeline_len(uow: &UnitOfWork, shot_id: Id) -> Result<i32> {
    let n = LinkEntity::find()
        .filter(link::Column::ShotId.eq(shot_id))
        .filter(live::<LinkEntity>())
        .count(uow)
        .await?;
    i32::try_from(n).map_err(|_| DalError::invalid("timeline longer than i32::MAX"))
}

/// Adds `delta` to the position of the shot's entries with `from <= position < to`.
async fn shift(uow: &UnitOfWork, shot_id: Id, from: i32, to: i32, delta: i32) -> Result<()> {
    if from >= to {
        return Ok(());
    }
    LinkEntity::update_many()
        .col_expr(
            link::Column::Position,
            Expr::col(link::Column::Position).add(delta),
        )
        .bump_version()
        .filter(link::Column::ShotId.eq(shot_id))
        .filter(live::<LinkEntity>())
        .filter(link::Column::Position.gte(from))
        .filter(link::Column::Position.lt(to))
        .exec(uow)
        .await?;
    Ok(())
}

/// Closes gaps in the shot's positions (after rows left by cascade), keeping their order.
pub(crate) async fn renumber(uow: &UnitOfWork, shot_id: Id) -> Result<()> {
    let query = LinkEntity::find()
        .filter(link::Column::ShotId.eq(shot_id))
        .filter(live::<LinkEntity>())
        .order_by_asc(link::Column::Position)
        .order_by_asc(link::Column::Id);
    let links = select_all(uow, query).await?;
    for (position, row) in links.into_iter().enumerate() {
        let position = position as i32;
        if row.position != position {
            LinkEntity::update_many()
                .col_expr(link::Column::Position, Expr::value(position))
                .bump_version()
                .filter(link::Column::Id.eq(row.id))
                .exec(uow)
                .await?;
        }
    }
    Ok(())
}

/// Marks the shot as changed.
async fn touch(uow: &UnitOfWork, shot_id: Id) -> Result<()> {
    ShotEntity::update_many()
        .col_expr(shot::Column::UpdatedAt, Expr::value(clock::now()))
        .bump_version()
        .filter(shot::Column::Id.eq(shot_id))
        .exec(uow)
        .await?;
    Ok(())
}

/// The link `link_id`, or `NotFound`.
async fn get_link(uow: &UnitOfWork, link_id: Id) -> Result<link::Model> {
    let query = LinkEntity::find_by_id(link_id).filter(live::<LinkEntity>());
    found(select_one(uow, query).await?, "timeline entry", link_id)
}

/// `position` clamped to `0..=len`; a negative one is refused, naming it.
fn clamp(position: i32, len: i32) -> Result<i32> {
    if position < 0 {
        return Err(DalError::invalid(format!(
            "timeline position {position} is negative; positions count from 0"
        )));
    }
    Ok(Ord::min(position, len))
}

#[async_trait]
impl<E: Executor> ShotRepository for Shots<'_, E> {
    async fn create(&self, new: NewShot) -> Result<shot::Model> {
        require_text("shot name", &new.name)?;
        let now = clock::now();
        let row = shot::Model {
            id: Id::new(),
            name: new.name,
            created_at: now,
            updated_at: now,
            project_id: new.project_id,
            row_version: 1,
        };
        insert_model(self.exec, row).await
    }

    async fn get(&self, id: Id) -> Result<shot::Model> {
        found(
            find_by_id::<_, ShotEntity>(self.exec, id).await?,
            "shot",
            id,
        )
    }

    async fn update(&self, shot: shot::Model) -> Result<shot::Model> {
        require_text("shot name", &shot.name)?;
        let id = shot.id;
        let expected = shot.row_version;
        let mut row = shot::ActiveModel::from(shot).reset_all();
        row.id = sea_orm::ActiveValue::Unchanged(id);
        row.created_at = NotSet;
        row.updated_at = Set(clock::now());
        row.row_version = Set(super::version_after(expected));
        update_live(self.exec, row, "shot", id, expected).await
    }

    async fn patch(&self, id: Id, patch: ShotPatch) -> Result<shot::Model> {
        patch.apply(self.exec, id).await
    }

    async fn delete(&self, id: Id) -> Result<()> {
        let uow = self.exec.begin().await?;
        let n =
            tombstone::<_, ShotEntity>(&uow, Condition::all().add(shot::Column::Id.eq(id))).await?;
        deleted(n, "shot", id)?;
        tombstone::<_, LinkEntity>(&uow, Condition::all().add(link::Column::ShotId.eq(id))).await?;
        uow.commit().await
    }

    async fn list_for_project(&self, project_id: Id) -> Result<Vec<shot::Model>> {
        let query = ShotEntity::find()
            .filter(shot::Column::ProjectId.eq(project_id))
            .filter(live::<ShotEntity>())
            .order_by_asc(shot::Column::CreatedAt)
            .order_by_asc(shot::Column::Id);
        select_all(self.exec, query).await
    }

    async fn timeline(&self, shot_id: Id) -> Result<Vec<TimelineEntry>> {
        // One statement: the shot LEFT JOIN its links LEFT JOIN their generations. No row
        // means no shot; a shot without entries comes back as one row of NULLs.
        let query = ShotEntity::find_by_id(shot_id)
            .filter(live::<ShotEntity>())
            .find_also_related(LinkEntity)
            .and_also_related(generation::Entity)
            // A tombstoned entry is not on the timeline; a shot with none left still
            // comes back as its one row of NULLs.
            .filter(
                Condition::any()
                    .add(live::<LinkEntity>())
                    .add(Expr::col((LinkEntity, link::Column::Id)).is_null()),
            )
            .order_by_asc(link::Column::Position)
            .order_by_asc(link::Column::Id);
        let rows = self
            .exec
            .query_all_raw(query.build(self.exec.get_database_backend()))
            .await?;
        if rows.is_empty() {
            // No row: no live shot, or one whose entries are all tombstoned.
            self.get(shot_id).await?;
            return Ok(Vec::new());
        }
        // Each row is the shot's columns, then the link's, then the generation's.
        let link_at = shot::Model::COLUMNS.len();
        let generation_at = link_at + link::Model::COLUMNS.len();
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            let row = Raw::of(row)?;
            if row.is_null(link_at) {
                continue;
            }
            let link = link::Model::from_row(row, link_at)?;
            if row.is_null(generation_at) {
                // The foreign key makes this impossible; say so rather than drop a row.
                return Err(DalError::not_found("generation", link.generation_id));
            }
            let generation = generation::Model::from_row(row, generation_at)?;
            entries.push(TimelineEntry { link, generation });
        }
        Ok(entries)
    }

    async fn add_to_timeline(
        &self,
        shot_id: Id,
        generation_id: Id,
        position: Option<i32>,
    ) -> Result<link::Model> {
        let uow = self.exec.begin().await?;
        let shot = lock_shot(&uow, shot_id).await?;
        let generation = found(
            select_one(&uow, generation::Entity::find_by_id(generation_id)).await?,
            "generation",
            generation_id,
        )?;
        if generation.project_id != shot.project_id {
            return Err(DalError::invalid(format!(
                "generation {generation_id} belongs to project {}, but shot {shot_id} to project {}",
                generation.project_id, shot.project_id
            )));
        }
        let len = timeline_len(&uow, shot_id).await?;
        let at = position.map_or(Ok(len), |p| clamp(p, len))?;
        shift(&uow, shot_id, at, len, 1).await?;
        let row = insert_model(
            &uow,
            link::Model {
                id: Id::new(),
                shot_id,
                generation_id,
                position: at,
                row_version: 1,
            },
        )
        .await?;
        touch(&uow, shot_id).await?;
        uow.commit().await?;
        Ok(row)
    }

    async fn move_in_timeline(&self, link_id: Id, position: i32) -> Result<link::Model> {
        let uow = self.exec.begin().await?;
        let shot_id = get_link(&uow, link_id).await?.shot_id;
        lock_shot(&uow, shot_id).await?;
        // Read again under the lock: another move may have run meanwhile.
        let current = get_link(&uow, link_id).await?;
        let len = timeline_len(&uow, shot_id).await?;
        let to = clamp(position, len - 1)?;
        let from = current.position;
        if to > from {
            shift(&uow, shot_id, from + 1, to + 1, -1).await?;
        } else {
            shift(&uow, shot_id, to, from, 1).await?;
        }
        let update = LinkEntity::update_many()
            .col_expr(link::Column::Position, Expr::value(to))
            .bump_version()
            .filter(link::Column::Id.eq(link_id))
            .into_query();
        let row = found(
            update_returning::<_, LinkEntity>(&uow, update).await?.pop(),
            "timeline entry",
            link_id,
        )?;
        touch(&uow, shot_id).await?;
        uow.commit().await?;
        Ok(row)
    }

    async fn remove_from_timeline(&self, link_id: Id) -> Result<()> {
        let uow = self.exec.begin().await?;
        let shot_id = get_link(&uow, link_id).await?.shot_id;
        lock_shot(&uow, shot_id).await?;
        let current = get_link(&uow, link_id).await?;
        tombstone::<_, LinkEntity>(&uow, Condition::all().add(link::Column::Id.eq(link_id)))
            .await?;
        shift(&uow, shot_id, current.position + 1, i32::MAX, -1).await?;
        touch(&uow, shot_id).await?;
        uow.commit().await?;
        Ok(())
    }
}
