//! Generations: produced media and the tasks that made them.

use async_trait::async_trait;
use entities::generation::{self, Column, Entity as GenerationEntity};
use entities::{Id, IdList};
use sea_orm::Condition;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use super::page::{Listing, after_cursor, paginate};
use super::shots::{lock_shot, renumber};
use super::tasks::require_tasks_of_project;
use super::{
    GenerationPatch, Page, PageRequest, atomically, deleted, find_by_id, found, insert_model, live,
    select_all, tombstone, update_live,
};
use crate::executor::dialect_of;
use crate::{Executor, Result, clock};

/// A generation to create: [`NewGeneration::new`], then the builder methods.
/// (No `Default`: a generation needs its project.)
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct NewGeneration {
    /// The owning project; must exist.
    pub project_id: Id,
    /// Tasks of the same project that produced it.
    pub tasks: Vec<Id>,
    /// Where the media lives.
    pub location: Option<String>,
    /// The `"type"` column, e.g. `image` or `video`.
    pub generation_type: Option<String>,
}

impl NewGeneration {
    /// A generation of `project_id` with no tasks, location or type yet.
    pub fn new(project_id: Id) -> Self {
        NewGeneration {
            project_id,
            tasks: Vec::new(),
            location: None,
            generation_type: None,
        }
    }

    /// The same generation, made by `tasks` (tasks of the same project).
    pub fn tasks(mut self, tasks: impl IntoIterator<Item = Id>) -> Self {
        self.tasks = tasks.into_iter().collect();
        self
    }

    /// The same generation, stored at `location`.
    pub fn location(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    /// The same generation, of type `generation_type` (e.g. `image`, `video`).
    pub fn generation_type(mut self, generation_type: impl Into<String>) -> Self {
        self.generation_type = Some(generation_type.into());
        self
    }
}

/// Generations.
#[async_trait]
pub trait GenerationRepository: Send + Sync {
    /// Creates a generation with a new id. Every task must be of the same project.
    async fn create(&self, new: NewGeneration) -> Result<generation::Model>;
    /// The generation with this id, or `NotFound`.
    async fn get(&self, id: Id) -> Result<generation::Model>;
    /// Writes every field but `id` and `created_at`, and sets `updated_at`, if the row is still at
    /// its `row_version` (the version read; [`DalError::Stale`](crate::DalError::Stale) and
    /// nothing written if someone wrote the row since), and returns it with its new version.
    async fn update(&self, generation: generation::Model) -> Result<generation::Model>;
    /// Writes only the columns `patch` sets, checking the version only if the patch names
    /// one ([`GenerationPatch::if_version`]).
    async fn patch(&self, id: Id, patch: GenerationPatch) -> Result<generation::Model>;
    /// Deletes the generation and its places in shot timelines; those timelines close up
    /// (positions stay `0..n`).
    async fn delete(&self, id: Id) -> Result<()>;
    /// Generations whose `tasks` contain `task_id`, oldest first.
    async fn containing_task(&self, task_id: Id) -> Result<Vec<generation::Model>>;
    /// A project's generations, oldest first (by `(created_at, id)`), one page at a time
    /// by keyset; only of `generation_type` when given. The cursor continues only this
    /// listing (a cursor of another is `InvalidValue`).
    async fn list_for_project(
        &self,
        project_id: Id,
        generation_type: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<generation::Model>>;
    /// How many generations the project has (of `generation_type` when given).
    async fn count_for_project(&self, project_id: Id, generation_type: Option<&str>)
    -> Result<u64>;
}

/// [`GenerationRepository`] over an executor.
pub struct Generations<'e, E> {
    exec: &'e E,
}

impl<'e, E: Executor> Generations<'e, E> {
    pub(crate) fn new(exec: &'e E) -> Self {
        Generations { exec }
    }
}

fn id_list(ids: &[Id]) -> IdList {
    ids.iter().map(|id| id.uuid()).collect()
}

#[async_trait]
impl<E: Executor> GenerationRepository for Generations<'_, E> {
    async fn create(&self, new: NewGeneration) -> Result<generation::Model> {
        require_tasks_of_project(self.exec, new.project_id, &new.tasks, "generation task").await?;
        let now = clock::now();
        let row = generation::Model {
            id: Id::new(),
            tasks: id_list(&new.tasks),
            location: new.location,
            generation_type: new.generation_type,
            created_at: now,
            updated_at: now,
            project_id: new.project_id,
            row_version: 1,
        };
        insert_model(self.exec, row).await
    }

    async fn get(&self, id: Id) -> Result<generation::Model> {
        found(
            find_by_id::<_, GenerationEntity>(self.exec, id).await?,
            "generation",
            id,
        )
    }

    async fn update(&self, generation: generation::Model) -> Result<generation::Model> {
        let tasks: Vec<Id> = generation.tasks.iter().copied().collect();
        let project = generation.project_id;
        let id = generation.id;
        let expected = generation.row_version;
        let mut row = generation::ActiveModel::from(generation).reset_all();
        row.row_version = Set(super::version_after(expected));
        row.id = sea_orm::ActiveValue::Unchanged(id);
        row.created_at = NotSet;
        row.updated_at = Set(clock::now());
        // The check of its tasks and the write in one unit, as for a task's dependencies.
        atomically(self.exec, move |uow| {
            Box::pin(async move {
                require_tasks_of_project(uow, project, &tasks, "generation task").await?;
                update_live(uow, row, "generation", id, expected).await
            })
        })
        .await
    }

    async fn patch(&self, id: Id, patch: GenerationPatch) -> Result<generation::Model> {
        patch.apply(self.exec, id).await
    }

    async fn delete(&self, id: Id) -> Result<()> {
        use entities::shot_generation as link;
        let uow = self.exec.begin().await?;
        let mut shots: Vec<Id> = link::Entity::find()
            .select_only()
            .column(link::Column::ShotId)
            .filter(link::Column::GenerationId.eq(id))
            .filter(live::<link::Entity>())
            .distinct()
            .into_tuple()
            .all(&uow)
            .await?;
        // Lock in one order, so two deletes touching the same shots cannot deadlock.
        shots.sort();
        for shot in &shots {
            lock_shot(&uow, *shot).await?;
        }
        let n =
            tombstone::<_, GenerationEntity>(&uow, Condition::all().add(Column::Id.eq(id))).await?;
        deleted(n, "generation", id)?;
        tombstone::<_, link::Entity>(
            &uow,
            Condition::all().add(link::Column::GenerationId.eq(id)),
        )
        .await?;
        for shot in &shots {
            renumber(&uow, *shot).await?;
        }
        uow.commit().await
    }

    async fn containing_task(&self, task_id: Id) -> Result<Vec<generation::Model>> {
        let contains = dialect_of(self.exec)
            .uuid_list_contains((GenerationEntity, Column::Tasks), task_id.uuid());
        let query = GenerationEntity::find()
            .filter(contains)
            .filter(live::<GenerationEntity>())
            .order_by_asc(Column::CreatedAt)
            .order_by_asc(Column::Id);
        select_all(self.exec, query).await
    }

    async fn list_for_project(
        &self,
        project_id: Id,
        generation_type: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<generation::Model>> {
        let mut query = GenerationEntity::find().filter(of_project(project_id, generation_type));
        if let Some(after) = page.after_in(Listing::Generations)? {
            query = query.filter(after_cursor(after, Column::CreatedAt, Column::Id));
        }
        let query = query
            .order_by_asc(Column::CreatedAt)
            .order_by_asc(Column::Id)
            .limit(u64::from(page.limit()) + 1);
        let rows = select_all(self.exec, query).await?;
        Ok(paginate(rows, page.limit(), Listing::Generations, |g| {
            (g.created_at, g.id)
        }))
    }

    async fn count_for_project(
        &self,
        project_id: Id,
        generation_type: Option<&str>,
    ) -> Result<u64> {
        let count: Option<i64> = GenerationEntity::find()
            .select_only()
            .expr(Expr::col((GenerationEntity, Column::Id)).count())
            .filter(of_project(project_id, generation_type))
            .into_tuple()
            .one(self.exec)
            .await?;
        Ok(count.map_or(0, |n| n.unsigned_abs()))
    }
}

/// The live generations of `project_id`, only of `generation_type` when given.
fn of_project(project_id: Id, generation_type: Option<&str>) -> Condition {
    let mut condition = Condition::all()
        .add(Column::ProjectId.eq(project_id))
        .add(live::<GenerationEntity>());
    if let Some(kind) = generation_type {
        condition = condition.add(Column::GenerationType.eq(kind));
    }
    condition
}
