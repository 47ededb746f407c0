//! The server's settings, from the environment like the library's: the database is
//! `DATABASE_URL` (always Postgres: the server is where replicas sync to), and the
//! `SYNC_*` variables say where to listen, which tokens to trust and how much to take.

use std::net::SocketAddr;
use std::path::PathBuf;

use dal::{Backend, Config, ConfigError};

/// A setting that cannot be used. Never shows a secret or the database URL.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServerConfigError {
    /// The database settings (`DATABASE_URL`, `DB_*`) are not usable.
    #[error(transparent)]
    Database(#[from] ConfigError),
    /// `DATABASE_URL` names a SQLite file; the sync server runs on Postgres.
    #[error(
        "DATABASE_URL must name the Postgres server database (postgres://…), not a SQLite file"
    )]
    NotPostgres,
    /// Neither `SYNC_JWT_SECRET` nor `SYNC_JWKS` is set: no token could be checked.
    #[error(
        "no way to check tokens: set SYNC_JWT_SECRET (the project's HS256 JWT secret) and/or SYNC_JWKS (a JWKS file or https:// URL)"
    )]
    NoKeys,
    /// A variable does not parse.
    #[error("{var} is not valid: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Why (never the value when it may be secret).
        reason: String,
    },
}

/// Where the server finds its token keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS document on disk.
    File(PathBuf),
    /// A JWKS URL (Supabase: `https://<project>.supabase.co/auth/v1/.well-known/jwks.json`),
    /// fetched at start and again when a token names a key it does not know.
    Url(String),
}

/// How much one request may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of a request body after decompression.
    pub body_bytes: usize,
    /// Entries of one push.
    pub batch_entries: usize,
    /// Rows one pull page may ask for.
    pub page_rows: usize,
    /// Snapshots (`GET /v1/snapshot`) one instance makes or sends at once: each holds a
    /// Postgres transaction while it is made and a temporary file until it is sent. Over
    /// it a request gets 503 (`Unavailable`) at once; 0 turns the endpoint off.
    pub snapshots: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: 32 * 1024 * 1024,
            batch_entries: 10_000,
            page_rows: 10_000,
            snapshots: 2,
        }
    }
}

/// The server's settings.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `DATABASE_URL` | required | the Postgres database (with `DB_*` as for the library; the transaction pooler works, live updates then need `SYNC_LISTEN_DATABASE_URL`) |
/// | `SYNC_LISTEN` | `127.0.0.1:8787` | address and port to serve on |
/// | `SYNC_JWT_SECRET` | unset | HS256 secret (Supabase's legacy JWT secret) |
/// | `SYNC_JWKS` | unset | JWKS file path or `https://` URL (Supabase's asymmetric keys) |
/// | `SYNC_JWT_AUDIENCE` | `authenticated` | the `aud` a token must carry |
/// | `SYNC_JWT_ISSUER` | unset: not checked | the `iss` a token must carry (Supabase: `https://<project-ref>.supabase.co/auth/v1`) |
/// | `SYNC_MAX_BODY_BYTES` | `33554432` | largest request body, decompressed |
/// | `SYNC_MAX_BATCH` | `10000` | most entries in one push |
/// | `SYNC_MAX_PAGE` | `10000` | most rows one pull page may ask for |
/// | `SYNC_MAX_SNAPSHOTS` | `2` | snapshots one instance makes or sends at once (0: none) |
/// | `SYNC_LISTEN_DATABASE_URL` | `DATABASE_URL` | a session connection for `LISTEN` (live updates) |
/// | `SYNC_TLS_CERT`, `SYNC_TLS_KEY` | unset: plain HTTP | PEM files to serve HTTPS directly |
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The database.
    pub database: Config,
    /// A session-mode connection for `LISTEN`, when `DATABASE_URL` goes through a
    /// transaction pooler (where `LISTEN` does not work).
    pub listen_database: Option<Config>,
    /// Where to serve.
    pub listen: SocketAddr,
    /// The HS256 secret.
    pub jwt_secret: Option<String>,
    /// The asymmetric keys.
    pub jwks: Option<JwksSource>,
    /// The audience tokens must be for.
    pub audience: String,
    /// The issuer tokens must come from (`None`: not checked).
    pub issuer: Option<String>,
    /// Request limits.
    pub limits: Limits,
    /// The certificate chain and private key to serve HTTPS with (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl ServerConfig {
    /// Reads the process environment (and `.env`, as the library does).
    pub fn from_env() -> Result<ServerConfig, ServerConfigError> {
        // An absent `.env` is fine; variables already set win over the file.
        let _ = dotenvy::dotenv();
        ServerConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Resolves the settings from any variable source; empty values count as unset.
    ///
    /// ```
    /// use sync_server::ServerConfig;
    /// let vars = |name: &str| match name {
    ///     "DATABASE_URL" => Some("postgres://sync:secret@db.example.com/app".to_owned()),
    ///     "SYNC_JWT_SECRET" => Some("super-secret-jwt-token-with-at-least-32-characters".to_owned()),
    ///     "SYNC_LISTEN" => Some("0.0.0.0:9000".to_owned()),
    ///     _ => None,
    /// };
    /// let config = ServerConfig::from_lookup(vars).unwrap();
    /// assert_eq!(config.listen.port(), 9000);
    /// assert_eq!(config.audience, "authenticated");
    /// ```
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ServerConfig, ServerConfigError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        // The server's database is always the web one, whatever APP_ENV says.
        let database = Config::from_lookup(|name| match name {
            "APP_ENV" => Some("web".to_owned()),
            other => var(other),
        })?;
        if database.backend() != Backend::Postgres {
            return Err(ServerConfigError::NotPostgres);
        }
        let listen_database = match var("SYNC_LISTEN_DATABASE_URL") {
            Some(url) => Some(Config::postgres(url.trim())?),
            None => None,
        };
        let listen = match var("SYNC_LISTEN") {
            None => SocketAddr::from(([127, 0, 0, 1], 8787)),
            Some(value) => value
                .trim()
                .parse()
                .map_err(|e: std::net::AddrParseError| ServerConfigError::Invalid {
                    var: "SYNC_LISTEN",
                    reason: format!("{e} (expected address:port, e.g. 0.0.0.0:8787)"),
                })?,
        };
        let jwt_secret = var("SYNC_JWT_SECRET").map(|s| s.trim().to_owned());
        let jwks = var("SYNC_JWKS").map(|s| {
            let s = s.trim();
            if s.starts_with("https://") || s.starts_with("http://") {
                JwksSource::Url(s.to_owned())
            } else {
                JwksSource::File(PathBuf::from(s))
            }
        });
        if jwt_secret.is_none() && jwks.is_none() {
            return Err(ServerConfigError::NoKeys);
        }
        let count = |name: &'static str, default: usize| match var(name) {
            None => Ok(default),
            Some(value) => match value.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(ServerConfigError::Invalid {
                    var: name,
                    reason: format!("{value:?} is not a whole number above 0"),
                }),
            },
        };
        let tls = match (var("SYNC_TLS_CERT"), var("SYNC_TLS_KEY")) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                Some((PathBuf::from(cert.trim()), PathBuf::from(key.trim())))
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(ServerConfigError::Invalid {
                    var: "SYNC_TLS_CERT",
                    reason: "SYNC_TLS_CERT and SYNC_TLS_KEY go together".into(),
                });
            }
        };
        let defaults = Limits::default();
        Ok(ServerConfig {
            tls,
            database,
            listen_database,
            listen,
            jwt_secret,
            jwks,
            audience: var("SYNC_JWT_AUDIENCE").unwrap_or_else(|| "authenticated".to_owned()),
            issuer: var("SYNC_JWT_ISSUER").filter(|issuer| !issuer.is_empty()),
            limits: Limits {
                body_bytes: count("SYNC_MAX_BODY_BYTES", defaults.body_bytes)?,
                batch_entries: count("SYNC_MAX_BATCH", defaults.batch_entries)?,
                page_rows: count("SYNC_MAX_PAGE", defaults.page_rows)?,
                snapshots: count("SYNC_MAX_SNAPSHOTS", defaults.snapshots)?,
            },
        })
    }
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
    fn the_server_needs_postgres_and_a_way_to_check_tokens() {
        let err =
            ServerConfig::from_lookup(lookup(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]))
                .unwrap_err();
        assert_eq!(err, ServerConfigError::NoKeys);
        let err = ServerConfig::from_lookup(lookup(&[
            ("DATABASE_URL", "sqlite:./local.db"),
            ("SYNC_JWT_SECRET", "s"),
        ]))
        .unwrap_err();
        assert!(
            matches!(
                err,
                ServerConfigError::Database(_) | ServerConfigError::NotPostgres
            ),
            "{err}"
        );
    }

    #[test]
    fn bad_values_name_the_variable_and_never_the_secret() {
        let err = ServerConfig::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://u:hunter2@h/db"),
            ("SYNC_JWT_SECRET", "topsecret"),
            ("SYNC_MAX_BATCH", "lots"),
        ]))
        .unwrap_err();
        assert!(err.to_string().starts_with("SYNC_MAX_BATCH"), "{err}");
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("topsecret"),
            "{shown}"
        );
    }

    #[test]
    fn the_issuer_is_checked_only_when_set() {
        static UNSET: [(&str, &str); 2] = [
            ("DATABASE_URL", "postgres://u@h/db"),
            ("SYNC_JWT_SECRET", "s"),
        ];
        let unset = ServerConfig::from_lookup(lookup(&UNSET)).unwrap();
        assert_eq!(unset.issuer, None);
        static EMPTY: [(&str, &str); 3] = [
            ("DATABASE_URL", "postgres://u@h/db"),
            ("SYNC_JWT_SECRET", "s"),
            ("SYNC_JWT_ISSUER", ""),
        ];
        assert_eq!(
            ServerConfig::from_lookup(lookup(&EMPTY)).unwrap().issuer,
            None
        );
        static SET: [(&str, &str); 3] = [
            ("DATABASE_URL", "postgres://u@h/db"),
            ("SYNC_JWT_SECRET", "s"),
            ("SYNC_JWT_ISSUER", "https://abcd.supabase.co/auth/v1"),
        ];
        assert_eq!(
            ServerConfig::from_lookup(lookup(&SET))
                .unwrap()
                .issuer
                .as_deref(),
            Some("https://abcd.supabase.co/auth/v1")
        );
    }

    #[test]
    fn jwks_is_a_file_or_a_url() {
        let config = ServerConfig::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://u@h/db"),
            (
                "SYNC_JWKS",
                "https://p.supabase.co/auth/v1/.well-known/jwks.json",
            ),
        ]))
        .unwrap();
        assert!(matches!(config.jwks, Some(JwksSource::Url(_))));
        let config = ServerConfig::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://u@h/db"),
            ("SYNC_JWKS", "/etc/sync/jwks.json"),
        ]))
        .unwrap();
        assert_eq!(
            config.jwks,
            Some(JwksSource::File("/etc/sync/jwks.json".into()))
        );
    }
}
