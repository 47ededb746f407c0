//! [`UserScope`]: the repositories as one user may use them.
//!
//! Every operation first establishes that the rows it touches belong to the scope's user
//! (a project they own, or something under one) and answers `NotFound` otherwise, so a
//! caller cannot tell another user's row from a missing one. The views implement the same
//! repository traits, so service code written against `&dyn TaskRepository` runs scoped or
//! unscoped alike. Inside a unit of work the check and the operation are atomic.
//!
//! This is the application-level guard on both backends. On Postgres the row-level
//! security policies of migration `m20250602_000001_row_level_security` enforce the same
//! rule in the database for units of work begun with
//! [`Database::begin_as_user`](crate::Database::begin_as_user).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use entities::{Id, TaskStatus, generation, project, shot, shot_generation, task};
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use super::{
    Claim, GenerationPatch, Generations, NewGeneration, NewProject, NewShot, NewTask, Page,
    PageRequest, ProjectPatch, Projects, ShotPatch, Shots, TaskFilter, TaskPatch, Tasks,
    TimelineEntry, found,
};
use super::{GenerationRepository, ProjectRepository, ShotRepository, TaskRepository};
use crate::{DalError, Executor, Result};

/// The repositories seen by one user. Get it with [`Executor::for_user`].
///
/// ```no_run
/// use dal::prelude::*;
/// # async fn run(db: &Database, user: Id, other_users_project: Id) -> dal::Result<()> {
/// let mine = db.for_user(user);
/// let projects = mine.projects().list_for_user(user, PageRequest::first(20)).await?;
/// assert!(matches!(mine.projects().get(other_users_project).await, Err(DalError::NotFound { .. })));
/// # Ok(()) }
/// ```
pub struct UserScope<'e, E> {
    exec: &'e E,
    user: Id,
}

impl<'e, E: Executor> UserScope<'e, E> {
    pub(crate) fn new(exec: &'e E, user: Id) -> Self {
        UserScope { exec, user }
    }

    /// The user this scope is for.
    pub fn user(&self) -> Id {
        self.user
    }

    /// The user's projects.
    pub fn projects(&self) -> ScopedProjects<'e, E> {
        ScopedProjects {
            exec: self.exec,
            user: self.user,
        }
    }

    /// Tasks of the user's projects.
    pub fn tasks(&self) -> ScopedTasks<'e, E> {
        ScopedTasks {
            exec: self.exec,
            user: self.user,
        }
    }

    /// Generations of the user's projects.
    pub fn generations(&self) -> ScopedGenerations<'e, E> {
        ScopedGenerations {
            exec: self.exec,
            user: self.user,
        }
    }

    /// Shots of the user's projects, and their timelines.
    pub fn shots(&self) -> ScopedShots<'e, E> {
        ScopedShots {
            exec: self.exec,
            user: self.user,
        }
    }
}

/// `Ok` if `project` exists and belongs to `user`; `NotFound` (for the project) otherwise.
async fn own_project<E: Executor>(exec: &E, user: Id, project: Id) -> Result<()> {
    let query = project::Entity::find_by_id(project)
        .filter(project::Column::UserId.eq(user))
        .filter(super::live::<project::Entity>());
    let owned = super::select_one(exec, query).await?;
    found(owned, "project", project).map(|_| ())
}

/// `NotFound` for `entity`/`key` when the row's project is not the user's.
async fn own_row<E: Executor, T>(
    exec: &E,
    user: Id,
    row: T,
    project: Id,
    entity: &'static str,
    key: Id,
) -> Result<T> {
    match own_project(exec, user, project).await {
        Ok(()) => Ok(row),
        Err(DalError::NotFound { .. }) => Err(DalError::not_found(entity, key)),
        Err(e) => Err(e),
    }
}

/// `NotFound` for the first of `ids` that is not a live task of one of `user`'s projects,
/// exactly as for a task that does not exist. The repositories check that the tasks a
/// write names (dependencies, a generation's tasks) are of the row's project, and answer
/// one of another project with `InvalidValue` naming that project: through a scoped view
/// that would confirm another user's task and name their project.
async fn own_tasks<E: Executor>(
    exec: &E,
    user: Id,
    ids: impl IntoIterator<Item = Id>,
    what: &str,
) -> Result<()> {
    let ids: Vec<Id> = ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(());
    }
    let users_projects = Query::select()
        .column(project::Column::Id)
        .from(project::Entity)
        .and_where(project::Column::UserId.eq(user))
        .and_where(super::live::<project::Entity>())
        .to_owned();
    let owned: HashSet<Id> = task::Entity::find()
        .select_only()
        .column(task::Column::Id)
        .filter(task::Column::Id.is_in(ids.iter().copied()))
        .filter(super::live::<task::Entity>())
        .filter(task::Column::ProjectId.in_subquery(users_projects))
        .into_tuple::<Id>()
        .all(exec)
        .await?
        .into_iter()
        .collect();
    match ids.iter().find(|id| !owned.contains(id)) {
        Some(missing) => Err(DalError::NotFound {
            entity: "task",
            key: format!("{missing} (named as a {what})"),
        }),
        None => Ok(()),
    }
}

/// [`ProjectRepository`] limited to one user's projects.
pub struct ScopedProjects<'e, E> {
    exec: &'e E,
    user: Id,
}

#[async_trait]
impl<E: Executor> ProjectRepository for ScopedProjects<'_, E> {
    async fn create(&self, new: NewProject) -> Result<project::Model> {
        if new.user_id != self.user {
            return Err(DalError::not_found("user", new.user_id));
        }
        Projects::new(self.exec).create(new).await
    }

    async fn get(&self, id: Id) -> Result<project::Model> {
        own_project(self.exec, self.user, id).await?;
        Projects::new(self.exec).get(id).await
    }

    async fn update(&self, project: project::Model) -> Result<project::Model> {
        own_project(self.exec, self.user, project.id).await?;
        if project.user_id != self.user {
            return Err(DalError::invalid(
                "a scoped view cannot give a project to another user",
            ));
        }
        Projects::new(self.exec).update(project).await
    }

    async fn patch(&self, id: Id, patch: ProjectPatch) -> Result<project::Model> {
        own_project(self.exec, self.user, id).await?;
        Projects::new(self.exec).patch(id, patch).await
    }

    async fn delete(&self, id: Id) -> Result<()> {
        own_project(self.exec, self.user, id).await?;
        Projects::new(self.exec).delete(id).await
    }

    async fn list_for_user(&self, user_id: Id, page: PageRequest) -> Result<Page<project::Model>> {
        if user_id != self.user {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        Projects::new(self.exec).list_for_user(user_id, page).await
    }
}

/// [`TaskRepository`] limited to the tasks of one user's projects.
pub struct ScopedTasks<'e, E> {
    exec: &'e E,
    user: Id,
}

impl<E: Executor> ScopedTasks<'_, E> {
    async fn own(&self, id: Id) -> Result<task::Model> {
        let row = Tasks::new(self.exec).get(id).await?;
        let project = row.project_id;
        own_row(self.exec, self.user, row, project, "task", id).await
    }
}

#[async_trait]
impl<E: Executor> TaskRepository for ScopedTasks<'_, E> {
    async fn create(&self, new: NewTask) -> Result<task::Model> {
        own_project(self.exec, self.user, new.project_id).await?;
        own_tasks(self.exec, self.user, new.dependant_on.clone(), "dependency").await?;
        Tasks::new(self.exec).create(new).await
    }

    async fn insert_many(&self, new: Vec<NewTask>) -> Result<Vec<Id>> {
        let mut projects: Vec<Id> = new.iter().map(|t| t.project_id).collect();
        projects.sort();
        projects.dedup();
        for project in projects {
            own_project(self.exec, self.user, project).await?;
        }
        // Dependencies on tasks of the batch are checked by the repository.
        let in_batch: HashSet<Id> = new.iter().filter_map(|t| t.id).collect();
        let outside = new
            .iter()
            .flat_map(|t| t.dependant_on.iter().copied())
            .filter(|d| !in_batch.contains(d));
        own_tasks(self.exec, self.user, outside, "dependency").await?;
        Tasks::new(self.exec).insert_many(new).await
    }

    async fn get(&self, id: Id) -> Result<task::Model> {
        self.own(id).await
    }

    async fn update(&self, task: task::Model) -> Result<task::Model> {
        self.own(task.id).await?;
        own_project(self.exec, self.user, task.project_id).await?;
        let dependencies = task.dependant_on.iter().copied();
        own_tasks(self.exec, self.user, dependencies, "dependency").await?;
        Tasks::new(self.exec).update(task).await
    }

    async fn patch(&self, id: Id, patch: TaskPatch) -> Result<task::Model> {
        self.own(id).await?;
        let dependencies = patch.dependencies().unwrap_or_default().to_vec();
        own_tasks(self.exec, self.user, dependencies, "dependency").await?;
        Tasks::new(self.exec).patch(id, patch).await
    }

    async fn delete(&self, id: Id) -> Result<()> {
        self.own(id).await?;
        Tasks::new(self.exec).delete(id).await
    }

    async fn list_for_project(
        &self,
        project_id: Id,
        filter: &TaskFilter,
        page: PageRequest,
    ) -> Result<Page<task::Model>> {
        own_project(self.exec, self.user, project_id).await?;
        Tasks::new(self.exec)
            .list_for_project(project_id, filter, page)
            .await
    }

    async fn count_for_project(&self, project_id: Id, filter: &TaskFilter) -> Result<u64> {
        own_project(self.exec, self.user, project_id).await?;
        Tasks::new(self.exec)
            .count_for_project(project_id, filter)
            .await
    }

    async fn count_by_status(
        &self,
        project_id: Id,
        filter: &TaskFilter,
    ) -> Result<HashMap<TaskStatus, u64>> {
        own_project(self.exec, self.user, project_id).await?;
        Tasks::new(self.exec)
            .count_by_status(project_id, filter)
            .await
    }

    async fn dependants_of(&self, id: Id) -> Result<Vec<task::Model>> {
        let task = self.own(id).await?;
        let all = Tasks::new(self.exec).dependants_of(id).await?;
        // Dependencies stay within a project; other writers could still link across.
        Ok(all
            .into_iter()
            .filter(|t| t.project_id == task.project_id)
            .collect())
    }

    async fn ready(&self, task_type: Option<&str>, page: PageRequest) -> Result<Page<task::Model>> {
        Tasks::owned_by(self.exec, self.user)
            .ready(task_type, page)
            .await
    }

    async fn try_claim_as(&self, task_type: &str, worker: &str, lease: Duration) -> Result<Claim> {
        Tasks::owned_by(self.exec, self.user)
            .try_claim_as(task_type, worker, lease)
            .await
    }

    async fn try_claim_in_project_as(
        &self,
        project_id: Id,
        task_type: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<Claim> {
        own_project(self.exec, self.user, project_id).await?;
        Tasks::new(self.exec)
            .try_claim_in_project_as(project_id, task_type, worker, lease)
            .await
    }

    async fn heartbeat(&self, id: Id, worker: &str, lease: Duration) -> Result<task::Model> {
        // Another user's task is `NotFound`, never `LeaseLost` naming its holder.
        self.own(id).await?;
        Tasks::new(self.exec).heartbeat(id, worker, lease).await
    }

    async fn complete(
        &self,
        id: Id,
        worker: &str,
        output_location: Option<String>,
    ) -> Result<task::Model> {
        // Another user's task is `NotFound`, never `LeaseLost` naming its holder.
        self.own(id).await?;
        Tasks::new(self.exec)
            .complete(id, worker, output_location)
            .await
    }

    async fn fail(&self, id: Id, worker: &str, reason: &str) -> Result<task::Model> {
        // Another user's task is `NotFound`, never `LeaseLost` naming its holder.
        self.own(id).await?;
        Tasks::new(self.exec).fail(id, worker, reason).await
    }

    async fn set_status(&self, id: Id, status: TaskStatus) -> Result<task::Model> {
        self.own(id).await?;
        Tasks::new(self.exec).set_status(id, status).await
    }
}

/// [`GenerationRepository`] limited to the generations of one user's projects.
pub struct ScopedGenerations<'e, E> {
    exec: &'e E,
    user: Id,
}

impl<E: Executor> ScopedGenerations<'_, E> {
    async fn own(&self, id: Id) -> Result<generation::Model> {
        let row = Generations::new(self.exec).get(id).await?;
        let project = row.project_id;
        own_row(self.exec, self.user, row, project, "generation", id).await
    }
}

#[async_trait]
impl<E: Executor> GenerationRepository for ScopedGenerations<'_, E> {
    async fn create(&self, new: NewGeneration) -> Result<generation::Model> {
        own_project(self.exec, self.user, new.project_id).await?;
        own_tasks(self.exec, self.user, new.tasks.clone(), "generation task").await?;
        Generations::new(self.exec).create(new).await
    }

    async fn get(&self, id: Id) -> Result<generation::Model> {
        self.own(id).await
    }

    async fn update(&self, generation: generation::Model) -> Result<generation::Model> {
        self.own(generation.id).await?;
        own_project(self.exec, self.user, generation.project_id).await?;
        let tasks = generation.tasks.iter().copied();
        own_tasks(self.exec, self.user, tasks, "generation task").await?;
        Generations::new(self.exec).update(generation).await
    }

    async fn patch(&self, id: Id, patch: GenerationPatch) -> Result<generation::Model> {
        self.own(id).await?;
        let tasks = patch.task_ids().unwrap_or_default().to_vec();
        own_tasks(self.exec, self.user, tasks, "generation task").await?;
        Generations::new(self.exec).patch(id, patch).await
    }

    async fn delete(&self, id: Id) -> Result<()> {
        self.own(id).await?;
        Generations::new(self.exec).delete(id).await
    }

    async fn containing_task(&self, task_id: Id) -> Result<Vec<generation::Model>> {
        let task = (ScopedTasks {
            exec: self.exec,
            user: self.user,
        })
        .own(task_id)
        .await?;
        let all = Generations::new(self.exec).containing_task(task_id).await?;
        Ok(all
            .into_iter()
            .filter(|g| g.project_id == task.project_id)
            .collect())
    }

    async fn list_for_project(
        &self,
        project_id: Id,
        generation_type: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<generation::Model>> {
        own_project(self.exec, self.user, project_id).await?;
        Generations::new(self.exec)
            .list_for_project(project_id, generation_type, page)
            .await
    }

    async fn count_for_project(
        &self,
        project_id: Id,
        generation_type: Option<&str>,
    ) -> Result<u64> {
        own_project(self.exec, self.user, project_id).await?;
        Generations::new(self.exec)
            .count_for_project(project_id, generation_type)
            .await
    }
}

/// [`ShotRepository`] limited to the shots of one user's projects.
pub struct ScopedShots<'e, E> {
    exec: &'e E,
    user: Id,
}

impl<E: Executor> ScopedShots<'_, E> {
    async fn own(&self, id: Id) -> Result<shot::Model> {
        let row = Shots::new(self.exec).get(id).await?;
        let project = row.project_id;
        own_row(self.exec, self.user, row, project, "shot", id).await
    }

    async fn own_link(&self, link_id: Id) -> Result<()> {
        let link = found(
            super::select_one(self.exec, shot_generation::Entity::find_by_id(link_id)).await?,
            "timeline entry",
            link_id,
        )?;
        match self.own(link.shot_id).await {
            Err(DalError::NotFound { .. }) => Err(DalError::not_found("timeline entry", link_id)),
            other => other.map(|_| ()),
        }
    }
}

#[async_trait]
impl<E: Executor> ShotRepository for ScopedShots<'_, E> {
    async fn create(&self, new: NewShot) -> Result<shot::Model> {
        own_project(self.exec, self.user, new.project_id).await?;
        Shots::new(self.exec).create(new).await
    }

    async fn get(&self, id: Id) -> Result<shot::Model> {
        self.own(id).await
    }

    async fn update(&self, shot: shot::Model) -> Result<shot::Model> {
        self.own(shot.id).await?;
        own_project(self.exec, self.user, shot.project_id).await?;
        Shots::new(self.exec).update(shot).await
    }

    async fn patch(&self, id: Id, patch: ShotPatch) -> Result<shot::Model> {
        self.own(id).await?;
        Shots::new(self.exec).patch(id, patch).await
    }

    async fn delete(&self, id: Id) -> Result<()> {
        self.own(id).await?;
        Shots::new(self.exec).delete(id).await
    }

    async fn list_for_project(&self, project_id: Id) -> Result<Vec<shot::Model>> {
        own_project(self.exec, self.user, project_id).await?;
        Shots::new(self.exec).list_for_project(project_id).await
    }

    async fn timeline(&self, shot_id: Id) -> Result<Vec<TimelineEntry>> {
        self.own(shot_id).await?;
        Shots::new(self.exec).timeline(shot_id).await
    }

    async fn add_to_timeline(
        &self,
        shot_id: Id,
        generation_id: Id,
        position: Option<i32>,
    ) -> Result<shot_generation::Model> {
        // Both must be the user's: checking the generation here keeps the repository's
        // "belongs to another project" (which would name that project) from leaking.
        self.own(shot_id).await?;
        (ScopedGenerations {
            exec: self.exec,
            user: self.user,
        })
        .own(generation_id)
        .await?;
        Shots::new(self.exec)
            .add_to_timeline(shot_id, generation_id, position)
            .await
    }

    async fn move_in_timeline(&self, link_id: Id, position: i32) -> Result<shot_generation::Model> {
        self.own_link(link_id).await?;
        Shots::new(self.exec)
            .move_in_timeline(link_id, position)
            .await
    }

    async fn remove_from_timeline(&self, link_id: Id) -> Result<()> {
        self.own_link(link_id).await?;
        Shots::new(self.exec).remove_from_timeline(link_id).await
    }
}
