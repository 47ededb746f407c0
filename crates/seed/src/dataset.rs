//! [`Dataset`]: rows for every table, written parents first in a few bulk statements.

use std::collections::HashSet;

use dal::{Executor, Result, bulk};
use entities::{Id, generation, project, shot, shot_generation, task, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect,
};

use crate::report::{Counts, Report};

/// Rows to write, per table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    /// `users` rows.
    pub users: Vec<user::Model>,
    /// `projects` rows.
    pub projects: Vec<project::Model>,
    /// `tasks` rows.
    pub tasks: Vec<task::Model>,
    /// `generations` rows.
    pub generations: Vec<generation::Model>,
    /// `shots` rows.
    pub shots: Vec<shot::Model>,
    /// `shot_generations` rows.
    pub shot_generations: Vec<shot_generation::Model>,
}

/// How rows whose id exists already are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Left as they are (the sample seed never overwrites what a user edited).
    Keep,
    /// Overwritten, but for `created_at` (fixture files are the source of their records).
    Overwrite,
}

impl Dataset {
    /// Every row's `(table, id)`.
    pub fn ids(&self) -> Vec<(&'static str, Id)> {
        let mut ids = Vec::new();
        ids.extend(self.users.iter().map(|r| ("users", r.id)));
        ids.extend(self.projects.iter().map(|r| ("projects", r.id)));
        ids.extend(self.tasks.iter().map(|r| ("tasks", r.id)));
        ids.extend(self.generations.iter().map(|r| ("generations", r.id)));
        ids.extend(self.shots.iter().map(|r| ("shots", r.id)));
        ids.extend(
            self.shot_generations
                .iter()
                .map(|r| ("shot_generations", r.id)),
        );
        ids
    }

    /// Writes every table, parents first.
    pub(crate) async fn write<E: Executor>(
        self,
        exec: &E,
        existing: Existing,
        report: &mut Report,
    ) -> Result<()> {
        report.add(
            "users",
            write_table(
                exec,
                self.users,
                |r| r.id,
                existing,
                &[user::Column::CreatedAt],
            )
            .await?,
        );
        report.add(
            "projects",
            write_table(
                exec,
                self.projects,
                |r| r.id,
                existing,
                &[project::Column::CreatedAt],
            )
            .await?,
        );
        report.add(
            "tasks",
            write_table(
                exec,
                self.tasks,
                |r| r.id,
                existing,
                &[task::Column::CreatedAt],
            )
            .await?,
        );
        report.add(
            "generations",
            write_table(
                exec,
                self.generations,
                |r| r.id,
                existing,
                &[generation::Column::CreatedAt],
            )
            .await?,
        );
        report.add(
            "shots",
            write_table(
                exec,
                self.shots,
                |r| r.id,
                existing,
                &[shot::Column::CreatedAt],
            )
            .await?,
        );
        report.add(
            "shot_generations",
            write_table(exec, self.shot_generations, |r| r.id, existing, &[]).await?,
        );
        Ok(())
    }
}

/// Writes `rows` of one table and counts what was new.
async fn write_table<E, M, A>(
    exec: &E,
    rows: Vec<M>,
    id_of: impl Fn(&M) -> Id,
    existing: Existing,
    // Columns an overwrite leaves as they are.
    keep: &[<A::Entity as EntityTrait>::Column],
) -> Result<Counts>
where
    E: Executor,
    M: IntoActiveModel<A>,
    A: ActiveModelTrait + Send,
{
    let total = rows.len() as u64;
    let ids: Vec<Id> = rows.iter().map(id_of).collect();
    let rows: Vec<A> = rows
        .into_iter()
        .map(|r| r.into_active_model().reset_all())
        .collect();
    let inserted = match existing {
        Existing::Keep => bulk::insert_missing(exec, rows).await?,
        Existing::Overwrite => {
            let before = count_existing::<E, A::Entity>(exec, &ids).await?;
            bulk::upsert(exec, rows, keep).await?;
            total - before
        }
    };
    Ok(Counts {
        inserted,
        present: total - inserted,
        deleted: 0,
    })
}

/// How many of `ids` exist in `T`'s table.
pub(crate) async fn count_existing<E: Executor, T: EntityTrait>(
    exec: &E,
    ids: &[Id],
) -> Result<u64> {
    let id_column = id_column::<T>();
    let mut found = 0;
    for chunk in ids.chunks(1000) {
        let rows: Vec<Id> = T::find()
            .select_only()
            .column(id_column)
            .filter(id_column.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(exec)
            .await?;
        found += rows.into_iter().collect::<HashSet<_>>().len() as u64;
    }
    Ok(found)
}

/// The `id` column of an entity (every table here has one).
fn id_column<T: EntityTrait>() -> T::Column {
    use sea_orm::{Iterable, PrimaryKeyToColumn};
    T::PrimaryKey::iter()
        .next()
        .map(|k| k.into_column())
        .expect("every table has an id")
}

/// Deletes the rows with `ids` from `table` (a table of the registry), returning how
/// many went.
pub(crate) async fn delete_ids<E: Executor>(exec: &E, table: &str, ids: &[Id]) -> Result<u64> {
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
    let Some(table) = entities::schema::table(table) else {
        return Err(dal::DalError::invalid(format!(
            "{table} is not a table of the schema"
        )));
    };
    let mut deleted = 0;
    for chunk in ids.chunks(1000) {
        let delete = Query::delete()
            .from_table(Alias::new(table.name))
            .and_where(Expr::col(Alias::new("id")).is_in(chunk.iter().copied()))
            .to_owned();
        deleted += exec.execute(&delete).await?.rows_affected();
    }
    Ok(deleted)
}
