//! Everything that differs between SQLite and Postgres, in one place.
//!
//! The rest of the crate builds one statement for both backends and asks this module for
//! the few pieces that cannot be shared: how values are stored ([`values`]), how a uuid
//! list is searched, how rows are locked and how a write transaction begins.

pub(crate) mod bulk;
pub(crate) mod values;

use dal_config::Backend;
use sea_orm::sea_query::{ArrayType, Expr, IntoColumnRef, SimpleExpr, Value};
use sea_orm::{SqliteTransactionMode, TransactionOptions};
use uuid::Uuid;

/// The SQL dialect of one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dialect(pub Backend);

impl Dialect {
    /// Options for a unit of work at `isolation` (ignored on SQLite, where one writer at a
    /// time makes every unit serializable).
    pub(crate) fn transaction(self, isolation: crate::Isolation) -> TransactionOptions {
        let level = match isolation {
            crate::Isolation::ReadCommitted => None,
            crate::Isolation::RepeatableRead => Some(sea_orm::IsolationLevel::RepeatableRead),
            crate::Isolation::Serializable => Some(sea_orm::IsolationLevel::Serializable),
        };
        TransactionOptions {
            isolation_level: match self.0 {
                Backend::Postgres => level,
                Backend::Sqlite => None,
            },
            ..self.write_transaction()
        }
    }

    /// Options for a transaction that will write. SQLite: `BEGIN IMMEDIATE`, so the write
    /// lock is taken (waiting up to the busy timeout) before anything is read; a deferred
    /// transaction that upgrades later fails at once with SQLITE_BUSY.
    pub(crate) fn write_transaction(self) -> TransactionOptions {
        TransactionOptions {
            sqlite_transaction_mode: match self.0 {
                Backend::Sqlite => Some(SqliteTransactionMode::Immediate),
                Backend::Postgres => None,
            },
            ..TransactionOptions::default()
        }
    }

    /// Whether other transactions can hold single rows (Postgres). SQLite locks the whole
    /// database for a writer, so a row it skips is never merely locked.
    pub(crate) fn has_row_locks(self) -> bool {
        self.0 == Backend::Postgres
    }

    /// `column` (a uuid list) contains `id`. (Custom-expression placeholders are the
    /// backend's own: numbered `$N` on Postgres, positional `?` on SQLite.)
    pub(crate) fn uuid_list_contains(self, column: impl IntoColumnRef, id: Uuid) -> SimpleExpr {
        let column = Expr::col(column.into_column_ref());
        match self.0 {
            // `@>` a one-element array, not `= ANY`: the GIN index on `tasks.dependant_on`
            // serves containment. (Bound as an array: sea-query would read `ARRAY[$2]`'s
            // brackets as a quoted name.)
            Backend::Postgres => {
                let needle = Value::Array(ArrayType::Uuid, Some(Box::new(vec![Value::from(id)])));
                Expr::cust_with_exprs("$1 @> $2", [column, Expr::val(needle)])
            }
            Backend::Sqlite => Expr::cust_with_exprs(
                "EXISTS (SELECT 1 FROM json_each(?) AS item WHERE item.value = ?)",
                [column, Expr::val(id.hyphenated().to_string())],
            ),
        }
    }
}

/// Acting on behalf of a user.
impl Dialect {
    /// Statements that make the rest of the current transaction run as `user` under the
    /// row-level security policies: the `authenticated` role and the JWT claims Supabase
    /// would set, both transaction-local. SQLite has no roles or policies: none.
    pub(crate) fn act_as_user(self, user: entities::Id) -> Vec<sea_orm::Statement> {
        match self.0 {
            Backend::Postgres => {
                let claims =
                    serde_json::json!({ "sub": user.to_string(), "role": "authenticated" });
                vec![
                    sea_orm::Statement::from_string(
                        sea_orm::DbBackend::Postgres,
                        "SET LOCAL ROLE authenticated",
                    ),
                    sea_orm::Statement::from_sql_and_values(
                        sea_orm::DbBackend::Postgres,
                        "SELECT set_config('request.jwt.claims', $1, true)",
                        [claims.to_string().into()],
                    ),
                ]
            }
            Backend::Sqlite => Vec::new(),
        }
    }

    /// The statement that ends [`Dialect::act_as_user`] for the rest of the transaction:
    /// back to the role the connection logged in as. SQLite: none.
    pub(crate) fn act_as_session_user(self) -> Option<sea_orm::Statement> {
        match self.0 {
            Backend::Postgres => Some(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SET LOCAL ROLE NONE",
            )),
            Backend::Sqlite => None,
        }
    }
}

/// SQL fragments over the `tasks` table.
impl Dialect {
    /// True when every id in `tasks.dependant_on` names a live task whose status is
    /// `Complete` (an empty list qualifies; a dangling or tombstoned id does not). Refers to the `tasks` row in scope.
    pub(crate) fn all_dependencies_complete(self) -> SimpleExpr {
        let dependencies = match self.0 {
            Backend::Postgres => r#"SELECT dep.id FROM unnest("tasks"."dependant_on") AS dep(id)"#,
            Backend::Sqlite => {
                r#"SELECT dep.value AS id FROM json_each("tasks"."dependant_on") AS dep"#
            }
        };
        Expr::cust(format!(
            r#"NOT EXISTS (SELECT 1 FROM ({dependencies}) AS deps WHERE NOT EXISTS (SELECT 1 FROM "tasks" AS done WHERE done."id" = deps.id AND done."status" = 'Complete' AND done."deleted" = false))"#
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use entities::task::{Column, Entity};
    use sea_orm::{ColumnTrait, DbBackend, EntityTrait, QueryFilter, QueryTrait};

    #[test]
    fn custom_expressions_bind_their_values_in_place_on_both_backends() {
        let project = entities::Id::new();
        let needle = Uuid::now_v7();
        for (backend, db) in [
            (Backend::Sqlite, DbBackend::Sqlite),
            (Backend::Postgres, DbBackend::Postgres),
        ] {
            let stmt = Entity::find()
                .filter(Column::ProjectId.eq(project))
                .filter(Dialect(backend).uuid_list_contains((Entity, Column::DependantOn), needle))
                .build(db);
            let values = stmt.values.expect("bound values").0;
            assert_eq!(values.len(), 2, "{backend}: {}", stmt.sql);
            match backend {
                Backend::Postgres => {
                    assert!(
                        stmt.sql.contains("\"tasks\".\"dependant_on\" @> $2"),
                        "{}",
                        stmt.sql
                    );
                    assert_eq!(
                        values[1],
                        sea_orm::Value::Array(
                            ArrayType::Uuid,
                            Some(Box::new(vec![sea_orm::Value::Uuid(Some(needle))]))
                        )
                    );
                }
                Backend::Sqlite => {
                    assert!(
                        stmt.sql.contains("json_each(\"tasks\".\"dependant_on\")"),
                        "{}",
                        stmt.sql
                    );
                    assert!(!stmt.sql.contains('$'), "{}", stmt.sql);
                    assert_eq!(values[1], sea_orm::Value::String(Some(needle.to_string())));
                }
            }
        }
    }
}
