//! Configuration and connections, resolved once from the environment.
//!
//! `APP_ENV` picks the backend (`local`: SQLite at `./local.db`; `web`: Postgres from
//! `DATABASE_URL`), [`Config::from_env`] turns the environment into a typed [`Config`]
//! (or a [`ConfigError`] naming the variable and what it accepts), and [`connect`] opens a
//! pool with the settings every connection needs: on SQLite `foreign_keys=ON`, WAL and a
//! busy timeout; on Postgres a statement timeout and an application name. Behind a
//! transaction-mode pooler ([`PoolMode::Transaction`], `DB_POOL_MODE`, detected on
//! Supabase's port 6543) the pool caches no statements and sends no session settings;
//! `dal` then sets the statement timeout per transaction.
//!
//! This crate is shared by the library (`dal`) and the migration CLI, so both pick the
//! database by the same rules. Passwords never appear in `Display`, `Debug` or logs.
//!
//! ```
//! use dal_config::{AppEnv, Backend, Config};
//!
//! let env = |name: &str| match name {
//!     "APP_ENV" => Some("web".to_owned()),
//!     "DATABASE_URL" => Some("postgres://app:s3cret@db.example.com/app?sslmode=require".to_owned()),
//!     _ => None,
//! };
//! let config = Config::from_lookup(env).unwrap();
//! assert_eq!(config.app_env, AppEnv::Web);
//! assert_eq!(config.backend(), Backend::Postgres);
//! assert!(!format!("{config:?}").contains("s3cret"));
//! ```

mod app_env;
mod config;
mod connect;
mod error;
mod pool_mode;
mod secret_url;
mod sqlite_url;

pub use app_env::AppEnv;
pub use config::{Backend, Config, DatabaseTarget, defaults};
pub use connect::{ConnectError, connect};
pub use error::ConfigError;
pub use pool_mode::{PoolMode, SUPABASE_TRANSACTION_POOLER_PORT};
pub use secret_url::SecretUrl;
pub use sqlite_url::SqliteMode;
