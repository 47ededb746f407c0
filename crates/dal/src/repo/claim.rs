//! Claiming: atomically taking the oldest ready task, and telling "nothing ready" from
//! "everything ready is held by someone else".

use entities::task::{self, Column, Entity as TaskEntity};
use entities::{Id, TaskStatus};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query, SelectStatement};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait};

use super::tasks::Tasks;
use super::{BumpVersion, atomically, live, update_returning};
use crate::executor::dialect_of;
use crate::{Executor, Result, clock};

/// What [`try_claim`](super::TaskRepository::try_claim) found.
///
/// `Empty` and `Busy` both mean "no task for you now", but call for different waits: after
/// `Empty` nothing is ready until someone queues or completes a task; after `Busy` ready
/// tasks exist and another transaction holds them (a worker claiming inside a unit of work
/// not yet committed, or a writer share-locking a task it names as a dependency), so
/// one may well be free again in moments, either because that transaction rolls back
/// or because a task becomes ready behind the one it claimed.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub enum Claim {
    /// This task, now `In Progress`, is the caller's.
    Claimed(task::Model),
    /// No task of the type was ready (`Queued`, every dependency `Complete`).
    Empty,
    /// Ready tasks of the type exist, but other transactions hold a lock on every one of
    /// them, so they were skipped rather than waited for (Postgres `SKIP LOCKED`).
    /// Never on SQLite: it has no row locks, and a claim holds the database's write lock
    /// for its whole statement, so it sees every ready task.
    Busy,
}

impl Claim {
    /// The claimed task, if any (`None` for both `Empty` and `Busy`).
    pub fn into_task(self) -> Option<task::Model> {
        match self {
            Claim::Claimed(task) => Some(task),
            Claim::Empty | Claim::Busy => None,
        }
    }
}

impl<E: Executor> Tasks<'_, E> {
    /// Claims the oldest ready task of `task_type` (of `project`, when given) in one
    /// statement, and when it claims nothing, finds out whether that was because of locks.
    pub(crate) async fn claim_where(&self, task_type: &str, project: Option<Id>) -> Result<Claim> {
        let ready = self.claimable(task_type, project);
        // Pick the oldest ready task and flip it in one statement. On Postgres the pick
        // locks its row and skips rows other workers hold (SQLite has no row locks and
        // needs none: a writing statement holds the database's write lock throughout).
        let mut oldest_ready = ready.clone();
        oldest_ready
            .order_by(Column::CreatedAt, sea_orm::Order::Asc)
            .order_by(Column::Id, sea_orm::Order::Asc)
            .limit(1)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        let claim = TaskEntity::update_many()
            .col_expr(Column::Status, Expr::value(TaskStatus::InProgress))
            .col_expr(Column::UpdatedAt, Expr::value(clock::now()))
            .bump_version()
            // `id = (SELECT ...)`, not `id IN (SELECT ...)`: Postgres runs a scalar
            // subquery once, but may re-run an IN subquery for every candidate row of a
            // nested-loop semi-join, and each re-run locks and picks the next task, so one
            // claim could take several (seen when the planner's estimates changed).
            .filter(Expr::col((TaskEntity, Column::Id)).eq(Expr::from(oldest_ready)))
            .filter(Column::Status.eq(TaskStatus::Queued))
            .into_query();
        let row_locks = crate::executor::dialect_of(self.exec).has_row_locks();
        atomically(self.exec, move |uow| {
            Box::pin(async move {
                // A claimed task that cannot be read is not claimed: it is handed to nobody.
                let mut claimed = update_returning::<_, TaskEntity>(uow, claim).await?;
                if let Some(task) = claimed.pop() {
                    return Ok(Claim::Claimed(task));
                }
                if !row_locks {
                    return Ok(Claim::Empty);
                }
                // Nothing unlocked was ready. Without SKIP LOCKED the same question sees
                // the rows others hold (still `Queued` to us until they commit): any such
                // row means the queue is busy, not empty. A row queued just now also
                // counts, and "look again soon" is the right answer for it too.
                let mut held = ready;
                held.limit(1);
                let stmt = uow.get_database_backend().build(&held);
                Ok(match uow.query_one_raw(stmt).await? {
                    Some(_) => Claim::Busy,
                    None => Claim::Empty,
                })
            })
        })
        .await
    }

    /// `SELECT id FROM tasks WHERE` the task is claimable: live, `Queued`, of the type
    /// (and project), of the scope's user, every dependency `Complete`.
    fn claimable(&self, task_type: &str, project: Option<Id>) -> SelectStatement {
        let mut ready = Query::select();
        ready
            .column(Column::Id)
            .from(TaskEntity)
            .and_where(Column::Status.eq(TaskStatus::Queued))
            .and_where(live::<TaskEntity>())
            .and_where(Column::TaskType.eq(task_type));
        if let Some(project) = project {
            ready.and_where(Column::ProjectId.eq(project));
        }
        if let Some(owned) = self.owner_filter() {
            ready.and_where(owned);
        }
        ready
            .and_where(dialect_of(self.exec).all_dependencies_complete())
            .to_owned()
    }
}
