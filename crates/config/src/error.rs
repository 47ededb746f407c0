//! [`ConfigError`]: what is wrong with the environment, naming the variable.

use crate::AppEnv;

/// The environment does not describe a usable database.
///
/// Every message names the variable at fault and the values it accepts. None of them
/// contains a password: URLs are never echoed, only their scheme.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `APP_ENV` holds something other than `local` or `web`.
    #[error("APP_ENV={value:?} is not recognised; expected `local` (default) or `web`")]
    UnknownAppEnv {
        /// What `APP_ENV` held.
        value: String,
    },
    /// A backend name other than `sqlite` or `postgres`.
    #[error("{value:?} is not a backend; expected `sqlite` or `postgres`")]
    UnknownBackend {
        /// The name given.
        value: String,
    },
    /// `APP_ENV=web` without a `DATABASE_URL`.
    #[error(
        "DATABASE_URL is required when APP_ENV=web; expected postgres://USER:PASSWORD@HOST:5432/DB (optionally ?sslmode=require)"
    )]
    MissingDatabaseUrl,
    /// `DATABASE_URL`'s scheme does not fit `APP_ENV`.
    #[error(
        "DATABASE_URL has scheme `{scheme}`, but APP_ENV={app_env} needs {expected} (set APP_ENV to `{other_env}` to use this URL)"
    )]
    WrongScheme {
        /// The environment in force.
        app_env: AppEnv,
        /// The scheme found in the URL (never the rest of it).
        scheme: String,
        /// The schemes that environment accepts.
        expected: &'static str,
        /// The environment that would accept this scheme.
        other_env: AppEnv,
    },
    /// `DATABASE_URL` cannot be used as it is.
    #[error("DATABASE_URL is not usable: {reason}")]
    InvalidUrl {
        /// Why, without the URL itself.
        reason: String,
    },
    /// A sqlite URL parameter, or a combination of them, that the library refuses: an
    /// unknown parameter or value, one given twice, or one that would break what the
    /// library guarantees (`cache=shared` on a file, `vfs`, a read-only in-memory database).
    #[error("DATABASE_URL: `{parameter}` is not accepted on sqlite URLs: {reason}")]
    UnsupportedSqliteParameter {
        /// The parameter (with its value when the value is the problem).
        parameter: String,
        /// Why, and what is accepted instead.
        reason: String,
    },
    /// The SQLite file does not exist, and the URL's mode opens existing files only
    /// (`mode=rw`, `mode=ro`, `immutable=1`). Not retryable: nothing will create it.
    #[error(
        "the SQLite file {path} does not exist, and DATABASE_URL's `{parameter}` never creates one (use mode=rwc, or no mode, to create it)"
    )]
    SqliteFileMissing {
        /// The file.
        path: std::path::PathBuf,
        /// The URL parameter that opens existing files only.
        parameter: &'static str,
    },
    /// SQLite cannot open or create the file (SQLITE_CANTOPEN): its directory does not
    /// exist, or this process may not open or create files there. Not retryable.
    #[error(
        "the SQLite file {path} cannot be opened ({reason}); check that its directory exists and that this process may create and write files in it"
    )]
    SqliteCannotOpen {
        /// The file.
        path: std::path::PathBuf,
        /// SQLite's message.
        reason: String,
    },
    /// The file exists but is not a SQLite database (SQLITE_NOTADB): some other file, or
    /// an encrypted database. Not retryable.
    #[error("{path} is not a SQLite database (SQLite: {reason})")]
    SqliteNotADatabase {
        /// The file.
        path: std::path::PathBuf,
        /// SQLite's message.
        reason: String,
    },
    /// The Postgres server has no database of the name `DATABASE_URL` gives (3D000).
    /// Not retryable: create the database, or fix the URL.
    #[error(
        "the Postgres database {database:?} does not exist on the server; create it, or fix the database name in DATABASE_URL"
    )]
    PostgresDatabaseMissing {
        /// The database name from the URL (never the rest of the URL).
        database: String,
    },
    /// `DB_MIGRATE_ON_CONNECT=true` with a sqlite URL that opens the database read-only.
    #[error(
        "DB_MIGRATE_ON_CONNECT=true cannot migrate a database opened read-only (DATABASE_URL has `{parameter}`); unset it, or migrate through a writable URL first"
    )]
    MigrateReadOnly {
        /// The URL parameter that makes the database read-only.
        parameter: &'static str,
    },
    /// A numeric or boolean setting does not parse.
    #[error("{var}={value:?} is not valid; expected {expected}")]
    InvalidSetting {
        /// The variable.
        var: &'static str,
        /// What it held.
        value: String,
        /// What it accepts.
        expected: &'static str,
    },
    /// The `.env` file exists but cannot be read or parsed.
    #[error("could not read the .env file: {reason}")]
    DotEnv {
        /// Why (the offending line's number, never its content: it may hold a secret).
        reason: String,
    },
}
