//! The metadata table every snapshot carries, `dal_snapshot(key, value)`: plain text
//! pairs, so any SQLite reader (a browser app on start-up, `sqlite3`) can read them.
//!
//! | key | value |
//! |---|---|
//! | `format` | this layout's version, [`FORMAT`] |
//! | `schema_version` | the newest migration applied to the file |
//! | `made_at` | when it was made, RFC 3339 UTC |
//! | `made_from` | what it was made from (a path or host and database; never a password) |
//! | `scope` | `all`, or `user:<uuid>` for one user's rows |
//! | `row_counts` | a JSON object, table to rows |
//! | `checksum` | `sha256:…` of the content (see `content.rs`) |
//! | `pull_from` | for a replica made from the server: the pull cursor it continues from |

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::SqlitePool;
use uuid::Uuid;

use crate::content::Content;
use crate::error::{Result, SnapshotError};

/// The metadata table's name (the SQL here spells it out).
pub const META_TABLE: &str = "dal_snapshot";

/// The version of this metadata layout. A snapshot of a later format is refused.
pub const FORMAT: u32 = 1;

/// Whose rows a snapshot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every row of the source.
    All,
    /// One user's rows: their user row, their projects and everything under them.
    User(Uuid),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("all"),
            Scope::User(user) => write!(f, "user:{user}"),
        }
    }
}

impl Scope {
    fn parse(text: &str) -> Option<Scope> {
        match text.strip_prefix("user:") {
            None if text == "all" => Some(Scope::All),
            None => None,
            Some(user) => Uuid::parse_str(user).ok().map(Scope::User),
        }
    }
}

/// What a snapshot's metadata table says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// The layout version ([`FORMAT`] for the snapshots this build makes).
    pub format: u32,
    /// The newest migration applied to the file.
    pub schema_version: String,
    /// When the snapshot was made.
    pub made_at: DateTime<Utc>,
    /// What it was made from.
    pub made_from: String,
    /// Whose rows it holds.
    pub scope: Scope,
    /// Rows per table.
    pub row_counts: BTreeMap<String, u64>,
    /// The content checksum.
    pub checksum: String,
    /// For a replica made from the server: the pull cursor it continues from.
    pub pull_from: Option<u64>,
}

impl Meta {
    /// Rows in all tables.
    pub fn total_rows(&self) -> u64 {
        self.row_counts.values().sum()
    }

    /// Whether `content` is what this metadata recorded.
    pub(crate) fn matches(&self, content: &Content) -> bool {
        self.checksum == content.checksum && self.row_counts == content.row_counts
    }
}

/// Writes `meta` into the file as its metadata table (replacing one already there), in
/// one transaction.
pub(crate) async fn write(pool: &SqlitePool, meta: &Meta) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("DROP TABLE IF EXISTS dal_snapshot")
        .execute(&mut *tx)
        .await?;
    sqlx::query("CREATE TABLE dal_snapshot (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let counts = serde_json::to_string(&meta.row_counts).unwrap_or_default();
    let mut pairs = vec![
        ("format", meta.format.to_string()),
        ("schema_version", meta.schema_version.clone()),
        (
            "made_at",
            meta.made_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        ),
        ("made_from", meta.made_from.clone()),
        ("scope", meta.scope.to_string()),
        ("row_counts", counts),
        ("checksum", meta.checksum.clone()),
    ];
    if let Some(cursor) = meta.pull_from {
        pairs.push(("pull_from", cursor.to_string()));
    }
    for (key, value) in pairs {
        sqlx::query("INSERT INTO dal_snapshot (key, value) VALUES (?, ?)")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Reads the metadata table of the file at `path`; a file without one, or with a
/// format or value this build cannot read, is not a snapshot.
pub(crate) async fn read(pool: &SqlitePool, path: &Path) -> Result<Meta> {
    let not = |why: String| SnapshotError::NotASnapshot {
        path: path.to_owned(),
        why,
    };
    let exists: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind(META_TABLE)
            .fetch_one(pool)
            .await
            .map_err(|e| damaged(path, e))?;
    if exists == 0 {
        return Err(not(format!("it has no {META_TABLE} table")));
    }
    let pairs: Vec<(String, String)> = sqlx::query_as("SELECT key, value FROM dal_snapshot")
        .fetch_all(pool)
        .await
        .map_err(|e| damaged(path, e))?;
    let pairs: BTreeMap<String, String> = pairs.into_iter().collect();
    let get = |key: &str| {
        pairs
            .get(key)
            .cloned()
            .ok_or_else(|| not(format!("its metadata has no {key}")))
    };
    let format: u32 = get("format")?
        .parse()
        .map_err(|_| not("its format is not a number".into()))?;
    if format > FORMAT {
        return Err(not(format!(
            "its metadata format {format} is newer than this build's {FORMAT}"
        )));
    }
    let made_at = DateTime::parse_from_rfc3339(&get("made_at")?)
        .map_err(|_| not("its made_at is not a timestamp".into()))?
        .with_timezone(&Utc);
    let scope = Scope::parse(&get("scope")?).ok_or_else(|| not("its scope is unknown".into()))?;
    let row_counts = serde_json::from_str(&get("row_counts")?)
        .map_err(|_| not("its row_counts are not a JSON object of counts".into()))?;
    let pull_from = match pairs.get("pull_from") {
        None => None,
        Some(text) => Some(
            text.parse()
                .map_err(|_| not("its pull_from is not a number".into()))?,
        ),
    };
    Ok(Meta {
        format,
        schema_version: get("schema_version")?,
        made_at,
        made_from: get("made_from")?,
        scope,
        row_counts,
        checksum: get("checksum")?,
        pull_from,
    })
}

/// A database error reading a file that opened: SQLite found it damaged.
pub(crate) fn damaged(path: &Path, e: sqlx::Error) -> SnapshotError {
    SnapshotError::Damaged {
        path: path.to_owned(),
        why: e.to_string(),
    }
}
