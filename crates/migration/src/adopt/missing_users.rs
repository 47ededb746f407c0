//! `adopt --add-missing-users`: the draft's `users` held only ids and `projects.user_id`
//! had no foreign key, so projects may name users that have no `users` row (on Supabase
//! they exist in `auth.users`). With the option, adoption adds one id-only user per such
//! id instead of leaving every such project (and everything under it) to a decision.
//!
//! Which ids: every distinct converted `projects.user_id` that is a uuid and has no
//! converted `users` row. On Postgres, when a table `auth.users` exists, only the ids found
//! there; the others stay decisions. A NULL or non-uuid `user_id` stays a decision too.
//!
//! Each user gets `email` and `display_name` NULL and `created_at` = the earliest
//! `created_at` among that user's projects as adoption leaves them (a NULL one counts as
//! the adoption's time; one that does not convert is ignored), else the adoption's time.
//!
//! The users are fixed when the plan is made, in a temporary table, so the plan lists
//! exactly the users `--apply` adds, and the row checks already see them: on SQLite they
//! are staged with the converted users (the rebuild copies them); on Postgres the row
//! checks read the users as the union of both and one `INSERT` adds them right after
//! `users` gained its new columns, before `projects` gains its foreign key.

use std::fmt;

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::convert::{ident, uuid_glob};
use super::sqlite;
use crate::columns::TIMESTAMP_GLOB;
use crate::inspect::Table;

/// The table users are added to.
pub(crate) const USERS: &str = "users";
/// The table whose `user_id` names them.
const PROJECTS: &str = "projects";

/// A user adoption adds because projects name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedUser {
    /// Its id, as the projects name it (canonical lowercase).
    pub id: String,
    /// The `created_at` it gets, as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub created_at: String,
}

/// What `--add-missing-users` does (in [`super::Plan::missing_users`]).
#[derive(Clone, Debug)]
pub struct MissingUsers {
    /// The users added, by id.
    pub added: Vec<AddedUser>,
    /// Postgres: a table `auth.users` exists, so only the ids found there are added.
    pub auth_users: bool,
    /// Ids projects name that are neither in `users` nor in `auth.users`: not added, so
    /// their projects stay rows that need a decision. Empty without `auth.users`.
    pub not_in_auth: Vec<String>,
    /// The statement that finds them (into a temporary table; run for the plan too).
    pub find: String,
    /// The statement that adds them: on Postgres one of [`super::Plan::statements`]; on
    /// SQLite it stages them with the converted users (run for the plan too), and the
    /// rebuild copies them with the others.
    pub insert: String,
}

/// The temporary table holding the users to add.
fn table(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "pg_temp.adopt_added_users",
        _ => "temp.adopt_added_users",
    }
}

/// `SELECT` list over the added users `a` giving every column of the migrations' `users`
/// (`id` and `created_at` from `a`, NULL otherwise).
fn columns(backend: DbBackend, users: &Table) -> Vec<String> {
    users
        .columns
        .iter()
        .map(|c| match c.name.as_str() {
            "id" | "created_at" => format!("a.{}", ident(&c.name)),
            _ if backend == DbBackend::Postgres => format!("CAST(NULL AS {})", c.data_type),
            _ => "NULL".to_owned(),
        })
        .collect()
}

/// Postgres: the converted users (`converted`, a parenthesised query) and the users to
/// add, as the row checks read `users`.
pub(crate) fn with_added(converted: &str, users: &Table) -> String {
    let inner = converted
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(converted);
    format!(
        "({inner} UNION ALL SELECT a.\"id\"::text, {} FROM {} AS a)",
        columns(DbBackend::Postgres, users).join(", "),
        table(DbBackend::Postgres)
    )
}

/// Whether a table `auth.users` exists (Supabase's users). Read from the catalog, so a
/// role that may not read it still learns it is there.
async fn auth_users_exists<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'auth' AND c.relname = 'users') AS present",
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get("", "present")?,
        None => false,
    })
}

async fn ids<C: ConnectionTrait>(db: &C, sql: String) -> Result<Vec<(String, String)>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("", "id")?, r.try_get("", "created_at")?)))
        .collect()
}

/// Finds the users to add (inside the adoption's transaction, before the row checks) and,
/// on SQLite, stages them. `relation(t)` is SQL for the converted rows of `t`, without
/// added users; `users` is the migrations' `users`; `now` the adoption's time as SQL.
pub(crate) async fn find<C: ConnectionTrait>(
    db: &C,
    users: &Table,
    relation: &(dyn Fn(&str) -> String + Sync),
    now: &str,
) -> Result<MissingUsers, DbErr> {
    let backend = db.get_database_backend();
    let postgres = backend == DbBackend::Postgres;
    let auth_users = postgres && auth_users_exists(db).await?;
    let (p, u) = (relation(PROJECTS), relation(USERS));
    let missing = match backend {
        DbBackend::Postgres => format!(
            "p.\"user_id\" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {u} AS u WHERE u.\"id\" = p.\"user_id\")"
        ),
        // The staged ids are lower-cased already: a uuid is exactly this form.
        _ => format!(
            "p.\"user_id\" GLOB '{}' AND NOT EXISTS (SELECT 1 FROM {u} AS u WHERE u.\"id\" = p.\"user_id\")",
            uuid_glob()
        ),
    };
    // Compared as text, so an `auth.users.id` of another type is no error.
    let in_auth = "EXISTS (SELECT 1 FROM auth.users AS a WHERE a.id::text = p.\"user_id\"::text)";
    let filter = if auth_users {
        format!("{missing} AND {in_auth}")
    } else {
        missing.clone()
    };
    let earliest = match backend {
        DbBackend::Postgres => "min(p.\"created_at\")".to_owned(),
        _ => format!(
            "min(CASE WHEN p.\"created_at\" GLOB '{TIMESTAMP_GLOB}' THEN p.\"created_at\" END)"
        ),
    };
    let temp = table(backend);
    let find = format!(
        "CREATE TEMP TABLE adopt_added_users{} AS SELECT p.\"user_id\" AS \"id\", coalesce({earliest}, {now}) AS \"created_at\" \
         FROM {p} AS p WHERE {filter} GROUP BY p.\"user_id\"",
        if postgres { " ON COMMIT DROP" } else { "" }
    );
    db.execute_unprepared(&find).await?;

    let (target, mut names, values) = match backend {
        DbBackend::Postgres => (ident(USERS), Vec::new(), columns(backend, users)),
        _ => (
            sqlite::staging(USERS),
            vec![ident("adopt_row_id")],
            std::iter::once("a.\"id\"".to_owned())
                .chain(columns(backend, users))
                .collect(),
        ),
    };
    names.extend(users.columns.iter().map(|c| ident(&c.name)));
    let insert = format!(
        "INSERT INTO {target} ({}) SELECT {} FROM {temp} AS a ORDER BY a.\"id\"",
        names.join(", "),
        values.join(", ")
    );
    if postgres {
        // The row checks look added users up by id.
        db.execute_unprepared(&format!(
            "CREATE INDEX adopt_added_users_id_idx ON {temp} (\"id\")"
        ))
        .await?;
    } else {
        db.execute_unprepared(&insert).await?;
    }

    let read = match backend {
        DbBackend::Postgres => format!(
            "SELECT \"id\"::text AS id, to_char(\"created_at\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS created_at \
             FROM {temp} ORDER BY 1"
        ),
        _ => format!("SELECT \"id\" AS id, \"created_at\" AS created_at FROM {temp} ORDER BY 1"),
    };
    let added = ids(db, read)
        .await?
        .into_iter()
        .map(|(id, created_at)| AddedUser { id, created_at })
        .collect();
    let not_in_auth = if auth_users {
        ids(
            db,
            format!(
                "SELECT DISTINCT p.\"user_id\"::text AS id, '' AS created_at FROM {p} AS p \
                 WHERE {missing} AND NOT {in_auth} ORDER BY 1"
            ),
        )
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect()
    } else {
        Vec::new()
    };
    Ok(MissingUsers {
        added,
        auth_users,
        not_in_auth,
        find,
        insert,
    })
}

impl MissingUsers {
    /// The plan's section, given the plan's statements (to number the `INSERT`).
    pub(crate) fn describe(
        &self,
        f: &mut fmt::Formatter<'_>,
        statements: &[String],
    ) -> fmt::Result {
        let n = self.added.len();
        if n == 0 {
            writeln!(
                f,
                "\nUsers to add (--add-missing-users): none; every project's user_id has a users row, or is NULL or not a uuid{}.",
                if self.auth_users {
                    ", or is not in auth.users"
                } else {
                    ""
                }
            )?;
        } else {
            writeln!(
                f,
                "\nUsers to add (--add-missing-users): {n}, named by projects but without a users row; \
                 id only (email and display_name NULL, created_at the earliest of their projects'):"
            )?;
            for user in &self.added {
                writeln!(f, "  {}  created_at {}", user.id, user.created_at)?;
            }
        }
        if self.auth_users {
            writeln!(
                f,
                "auth.users exists: only user ids found there are added.{}",
                if self.not_in_auth.is_empty() {
                    String::new()
                } else {
                    format!(
                        " {} user id{} named by projects {} not in auth.users either, so {} projects stay rows that need a decision: {}",
                        self.not_in_auth.len(),
                        if self.not_in_auth.len() == 1 { "" } else { "s" },
                        if self.not_in_auth.len() == 1 {
                            "is"
                        } else {
                            "are"
                        },
                        if self.not_in_auth.len() == 1 {
                            "its"
                        } else {
                            "their"
                        },
                        self.not_in_auth.join(", ")
                    )
                }
            )?;
        }
        let when = if statements.contains(&self.insert) {
            "run for this plan too"
        } else {
            "from the converted rows below; run for this plan too"
        };
        writeln!(f, "Found by ({when}): {};", self.find)?;
        match statements.iter().position(|s| *s == self.insert) {
            Some(i) => writeln!(f, "Added by statement {}: {};", i + 1, self.insert),
            None => writeln!(
                f,
                "Staged with the converted users (run for this plan too; the rebuilt users table copies them): {};",
                self.insert
            ),
        }
    }
}
