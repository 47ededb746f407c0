//! [`Config`]: the environment, resolved once into typed settings.

use std::path::PathBuf;
use std::time::Duration;

use crate::pool_mode::PoolModeSetting;
use crate::sqlite_url::{self, SqliteMode};
use crate::{AppEnv, ConfigError, PoolMode, SecretUrl};

/// Defaults used when a variable is unset.
pub mod defaults {
    use std::time::Duration;

    /// SQLite file used when `APP_ENV=local` and `DATABASE_URL` is unset.
    pub const SQLITE_PATH: &str = "./local.db";
    /// Pool size on SQLite: readers run in parallel under WAL, writers queue on the lock.
    pub const SQLITE_MAX_CONNECTIONS: u32 = 4;
    /// Pool size on Postgres.
    pub const POSTGRES_MAX_CONNECTIONS: u32 = 10;
    /// How long a caller waits for a pooled connection before a typed timeout error.
    pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
    /// How long SQLite waits for another writer's lock before reporting busy.
    pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
    /// Postgres `statement_timeout`.
    pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
    /// Postgres `application_name`.
    pub const APPLICATION_NAME: &str = "dal";
}

/// Which database engine a [`Config`] points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A Postgres server.
    Postgres,
}

impl Backend {
    /// `"sqlite"` or `"postgres"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = crate::ConfigError;

    /// Accepts `sqlite` and `postgres` (also `postgresql`), ignoring surrounding white
    /// space and case.
    ///
    /// ```
    /// use dal_config::Backend;
    /// assert_eq!(" Postgres".parse::<Backend>().unwrap(), Backend::Postgres);
    /// assert!("mysql".parse::<Backend>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(crate::ConfigError::UnknownBackend {
                value: s.to_owned(),
            }),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the database is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// A SQLite database: a file (created if missing, unless `mode` says otherwise) or a
    /// database in memory.
    Sqlite {
        /// Path of the database file (`:memory:`, or the name, for an in-memory database).
        path: PathBuf,
        /// How it is opened: the URL's `mode` / `immutable` parameters.
        mode: SqliteMode,
    },
    /// A Postgres server; TLS as the URL's `sslmode` says.
    Postgres {
        /// The connection URL (its password is hidden from `Display`/`Debug`).
        url: SecretUrl,
    },
}

/// Everything needed to open the database, resolved from the environment.
///
/// Build it with [`Config::from_env`] in an application, [`Config::from_lookup`] in tests,
/// or [`Config::sqlite`] / [`Config::postgres`] in code.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// `APP_ENV`.
    pub app_env: AppEnv,
    /// `DATABASE_URL`, or the local default.
    pub target: DatabaseTarget,
    /// `DB_MAX_CONNECTIONS`: pool size.
    pub max_connections: u32,
    /// `DB_ACQUIRE_TIMEOUT_MS`: wait for a pooled connection.
    pub acquire_timeout: Duration,
    /// `DB_BUSY_TIMEOUT_MS`: SQLite lock wait (ignored on Postgres).
    pub busy_timeout: Duration,
    /// `DB_STATEMENT_TIMEOUT_MS`: Postgres `statement_timeout`; zero disables it.
    pub statement_timeout: Duration,
    /// `DB_APPLICATION_NAME`: Postgres `application_name`.
    pub application_name: String,
    /// `DB_MIGRATE_ON_CONNECT`: apply pending migrations when connecting.
    pub migrate_on_connect: bool,
    /// `DB_POOL_MODE`: whether a transaction-mode pooler sits between the pool and
    /// Postgres (detected from Supabase's port 6543 unless set). Always
    /// [`PoolMode::Session`] on SQLite.
    pub pool_mode: PoolMode,
}

impl Config {
    /// Reads `.env` (if there is one; it never overrides variables already set) and then
    /// the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(dotenvy::Error::LineParse(_, index)) => {
                return Err(ConfigError::DotEnv {
                    reason: format!("cannot parse the line at byte {index}"),
                });
            }
            Err(dotenvy::Error::Io(e)) => {
                return Err(ConfigError::DotEnv {
                    reason: e.kind().to_string(),
                });
            }
            Err(_) => {
                return Err(ConfigError::DotEnv {
                    reason: "unreadable".to_owned(),
                });
            }
        }
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Resolves a configuration from any variable source (`name -> value`).
    /// Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let app_env = match var("APP_ENV") {
            Some(value) => value.parse()?,
            None => AppEnv::default(),
        };
        let target = match (app_env, var("DATABASE_URL")) {
            (AppEnv::Local, None) => DatabaseTarget::Sqlite {
                path: PathBuf::from(defaults::SQLITE_PATH),
                mode: SqliteMode::default(),
            },
            (AppEnv::Web, None) => return Err(ConfigError::MissingDatabaseUrl),
            (app_env, Some(url)) => parse_target(app_env, url.trim())?,
        };
        let backend = match target {
            DatabaseTarget::Sqlite { .. } => Backend::Sqlite,
            DatabaseTarget::Postgres { .. } => Backend::Postgres,
        };
        let pool_mode = pool_mode(&target, var("DB_POOL_MODE"))?;
        let max_connections = match var("DB_MAX_CONNECTIONS") {
            Some(v) => parse_number("DB_MAX_CONNECTIONS", &v, 1, "a whole number from 1 to 1000")?,
            None => default_max_connections(backend),
        };
        let config = Config {
            app_env,
            target,
            max_connections: max_connections.min(1000) as u32,
            acquire_timeout: duration(&var, "DB_ACQUIRE_TIMEOUT_MS", defaults::ACQUIRE_TIMEOUT, 1)?,
            busy_timeout: duration(&var, "DB_BUSY_TIMEOUT_MS", defaults::BUSY_TIMEOUT, 0)?,
            statement_timeout: duration(
                &var,
                "DB_STATEMENT_TIMEOUT_MS",
                defaults::STATEMENT_TIMEOUT,
                0,
            )?,
            application_name: var("DB_APPLICATION_NAME")
                .unwrap_or_else(|| defaults::APPLICATION_NAME.to_owned()),
            migrate_on_connect: match var("DB_MIGRATE_ON_CONNECT") {
                Some(v) => parse_bool("DB_MIGRATE_ON_CONNECT", &v)?,
                None => false,
            },
            pool_mode,
        };
        config.validate()?;
        Ok(config)
    }

    /// Settings that contradict each other: `DB_MIGRATE_ON_CONNECT` on a database opened
    /// read-only. [`crate::connect`] checks this too, for configurations built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match &self.target {
            DatabaseTarget::Sqlite { mode, .. }
                if self.migrate_on_connect && mode.is_read_only() =>
            {
                Err(ConfigError::MigrateReadOnly {
                    parameter: mode.url_parameter(),
                })
            }
            _ => Ok(()),
        }
    }

    /// A local configuration on the SQLite file at `path` (created if missing), with
    /// default settings. `":memory:"` is an in-memory database, as in a URL.
    pub fn sqlite(path: impl Into<PathBuf>) -> Config {
        let path = path.into();
        let mode = if path.as_os_str() == sqlite_url::MEMORY {
            SqliteMode::Memory
        } else {
            SqliteMode::default()
        };
        Config::with_target(AppEnv::Local, DatabaseTarget::Sqlite { path, mode })
    }

    /// A local configuration from a sqlite URL (`sqlite://./local.db?mode=rwc`,
    /// `sqlite::memory:`, ...), with default settings.
    pub fn sqlite_url(url: &str) -> Result<Config, ConfigError> {
        Ok(Config::with_target(
            AppEnv::Local,
            parse_target(AppEnv::Local, url)?,
        ))
    }

    /// A web configuration on the Postgres server at `url`, with default settings.
    pub fn postgres(url: &str) -> Result<Config, ConfigError> {
        Ok(Config::with_target(
            AppEnv::Web,
            parse_target(AppEnv::Web, url)?,
        ))
    }

    fn with_target(app_env: AppEnv, target: DatabaseTarget) -> Config {
        let backend = match target {
            DatabaseTarget::Sqlite { .. } => Backend::Sqlite,
            DatabaseTarget::Postgres { .. } => Backend::Postgres,
        };
        let pool_mode = match &target {
            DatabaseTarget::Sqlite { .. } => PoolMode::Session,
            DatabaseTarget::Postgres { url } => PoolMode::detect(url.expose_secret()),
        };
        Config {
            app_env,
            target,
            max_connections: default_max_connections(backend) as u32,
            acquire_timeout: defaults::ACQUIRE_TIMEOUT,
            busy_timeout: defaults::BUSY_TIMEOUT,
            statement_timeout: defaults::STATEMENT_TIMEOUT,
            application_name: defaults::APPLICATION_NAME.to_owned(),
            migrate_on_connect: false,
            pool_mode,
        }
    }

    /// The engine behind [`Config::target`].
    pub fn backend(&self) -> Backend {
        match self.target {
            DatabaseTarget::Sqlite { .. } => Backend::Sqlite,
            DatabaseTarget::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Where the database is, safe to print: the SQLite path or the redacted URL.
    pub fn describe_target(&self) -> String {
        match &self.target {
            DatabaseTarget::Sqlite { path, mode } => sqlite_url::describe(path, *mode),
            DatabaseTarget::Postgres { url } => url.redacted(),
        }
    }

    /// Sets the pool size.
    pub fn with_max_connections(mut self, max_connections: u32) -> Config {
        self.max_connections = max_connections.max(1);
        self
    }

    /// Sets how long a caller waits for a pooled connection.
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Config {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets the SQLite busy timeout.
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Config {
        self.busy_timeout = timeout;
        self
    }

    /// Sets the Postgres statement timeout (zero disables it).
    pub fn with_statement_timeout(mut self, timeout: Duration) -> Config {
        self.statement_timeout = timeout;
        self
    }

    /// Applies pending migrations when connecting.
    pub fn with_migrate_on_connect(mut self, migrate: bool) -> Config {
        self.migrate_on_connect = migrate;
        self
    }

    /// Sets the pool mode (on SQLite, which has no pooler, it stays
    /// [`PoolMode::Session`]).
    pub fn with_pool_mode(mut self, mode: PoolMode) -> Config {
        if self.backend() == Backend::Postgres {
            self.pool_mode = mode;
        }
        self
    }

    /// Whether a transaction-mode pooler sits between the pool and the server.
    pub fn behind_transaction_pooler(&self) -> bool {
        self.pool_mode == PoolMode::Transaction
    }
}

/// `DB_POOL_MODE` for `target`: `auto` (or unset) detects it from a Postgres URL's port;
/// SQLite has no pooler, so only `session` and `auto` make sense there.
fn pool_mode(target: &DatabaseTarget, value: Option<String>) -> Result<PoolMode, ConfigError> {
    let setting = match &value {
        Some(v) => v.parse()?,
        None => PoolModeSetting::Auto,
    };
    match (target, setting) {
        (DatabaseTarget::Sqlite { .. }, PoolModeSetting::Fixed(PoolMode::Transaction)) => {
            Err(ConfigError::InvalidSetting {
                var: "DB_POOL_MODE",
                value: value.unwrap_or_default(),
                expected: "`session` or `auto` with a sqlite DATABASE_URL (a local file has no pooler); `transaction` needs APP_ENV=web",
            })
        }
        (DatabaseTarget::Sqlite { .. }, _) => Ok(PoolMode::Session),
        (DatabaseTarget::Postgres { .. }, PoolModeSetting::Fixed(mode)) => Ok(mode),
        (DatabaseTarget::Postgres { url }, PoolModeSetting::Auto) => {
            Ok(PoolMode::detect(url.expose_secret()))
        }
    }
}

fn default_max_connections(backend: Backend) -> u64 {
    match backend {
        Backend::Sqlite => defaults::SQLITE_MAX_CONNECTIONS.into(),
        Backend::Postgres => defaults::POSTGRES_MAX_CONNECTIONS.into(),
    }
}

const SQLITE_SCHEMES: &str = "`sqlite:PATH` (or `sqlite://PATH`, `sqlite::memory:`)";
const POSTGRES_SCHEMES: &str = "`postgres://` or `postgresql://`";

fn parse_target(app_env: AppEnv, url: &str) -> Result<DatabaseTarget, ConfigError> {
    let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
    let Some(scheme) = scheme.filter(|s| !s.is_empty() && s.chars().all(is_scheme_char)) else {
        return Err(ConfigError::InvalidUrl {
            reason: format!("it has no scheme; expected {SQLITE_SCHEMES} or {POSTGRES_SCHEMES}"),
        });
    };
    match (app_env, scheme.as_str()) {
        (AppEnv::Local, "sqlite") => {
            sqlite_url::parse(url).map(|(path, mode)| DatabaseTarget::Sqlite { path, mode })
        }
        (AppEnv::Web, "postgres" | "postgresql") => {
            url::Url::parse(url).map_err(|e| ConfigError::InvalidUrl {
                reason: format!("not a valid postgres URL ({e})"),
            })?;
            // What the driver would refuse at connect time (an unknown `sslmode`, a bad
            // port) is a configuration error, found now rather than retried as a
            // connection failure. sqlx's messages name the parameter, never the password.
            <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(url).map_err(
                |e| ConfigError::InvalidUrl {
                    reason: e.to_string(),
                },
            )?;
            Ok(DatabaseTarget::Postgres {
                url: SecretUrl::new(url),
            })
        }
        (AppEnv::Local, _) => Err(ConfigError::WrongScheme {
            app_env,
            scheme,
            expected: SQLITE_SCHEMES,
            other_env: AppEnv::Web,
        }),
        (AppEnv::Web, _) => Err(ConfigError::WrongScheme {
            app_env,
            scheme,
            expected: POSTGRES_SCHEMES,
            other_env: AppEnv::Local,
        }),
    }
}

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

fn parse_number(
    var: &'static str,
    value: &str,
    min: u64,
    expected: &'static str,
) -> Result<u64, ConfigError> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n >= min)
        .ok_or_else(|| ConfigError::InvalidSetting {
            var,
            value: value.to_owned(),
            expected,
        })
}

/// The longest timeout the drivers accept: Postgres and SQLite take milliseconds as a
/// 32-bit signed integer.
const MAX_TIMEOUT_MS: u64 = i32::MAX as u64;

fn duration(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: Duration,
    min_ms: u64,
) -> Result<Duration, ConfigError> {
    let expected = if min_ms == 0 {
        "a whole number of milliseconds from 0 to 2147483647"
    } else {
        "a whole number of milliseconds from 1 to 2147483647"
    };
    match var(name) {
        Some(v) => {
            let ms = parse_number(name, &v, min_ms, expected)?;
            if ms > MAX_TIMEOUT_MS {
                return Err(ConfigError::InvalidSetting {
                    var: name,
                    value: v,
                    expected,
                });
            }
            Ok(Duration::from_millis(ms))
        }
        None => Ok(default),
    }
}

fn parse_bool(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::InvalidSetting {
            var,
            value: value.to_owned(),
            expected: "true or false",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn local_is_the_default_and_uses_local_db() {
        let c = config(&[]).unwrap();
        assert_eq!(c.app_env, AppEnv::Local);
        assert_eq!(
            c.target,
            DatabaseTarget::Sqlite {
                path: PathBuf::from("./local.db"),
                mode: SqliteMode::ReadWriteCreate,
            }
        );
        assert_eq!(c.max_connections, defaults::SQLITE_MAX_CONNECTIONS);
        assert!(!c.migrate_on_connect);
        assert_eq!(config(&[("APP_ENV", "")]).unwrap().app_env, AppEnv::Local);
    }

    #[test]
    fn sqlite_urls_override_the_path() {
        for (url, path) in [
            ("sqlite:data/app.db", "data/app.db"),
            ("sqlite://./x.db", "./x.db"),
            ("sqlite:///var/lib/app.db", "/var/lib/app.db"),
        ] {
            let c = config(&[("DATABASE_URL", url)]).unwrap();
            assert_eq!(
                c.target,
                DatabaseTarget::Sqlite {
                    path: PathBuf::from(path),
                    mode: SqliteMode::ReadWriteCreate,
                },
                "{url}"
            );
        }
    }

    #[test]
    fn web_takes_a_postgres_url_with_sslmode() {
        let url = "postgres://app:pw@db.example.com:5432/app?sslmode=require";
        let c = config(&[("APP_ENV", "WEB"), ("DATABASE_URL", url)]).unwrap();
        assert_eq!(c.backend(), Backend::Postgres);
        match &c.target {
            DatabaseTarget::Postgres { url: secret } => assert_eq!(secret.expose_secret(), url),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.max_connections, defaults::POSTGRES_MAX_CONNECTIONS);
    }

    #[test]
    fn unknown_app_env_names_the_variable_and_the_allowed_values() {
        let err = config(&[("APP_ENV", "staging")]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnknownAppEnv {
                value: "staging".into()
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("APP_ENV") && text.contains("local") && text.contains("web"),
            "{text}"
        );
    }

    #[test]
    fn web_without_a_url_is_an_error_naming_database_url() {
        let err = config(&[("APP_ENV", "web")]).unwrap_err();
        assert_eq!(err, ConfigError::MissingDatabaseUrl);
        assert!(err.to_string().contains("DATABASE_URL"));
    }

    #[test]
    fn a_url_of_the_wrong_scheme_for_the_env_is_an_error() {
        let err = config(&[("DATABASE_URL", "postgres://u:topsecret@h/db")]).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::WrongScheme {
                    app_env: AppEnv::Local,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("DATABASE_URL") && text.contains("sqlite:"),
            "{text}"
        );
        assert!(!text.contains("topsecret"), "{text}");

        let err = config(&[("APP_ENV", "web"), ("DATABASE_URL", "sqlite:./x.db")]).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::WrongScheme {
                    app_env: AppEnv::Web,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("postgres://"), "{err}");

        let err = config(&[("APP_ENV", "web"), ("DATABASE_URL", "mysql://u:p@h/db")]).unwrap_err();
        assert!(matches!(err, ConfigError::WrongScheme { .. }), "{err:?}");
    }

    #[test]
    fn unusable_urls_and_settings_are_typed_errors() {
        for url in ["no-scheme-here", "sqlite:", "sqlite://"] {
            let err = config(&[("DATABASE_URL", url)]).unwrap_err();
            assert!(
                matches!(err, ConfigError::InvalidUrl { .. }),
                "{url}: {err:?}"
            );
        }
        for (var, value) in [
            ("DB_MAX_CONNECTIONS", "0"),
            ("DB_MAX_CONNECTIONS", "many"),
            ("DB_ACQUIRE_TIMEOUT_MS", "-1"),
            ("DB_BUSY_TIMEOUT_MS", "5s"),
            ("DB_MIGRATE_ON_CONNECT", "maybe"),
            ("DB_STATEMENT_TIMEOUT_MS", "3000000000"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            match &err {
                ConfigError::InvalidSetting { var: v, .. } => assert_eq!(*v, var),
                other => panic!("{var}={value}: {other:?}"),
            }
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn settings_parse() {
        let c = config(&[
            ("DB_MAX_CONNECTIONS", "3"),
            ("DB_ACQUIRE_TIMEOUT_MS", "250"),
            ("DB_BUSY_TIMEOUT_MS", "0"),
            ("DB_STATEMENT_TIMEOUT_MS", "1500"),
            ("DB_APPLICATION_NAME", "worker"),
            ("DB_MIGRATE_ON_CONNECT", "yes"),
        ])
        .unwrap();
        assert_eq!(c.max_connections, 3);
        assert_eq!(c.acquire_timeout, Duration::from_millis(250));
        assert_eq!(c.busy_timeout, Duration::ZERO);
        assert_eq!(c.statement_timeout, Duration::from_millis(1500));
        assert_eq!(c.application_name, "worker");
        assert!(c.migrate_on_connect);
    }

    #[test]
    fn pool_mode_is_detected_from_the_port_and_can_be_overridden() {
        let pooler = "postgres://app:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres";
        let direct = "postgres://app:pw@db.example.com:5432/app";
        let web = |url: &str, mode: Option<&str>| {
            let mut vars = vec![("APP_ENV", "web"), ("DATABASE_URL", url)];
            if let Some(mode) = mode {
                vars.push(("DB_POOL_MODE", mode));
            }
            config(&vars)
        };
        assert_eq!(web(pooler, None).unwrap().pool_mode, PoolMode::Transaction);
        assert_eq!(
            web(pooler, Some("auto")).unwrap().pool_mode,
            PoolMode::Transaction
        );
        assert_eq!(
            web(pooler, Some("session")).unwrap().pool_mode,
            PoolMode::Session
        );
        assert_eq!(web(direct, None).unwrap().pool_mode, PoolMode::Session);
        assert_eq!(
            web(direct, Some("TRANSACTION")).unwrap().pool_mode,
            PoolMode::Transaction
        );
        assert!(
            web(direct, Some("transaction"))
                .unwrap()
                .behind_transaction_pooler()
        );
        assert_eq!(
            Config::postgres(pooler).unwrap().pool_mode,
            PoolMode::Transaction
        );
        assert_eq!(
            Config::postgres(direct)
                .unwrap()
                .with_pool_mode(PoolMode::Transaction)
                .pool_mode,
            PoolMode::Transaction
        );
        assert_eq!(config(&[]).unwrap().pool_mode, PoolMode::Session);
        assert_eq!(
            Config::sqlite("x.db")
                .with_pool_mode(PoolMode::Transaction)
                .pool_mode,
            PoolMode::Session
        );

        for (vars, what) in [
            (
                vec![
                    ("APP_ENV", "web"),
                    ("DATABASE_URL", direct),
                    ("DB_POOL_MODE", "statement"),
                ],
                "unknown mode",
            ),
            (
                vec![("DB_POOL_MODE", "transaction")],
                "transaction on SQLite",
            ),
        ] {
            let err = config(&vars).unwrap_err();
            match &err {
                ConfigError::InvalidSetting { var, .. } => {
                    assert_eq!(*var, "DB_POOL_MODE", "{what}")
                }
                other => panic!("{what}: {other:?}"),
            }
            assert!(err.to_string().contains("DB_POOL_MODE"), "{what}: {err}");
        }
        assert_eq!(
            config(&[("DB_POOL_MODE", "session")]).unwrap().pool_mode,
            PoolMode::Session
        );
    }

    #[test]
    fn the_password_appears_in_no_display_or_debug_output() {
        let canary = "Canary-Pa55word-7f3a";
        let url = format!(
            "postgres://app:{canary}@db.example.com:5432/app?sslmode=verify-full&password={canary}"
        );
        let c = config(&[("APP_ENV", "web"), ("DATABASE_URL", &url)]).unwrap();
        let DatabaseTarget::Postgres { url: secret } = &c.target else {
            panic!()
        };
        let outputs = [
            format!("{c:?}"),
            format!("{c:#?}"),
            format!("{:?}", c.target),
            format!("{secret}"),
            format!("{secret:?}"),
            c.describe_target(),
        ];
        for out in &outputs {
            assert!(!out.contains(canary), "leaked: {out}");
        }
        assert!(
            outputs[0].contains("db.example.com"),
            "still says where: {}",
            outputs[0]
        );

        // Errors never echo the URL either.
        let local = config(&[("DATABASE_URL", &url)]).unwrap_err();
        assert!(!format!("{local} {local:?}").contains(canary));
        let broken = format!("postgres://app:{canary}@[::1");
        let err = config(&[("APP_ENV", "web"), ("DATABASE_URL", &broken)]).unwrap_err();
        assert!(!format!("{err} {err:?}").contains(canary), "{err}");
    }
}
