//! SQLite URLs as the ecosystem writes them: `sqlite://./local.db?mode=rwc`,
//! `sqlite:path`, `sqlite:///abs/path`, `sqlite::memory:`.
//!
//! The forms and parameters are sqlx's (`sqlx-sqlite`'s `options/parse.rs`), with the same
//! meaning, except where a parameter would break what the library guarantees; those are
//! refused with a [`ConfigError`] naming them:
//!
//! * `cache=shared` on a file: shared-cache mode replaces WAL's concurrent readers and the
//!   busy timeout with table locks, and a reader blocked on a table lock waits without any
//!   time limit (sqlx waits for SQLite's unlock notification), so a read issued while a
//!   unit of work is open could hang instead of returning `Busy`.
//! * `cache=private` on an in-memory database: every pooled connection would get a
//!   database of its own.
//! * `vfs`: the library relies on the default file locking and durability.
//! * contradictions (`immutable=1` with `mode=rw`, `mode=ro` on `:memory:`), unknown
//!   values, unknown or repeated parameters, and SQLite `file:` URI filenames.

use std::path::PathBuf;

use percent_encoding::percent_decode_str;

use crate::ConfigError;

/// How a SQLite database is opened: the `mode` and `immutable` parameters of a sqlite
/// URL. The default (no parameter, or `mode=rwc`) creates the file if it is missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SqliteMode {
    /// Read and write; create the file if it is missing (`mode=rwc`, and the default).
    #[default]
    ReadWriteCreate,
    /// Read and write an existing file (`mode=rw`); a missing file is
    /// [`ConfigError::SqliteFileMissing`], never created.
    ReadWrite,
    /// Read only (`mode=ro`): every write fails with a read-only error.
    ReadOnly,
    /// Read only, and the file is promised never to change while open (`immutable=1`):
    /// SQLite takes no locks and does not look for other writers' changes.
    Immutable,
    /// A database in memory (`sqlite::memory:`, `mode=memory`): every connection of the
    /// pool sees the same database, which is gone when the pool closes. No WAL (it needs a
    /// file). `:memory:` (or no name) is a new database for each connect; a named one
    /// (`sqlite:NAME?mode=memory`) is shared by every pool of the process that opens the
    /// same name, as long as one connection to it is open.
    Memory,
}

impl SqliteMode {
    /// Whether writes are refused (`mode=ro`, `immutable=1`).
    pub fn is_read_only(self) -> bool {
        matches!(self, SqliteMode::ReadOnly | SqliteMode::Immutable)
    }

    /// The URL parameter that selects this mode (`""` for the default).
    pub fn url_parameter(self) -> &'static str {
        match self {
            SqliteMode::ReadWriteCreate => "",
            SqliteMode::ReadWrite => "mode=rw",
            SqliteMode::ReadOnly => "mode=ro",
            SqliteMode::Immutable => "immutable=1",
            SqliteMode::Memory => "mode=memory",
        }
    }
}

/// The name that stands for an anonymous in-memory database.
pub(crate) const MEMORY: &str = ":memory:";

/// Parses everything after the scheme of a `sqlite:` URL into a path (or an in-memory
/// database's name) and a mode.
pub(crate) fn parse(url: &str) -> Result<(PathBuf, SqliteMode), ConfigError> {
    // As sqlx: `sqlite://PATH` and `sqlite:PATH` are the same; `sqlite:///abs` is `/abs`.
    let rest = &url["sqlite:".len()..];
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (database, query) = match rest.split_once('?') {
        Some((database, query)) => (database, Some(query)),
        None => (rest, None),
    };
    let params = Params::parse(query.unwrap_or(""))?;
    if database.starts_with("file:") {
        return Err(refused(
            "file:",
            "SQLite URI filenames are not supported; write sqlite:PATH with the parameters after `?`",
        ));
    }
    let memory = database == MEMORY || params.mode == Some("memory");
    if database.is_empty() && !memory {
        return Err(ConfigError::InvalidUrl {
            reason: "a sqlite URL needs a file path (sqlite:./local.db) or `:memory:`".to_owned(),
        });
    }
    // As sqlx: the path is percent-decoded, so `?` or `#` can be part of a file name.
    let decoded =
        percent_decode_str(database)
            .decode_utf8()
            .map_err(|_| ConfigError::InvalidUrl {
                reason: "the sqlite path is not valid UTF-8 once percent-decoded".to_owned(),
            })?;
    if memory {
        if params.mode == Some("ro") || params.immutable {
            return Err(refused(
                if params.immutable {
                    "immutable=1"
                } else {
                    "mode=ro"
                },
                "an in-memory database cannot be read-only: it starts empty",
            ));
        }
        if params.cache == Some("private") {
            return Err(refused(
                "cache=private",
                "on an in-memory database every pooled connection would see a database of its own",
            ));
        }
        let name = if database.is_empty() {
            MEMORY
        } else {
            &*decoded
        };
        return Ok((PathBuf::from(name), SqliteMode::Memory));
    }
    if params.cache == Some("shared") {
        return Err(refused(
            "cache=shared",
            "shared-cache mode replaces WAL's concurrent readers and the busy timeout with table locks that are waited for without a time limit; leave it out",
        ));
    }
    let mode = match (params.mode, params.immutable) {
        (None | Some("ro"), true) => SqliteMode::Immutable,
        (Some(mode), true) => {
            return Err(refused(
                &format!("immutable=1 with mode={mode}"),
                "an immutable database is read-only; use mode=ro or no mode with immutable=1",
            ));
        }
        (None | Some("rwc"), false) => SqliteMode::ReadWriteCreate,
        (Some("rw"), false) => SqliteMode::ReadWrite,
        (Some("ro"), false) => SqliteMode::ReadOnly,
        (Some(other), false) => unreachable!("mode={other} is validated; memory returned above"),
    };
    let path = PathBuf::from(&*decoded);
    Ok((path, mode))
}

/// The parameters after `?`, each validated on its own.
#[derive(Default)]
struct Params {
    mode: Option<&'static str>,
    cache: Option<&'static str>,
    immutable: bool,
}

impl Params {
    fn parse(query: &str) -> Result<Params, ConfigError> {
        let mut params = Params::default();
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if seen.iter().any(|k| *k == key) {
                return Err(refused(&key, "it is given more than once"));
            }
            seen.push(key.to_string());
            let pick = |allowed: &[&'static str]| {
                allowed
                    .iter()
                    .copied()
                    .find(|a| *a == value)
                    .ok_or_else(|| {
                        refused(
                            &format!("{key}={value}"),
                            &format!("`{key}` accepts {}", allowed.join(", ")),
                        )
                    })
            };
            match &*key {
                "mode" => params.mode = Some(pick(&["rwc", "rw", "ro", "memory"])?),
                "cache" => params.cache = Some(pick(&["shared", "private"])?),
                "immutable" => {
                    params.immutable = matches!(pick(&["1", "true", "0", "false"])?, "1" | "true")
                }
                "vfs" => {
                    return Err(refused(
                        "vfs",
                        "the library relies on SQLite's default file locking and durability",
                    ));
                }
                other => {
                    return Err(refused(
                        other,
                        "unknown parameter; sqlite URLs accept mode, cache and immutable (the DB_* variables set the rest)",
                    ));
                }
            }
        }
        Ok(params)
    }
}

fn refused(parameter: &str, reason: &str) -> ConfigError {
    ConfigError::UnsupportedSqliteParameter {
        parameter: parameter.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The URL that opens `path` in `mode`, as [`crate::Config::describe_target`] shows it.
pub(crate) fn describe(path: &std::path::Path, mode: SqliteMode) -> String {
    if mode == SqliteMode::Memory && path.as_os_str() == MEMORY {
        return "sqlite::memory:".to_owned();
    }
    match mode.url_parameter() {
        "" => format!("sqlite:{}", path.display()),
        parameter => format!("sqlite:{}?{parameter}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AppEnv, Config, DatabaseTarget};

    fn target(url: &str) -> Result<(PathBuf, SqliteMode), ConfigError> {
        let config = Config::from_lookup(|name| (name == "DATABASE_URL").then(|| url.to_owned()))?;
        assert_eq!(config.app_env, AppEnv::Local);
        match config.target {
            DatabaseTarget::Sqlite { path, mode } => Ok((path, mode)),
            other => panic!("{url}: {other:?}"),
        }
    }

    fn ok(url: &str) -> (String, SqliteMode) {
        let (path, mode) = target(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        (path.to_str().unwrap().to_owned(), mode)
    }

    fn refused_parameter(url: &str) -> String {
        match target(url) {
            Err(ConfigError::UnsupportedSqliteParameter { parameter, reason }) => {
                assert!(!reason.is_empty());
                parameter
            }
            other => panic!("{url}: expected a refused parameter, got {other:?}"),
        }
    }

    #[test]
    fn every_form_sqlx_documents_names_the_same_file() {
        use SqliteMode::*;
        for (url, path, mode) in [
            (
                "sqlite://./local.db?mode=rwc",
                "./local.db",
                ReadWriteCreate,
            ),
            ("sqlite:./local.db", "./local.db", ReadWriteCreate),
            ("sqlite:data/app.db", "data/app.db", ReadWriteCreate),
            ("sqlite://data/app.db", "data/app.db", ReadWriteCreate),
            (
                "sqlite:///var/lib/app.db",
                "/var/lib/app.db",
                ReadWriteCreate,
            ),
            ("sqlite:/var/lib/app.db", "/var/lib/app.db", ReadWriteCreate),
            ("sqlite:app.db?", "app.db", ReadWriteCreate),
            ("sqlite:app.db?mode=rw", "app.db", ReadWrite),
            ("sqlite:app.db?mode=ro", "app.db", ReadOnly),
            (
                "sqlite:app.db?cache=private&mode=rwc",
                "app.db",
                ReadWriteCreate,
            ),
            ("sqlite:app.db?immutable=1", "app.db", Immutable),
            ("sqlite:app.db?immutable=true&mode=ro", "app.db", Immutable),
            ("sqlite:app.db?immutable=0&mode=rw", "app.db", ReadWrite),
            ("sqlite:app.db?immutable=false", "app.db", ReadWriteCreate),
            // Percent-decoded, as sqlx does: `?` and spaces in a file name.
            ("sqlite:my%20data%3F.db?mode=rw", "my data?.db", ReadWrite),
        ] {
            assert_eq!(ok(url), (path.to_owned(), mode), "{url}");
        }
    }

    #[test]
    fn in_memory_forms() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite::memory:?cache=shared",
            "sqlite://?mode=memory",
            "sqlite:?mode=memory&cache=shared",
            "sqlite::memory:?mode=rwc",
        ] {
            assert_eq!(ok(url), (MEMORY.to_owned(), SqliteMode::Memory), "{url}");
        }
        assert_eq!(
            ok("sqlite:shared-one?mode=memory&cache=shared"),
            ("shared-one".to_owned(), SqliteMode::Memory)
        );
        assert_eq!(
            Config::sqlite(MEMORY).target,
            DatabaseTarget::Sqlite {
                path: PathBuf::from(MEMORY),
                mode: SqliteMode::Memory
            }
        );
    }

    #[test]
    fn parameters_that_break_a_guarantee_are_refused_by_name() {
        for (url, parameter) in [
            ("sqlite:app.db?cache=shared", "cache=shared"),
            ("sqlite::memory:?cache=private", "cache=private"),
            ("sqlite::memory:?mode=ro", "mode=ro"),
            ("sqlite:x?mode=memory&immutable=1", "immutable=1"),
            ("sqlite:app.db?vfs=unix-none", "vfs"),
            (
                "sqlite:app.db?immutable=1&mode=rw",
                "immutable=1 with mode=rw",
            ),
            (
                "sqlite:app.db?immutable=1&mode=rwc",
                "immutable=1 with mode=rwc",
            ),
            ("sqlite:app.db?journal_mode=delete", "journal_mode"),
            ("sqlite:app.db?mode=wal", "mode=wal"),
            ("sqlite:app.db?cache=none", "cache=none"),
            ("sqlite:app.db?immutable=yes", "immutable=yes"),
            ("sqlite:app.db?mode=ro&mode=rw", "mode"),
            ("sqlite:file:app.db?mode=ro", "file:"),
        ] {
            assert_eq!(refused_parameter(url), parameter, "{url}");
            let message = target(url).unwrap_err().to_string();
            assert!(
                message.contains("DATABASE_URL") && message.contains(parameter),
                "{message}"
            );
        }
    }

    #[test]
    fn a_url_without_a_database_is_invalid() {
        for url in [
            "sqlite:",
            "sqlite://",
            "sqlite:?cache=shared",
            "sqlite://?mode=rw",
        ] {
            assert!(
                matches!(target(url), Err(ConfigError::InvalidUrl { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn migrate_on_connect_is_refused_on_a_read_only_database() {
        for (url, parameter) in [
            ("sqlite:app.db?mode=ro", "mode=ro"),
            ("sqlite:app.db?immutable=1", "immutable=1"),
        ] {
            let err = Config::from_lookup(|name| match name {
                "DATABASE_URL" => Some(url.to_owned()),
                "DB_MIGRATE_ON_CONNECT" => Some("true".to_owned()),
                _ => None,
            })
            .unwrap_err();
            assert_eq!(err, ConfigError::MigrateReadOnly { parameter }, "{url}");
            assert!(err.to_string().contains("DB_MIGRATE_ON_CONNECT"), "{err}");
            let built = Config::sqlite_url(url)
                .unwrap()
                .with_migrate_on_connect(true);
            assert_eq!(
                built.validate(),
                Err(ConfigError::MigrateReadOnly { parameter })
            );
        }
        for url in ["sqlite::memory:", "sqlite:app.db?mode=rw", "sqlite:app.db"] {
            let built = Config::sqlite_url(url)
                .unwrap()
                .with_migrate_on_connect(true);
            assert_eq!(built.validate(), Ok(()), "{url}");
        }
    }

    #[test]
    fn describe_target_shows_the_mode() {
        for (url, shown) in [
            ("sqlite://./local.db?mode=rwc", "sqlite:./local.db"),
            ("sqlite:app.db?mode=ro", "sqlite:app.db?mode=ro"),
            (
                "sqlite:app.db?immutable=1&mode=ro",
                "sqlite:app.db?immutable=1",
            ),
            ("sqlite::memory:", "sqlite::memory:"),
            ("sqlite:name?mode=memory", "sqlite:name?mode=memory"),
        ] {
            assert_eq!(Config::sqlite_url(url).unwrap().describe_target(), shown);
        }
    }
}
