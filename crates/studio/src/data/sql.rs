//! The SQL behind the generic reads, per backend: each column read as text in one form,
//! placeholders in the backend's own spelling.

use dal::Backend;
use dal::sql::Value;
use entities::schema::{Column, Kind};

/// A statement being built: SQL text and the values its placeholders bind.
pub struct Query {
    backend: Backend,
    /// The SQL so far.
    pub sql: String,
    /// The values, in placeholder order.
    pub values: Vec<Value>,
}

impl Query {
    /// An empty statement for `backend`.
    pub fn new(backend: Backend) -> Query {
        Query {
            backend,
            sql: String::new(),
            values: Vec::new(),
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, sql: &str) -> &mut Query {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind(&mut self, value: impl Into<Value>) -> &mut Query {
        self.values.push(value.into());
        match self.backend {
            Backend::Postgres => self.sql.push_str(&format!("${}", self.values.len())),
            Backend::Sqlite => self.sql.push('?'),
        }
        self
    }
}

/// A quoted identifier (the registry's names are plain, but quote them anyway).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `column` read as text in the one form both backends show.
pub fn text_of(backend: Backend, column: &Column) -> String {
    let c = ident(column.name);
    match backend {
        Backend::Postgres => match column.kind {
            Kind::UuidList => format!("array_to_json({c})::text"),
            Kind::Timestamp => {
                format!("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
            }
            Kind::Text => c,
            _ => format!("{c}::text"),
        },
        Backend::Sqlite => match column.kind {
            Kind::Bool => format!("CASE WHEN {c} THEN 'true' ELSE 'false' END"),
            Kind::Int => format!("CAST({c} AS TEXT)"),
            _ => c,
        },
    }
}

/// What rows are ordered by for `column`: integers as numbers, the rest as their text
/// in byte order (Postgres's collation would order punctuation differently from SQLite).
pub fn order_of(backend: Backend, column: &Column) -> String {
    match (column.kind, backend) {
        (Kind::Int, _) => ident(column.name),
        (_, Backend::Postgres) => format!("({}) COLLATE \"C\"", text_of(backend, column)),
        (_, Backend::Sqlite) => text_of(backend, column),
    }
}

/// A value of `column` typed in a form, as the value [`order_of`] compares with.
pub fn order_value(column: &Column, text: &str) -> Option<Value> {
    match column.kind {
        Kind::Int => text.trim().parse::<i64>().ok().map(Value::from),
        _ => Some(Value::from(text.to_owned())),
    }
}

/// Appends "`column` matches `text`" to `query`: equality of the text form, and for a uuid
/// list, that it contains the uuid.
pub fn push_match(query: &mut Query, backend: Backend, column: &Column, text: &str) {
    // A uuid in any spelling (capitals, braces, no hyphens) as SQLite stores it: Postgres
    // compares uuids, SQLite their text.
    let canonical;
    let text = match column.kind {
        Kind::Uuid | Kind::UuidList => match uuid::Uuid::parse_str(text.trim()) {
            Ok(id) => {
                canonical = id.to_string();
                canonical.as_str()
            }
            Err(_) => text,
        },
        _ => text,
    };
    match (column.kind, backend) {
        (Kind::UuidList, Backend::Postgres) => {
            query.bind(text.to_owned());
            query.push(&format!("::uuid = ANY({})", ident(column.name)));
        }
        (Kind::UuidList, Backend::Sqlite) => {
            query.push(&format!(
                "EXISTS (SELECT 1 FROM json_each({}) WHERE value = ",
                ident(column.name)
            ));
            query.bind(text.to_owned());
            query.push(")");
        }
        (Kind::Uuid, Backend::Postgres) => {
            query.push(&format!("{} = ", ident(column.name)));
            query.bind(text.to_owned());
            query.push("::uuid");
        }
        _ => {
            query.push(&format!("{} = ", text_of(backend, column)));
            query.bind(text.to_owned());
        }
    }
}

/// The condition that leaves tombstoned rows out, when the table has a tombstone.
pub fn live_condition(has_tombstone: bool) -> &'static str {
    if has_tombstone {
        "NOT deleted"
    } else {
        "1 = 1"
    }
}
