//! Turning sync on by configuration: an application that already runs on the local
//! database starts syncing by setting `SYNC_DATABASE_URL`, without changing its calls.

use std::time::Duration;

use dal::{Backend, Config, ConfigError, Database};

use crate::client::{SyncClient, SyncError};
use crate::engine::{SyncEngine, SyncOptions};
use crate::server::PostgresTransport;

/// A sync setting that cannot be used. Never shows the URL: it may hold a password.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SyncConfigError {
    /// `SYNC_DATABASE_URL` is not a usable Postgres URL.
    #[error("SYNC_DATABASE_URL is not usable: {reason}")]
    ServerUrl {
        /// Why, without the URL itself.
        reason: String,
    },
    /// An interval does not parse.
    #[error("{var}={value:?} is not valid; expected a whole number of milliseconds above 0")]
    Interval {
        /// The variable.
        var: &'static str,
        /// What it held.
        value: String,
    },
}

/// Where and how often to sync.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `SYNC_DATABASE_URL` | unset: no sync | the Postgres server (`postgres://…`, TLS as `sslmode` says) |
/// | `SYNC_PUSH_INTERVAL_MS` | `5000` | time between pushes when all is well |
/// | `SYNC_PULL_INTERVAL_MS` | `15000` | time between pulls when all is well |
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// The server's connection settings.
    pub server: Config,
    /// Intervals, batch and page sizes.
    pub options: SyncOptions,
}

impl SyncConfig {
    /// Reads the process environment (after `Config::from_env`, which loads `.env`).
    /// `Ok(None)` when `SYNC_DATABASE_URL` is unset: the application runs local-only.
    pub fn from_env() -> Result<Option<SyncConfig>, SyncConfigError> {
        SyncConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Resolves the settings from any variable source (`name -> value`); empty values
    /// count as unset.
    ///
    /// ```
    /// use sync::SyncConfig;
    /// let vars = |name: &str| match name {
    ///     "SYNC_DATABASE_URL" => Some("postgres://app:secret@db.example.com/app".to_owned()),
    ///     "SYNC_PUSH_INTERVAL_MS" => Some("1000".to_owned()),
    ///     _ => None,
    /// };
    /// let config = SyncConfig::from_lookup(vars).unwrap().expect("sync is configured");
    /// assert_eq!(config.options.push_interval.as_millis(), 1000);
    /// assert!(SyncConfig::from_lookup(|_| None).unwrap().is_none());
    /// ```
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<SyncConfig>, SyncConfigError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let Some(url) = var("SYNC_DATABASE_URL") else {
            return Ok(None);
        };
        let server = Config::postgres(url.trim()).map_err(|e| SyncConfigError::ServerUrl {
            reason: match e {
                ConfigError::InvalidUrl { reason } => reason,
                ConfigError::WrongScheme { scheme, .. } => {
                    format!("the server is Postgres (postgres:// or postgresql://), not `{scheme}`")
                }
                other => other.to_string(),
            },
        })?;
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
/// background. The server's schema is migrated first (one history for both).
pub async fn start(local: Database, config: SyncConfig) -> Result<SyncEngine, SyncError> {
    debug_assert_eq!(config.server.backend(), Backend::Postgres);
    let client = SyncClient::open(local).await?;
    let server = Database::connect(&config.server).await?;
    server.migrate().await?;
    let transport = std::sync::Arc::new(PostgresTransport::new(server));
    Ok(SyncEngine::start(client, transport, config.options))
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
}
