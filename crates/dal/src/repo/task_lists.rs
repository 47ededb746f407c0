//! Task listings: a project's tasks a filtered keyset page at a time, their counts, and
//! the ready tasks a page at a time.

use std::collections::HashMap;

use entities::task::{self, Column, Entity as TaskEntity};
use entities::{Id, TaskStatus};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::lease::queued_live;
use super::page::{Listing, after_cursor, paginate};
use super::tasks::{TaskFilter, Tasks};
use super::{Page, PageRequest, live, select_all, select_one};
use crate::executor::dialect_of;
use crate::{DalError, Executor, Result};

impl<E: Executor> Tasks<'_, E> {
    /// See [`TaskRepository::list_for_project`](super::TaskRepository::list_for_project).
    pub(crate) async fn list_page(
        &self,
        project_id: Id,
        filter: &TaskFilter,
        page: PageRequest,
    ) -> Result<Page<task::Model>> {
        let mut query = TaskEntity::find().filter(of_project(project_id, filter));
        if let Some(after) = page.after_in(Listing::Tasks)? {
            query = query.filter(after_cursor(after, Column::CreatedAt, Column::Id));
        }
        self.page(query, page.limit(), Listing::Tasks).await
    }

    /// See [`TaskRepository::count_for_project`](super::TaskRepository::count_for_project).
    pub(crate) async fn count_matching(&self, project_id: Id, filter: &TaskFilter) -> Result<u64> {
        let count: Option<i64> = TaskEntity::find()
            .select_only()
            .expr(Expr::col((TaskEntity, Column::Id)).count())
            .filter(of_project(project_id, filter))
            .into_tuple()
            .one(self.exec)
            .await?;
        Ok(count.map_or(0, |n| n.unsigned_abs()))
    }

    /// See [`TaskRepository::count_by_status`](super::TaskRepository::count_by_status).
    pub(crate) async fn status_counts(
        &self,
        project_id: Id,
        filter: &TaskFilter,
    ) -> Result<HashMap<TaskStatus, u64>> {
        let rows: Vec<(String, i64)> = TaskEntity::find()
            .select_only()
            .column(Column::Status)
            .expr(Expr::col((TaskEntity, Column::Id)).count())
            .filter(of_project(project_id, filter))
            .group_by(Column::Status)
            .into_tuple()
            .all(self.exec)
            .await?;
        let mut counts: HashMap<TaskStatus, u64> = TaskStatus::ALL
            .into_iter()
            .filter(|s| filter.statuses.is_empty() || filter.statuses.contains(s))
            .map(|s| (s, 0))
            .collect();
        for (status, n) in rows {
            let Ok(known) = status.parse::<TaskStatus>() else {
                // Only a row written past the CHECK can get here; reading one such row
                // reports it as `Undecodable`, naming it, as a listing would.
                return Err(self.unreadable_status(project_id, status).await);
            };
            counts.insert(known, n.unsigned_abs());
        }
        Ok(counts)
    }

    /// See [`TaskRepository::ready`](super::TaskRepository::ready).
    pub(crate) async fn ready_page(
        &self,
        task_type: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<task::Model>> {
        // Spelled as the partial indexes' predicate, which serve this listing in order.
        let mut query = TaskEntity::find()
            .filter(queued_live())
            .filter(dialect_of(self.exec).all_dependencies_complete());
        if let Some(task_type) = task_type {
            query = query.filter(Column::TaskType.eq(task_type));
        }
        if let Some(owned) = self.owner_filter() {
            query = query.filter(owned);
        }
        if let Some(after) = page.after_in(Listing::ReadyTasks)? {
            query = query.filter(after_cursor(after, Column::CreatedAt, Column::Id));
        }
        self.page(query, page.limit(), Listing::ReadyTasks).await
    }

    /// One page of `query` (already filtered) in `listing`'s oldest-first order.
    async fn page(
        &self,
        query: sea_orm::Select<TaskEntity>,
        limit: u32,
        listing: Listing,
    ) -> Result<Page<task::Model>> {
        let query = query
            .order_by_asc(Column::CreatedAt)
            .order_by_asc(Column::Id)
            .limit(u64::from(limit) + 1);
        let rows = select_all(self.exec, query).await?;
        Ok(paginate(rows, limit, listing, |t| (t.created_at, t.id)))
    }

    /// The error for a status count of `status`, which is not one of the six.
    async fn unreadable_status(&self, project_id: Id, status: String) -> DalError {
        let row = TaskEntity::find()
            .filter(live::<TaskEntity>())
            .filter(Column::ProjectId.eq(project_id))
            .filter(Column::Status.eq(status.clone()));
        match select_one(self.exec, row).await {
            Err(e) => e,
            Ok(_) => DalError::invalid(format!("tasks hold the unknown status {status:?}")),
        }
    }
}

/// The live tasks of `project_id` that `filter` admits.
fn of_project(project_id: Id, filter: &TaskFilter) -> Condition {
    let mut condition = Condition::all()
        .add(Column::ProjectId.eq(project_id))
        .add(live::<TaskEntity>());
    if !filter.statuses.is_empty() {
        condition = condition.add(Column::Status.is_in(filter.statuses.iter().copied()));
    }
    if let Some(task_type) = &filter.task_type {
        condition = condition.add(Column::TaskType.eq(task_type.as_str()));
    }
    condition
}
