//! Which table, constraint and column a database error is about, as far as each backend
//! says.
//!
//! Postgres names them in fields of its error report (`table`, `constraint`, `column`);
//! the column of a unique or foreign-key violation appears only in the `DETAIL` line
//! (`Key (email)=(…) already exists.`). SQLite has no such fields: the message text
//! (`UNIQUE constraint failed: users.email`) is the only source, so it is read here,
//! conservatively: anything that does not have the exact shape SQLite writes gives
//! `None`. Classification never looks at text; it is by error code (see `classify`).

/// The table, constraint and column an error names; each `None` where the database
/// does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Culprit {
    pub table: Option<String>,
    pub constraint: Option<String>,
    pub column: Option<String>,
}

impl Culprit {
    /// From a Postgres error report.
    pub(crate) fn postgres(pg: &sqlx::postgres::PgDatabaseError) -> Culprit {
        Culprit {
            table: pg.table().map(str::to_owned),
            constraint: pg.constraint().map(str::to_owned),
            column: pg
                .column()
                .map(str::to_owned)
                .or_else(|| pg.detail().and_then(key_column)),
        }
    }

    /// From a SQLite message, given the extended result code that classified it.
    pub(crate) fn sqlite(code: i32, message: &str) -> Culprit {
        const SQLITE_CONSTRAINT_CHECK: i32 = 275;
        const SQLITE_CONSTRAINT_NOTNULL: i32 = 1299;
        const SQLITE_CONSTRAINT_PRIMARYKEY: i32 = 1555;
        const SQLITE_CONSTRAINT_UNIQUE: i32 = 2067;
        const SQLITE_CONSTRAINT_TRIGGER: i32 = 1811;
        const SQLITE_CONSTRAINT_DATATYPE: i32 = 3091;
        match code {
            SQLITE_CONSTRAINT_PRIMARYKEY | SQLITE_CONSTRAINT_UNIQUE => {
                let Some(rest) = message.strip_prefix("UNIQUE constraint failed: ") else {
                    return Culprit::default();
                };
                // A unique index on expressions is named, not its columns.
                if let Some(index) = rest
                    .strip_prefix("index '")
                    .and_then(|r| r.strip_suffix('\''))
                {
                    return Culprit {
                        constraint: Some(index.to_owned()),
                        ..Culprit::default()
                    };
                }
                columns(rest)
            }
            SQLITE_CONSTRAINT_NOTNULL => message
                .strip_prefix("NOT NULL constraint failed: ")
                .map(columns)
                .unwrap_or_default(),
            // A named CHECK is reported by name, an unnamed one by its expression: only
            // a bare identifier is taken for a name.
            SQLITE_CONSTRAINT_CHECK => Culprit {
                constraint: message
                    .strip_prefix("CHECK constraint failed: ")
                    .filter(|name| is_identifier(name))
                    .map(str::to_owned),
                ..Culprit::default()
            },
            // The schema's value triggers raise `table.column: what is wrong` (migration
            // m20261130_203628_values_every_reader_reads).
            SQLITE_CONSTRAINT_TRIGGER => message
                .split_once(": ")
                .map(|(place, _)| columns(place))
                .unwrap_or_default(),
            // STRICT tables: "cannot store TEXT value in INTEGER column t.c".
            SQLITE_CONSTRAINT_DATATYPE => message
                .rsplit_once(" column ")
                .map(|(_, place)| columns(place))
                .unwrap_or_default(),
            // FOREIGN KEY failures name nothing ("FOREIGN KEY constraint failed").
            _ => Culprit::default(),
        }
    }
}

/// `table.column` (one column: table and column) or `t.a, t.b` (several columns of one
/// table: the table only).
fn columns(list: &str) -> Culprit {
    let mut table = None;
    let mut column = None;
    for (i, item) in list.split(", ").enumerate() {
        let Some((t, c)) = item.split_once('.') else {
            return Culprit::default();
        };
        if !is_identifier(t) || !is_identifier(c) || table.as_deref().is_some_and(|x| x != t) {
            return Culprit::default();
        }
        table = Some(t.to_owned());
        column = (i == 0).then(|| c.to_owned());
    }
    Culprit {
        table,
        column,
        constraint: None,
    }
}

/// The single column of a Postgres `DETAIL` line `Key (email)=(…) …` (unique and
/// foreign-key violations). Postgres writes this line in the server's `lc_messages`
/// language; in another language, or for a key of several columns or of an
/// expression, there is no column.
fn key_column(detail: &str) -> Option<String> {
    let rest = detail.strip_prefix("Key (")?;
    let (column, _) = rest.split_once(")=(")?;
    if is_identifier(column) {
        return Some(column.to_owned());
    }
    // A quoted identifier: "Email".
    let quoted = column.strip_prefix('"')?.strip_suffix('"')?;
    (!quoted.is_empty() && !quoted.contains('"')).then(|| quoted.to_owned())
}

/// A plain SQL identifier: letters, digits and `_`, not starting with a digit.
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn culprit(table: Option<&str>, constraint: Option<&str>, column: Option<&str>) -> Culprit {
        Culprit {
            table: table.map(Into::into),
            constraint: constraint.map(Into::into),
            column: column.map(Into::into),
        }
    }

    #[test]
    fn sqlite_messages() {
        let cases = [
            (
                2067,
                "UNIQUE constraint failed: users.email",
                culprit(Some("users"), None, Some("email")),
            ),
            (
                1555,
                "UNIQUE constraint failed: users.id",
                culprit(Some("users"), None, Some("id")),
            ),
            (
                2067,
                "UNIQUE constraint failed: t.a, t.b",
                culprit(Some("t"), None, None),
            ),
            (
                2067,
                "UNIQUE constraint failed: t.a, u.b",
                culprit(None, None, None),
            ),
            (
                2067,
                "UNIQUE constraint failed: index 'users_lower_email'",
                culprit(None, Some("users_lower_email"), None),
            ),
            (
                1299,
                "NOT NULL constraint failed: tasks.task_type",
                culprit(Some("tasks"), None, Some("task_type")),
            ),
            (
                275,
                "CHECK constraint failed: tasks_status_check",
                culprit(None, Some("tasks_status_check"), None),
            ),
            (
                275,
                "CHECK constraint failed: status IN ('a')",
                culprit(None, None, None),
            ),
            (
                1811,
                "tasks.params: nested deeper than 1000 levels",
                culprit(Some("tasks"), None, Some("params")),
            ),
            (1811, "something else entirely", culprit(None, None, None)),
            (
                3091,
                "cannot store TEXT value in INTEGER column t.n",
                culprit(Some("t"), None, Some("n")),
            ),
            (
                787,
                "FOREIGN KEY constraint failed",
                culprit(None, None, None),
            ),
            (2067, "unexpected wording", culprit(None, None, None)),
        ];
        for (code, message, expected) in cases {
            assert_eq!(Culprit::sqlite(code, message), expected, "{message}");
        }
    }

    #[test]
    fn postgres_key_details() {
        assert_eq!(
            key_column("Key (email)=(a@b.c) already exists."),
            Some("email".into())
        );
        assert_eq!(
            key_column("Key (user_id)=(0190…) is not present in table \"users\"."),
            Some("user_id".into())
        );
        assert_eq!(
            key_column("Key (\"Email\")=(x) already exists."),
            Some("Email".into())
        );
        assert_eq!(key_column("Key (a, b)=(1, 2) already exists."), None);
        assert_eq!(key_column("Key (lower(email))=(x) already exists."), None);
        assert_eq!(
            key_column("Schlüssel »(email)=(x)« existiert bereits."),
            None
        );
    }
}
