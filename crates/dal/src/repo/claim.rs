//! Claiming: atomically taking the oldest ready task, and telling "nothing ready" from
//! "everything ready is held by someone else".

use std::time::Duration;

use chrono::{DateTime, Utc};
use entities::task::{self, Column, Entity as TaskEntity};
use entities::{Id, TaskStatus};
use sea_orm::sea_query::{
    Expr, ExprTrait, LockBehavior, LockType, Query, SelectStatement, SimpleExpr,
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait};

use super::lease::{LeaseClock, in_progress_live, queued_live, require_worker};
use super::tasks::Tasks;
use super::{BumpVersion, atomically, update_returning};
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
// A claim is returned and matched at once, never stored in bulk: boxing the task would
// cost an allocation per claim and change the variant's type for every caller.
#[allow(clippy::large_enum_variant)]
pub enum Claim {
    /// This task, now `In Progress`, is the caller's until its `lease_expires_at`.
    Claimed(task::Model),
    /// No task of the type was ready (`Queued`, every dependency `Complete`) and none had
    /// a lapsed lease to take over.
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
    /// Claims for `worker` until `lease` from now, in one unit of work: first ends `Failed`
    /// the lapsed leases of `task_type` that had their last attempt, then takes over the
    /// oldest lapsed lease with attempts left, else the oldest ready `Queued` task; and
    /// when it claims nothing, finds out whether that was because of locks.
    ///
    /// Lapsed leases are collected here, by the claims of their type, rather than by a
    /// background sweeper: nothing runs that the application does not call, and a type
    /// that nobody claims any more keeps its lapsed tasks `In Progress` (with
    /// `lease_expires_at` in the past) until someone claims it again.
    pub(crate) async fn claim_where(
        &self,
        task_type: &str,
        project: Option<Id>,
        worker: &str,
        lease: Duration,
    ) -> Result<Claim> {
        require_worker(worker)?;
        let now = clock::now();
        let lease = LeaseClock::new(dialect_of(self.exec), lease)?;
        let lapsed = self.lapsed(task_type, project, lease.now.clone());
        let ready = self.claimable(task_type, project);

        // At most this many lapsed tasks are ended per claim, so a claim's cost stays
        // bounded after many workers died at once; the next claims end the rest.
        const SWEEP: u64 = 100;
        let mut exhausted = lapsed.clone();
        exhausted
            .and_where(Expr::col(Column::Attempts).gte(Expr::col(Column::MaxAttempts)))
            .limit(SWEEP)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        // `IN`, unlike the pick below: re-running this subquery can only find more rows
        // that are due to be ended anyway, and the outer conditions check each again.
        let sweep = TaskEntity::update_many()
            .col_expr(Column::Status, Expr::value(TaskStatus::Failed))
            .col_expr(
                Column::LastError,
                Expr::cust(r#"'lease expired after ' || CAST("attempts" AS TEXT) || ' attempts'"#),
            )
            .col_expr(Column::LeaseExpiresAt, Expr::value(None::<DateTime<Utc>>))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .bump_version()
            .filter(Column::Id.in_subquery(exhausted))
            .filter(in_progress_live())
            .filter(Expr::col(Column::LeaseExpiresAt).lte(lease.now.clone()))
            .filter(Expr::col(Column::Attempts).gte(Expr::col(Column::MaxAttempts)))
            .into_query();

        let mut retry = lapsed.clone();
        retry.and_where(Expr::col(Column::Attempts).lt(Expr::col(Column::MaxAttempts)));
        let mut oldest_lapsed = retry.clone();
        oldest_lapsed
            .order_by(Column::LeaseExpiresAt, sea_orm::Order::Asc)
            .order_by(Column::Id, sea_orm::Order::Asc)
            .limit(1)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        let take_over = self
            .claim_update(worker, now, lease.until.clone())
            .filter(Expr::col((TaskEntity, Column::Id)).eq(Expr::from(oldest_lapsed)))
            .filter(in_progress_live())
            .filter(Expr::col(Column::LeaseExpiresAt).lte(lease.now.clone()))
            .into_query();

        // Pick the oldest ready task and flip it in one statement. On Postgres the pick
        // locks its row and skips rows other workers hold (SQLite has no row locks and
        // needs none: a writing statement holds the database's write lock throughout).
        let mut oldest_ready = ready.clone();
        oldest_ready
            .order_by(Column::CreatedAt, sea_orm::Order::Asc)
            .order_by(Column::Id, sea_orm::Order::Asc)
            .limit(1)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        let claim = self
            .claim_update(worker, now, lease.until)
            .col_expr(Column::Status, Expr::value(TaskStatus::InProgress))
            // `id = (SELECT ...)`, not `id IN (SELECT ...)`: Postgres runs a scalar
            // subquery once, but may re-run an IN subquery for every candidate row of a
            // nested-loop semi-join, and each re-run locks and picks the next task, so one
            // claim could take several (seen when the planner's estimates changed).
            .filter(Expr::col((TaskEntity, Column::Id)).eq(Expr::from(oldest_ready)))
            .filter(queued_live())
            .into_query();
        let row_locks = crate::executor::dialect_of(self.exec).has_row_locks();
        atomically(self.exec, move |uow| {
            Box::pin(async move {
                let backend = uow.get_database_backend();
                uow.execute_raw(backend.build(&sweep)).await?;
                // A claimed task that cannot be read is not claimed: it is handed to nobody.
                for pick in [take_over, claim] {
                    let mut claimed = update_returning::<_, TaskEntity>(uow, pick).await?;
                    if let Some(task) = claimed.pop() {
                        return Ok(Claim::Claimed(task));
                    }
                }
                if !row_locks {
                    return Ok(Claim::Empty);
                }
                // Nothing unlocked was claimable. Without SKIP LOCKED the same questions
                // see the rows others hold (still claimable to us until they commit): any
                // such row means the queue is busy, not empty. A row queued just now also
                // counts, and "look again soon" is the right answer for it too.
                for mut held in [ready, retry] {
                    held.limit(1);
                    if uow.query_one_raw(backend.build(&held)).await?.is_some() {
                        return Ok(Claim::Busy);
                    }
                }
                Ok(Claim::Empty)
            })
        })
        .await
    }

    /// The update every claim makes: `worker` holds the task until `until`, one more
    /// attempt.
    fn claim_update(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        until: SimpleExpr,
    ) -> sea_orm::UpdateMany<TaskEntity> {
        TaskEntity::update_many()
            .col_expr(Column::ClaimedBy, Expr::value(worker.to_owned()))
            .col_expr(Column::LeaseExpiresAt, until)
            // Saturating: `attempts` may already be at the column's largest value (a full
            // update or a synced client writes it), and an overflow here would fail
            // every claim of the type, since the pick takes the oldest task first.
            .col_expr(
                Column::Attempts,
                Expr::cust(
                    r#"CASE WHEN "attempts" < 2147483647 THEN "attempts" + 1 ELSE "attempts" END"#,
                ),
            )
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .bump_version()
    }

    /// `SELECT id FROM tasks WHERE` the task is claimable: live, `Queued`, of the type
    /// (and project), of the scope's user, every dependency `Complete`.
    fn claimable(&self, task_type: &str, project: Option<Id>) -> SelectStatement {
        let mut ready = self.of_type(task_type, project);
        ready
            .and_where(queued_live())
            .and_where(dialect_of(self.exec).all_dependencies_complete())
            .to_owned()
    }

    /// `SELECT id FROM tasks WHERE` the task's lease has lapsed at `now` (the lease clock's):
    /// live, `In Progress`, of the type (and project), of the scope's user.
    fn lapsed(&self, task_type: &str, project: Option<Id>, now: SimpleExpr) -> SelectStatement {
        let mut lapsed = self.of_type(task_type, project);
        lapsed
            .and_where(in_progress_live())
            .and_where(Expr::col(Column::LeaseExpiresAt).lte(now))
            .to_owned()
    }

    /// `SELECT id FROM tasks WHERE` of the type (and project), of the scope's user.
    fn of_type(&self, task_type: &str, project: Option<Id>) -> SelectStatement {
        let mut select = Query::select();
        select
            .column(Column::Id)
            .from(TaskEntity)
            .and_where(Column::TaskType.eq(task_type));
        if let Some(project) = project {
            select.and_where(Column::ProjectId.eq(project));
        }
        if let Some(owned) = self.owner_filter() {
            select.and_where(owned);
        }
        select
    }
}
