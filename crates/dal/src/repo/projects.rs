//! Projects, and a user's projects newest first, a page at a time.

use async_trait::async_trait;
use entities::Id;
use entities::project::{self, Entity as ProjectEntity};
use sea_orm::sea_query::Condition;
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::page::{Listing, after_cursor, paginate};
use super::{
    Page, PageRequest, ProjectPatch, deleted, find_by_id, found, insert_model, live, require_text,
    select_all, tombstone, update_live,
};
use crate::{Executor, Result, clock};

/// A project to create: [`NewProject::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct NewProject {
    /// The owner; must exist (`MissingParent` otherwise).
    pub user_id: Id,
    /// Display name; must not be blank.
    pub name: String,
}

impl NewProject {
    /// A project named `name` owned by `user_id`.
    pub fn new(user_id: Id, name: impl Into<String>) -> Self {
        NewProject {
            user_id,
            name: name.into(),
        }
    }
}

/// Projects.
#[async_trait]
pub trait ProjectRepository: Send + Sync {
    /// Creates a project with a new id.
    async fn create(&self, new: NewProject) -> Result<project::Model>;
    /// The project with this id, or `NotFound`.
    async fn get(&self, id: Id) -> Result<project::Model>;
    /// Writes `name` and `user_id` if the row is still at
    /// its `row_version` (the version read; [`DalError::Stale`](crate::DalError::Stale) and
    /// nothing written if someone wrote the row since), and returns it with its new version.
    /// `created_at` never changes.
    async fn update(&self, project: project::Model) -> Result<project::Model>;
    /// Writes only the columns `patch` sets, checking the version only if the patch names
    /// one ([`ProjectPatch::if_version`]).
    async fn patch(&self, id: Id, patch: ProjectPatch) -> Result<project::Model>;
    /// Deletes the project and, by cascade, its tasks, generations, shots and timelines.
    async fn delete(&self, id: Id) -> Result<()>;
    /// A user's projects, newest first (ties broken by id, so the order is total), one
    /// page at a time by keyset: a cursor, never an offset. A cursor of another listing
    /// (the task and generation listings run oldest first) is `InvalidValue`.
    async fn list_for_user(&self, user_id: Id, page: PageRequest) -> Result<Page<project::Model>>;
}

/// [`ProjectRepository`] over an executor.
pub struct Projects<'e, E> {
    exec: &'e E,
}

impl<'e, E: Executor> Projects<'e, E> {
    pub(crate) fn new(exec: &'e E) -> Self {
        Projects { exec }
    }
}

#[async_trait]
impl<E: Executor> ProjectRepository for Projects<'_, E> {
    async fn create(&self, new: NewProject) -> Result<project::Model> {
        require_text("project name", &new.name)?;
        let row = project::Model {
            id: Id::new(),
            name: new.name,
            user_id: new.user_id,
            created_at: clock::now(),
            row_version: 1,
        };
        insert_model(self.exec, row).await
    }

    async fn get(&self, id: Id) -> Result<project::Model> {
        found(
            find_by_id::<_, ProjectEntity>(self.exec, id).await?,
            "project",
            id,
        )
    }

    async fn update(&self, project: project::Model) -> Result<project::Model> {
        require_text("project name", &project.name)?;
        let id = project.id;
        let expected = project.row_version;
        let mut row = project::ActiveModel::from(project).reset_all();
        row.id = sea_orm::ActiveValue::Unchanged(id);
        row.created_at = NotSet;
        row.row_version = sea_orm::ActiveValue::Set(super::version_after(expected));
        update_live(self.exec, row, "project", id, expected).await
    }

    async fn patch(&self, id: Id, patch: ProjectPatch) -> Result<project::Model> {
        patch.apply(self.exec, id).await
    }

    async fn delete(&self, id: Id) -> Result<()> {
        let uow = self.exec.begin().await?;
        let n =
            tombstone::<_, ProjectEntity>(&uow, Condition::all().add(project::Column::Id.eq(id)))
                .await?;
        deleted(n, "project", id)?;
        cascade_projects(&uow, &[id]).await?;
        uow.commit().await
    }

    async fn list_for_user(&self, user_id: Id, page: PageRequest) -> Result<Page<project::Model>> {
        use project::Column;
        let mut query = ProjectEntity::find()
            .filter(Column::UserId.eq(user_id))
            .filter(live::<ProjectEntity>());
        if let Some(after) = page.after_in(Listing::Projects)? {
            query = query.filter(after_cursor(after, Column::CreatedAt, Column::Id));
        }
        let query = query
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .limit(u64::from(page.limit()) + 1);
        let rows = select_all(self.exec, query).await?;
        Ok(paginate(rows, page.limit(), Listing::Projects, |p| {
            (p.created_at, p.id)
        }))
    }
}

/// Tombstones everything under `projects`, as `ON DELETE CASCADE` would remove it:
/// their tasks, generations, shots, and the timeline entries of those shots and
/// generations.
pub(crate) async fn cascade_projects(uow: &crate::UnitOfWork, projects: &[Id]) -> Result<()> {
    use entities::{generation, shot, shot_generation, task};
    use sea_orm::sea_query::Query;
    if projects.is_empty() {
        return Ok(());
    }
    let ids = || projects.iter().copied();
    let shots_of = Query::select()
        .column(shot::Column::Id)
        .from(shot::Entity)
        .and_where(shot::Column::ProjectId.is_in(projects.iter().copied()))
        .to_owned();
    let generations_of = Query::select()
        .column(generation::Column::Id)
        .from(generation::Entity)
        .and_where(generation::Column::ProjectId.is_in(projects.iter().copied()))
        .to_owned();
    tombstone::<_, task::Entity>(
        uow,
        Condition::all().add(task::Column::ProjectId.is_in(ids())),
    )
    .await?;
    tombstone::<_, generation::Entity>(
        uow,
        Condition::all().add(generation::Column::ProjectId.is_in(ids())),
    )
    .await?;
    tombstone::<_, shot::Entity>(
        uow,
        Condition::all().add(shot::Column::ProjectId.is_in(ids())),
    )
    .await?;
    // Links last: each level is tombstoned after its parents, so a writer that held a
    // parent (FOR SHARE) until it committed has its child seen by the next statement.
    tombstone::<_, shot_generation::Entity>(
        uow,
        Condition::any()
            .add(shot_generation::Column::ShotId.in_subquery(shots_of))
            .add(shot_generation::Column::GenerationId.in_subquery(generations_of)),
    )
    .await?;
    Ok(())
}
