//! Which user a sync client id belongs to. The first authenticated user to push under a
//! client id owns it; anyone else presenting it is refused, so no user can continue,
//! replay or probe another user's sequence numbers.

use dal::prelude::*;
use sea_orm::{ConnectionTrait, Statement, Value};
use uuid::Uuid;

/// Whether `user` may push as `client`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// The client is the user's (now, or since its first push).
    Owned,
    /// Another user owns the client id.
    Foreign,
}

/// Binds `client` to `user` if no user has it yet, and says whether it is `user`'s.
pub async fn bind(db: &Database, client: Uuid, user: Uuid) -> dal::Result<Binding> {
    db.transaction(|uow| {
        Box::pin(async move {
            let backend = uow.get_database_backend();
            let ids = vec![Value::Uuid(Some(client)), Value::Uuid(Some(user))];
            // The common case, a client pushing again, is one read.
            let owner = uow
                .query_one_raw(Statement::from_sql_and_values(
                    backend,
                    "SELECT user_id FROM sync_clients WHERE client_id = $1",
                    vec![ids[0].clone()],
                ))
                .await?
                .map(|row| row.try_get::<Option<Uuid>>("", "user_id"))
                .transpose()?
                .flatten();
            let owner = match owner {
                Some(owner) => owner,
                // New, or a client of the direct transport that no user had: the
                // statement takes it for `user` unless a concurrent push took it first.
                None => uow
                    .query_one_raw(Statement::from_sql_and_values(
                        backend,
                        "INSERT INTO sync_clients (client_id, user_id) VALUES ($1, $2) \
                         ON CONFLICT (client_id) DO UPDATE SET user_id = \
                           coalesce(sync_clients.user_id, excluded.user_id) \
                         RETURNING user_id",
                        ids,
                    ))
                    .await?
                    .map(|row| row.try_get::<Uuid>("", "user_id"))
                    .transpose()?
                    .unwrap_or(user),
            };
            Ok(if owner == user {
                Binding::Owned
            } else {
                Binding::Foreign
            })
        })
    })
    .await
}
