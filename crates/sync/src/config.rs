//! Turning sync on by configuration: an application that already runs on the local
//! database starts syncing by setting `SYNC_URL` (a sync server) or `SYNC_DATABASE_URL`
//! (the database itself, for trusted services), without changing its calls.

use std::time::Duration;

use dal::{Backend, Config, ConfigError, Database};

use crate::client::{SyncClient, SyncError};
use crate::engine::{SyncEngine, SyncOptions};
use crate::http::{HttpTransport, StaticToken};
use crate::server::PostgresTransport;
use crate::transport::{Transport, TransportError};
use std::sync::Arc;

/// A sync setting that cannot be used. Never shows the URL: it may hold a password.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SyncConfigError {
    /// `SYNC_DATABASE_URL` is not a usable Postgres URL.
    #[error("SYNC_DATABASE_URL is not usable: {reason}")]
    ServerUrl {
        /// Why, without the URL itself.
        reason: String,
    },
    /// `SYNC_URL` is not a usable sync server URL.
    #[error("SYNC_URL is not usable: {reason}")]
    SyncUrl {
        /// Why, without the URL's credentials.
        reason: String,
    },
    /// `SYNC_URL` is set without `SYNC_TOKEN`.
    #[error("SYNC_URL is set but SYNC_TOKEN is not: the sync server needs the user's token")]
    NoToken,
    /// Both `SYNC_URL` and `SYNC_DATABASE_URL` are set.
    #[error(
        "both SYNC_URL and SYNC_DATABASE_URL are set: choose the sync server (devices) or the database (trusted services)"
    )]
    BothServers,
    /// An interval does not parse.
    #[error("{var}={value:?} is not valid; expected a whole number of milliseconds above 0")]
    Interval {
        /// The variable.
        var: &'static str,
        /// What it held.
        value: String,
    },
}

/// Where replicas sync to.
#[derive(Clone)]
pub enum SyncServer {
    /// A sync server over HTTP(S) (`SYNC_URL`), as the user of the token (`SYNC_TOKEN`):
    /// what devices use. An application whose tokens expire builds an
    /// [`HttpTransport`] with its own [`TokenProvider`](crate::http::TokenProvider) and
    /// calls [`start_with`] instead.
    Http {
        /// The server's base URL.
        url: String,
        /// The bearer token.
        token: String,
    },
    /// The Postgres database itself (`SYNC_DATABASE_URL`), with full privileges: for
    /// trusted services only, never on a user's device.
    Database(Config),
}

impl std::fmt::Debug for SyncServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncServer::Http { url, .. } => f
                .debug_struct("Http")
                .field("url", url)
                .field("token", &"<redacted>")
                .finish(),
            SyncServer::Database(config) => f.debug_tuple("Database").field(config).finish(),
        }
    }
}

/// Where and how often to sync.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `SYNC_URL` | unset | a sync server (`https://…`); with `SYNC_TOKEN`, the user's bearer token |
/// | `SYNC_DATABASE_URL` | unset | instead, the Postgres server itself (trusted services only) |
/// | `SYNC_PUSH_INTERVAL_MS` | `5000` | time between pushes when all is well |
/// | `SYNC_PULL_INTERVAL_MS` | `15000` | time between pulls when all is well (live updates pull sooner) |
///
/// Neither URL set: no sync. Both set: an error (which one was meant is unclear).
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// The server.
    pub server: SyncServer,
    /// Intervals, batch and page sizes.
    pub options: SyncOptions,
}

impl SyncConfig {
    /// Reads the process environment (after `Config::from_env`, which loads `.env`).
    /// `Ok(None)` when neither `SYNC_URL` nor `SYNC_DATABASE_URL` is set: the application
    /// runs local-only.
    pub fn from_env() -> Result<Option<SyncConfig>, SyncConfigError> {
        SyncConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Resolves the settings from any variable source (`name -> value`); empty values
    /// count as unset.
    ///
    /// ```
    /// use sync::{SyncConfig, SyncServer};
    /// let vars = |name: &str| match name {
    ///     "SYNC_URL" => Some("https://sync.example.com".to_owned()),
    ///     "SYNC_TOKEN" => Some("eyJhbGciOi...".to_owned()),
    ///     "SYNC_PUSH_INTERVAL_MS" => Some("1000".to_owned()),
    ///     _ => None,
    /// };
    /// let config = SyncConfig::from_lookup(vars).unwrap().expect("sync is configured");
    /// assert!(matches!(config.server, SyncServer::Http { .. }));
    /// assert_eq!(config.options.push_interval.as_millis(), 1000);
    /// assert!(SyncConfig::from_lookup(|_| None).unwrap().is_none());
    /// ```
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<SyncConfig>, SyncConfigError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let server = match (var("SYNC_URL"), var("SYNC_DATABASE_URL")) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => return Err(SyncConfigError::BothServers),
            (Some(url), None) => {
                let token = var("SYNC_TOKEN").ok_or(SyncConfigError::NoToken)?;
                HttpTransport::new(url.trim(), Arc::new(StaticToken::new(token.trim()))).map_err(
                    |e| SyncConfigError::SyncUrl {
                        reason: e.to_string(),
                    },
                )?;
                SyncServer::Http {
                    url: url.trim().to_owned(),
                    token: token.trim().to_owned(),
                }
            }
            (None, Some(url)) => SyncServer::Database(Config::postgres(url.trim()).map_err(
                |e| SyncConfigError::ServerUrl {
                    reason: match e {
                        ConfigError::InvalidUrl { reason } => reason,
                        ConfigError::WrongScheme { scheme, .. } => format!(
                            "the server is Postgres (postgres:// or postgresql://), not `{scheme}`"
                        ),
                        other => other.to_string(),
                    },
                },
            )?),
        };
        let interval = |name: &'static str, default: Duration| match var(name) {
            None => Ok(default),
            Some(value) => match value.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
                _ => Err(SyncConfigError::Interval { var: name, value }),
            },
        };
        let defaults = SyncOptions::default();
        let options = SyncOptions {
            push_interval: interval("SYNC_PUSH_INTERVAL_MS", defaults.push_interval)?,
            pull_interval: interval("SYNC_PULL_INTERVAL_MS", defaults.pull_interval)?,
            ..defaults
        };
        Ok(Some(SyncConfig { server, options }))
    }
}

/// Starts syncing the local SQLite database `local` with the configured server, in the
/// background. Through the direct transport the server's schema is migrated first (one
/// history for both); a sync server migrates its own database.
pub async fn start(local: Database, config: SyncConfig) -> Result<SyncEngine, SyncError> {
    let transport: Arc<dyn Transport> = match config.server {
        SyncServer::Http { url, token } => Arc::new(
            HttpTransport::new(&url, Arc::new(StaticToken::new(token)))
                .map_err(|e| TransportError::Refused(e.to_string()))?,
        ),
        SyncServer::Database(server) => {
            debug_assert_eq!(server.backend(), Backend::Postgres);
            let server = Database::connect(&server).await?;
            server.migrate().await?;
            Arc::new(PostgresTransport::new(server))
        }
    };
    start_with(local, transport, config.options).await
}

/// Starts syncing `local` through any transport: an [`HttpTransport`] with the
/// application's own token provider, say.
///
/// ```no_run
/// use std::sync::Arc;
/// use dal::prelude::*;
/// use sync::http::{HttpTransport, TokenProvider};
///
/// struct SessionTokens; // the app's auth client, refreshing as it must
/// #[async_trait::async_trait]
/// impl TokenProvider for SessionTokens {
///     async fn token(&self) -> Result<String, String> { Ok("a fresh access token".into()) }
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let local = Database::connect(&Config::from_env()?).await?;
/// let transport = HttpTransport::new("https://sync.example.com", Arc::new(SessionTokens))?;
/// let engine = sync::start_with(local, Arc::new(transport), sync::SyncOptions::default()).await?;
/// # Ok(()) }
/// ```
pub async fn start_with(
    local: Database,
    transport: Arc<dyn Transport>,
    options: SyncOptions,
) -> Result<SyncEngine, SyncError> {
    let client = SyncClient::open(local).await?;
    Ok(SyncEngine::start(client, transport, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn unset_or_empty_means_local_only() {
        assert!(SyncConfig::from_lookup(lookup(&[])).unwrap().is_none());
        assert!(
            SyncConfig::from_lookup(lookup(&[("SYNC_DATABASE_URL", " ")]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn bad_settings_name_the_variable_and_never_show_the_password() {
        let err =
            SyncConfig::from_lookup(lookup(&[("SYNC_DATABASE_URL", "mysql://u:hunter2@h/db")]))
                .unwrap_err();
        assert!(matches!(err, SyncConfigError::ServerUrl { .. }), "{err}");
        assert!(err.to_string().starts_with("SYNC_DATABASE_URL"), "{err}");
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");

        let err = SyncConfig::from_lookup(lookup(&[
            ("SYNC_DATABASE_URL", "postgres://u:hunter2@h/db"),
            ("SYNC_PULL_INTERVAL_MS", "soon"),
        ]))
        .unwrap_err();
        assert_eq!(
            err,
            SyncConfigError::Interval {
                var: "SYNC_PULL_INTERVAL_MS",
                value: "soon".into()
            }
        );
    }

    #[test]
    fn intervals_default_and_override() {
        let config = SyncConfig::from_lookup(lookup(&[
            ("SYNC_DATABASE_URL", "postgresql://u@h/db?sslmode=require"),
            ("SYNC_PULL_INTERVAL_MS", "250"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            config.options.push_interval,
            SyncOptions::default().push_interval
        );
        assert_eq!(config.options.pull_interval, Duration::from_millis(250));
    }

    #[test]
    fn a_sync_server_needs_a_token_and_excludes_the_database_url() {
        assert_eq!(
            SyncConfig::from_lookup(lookup(&[("SYNC_URL", "https://sync.example.com")]))
                .unwrap_err(),
            SyncConfigError::NoToken
        );
        assert_eq!(
            SyncConfig::from_lookup(lookup(&[
                ("SYNC_URL", "https://sync.example.com"),
                ("SYNC_TOKEN", "jwt"),
                ("SYNC_DATABASE_URL", "postgres://u:hunter2@h/db"),
            ]))
            .unwrap_err(),
            SyncConfigError::BothServers
        );
        let err = SyncConfig::from_lookup(lookup(&[
            ("SYNC_URL", "https://u:hunter2@sync.example.com"),
            ("SYNC_TOKEN", "jwt"),
        ]))
        .unwrap_err();
        assert!(err.to_string().starts_with("SYNC_URL"), "{err}");
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
        let config = SyncConfig::from_lookup(lookup(&[
            ("SYNC_URL", "https://sync.example.com"),
            ("SYNC_TOKEN", "very-secret-jwt"),
        ]))
        .unwrap()
        .unwrap();
        assert!(!format!("{config:?}").contains("very-secret-jwt"));
    }
}
