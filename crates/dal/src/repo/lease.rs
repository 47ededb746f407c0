//! Task leases: a claim makes its worker the task's holder until `lease_expires_at`; only
//! the holder may extend the lease ([`heartbeat`](super::TaskRepository::heartbeat)),
//! complete or fail the task. A lapsed lease makes the task claimable again (see
//! [`claim.rs`](super::Claim) for where lapsed leases are collected).
//!
//! Leases are measured with the database's clock where it has one of its own: on Postgres,
//! the statement's time (`statement_timestamp()`), one clock for every application server
//! sharing the database, so a server whose clock runs ahead neither takes over live leases
//! nor, running behind, writes leases the others see as lapsed. On SQLite the database's
//! clock is the calling process's ([`crate::clock`]), which every process using the file
//! shares with its host. (A lease claimed on a sync replica was measured with the replica's
//! clock, and travels as written.)

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use entities::task::{self, Column, Entity as TaskEntity};
use entities::{Id, TaskStatus};
use sea_orm::sea_query::{Expr, SimpleExpr, UpdateStatement};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryTrait};

use super::tasks::Tasks;
use super::{BumpVersion, find_by_id, require_text, update_returning};
use crate::dialect::Dialect;
use crate::executor::dialect_of;
use crate::{DalError, Executor, Result, clock};
use dal_config::Backend;

/// The lease of a claim that names none ([`claim`](super::TaskRepository::claim),
/// [`try_claim`](super::TaskRepository::try_claim)): five minutes. A worker whose tasks
/// may run longer should claim with a lease of its own and heartbeat.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5 * 60);

/// How many claims a task gets unless [`NewTask::with_max_attempts`](super::NewTask::with_max_attempts)
/// says otherwise (the column's default too).
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;

/// The worker name of the claims that name none: `pid-<process id>-<random suffix>`, the
/// same for every call in this process and different in any other (the suffix keeps two
/// machines' process ids apart). Every claim of this process without a name of its own is
/// held by it, so any of them can heartbeat or finish any such task: give each worker of
/// a process its own name when that matters.
pub fn default_worker() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        format!("pid-{}-{}", std::process::id(), &suffix[..8])
    })
}

/// `now + lease`, refused as `InvalidValue` when the lease is zero or ends past the years
/// both backends store.
pub(crate) fn lease_end(now: DateTime<Utc>, lease: Duration) -> Result<DateTime<Utc>> {
    if lease.is_zero() {
        return Err(DalError::invalid("a lease must be longer than zero"));
    }
    chrono::Duration::from_std(lease)
        .ok()
        .and_then(|lease| now.checked_add_signed(lease))
        .filter(|end| end.year() <= 9999)
        .map(|end| chrono::SubsecRound::trunc_subsecs(end, 6))
        .ok_or_else(|| DalError::invalid(format!("a lease of {lease:?} ends after the year 9999")))
}

/// A lease of `lease` starting now, as SQL: the time it is measured at and the time it
/// ends (see the module docs for whose clock). Refused as [`lease_end`] refuses it, by the
/// calling process's clock; on Postgres the column's CHECK also refuses an end past 9999.
pub(crate) struct LeaseClock {
    /// Now.
    pub(crate) now: SimpleExpr,
    /// When a lease taken now ends.
    pub(crate) until: SimpleExpr,
}

impl LeaseClock {
    pub(crate) fn new(dialect: Dialect, lease: Duration) -> Result<LeaseClock> {
        let now = clock::now();
        let until = lease_end(now, lease)?;
        Ok(match dialect.0 {
            Backend::Sqlite => LeaseClock {
                now: Expr::value(now),
                until: Expr::value(until),
            },
            Backend::Postgres => {
                // Whole microseconds, as `lease_end` truncates; an exact interval (a float
                // number of seconds would round long leases).
                let micros = i64::try_from(lease.as_micros()).map_err(|_| {
                    DalError::invalid(format!("a lease of {lease:?} ends after the year 9999"))
                })?;
                LeaseClock {
                    now: Expr::cust("statement_timestamp()"),
                    until: Expr::cust_with_values(
                        "statement_timestamp() + CAST($1 AS interval)",
                        [format!("{micros} microseconds")],
                    ),
                }
            }
        })
    }
}

/// Refuses a blank worker name (it could never be told from "no holder").
pub(crate) fn require_worker(worker: &str) -> Result<()> {
    require_text("worker name", worker)
}

/// The live `Queued` tasks, spelled as the partial indexes of the task-leases migration
/// spell their predicate. Literals, not parameters: a Postgres generic plan cannot prove
/// a parameter equal to the index's constant, and SQLite matches the terms as written.
pub(crate) fn queued_live() -> SimpleExpr {
    Expr::cust(r#""tasks"."status" = 'Queued' AND "tasks"."deleted" = false"#)
}

/// The live `In Progress` tasks (see [`queued_live`]).
pub(crate) fn in_progress_live() -> SimpleExpr {
    Expr::cust(r#""tasks"."status" = 'In Progress' AND "tasks"."deleted" = false"#)
}

impl<E: Executor> Tasks<'_, E> {
    /// See [`TaskRepository::heartbeat`](super::TaskRepository::heartbeat).
    pub(crate) async fn extend_lease(
        &self,
        id: Id,
        worker: &str,
        lease: Duration,
    ) -> Result<task::Model> {
        require_worker(worker)?;
        let lease = LeaseClock::new(dialect_of(self.exec), lease)?;
        let update = TaskEntity::update_many()
            .col_expr(Column::LeaseExpiresAt, lease.until)
            .col_expr(Column::UpdatedAt, Expr::value(clock::now()))
            .bump_version();
        self.as_holder(id, worker, update).await
    }

    /// See [`TaskRepository::complete`](super::TaskRepository::complete).
    pub(crate) async fn complete_held(
        &self,
        id: Id,
        worker: &str,
        output_location: Option<String>,
    ) -> Result<task::Model> {
        require_worker(worker)?;
        let update = TaskEntity::update_many()
            .col_expr(Column::Status, Expr::value(TaskStatus::Complete))
            .col_expr(Column::OutputLocation, Expr::value(output_location))
            .col_expr(Column::LeaseExpiresAt, Expr::value(None::<DateTime<Utc>>))
            .col_expr(Column::UpdatedAt, Expr::value(clock::now()))
            .bump_version();
        self.as_holder(id, worker, update).await
    }

    /// See [`TaskRepository::fail`](super::TaskRepository::fail).
    pub(crate) async fn fail_held(
        &self,
        id: Id,
        worker: &str,
        reason: &str,
    ) -> Result<task::Model> {
        require_worker(worker)?;
        let update = TaskEntity::update_many()
            .col_expr(
                Column::Status,
                Expr::cust(
                    r#"CASE WHEN "attempts" >= "max_attempts" THEN 'Failed' ELSE 'Queued' END"#,
                ),
            )
            .col_expr(Column::LastError, Expr::value(reason.to_owned()))
            .col_expr(Column::LeaseExpiresAt, Expr::value(None::<DateTime<Utc>>))
            .col_expr(Column::UpdatedAt, Expr::value(clock::now()))
            .bump_version();
        self.as_holder(id, worker, update).await
    }

    /// Runs `update` on task `id` if `worker` holds it (it is live, `In Progress` and
    /// claimed by `worker`, whether or not the lease has lapsed: a lapsed lease nobody
    /// took over is still the worker's), and returns the row as written. Otherwise writes
    /// nothing and says why: `NotFound`, or [`DalError::LeaseLost`] naming the status and
    /// holder it has now.
    async fn as_holder(
        &self,
        id: Id,
        worker: &str,
        update: sea_orm::UpdateMany<TaskEntity>,
    ) -> Result<task::Model> {
        let mut update: UpdateStatement = update
            .filter(Column::Id.eq(id))
            .filter(in_progress_live())
            .filter(Column::ClaimedBy.eq(worker))
            .into_query();
        if let Some(owned) = self.owner_filter() {
            update.and_where(owned);
        }
        if let Some(row) = update_returning::<_, TaskEntity>(self.exec, update)
            .await?
            .pop()
        {
            return Ok(row);
        }
        let Some(now) = find_by_id::<_, TaskEntity>(self.exec, id).await? else {
            return Err(DalError::not_found("task", id));
        };
        let holder = (now.status == TaskStatus::InProgress)
            .then_some(now.claimed_by)
            .flatten();
        Err(DalError::lease_lost(id, worker, holder, now.status))
    }
}
