//! Users.

use async_trait::async_trait;
use entities::Id;
use entities::project;
use entities::user::{self, Entity as UserEntity};
use sea_orm::Condition;
use sea_orm::sea_query::{Alias, Expr};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter,
    QuerySelect,
};

use super::projects::cascade_projects;
use super::{
    BumpVersion, UserPatch, deleted, find_by_id, found, insert_model, live, select_one, tombstone,
    update_live,
};
use crate::{Executor, Result, clock};

/// The longest email accepted: RFC 5321's limit for a path. It also keeps the unique
/// index entry within what Postgres's b-tree stores (about 2.7 kB), so an oversized email
/// is refused alike on both backends instead of only on Postgres.
pub const MAX_EMAIL_BYTES: usize = 254;

pub(crate) fn check_email(email: &Option<String>) -> Result<()> {
    match email {
        Some(e) if e.len() > MAX_EMAIL_BYTES => Err(crate::DalError::invalid(format!(
            "email is {} bytes; at most {MAX_EMAIL_BYTES} are accepted",
            e.len()
        ))),
        _ => Ok(()),
    }
}

/// A user to create: `NewUser::default()` (or [`NewUser::new`]), then the builder methods.
///
/// ```
/// use dal::prelude::*;
/// let ada = NewUser::new().email("ada@example.com").display_name("Ada");
/// # let _ = ada;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct NewUser {
    /// Unique when present; a second user with the same email is a `Conflict`.
    pub email: Option<String>,
    /// Name shown in the UI.
    pub display_name: Option<String>,
}

impl NewUser {
    /// A user with no email and no display name.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same user, with `email` (at most [`MAX_EMAIL_BYTES`]).
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// The same user, with `display_name`.
    pub fn display_name(mut self, display_name: impl Into<String>) -> Self {
        self.display_name = Some(display_name.into());
        self
    }
}

/// Users: create, read, update, delete.
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Creates a user with a new id.
    async fn create(&self, new: NewUser) -> Result<user::Model>;
    /// The user with this id, or `NotFound`.
    async fn get(&self, id: Id) -> Result<user::Model>;
    /// The user with this email, if any.
    async fn find_by_email(&self, email: &str) -> Result<Option<user::Model>>;
    /// Writes `email` and `display_name` if the row is still at
    /// its `row_version` (the version read; [`DalError::Stale`](crate::DalError::Stale) and
    /// nothing written if someone wrote the row since), and returns it with its new version.
    /// `created_at` never changes.
    async fn update(&self, user: user::Model) -> Result<user::Model>;
    /// Writes only the columns `patch` sets, checking the version only if the patch names
    /// one ([`UserPatch::if_version`]).
    async fn patch(&self, id: Id, patch: UserPatch) -> Result<user::Model>;
    /// Deletes the user and, by cascade, their projects and everything under them.
    async fn delete(&self, id: Id) -> Result<()>;
}

/// [`UserRepository`] over an executor.
pub struct Users<'e, E> {
    exec: &'e E,
}

impl<'e, E: Executor> Users<'e, E> {
    pub(crate) fn new(exec: &'e E) -> Self {
        Users { exec }
    }
}

#[async_trait]
impl<E: Executor> UserRepository for Users<'_, E> {
    async fn create(&self, new: NewUser) -> Result<user::Model> {
        check_email(&new.email)?;
        let row = user::Model {
            id: Id::new(),
            email: new.email,
            display_name: new.display_name,
            created_at: clock::now(),
            row_version: 1,
        };
        insert_model(self.exec, row).await
    }

    async fn get(&self, id: Id) -> Result<user::Model> {
        found(
            find_by_id::<_, UserEntity>(self.exec, id).await?,
            "user",
            id,
        )
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<user::Model>> {
        let query = UserEntity::find()
            .filter(user::Column::Email.eq(email))
            .filter(live::<UserEntity>());
        select_one(self.exec, query).await
    }

    async fn update(&self, user: user::Model) -> Result<user::Model> {
        check_email(&user.email)?;
        let id = user.id;
        let expected = user.row_version;
        let mut row = user::ActiveModel::from(user).reset_all();
        row.id = sea_orm::ActiveValue::Unchanged(id);
        row.created_at = NotSet;
        row.row_version = Set(super::version_after(expected));
        update_live(self.exec, row, "user", id, expected).await
    }

    async fn patch(&self, id: Id, patch: UserPatch) -> Result<user::Model> {
        patch.apply(self.exec, id).await
    }

    async fn delete(&self, id: Id) -> Result<()> {
        // A tombstone keeps the row for replicas to learn of the deletion; its email is
        // released so a new account can use it. The user's projects go with it.
        let uow = self.exec.begin().await?;
        let released = UserEntity::update_many()
            .col_expr(user::Column::Email, Expr::value(Option::<String>::None))
            .col_expr(Alias::new("deleted"), Expr::value(true))
            .bump_version()
            .filter(user::Column::Id.eq(id))
            .filter(live::<UserEntity>())
            .exec(&uow)
            .await?
            .rows_affected;
        deleted(released, "user", id)?;
        let projects: Vec<Id> = project::Entity::find()
            .select_only()
            .column(project::Column::Id)
            .filter(project::Column::UserId.eq(id))
            .filter(live::<project::Entity>())
            .into_tuple()
            .all(&uow)
            .await?;
        tombstone::<_, project::Entity>(
            &uow,
            Condition::all().add(project::Column::Id.is_in(projects.clone())),
        )
        .await?;
        cascade_projects(&uow, &projects).await?;
        uow.commit().await
    }
}
