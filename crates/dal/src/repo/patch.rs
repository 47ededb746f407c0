//! Partial updates: a patch names the columns to write and writes only those, so two
//! writers changing different columns of one row both keep their change ("set the output
//! location" never touches `status`). A patch may also name the version it was based on
//! ([`TaskPatch::if_version`], ...), and is then refused with [`DalError::Stale`] if the
//! row has moved on.
//!
//! ```no_run
//! use dal::prelude::*;
//! # async fn run(db: &Database, id: Id) -> dal::Result<()> {
//! // A worker records where it wrote its result, whatever else changed meanwhile.
//! db.tasks().patch(id, TaskPatch::new().output_location("s3://out/1.mp4")).await?;
//!
//! // A form saves what the user edited, only if nobody changed the task since it was read.
//! let task = db.tasks().get(id).await?;
//! match db.tasks().patch(id, TaskPatch::new().params(serde_json::json!({"fps": 24})).if_version(task.row_version)).await {
//!     Ok(saved) => println!("saved as version {}", saved.row_version),
//!     Err(DalError::Stale { actual, .. }) => println!("changed meanwhile (now version {actual}): reload"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```

use entities::{Id, IdList, TaskStatus};
use sea_orm::sea_query::{DynIden, Expr, ExprTrait, IntoIden, SimpleExpr};
use sea_orm::{EntityTrait, QueryFilter, QueryTrait};

use super::{
    BumpVersion, ROW_VERSION, atomically, find_by_id, found, live, missing_or_stale, write_one,
};
use crate::decode::FromRow;
use crate::{DalError, Executor, Result, clock};

/// The columns a patch sets, and the version it expects.
struct Sets {
    columns: Vec<(DynIden, SimpleExpr)>,
    expected: Option<i64>,
}

impl Sets {
    fn new(expected: Option<i64>) -> Self {
        Sets {
            columns: Vec::new(),
            expected,
        }
    }

    fn set(&mut self, column: impl IntoIden, value: impl Into<sea_orm::Value>) {
        self.columns
            .push((column.into_iden(), Expr::value(value.into())));
    }
}

/// Writes `sets` to the live row `id` of `T` (and `updated_at` when `touch` names it),
/// bumping its version; with nothing to set, reads the row (checking the version).
async fn apply<E, T>(
    exec: &E,
    entity: &'static str,
    id: Id,
    sets: Sets,
    touch: Option<T::Column>,
) -> Result<T::Model>
where
    E: Executor,
    T: EntityTrait,
    T::Model: FromRow,
    <T::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType: From<Id>,
{
    use sea_orm::sea_query::Alias;
    if sets.columns.is_empty() {
        let row = found(find_by_id::<_, T>(exec, id).await?, entity, id)?;
        return match sets.expected {
            Some(_) => match missing_or_stale::<_, T>(exec, entity, id, sets.expected).await? {
                stale @ DalError::Stale { .. } => Err(stale),
                _ => Ok(row),
            },
            None => Ok(row),
        };
    }
    let mut update = T::update_many();
    for (column, value) in sets.columns {
        update = update.col_expr(column, value);
    }
    if let Some(touch) = touch {
        update = update.col_expr(touch, Expr::value(clock::now()));
    }
    let mut update = update
        .bump_version()
        .filter(Expr::col((T::default(), Alias::new("id"))).eq(id))
        .filter(live::<T>());
    if let Some(expected) = sets.expected {
        update = update.filter(Expr::col((T::default(), Alias::new(ROW_VERSION))).eq(expected));
    }
    write_one::<_, T>(exec, update.into_query(), entity, id, sets.expected).await
}

macro_rules! version_methods {
    () => {
        /// Writes only if the row is still at `version` (the `row_version` the caller
        /// read); otherwise [`DalError::Stale`] and nothing is written.
        pub fn if_version(mut self, version: i64) -> Self {
            self.expected = Some(version);
            self
        }

        /// Whether the patch sets no column.
        pub fn is_empty(&self) -> bool {
            self.sets_nothing()
        }
    };
}

/// Changes to some columns of a task: see [`TaskRepository::patch`](super::TaskRepository::patch).
#[derive(Clone, Debug, Default, PartialEq)]
#[must_use]
pub struct TaskPatch {
    task_type: Option<String>,
    params: Option<serde_json::Value>,
    status: Option<TaskStatus>,
    dependant_on: Option<Vec<Id>>,
    output_location: Option<Option<String>>,
    expected: Option<i64>,
}

impl TaskPatch {
    /// A patch that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the task type (must not be blank).
    pub fn task_type(mut self, task_type: impl Into<String>) -> Self {
        self.task_type = Some(task_type.into());
        self
    }

    /// Sets the parameters.
    pub fn params(mut self, params: serde_json::Value) -> Self {
        self.params = Some(params);
        self
    }

    /// Sets the status.
    pub fn status(mut self, status: TaskStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Replaces the dependencies (each a live task of the same project).
    pub fn dependant_on(mut self, dependencies: impl IntoIterator<Item = Id>) -> Self {
        self.dependant_on = Some(dependencies.into_iter().collect());
        self
    }

    /// Sets where the result was written.
    pub fn output_location(mut self, location: impl Into<String>) -> Self {
        self.output_location = Some(Some(location.into()));
        self
    }

    /// Clears the output location.
    pub fn clear_output_location(mut self) -> Self {
        self.output_location = Some(None);
        self
    }

    /// The dependencies the patch sets, if it sets them.
    pub(crate) fn dependencies(&self) -> Option<&[Id]> {
        self.dependant_on.as_deref()
    }

    fn sets_nothing(&self) -> bool {
        self.task_type.is_none()
            && self.params.is_none()
            && self.status.is_none()
            && self.dependant_on.is_none()
            && self.output_location.is_none()
    }

    version_methods!();

    pub(crate) async fn apply<E: Executor>(
        self,
        exec: &E,
        id: Id,
    ) -> Result<entities::task::Model> {
        use entities::task::{Column, Entity};
        if let Some(task_type) = &self.task_type {
            super::tasks::check_task_type(task_type)?;
        }
        let mut sets = Sets::new(self.expected);
        if let Some(v) = self.task_type {
            sets.set(Column::TaskType, v);
        }
        if let Some(v) = self.params {
            sets.set(Column::Params, entities::json::canonical(v));
        }
        if let Some(v) = self.status {
            sets.set(Column::Status, v);
        }
        if let Some(v) = self.output_location {
            sets.set(Column::OutputLocation, v);
        }
        let Some(dependencies) = self.dependant_on else {
            return apply::<_, Entity>(exec, "task", id, sets, Some(Column::UpdatedAt)).await;
        };
        sets.set(
            Column::DependantOn,
            dependencies.iter().copied().collect::<IdList>(),
        );
        // The dependency check and the write in one unit, as `update` does.
        atomically(exec, move |uow| {
            Box::pin(async move {
                let task = found(find_by_id::<_, Entity>(uow, id).await?, "task", id)?;
                super::tasks::require_tasks_of_project(
                    uow,
                    task.project_id,
                    &dependencies,
                    "dependency",
                )
                .await?;
                apply::<_, Entity>(uow, "task", id, sets, Some(Column::UpdatedAt)).await
            })
        })
        .await
    }
}

/// Changes to some columns of a user: see [`UserRepository::patch`](super::UserRepository::patch).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct UserPatch {
    email: Option<Option<String>>,
    display_name: Option<Option<String>>,
    expected: Option<i64>,
}

impl UserPatch {
    /// A patch that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the email (`None` clears it; at most [`MAX_EMAIL_BYTES`](super::MAX_EMAIL_BYTES)).
    pub fn email(mut self, email: Option<String>) -> Self {
        self.email = Some(email);
        self
    }

    /// Sets the display name (`None` clears it).
    pub fn display_name(mut self, name: Option<String>) -> Self {
        self.display_name = Some(name);
        self
    }

    fn sets_nothing(&self) -> bool {
        self.email.is_none() && self.display_name.is_none()
    }

    version_methods!();

    pub(crate) async fn apply<E: Executor>(
        self,
        exec: &E,
        id: Id,
    ) -> Result<entities::user::Model> {
        use entities::user::{Column, Entity};
        let mut sets = Sets::new(self.expected);
        if let Some(email) = self.email {
            super::users::check_email(&email)?;
            sets.set(Column::Email, email);
        }
        if let Some(v) = self.display_name {
            sets.set(Column::DisplayName, v);
        }
        apply::<_, Entity>(exec, "user", id, sets, None).await
    }
}

/// Changes to some columns of a project: see [`ProjectRepository::patch`](super::ProjectRepository::patch).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct ProjectPatch {
    name: Option<String>,
    expected: Option<i64>,
}

impl ProjectPatch {
    /// A patch that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the name (must not be blank).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    fn sets_nothing(&self) -> bool {
        self.name.is_none()
    }

    version_methods!();

    pub(crate) async fn apply<E: Executor>(
        self,
        exec: &E,
        id: Id,
    ) -> Result<entities::project::Model> {
        use entities::project::{Column, Entity};
        let mut sets = Sets::new(self.expected);
        if let Some(name) = self.name {
            super::require_text("project name", &name)?;
            sets.set(Column::Name, name);
        }
        apply::<_, Entity>(exec, "project", id, sets, None).await
    }
}

/// Changes to some columns of a generation: see [`GenerationRepository::patch`](super::GenerationRepository::patch).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct GenerationPatch {
    tasks: Option<Vec<Id>>,
    location: Option<Option<String>>,
    generation_type: Option<Option<String>>,
    expected: Option<i64>,
}

impl GenerationPatch {
    /// A patch that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the tasks that made it (each a live task of the same project).
    pub fn tasks(mut self, tasks: impl IntoIterator<Item = Id>) -> Self {
        self.tasks = Some(tasks.into_iter().collect());
        self
    }

    /// Sets where it is stored (`None` clears it).
    pub fn location(mut self, location: Option<String>) -> Self {
        self.location = Some(location);
        self
    }

    /// Sets its type (`None` clears it).
    pub fn generation_type(mut self, generation_type: Option<String>) -> Self {
        self.generation_type = Some(generation_type);
        self
    }

    /// The tasks the patch sets, if it sets them.
    pub(crate) fn task_ids(&self) -> Option<&[Id]> {
        self.tasks.as_deref()
    }

    fn sets_nothing(&self) -> bool {
        self.tasks.is_none() && self.location.is_none() && self.generation_type.is_none()
    }

    version_methods!();

    pub(crate) async fn apply<E: Executor>(
        self,
        exec: &E,
        id: Id,
    ) -> Result<entities::generation::Model> {
        use entities::generation::{Column, Entity};
        let mut sets = Sets::new(self.expected);
        if let Some(v) = self.location {
            sets.set(Column::Location, v);
        }
        if let Some(v) = self.generation_type {
            sets.set(Column::GenerationType, v);
        }
        let Some(tasks) = self.tasks else {
            return apply::<_, Entity>(exec, "generation", id, sets, Some(Column::UpdatedAt)).await;
        };
        sets.set(Column::Tasks, tasks.iter().copied().collect::<IdList>());
        atomically(exec, move |uow| {
            Box::pin(async move {
                let generation = found(find_by_id::<_, Entity>(uow, id).await?, "generation", id)?;
                super::tasks::require_tasks_of_project(
                    uow,
                    generation.project_id,
                    &tasks,
                    "generation task",
                )
                .await?;
                apply::<_, Entity>(uow, "generation", id, sets, Some(Column::UpdatedAt)).await
            })
        })
        .await
    }
}

/// Changes to some columns of a shot: see [`ShotRepository::patch`](super::ShotRepository::patch).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct ShotPatch {
    name: Option<String>,
    expected: Option<i64>,
}

impl ShotPatch {
    /// A patch that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the name (must not be blank).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    fn sets_nothing(&self) -> bool {
        self.name.is_none()
    }

    version_methods!();

    pub(crate) async fn apply<E: Executor>(
        self,
        exec: &E,
        id: Id,
    ) -> Result<entities::shot::Model> {
        use entities::shot::{Column, Entity};
        let mut sets = Sets::new(self.expected);
        if let Some(name) = self.name {
            super::require_text("shot name", &name)?;
            sets.set(Column::Name, name);
        }
        apply::<_, Entity>(exec, "shot", id, sets, Some(Column::UpdatedAt)).await
    }
}
