//! Tasks: CRUD and dependencies, and the [`TaskRepository`] trait; its listings, counts
//! and readiness are in `task_lists.rs`, claiming in `claim.rs`, leases in `lease.rs`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use entities::task::{self, Column, Entity as TaskEntity};
use entities::{Id, IdList, TaskStatus};
use sea_orm::Condition;
use sea_orm::sea_query::{Expr, ExprTrait, LockType, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Set,
};

use super::claim::Claim;
use super::lease::{DEFAULT_LEASE, DEFAULT_MAX_ATTEMPTS, default_worker};
use super::{
    BumpVersion, Page, PageRequest, TaskPatch, atomically, deleted, find_by_id, found,
    insert_model, live, require_text, select_all, tombstone, update_returning, write_one,
};
use crate::executor::dialect_of;
use crate::{DalError, Executor, Result, clock};

/// The longest task type accepted. The claim's index (`tasks_queued_idx`) holds the task
/// type, and Postgres's b-tree stores about 2.7 kB an entry; a longer type would be
/// refused by Postgres alone, so both backends refuse it up front.
pub const MAX_TASK_TYPE_BYTES: usize = 512;

/// A task type must have text and fit [`MAX_TASK_TYPE_BYTES`].
pub(crate) fn check_task_type(task_type: &str) -> Result<()> {
    check_task_type_of("task type", task_type)
}

/// [`check_task_type`], naming the value `field` (`"task type of row 3"`) when refused.
fn check_task_type_of(field: &str, task_type: &str) -> Result<()> {
    require_text(field, task_type)?;
    if task_type.len() > MAX_TASK_TYPE_BYTES {
        return Err(crate::DalError::invalid(format!(
            "{field} is {} bytes; at most {MAX_TASK_TYPE_BYTES} are accepted",
            task_type.len()
        )));
    }
    Ok(())
}

/// A task to create: [`NewTask::queued`] or [`NewTask::new`], then the builder methods.
///
/// `#[non_exhaustive]`: build it with the constructors, so a field added later is not a
/// breaking change.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
#[must_use]
pub struct NewTask {
    /// The id to give it; `None` (the default) makes a new UUIDv7. Set it to refer to this
    /// task from others in the same [`insert_many`](TaskRepository::insert_many) batch.
    pub id: Option<Id>,
    /// The owning project; must exist.
    pub project_id: Id,
    /// What kind of work this is; must not be blank.
    pub task_type: String,
    /// Parameters for the worker.
    pub params: serde_json::Value,
    /// Initial status (often `Queued`).
    pub status: TaskStatus,
    /// Tasks of the same project this one waits for.
    pub dependant_on: Vec<Id>,
    /// How many claims it may have before a lapsed lease or a failure ends it `Failed`
    /// (at least 1; [`DEFAULT_MAX_ATTEMPTS`] unless set).
    pub max_attempts: i32,
}

impl NewTask {
    /// A task of `task_type` with `params` in `status`, with no dependencies.
    pub fn new(
        project_id: Id,
        task_type: impl Into<String>,
        params: serde_json::Value,
        status: TaskStatus,
    ) -> Self {
        NewTask {
            id: None,
            project_id,
            task_type: task_type.into(),
            params,
            status,
            dependant_on: Vec::new(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// A `Queued` task of `task_type` with `params` and no dependencies.
    pub fn queued(project_id: Id, task_type: impl Into<String>, params: serde_json::Value) -> Self {
        Self::new(project_id, task_type, params, TaskStatus::Queued)
    }

    /// The same task, created in `status`.
    pub fn with_status(mut self, status: TaskStatus) -> Self {
        self.status = status;
        self
    }

    /// The same task, allowed `max_attempts` claims (at least 1: the database refuses
    /// less with `InvalidValue`).
    pub fn with_max_attempts(mut self, max_attempts: i32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// The same task, with a caller-chosen id.
    pub fn with_id(mut self, id: Id) -> Self {
        self.id = Some(id);
        self
    }

    /// The same task, waiting for `dependencies` too (named after the `dependant_on`
    /// column it fills).
    pub fn dependant_on(mut self, dependencies: impl IntoIterator<Item = Id>) -> Self {
        self.dependant_on.extend(dependencies);
        self
    }

    /// The old name of [`dependant_on`](NewTask::dependant_on).
    #[deprecated(since = "0.2.0", note = "renamed to `dependant_on`, after the column")]
    pub fn depending_on(self, dependencies: impl IntoIterator<Item = Id>) -> Self {
        self.dependant_on(dependencies)
    }
}

/// Which tasks of a project to list. The default lists all of them.
///
/// ```
/// use dal::prelude::*;
/// let failed_renders = TaskFilter::default().status(TaskStatus::Failed).task_type("render");
/// # let _ = failed_renders;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct TaskFilter {
    /// Only these statuses (empty: any status).
    pub statuses: Vec<TaskStatus>,
    /// Only this task type.
    pub task_type: Option<String>,
}

impl TaskFilter {
    /// Also lists tasks in `status` (the first call narrows "any status" to this one).
    pub fn status(mut self, status: TaskStatus) -> Self {
        self.statuses.push(status);
        self
    }

    /// Only tasks of `task_type`.
    pub fn task_type(mut self, task_type: impl Into<String>) -> Self {
        self.task_type = Some(task_type.into());
        self
    }
}

/// Tasks.
#[async_trait]
pub trait TaskRepository: Send + Sync {
    /// Creates a task with a new id. Every dependency must be a task of the same project
    /// (`NotFound` for an unknown one, `InvalidValue` for one of another project).
    async fn create(&self, new: NewTask) -> Result<task::Model>;
    /// Creates many tasks at once, all or none, through the bulk path (Postgres: `COPY`,
    /// or `UNNEST` inside a unit of work; SQLite: multi-row inserts in one write transaction). A task may depend on tasks
    /// earlier or later in the same batch. Returns the new ids, in input order; they
    /// share one `created_at` and sort in input order.
    async fn insert_many(&self, new: Vec<NewTask>) -> Result<Vec<Id>>;
    /// The task with this id, or `NotFound`.
    async fn get(&self, id: Id) -> Result<task::Model>;
    /// Writes every field but `id` and `created_at`, and sets `updated_at`, if the row is still at
    /// its `row_version` (the version read; [`DalError::Stale`](crate::DalError::Stale) and
    /// nothing written if someone wrote the row since), and returns it with its new version.
    /// A task that a worker claimed after it was read is therefore never put back to
    /// `Queued` by a stale full update.
    async fn update(&self, task: task::Model) -> Result<task::Model>;
    /// Writes only the columns `patch` sets, checking the version only if the patch names
    /// one ([`TaskPatch::if_version`]).
    async fn patch(&self, id: Id, patch: TaskPatch) -> Result<task::Model>;
    /// Deletes the task.
    async fn delete(&self, id: Id) -> Result<()>;
    /// A project's tasks matching `filter`, oldest first (by `(created_at, id)`), one page
    /// at a time by keyset. The cursor continues only this listing (a cursor of another,
    /// such as the newest-first project listing, is `InvalidValue`); rows inserted between
    /// pages never repeat or shift a row, and appear on a later page if they sort after
    /// the cursor. The filter should stay the same from page to page.
    async fn list_for_project(
        &self,
        project_id: Id,
        filter: &TaskFilter,
        page: PageRequest,
    ) -> Result<Page<task::Model>>;
    /// How many of a project's tasks match `filter` (what paging through
    /// [`list_for_project`](TaskRepository::list_for_project) would return, at one moment).
    async fn count_for_project(&self, project_id: Id, filter: &TaskFilter) -> Result<u64>;
    /// How many of a project's tasks matching `filter` are in each status, in one
    /// `GROUP BY` query. Every status the filter admits is a key, with 0 when no task has it.
    async fn count_by_status(
        &self,
        project_id: Id,
        filter: &TaskFilter,
    ) -> Result<HashMap<TaskStatus, u64>>;
    /// Tasks whose `dependant_on` contains `id`, oldest first.
    async fn dependants_of(&self, id: Id) -> Result<Vec<task::Model>>;
    /// The old name of [`dependants_of`](TaskRepository::dependants_of).
    #[deprecated(since = "0.2.0", note = "renamed to `dependants_of`, after the column")]
    async fn dependents_of(&self, id: Id) -> Result<Vec<task::Model>> {
        self.dependants_of(id).await
    }
    /// `Queued` tasks whose every dependency is `Complete`, oldest first (by
    /// `(created_at, id)`), one page at a time (at most [`MAX_PAGE_SIZE`](super::MAX_PAGE_SIZE)
    /// rows a call); only of `task_type` when given. The cursor continues only this
    /// listing. A page is a snapshot: a task on it may be claimed by the time it is read,
    /// so workers take tasks with [`claim`](TaskRepository::claim), not from this list.
    async fn ready(&self, task_type: Option<&str>, page: PageRequest) -> Result<Page<task::Model>>;
    /// Atomically claims a task of `task_type` for `worker`, who holds it until `lease`
    /// from now, and returns it as [`Claim::Claimed`] (`In Progress`, `claimed_by` the
    /// worker, `lease_expires_at` set, `attempts` one more). The task is the oldest lapsed
    /// lease of the type with attempts left (a worker died or stalled), else the oldest
    /// ready task (`Queued`, every dependency `Complete`). Otherwise says why there was
    /// none: [`Claim::Empty`] (nothing claimable) or [`Claim::Busy`] (claimable tasks exist,
    /// but other transactions hold them: Postgres skips locked rows rather than wait for
    /// them). Safe with many workers: no task is claimed twice, and a lapsed lease is
    /// taken over by exactly one claim. Inside a unit of work that rolls back, the claim is
    /// undone.
    ///
    /// The claim also ends `Failed` the lapsed leases of the type whose task had its last
    /// attempt (`attempts >= max_attempts`), with `last_error` "lease expired after N
    /// attempts": lapsed leases are collected by the claims of their type (up to 100 a
    /// claim), not by a background task, so a type nobody claims keeps them `In Progress`.
    ///
    /// The holder keeps the task by calling [`heartbeat`](TaskRepository::heartbeat)
    /// well within the lease, and finishes it with [`complete`](TaskRepository::complete)
    /// or [`fail`](TaskRepository::fail). `worker` must not be blank and should be unique
    /// to the worker (two workers of one name can finish each other's tasks); a zero lease
    /// is `InvalidValue`. Leases are measured with the database's clock on Postgres (one
    /// clock for every application server, whatever theirs say) and with the host's on
    /// SQLite.
    async fn try_claim_as(&self, task_type: &str, worker: &str, lease: Duration) -> Result<Claim>;
    /// [`try_claim_as`](TaskRepository::try_claim_as), restricted to the tasks of one
    /// project.
    async fn try_claim_in_project_as(
        &self,
        project_id: Id,
        task_type: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<Claim>;
    /// [`try_claim_as`](TaskRepository::try_claim_as) for a worker that only needs the
    /// task: `None` for both [`Claim::Empty`] and [`Claim::Busy`].
    async fn claim_as(
        &self,
        task_type: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<task::Model>> {
        Ok(self
            .try_claim_as(task_type, worker, lease)
            .await?
            .into_task())
    }
    /// [`try_claim_as`](TaskRepository::try_claim_as) for the process's
    /// [`default_worker`] with the [`DEFAULT_LEASE`] (five minutes): the convenient form
    /// for a worker whose tasks finish well within it. Such a task is still taken over by
    /// another claim once its lease lapses; a longer task needs `try_claim_as` with a
    /// longer lease, or [`heartbeat`](TaskRepository::heartbeat)s.
    async fn try_claim(&self, task_type: &str) -> Result<Claim> {
        self.try_claim_as(task_type, default_worker(), DEFAULT_LEASE)
            .await
    }
    /// [`try_claim`](TaskRepository::try_claim), restricted to the tasks of one project.
    async fn try_claim_in_project(&self, project_id: Id, task_type: &str) -> Result<Claim> {
        self.try_claim_in_project_as(project_id, task_type, default_worker(), DEFAULT_LEASE)
            .await
    }
    /// [`try_claim`](TaskRepository::try_claim) for a worker that only needs the task:
    /// `None` for both [`Claim::Empty`] and [`Claim::Busy`].
    ///
    /// `None` therefore means "nothing claimable now", not "the queue is empty"; a
    /// worker that stops at `None` should look again later, or use `try_claim` to know
    /// whether to look again soon (`Busy`) or wait for new work (`Empty`).
    async fn claim(&self, task_type: &str) -> Result<Option<task::Model>> {
        Ok(self.try_claim(task_type).await?.into_task())
    }
    /// [`claim`](TaskRepository::claim), restricted to the tasks of one project.
    async fn claim_in_project(
        &self,
        project_id: Id,
        task_type: &str,
    ) -> Result<Option<task::Model>> {
        Ok(self
            .try_claim_in_project(project_id, task_type)
            .await?
            .into_task())
    }
    /// Extends `worker`'s lease on task `id` to `lease` from now and returns the task.
    /// [`DalError::LeaseLost`] and nothing written if `worker` does not hold it: the task
    /// is not `In Progress` any more, or another worker took it over after the lease
    /// lapsed. A lapsed lease that nobody took over is still the worker's, and is renewed.
    async fn heartbeat(&self, id: Id, worker: &str, lease: Duration) -> Result<task::Model>;
    /// `worker` finished task `id`: it becomes `Complete` with `output_location`, and its
    /// lease ends. [`DalError::LeaseLost`] and nothing written if `worker` does not hold
    /// it (see [`heartbeat`](TaskRepository::heartbeat)).
    async fn complete(
        &self,
        id: Id,
        worker: &str,
        output_location: Option<String>,
    ) -> Result<task::Model>;
    /// `worker` gave up on task `id` for `reason`, kept in `last_error`: the task goes
    /// back to `Queued` for another attempt, or becomes `Failed` if it has had
    /// `max_attempts` claims; its lease ends. [`DalError::LeaseLost`] and nothing written
    /// if `worker` does not hold it (see [`heartbeat`](TaskRepository::heartbeat)). To
    /// fail a task for good whatever its attempts, set its status.
    async fn fail(&self, id: Id, worker: &str, reason: &str) -> Result<task::Model>;
    /// Sets the status and `updated_at`, whoever holds the task; a status other than
    /// `In Progress` ends its lease.
    async fn set_status(&self, id: Id, status: TaskStatus) -> Result<task::Model>;
}

/// [`TaskRepository`] over an executor.
pub struct Tasks<'e, E> {
    pub(crate) exec: &'e E,
    /// Only tasks of this user's projects, for the queries that range over all projects
    /// (`ready`, `claim`); set by a [`UserScope`](super::UserScope).
    owner: Option<Id>,
}

impl<'e, E: Executor> Tasks<'e, E> {
    pub(crate) fn new(exec: &'e E) -> Self {
        Tasks { exec, owner: None }
    }

    pub(crate) fn owned_by(exec: &'e E, user: Id) -> Self {
        Tasks {
            exec,
            owner: Some(user),
        }
    }

    /// `tasks.project_id` is a project of the owner, when there is one.
    pub(crate) fn owner_filter(&self) -> Option<sea_orm::sea_query::SimpleExpr> {
        use entities::project;
        self.owner.map(|user| {
            Column::ProjectId.in_subquery(
                Query::select()
                    .column(project::Column::Id)
                    .from(project::Entity)
                    .and_where(project::Column::UserId.eq(user))
                    .to_owned(),
            )
        })
    }
}

#[async_trait]
impl<E: Executor> TaskRepository for Tasks<'_, E> {
    async fn create(&self, new: NewTask) -> Result<task::Model> {
        check_task_type(&new.task_type)?;
        let now = clock::now();
        let row = task::Model {
            id: new.id.unwrap_or_else(Id::new),
            task_type: new.task_type,
            // In the form every read returns (the value mapping stores this form too).
            params: entities::json::canonical(new.params),
            status: new.status,
            dependant_on: new
                .dependant_on
                .iter()
                .map(|id| id.uuid())
                .collect::<IdList>(),
            output_location: None,
            created_at: now,
            updated_at: now,
            project_id: new.project_id,
            row_version: 1,
            claimed_by: None,
            lease_expires_at: None,
            attempts: 0,
            max_attempts: new.max_attempts,
            last_error: None,
        };
        if new.dependant_on.is_empty() {
            return insert_model(self.exec, row).await;
        }
        // Check and write together, the dependencies share-locked (Postgres), so none can
        // be deleted or moved to another project in between.
        let uow = self.exec.begin().await?;
        require_tasks_of_project(&uow, row.project_id, &new.dependant_on, "dependency").await?;
        let row = insert_model(&uow, row).await?;
        uow.commit().await?;
        Ok(row)
    }

    async fn insert_many(&self, new: Vec<NewTask>) -> Result<Vec<Id>> {
        let now = clock::now();
        let ids: Vec<Id> = new.iter().map(|t| t.id.unwrap_or_else(Id::new)).collect();
        // A dependency is a task of the batch or an existing one, of the same project.
        let in_batch: HashMap<Id, Id> = new
            .iter()
            .zip(&ids)
            .map(|(task, id)| (*id, task.project_id))
            .collect();
        let mut outside: HashMap<Id, Vec<Id>> = HashMap::new();
        for (i, task) in new.iter().enumerate() {
            check_task_type_of(&format!("task type of row {i}"), &task.task_type)?;
            for dep in &task.dependant_on {
                match in_batch.get(dep) {
                    Some(project) if *project != task.project_id => {
                        return Err(DalError::invalid(format!(
                            "row {i}: dependency {dep} belongs to project {project}, not {}",
                            task.project_id
                        )));
                    }
                    Some(_) => {}
                    None => outside.entry(task.project_id).or_default().push(*dep),
                }
            }
        }
        for (project, deps) in &outside {
            require_tasks_of_project(self.exec, *project, deps, "dependency").await?;
        }
        let rows: Vec<task::ActiveModel> = new
            .into_iter()
            .zip(&ids)
            .map(|(task, id)| task::ActiveModel {
                id: Set(*id),
                task_type: Set(task.task_type),
                params: Set(task.params),
                status: Set(task.status),
                dependant_on: Set(task
                    .dependant_on
                    .iter()
                    .map(|d| d.uuid())
                    .collect::<IdList>()),
                output_location: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
                project_id: Set(task.project_id),
                row_version: Set(1),
                claimed_by: Set(None),
                lease_expires_at: Set(None),
                attempts: Set(0),
                max_attempts: Set(task.max_attempts),
                last_error: Set(None),
            })
            .collect();
        crate::bulk::insert_all(self.exec, rows).await?;
        Ok(ids)
    }

    async fn get(&self, id: Id) -> Result<task::Model> {
        found(
            find_by_id::<_, TaskEntity>(self.exec, id).await?,
            "task",
            id,
        )
    }

    async fn update(&self, task: task::Model) -> Result<task::Model> {
        check_task_type(&task.task_type)?;
        let dependencies: Vec<Id> = task.dependant_on.iter().copied().collect();
        let id = task.id;
        let project = task.project_id;
        let expected = task.row_version;
        let mut row = task::ActiveModel::from(task).reset_all();
        row.id = sea_orm::ActiveValue::Unchanged(id);
        row.created_at = NotSet;
        row.updated_at = Set(clock::now());
        row.row_version = Set(super::version_after(expected));
        let update = TaskEntity::update(row)
            .validate()?
            .filter(live::<TaskEntity>())
            .filter(Expr::col(Column::RowVersion).eq(expected))
            .into_query();
        // The dependency check and the write in one unit, so no dependency can be deleted
        // or moved in between (it was two autocommits before).
        atomically(self.exec, move |uow| {
            Box::pin(async move {
                require_tasks_of_project(uow, project, &dependencies, "dependency").await?;
                write_one::<_, TaskEntity>(uow, update, "task", id, Some(expected)).await
            })
        })
        .await
    }

    async fn patch(&self, id: Id, patch: TaskPatch) -> Result<task::Model> {
        patch.apply(self.exec, id).await
    }

    async fn delete(&self, id: Id) -> Result<()> {
        let n =
            tombstone::<_, TaskEntity>(self.exec, Condition::all().add(Column::Id.eq(id))).await?;
        deleted(n, "task", id)
    }

    async fn list_for_project(
        &self,
        project_id: Id,
        filter: &TaskFilter,
        page: PageRequest,
    ) -> Result<Page<task::Model>> {
        self.list_page(project_id, filter, page).await
    }

    async fn count_for_project(&self, project_id: Id, filter: &TaskFilter) -> Result<u64> {
        self.count_matching(project_id, filter).await
    }

    async fn count_by_status(
        &self,
        project_id: Id,
        filter: &TaskFilter,
    ) -> Result<HashMap<TaskStatus, u64>> {
        self.status_counts(project_id, filter).await
    }

    async fn dependants_of(&self, id: Id) -> Result<Vec<task::Model>> {
        let contains =
            dialect_of(self.exec).uuid_list_contains((TaskEntity, Column::DependantOn), id.uuid());
        let query = TaskEntity::find()
            .filter(contains)
            .filter(live::<TaskEntity>())
            .order_by_asc(Column::CreatedAt)
            .order_by_asc(Column::Id);
        select_all(self.exec, query).await
    }

    async fn ready(&self, task_type: Option<&str>, page: PageRequest) -> Result<Page<task::Model>> {
        self.ready_page(task_type, page).await
    }

    async fn try_claim_as(&self, task_type: &str, worker: &str, lease: Duration) -> Result<Claim> {
        self.claim_where(task_type, None, worker, lease).await
    }

    async fn try_claim_in_project_as(
        &self,
        project_id: Id,
        task_type: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<Claim> {
        self.claim_where(task_type, Some(project_id), worker, lease)
            .await
    }

    async fn heartbeat(&self, id: Id, worker: &str, lease: Duration) -> Result<task::Model> {
        self.extend_lease(id, worker, lease).await
    }

    async fn complete(
        &self,
        id: Id,
        worker: &str,
        output_location: Option<String>,
    ) -> Result<task::Model> {
        self.complete_held(id, worker, output_location).await
    }

    async fn fail(&self, id: Id, worker: &str, reason: &str) -> Result<task::Model> {
        self.fail_held(id, worker, reason).await
    }

    async fn set_status(&self, id: Id, status: TaskStatus) -> Result<task::Model> {
        let mut update = TaskEntity::update_many()
            .col_expr(Column::Status, Expr::value(status))
            .col_expr(Column::UpdatedAt, Expr::value(clock::now()));
        if status != TaskStatus::InProgress {
            // Only `In Progress` tasks have leases that can lapse.
            update = update.col_expr(
                Column::LeaseExpiresAt,
                Expr::value(None::<chrono::DateTime<chrono::Utc>>),
            );
        }
        let update = update
            .bump_version()
            .filter(Column::Id.eq(id))
            .filter(live::<TaskEntity>())
            .into_query();
        let mut rows = update_returning::<_, TaskEntity>(self.exec, update).await?;
        found(rows.pop(), "task", id)
    }
}

/// Checks that every id in `ids` is a task of `project_id`: `NotFound` names an unknown
/// one, `InvalidValue` one of another project. `what` says what the ids are for.
pub(crate) async fn require_tasks_of_project<E: Executor>(
    exec: &E,
    project_id: Id,
    ids: &[Id],
    what: &str,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let wanted: HashSet<Id> = ids.iter().copied().collect();
    let rows: Vec<(Id, Id)> = TaskEntity::find()
        .select_only()
        .column(Column::Id)
        .column(Column::ProjectId)
        .filter(Column::Id.is_in(wanted.iter().copied()))
        .filter(live::<TaskEntity>())
        // Postgres: hold them until the caller's unit of work ends (SQLite's write lock
        // already excludes other writers; sea-query leaves the clause out there).
        .lock(LockType::Share)
        .into_tuple()
        .all(exec)
        .await?;
    if let Some(missing) = wanted
        .iter()
        .find(|id| !rows.iter().any(|(row, _)| row == *id))
    {
        return Err(DalError::NotFound {
            entity: "task",
            key: format!("{missing} (named as a {what})"),
        });
    }
    if let Some((id, other)) = rows.iter().find(|(_, project)| *project != project_id) {
        return Err(DalError::invalid(format!(
            "{what} {id} belongs to project {other}, not {project_id}"
        )));
    }
    Ok(())
}
