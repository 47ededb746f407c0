//! [`PoolMode`]: whether a server session lasts as long as a connection, or only as long as
//! a transaction (a transaction-mode pooler between us and Postgres).

use std::fmt;
use std::str::FromStr;

use crate::ConfigError;

/// The port of Supabase's transaction-mode pooler (Supavisor); a URL on it is taken as
/// [`PoolMode::Transaction`] unless `DB_POOL_MODE` says otherwise.
pub const SUPABASE_TRANSACTION_POOLER_PORT: u16 = 6543;

/// What one connection of the pool is on the server side, as `DB_POOL_MODE` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum PoolMode {
    /// Each connection is one server session for its whole life: a direct connection, or
    /// a session-mode pooler (Supabase's port 5432 pooler, PgBouncer
    /// `pool_mode=session`). Everything works; the statement cache and session settings
    /// are used. The default, and the only mode of SQLite.
    #[default]
    Session,
    /// A transaction-mode pooler (PgBouncer `pool_mode=transaction`, Supabase's port 6543):
    /// two transactions of one connection may run on different server sessions, and so
    /// may two statements outside a transaction. The library then runs every statement in
    /// an explicit transaction, prepares nothing that outlives it, sends no session
    /// settings at start-up and sets the statement timeout per transaction.
    Transaction,
}

impl PoolMode {
    /// The string `DB_POOL_MODE` holds for this value.
    pub const fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        }
    }

    /// The mode a Postgres URL implies when `DB_POOL_MODE` is unset or `auto`:
    /// [`PoolMode::Transaction`] on port 6543 (Supabase's transaction pooler), otherwise
    /// [`PoolMode::Session`].
    pub fn detect(url: &str) -> PoolMode {
        match url::Url::parse(url).ok().and_then(|u| u.port()) {
            Some(SUPABASE_TRANSACTION_POOLER_PORT) => PoolMode::Transaction,
            _ => PoolMode::Session,
        }
    }
}

impl fmt::Display for PoolMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `DB_POOL_MODE` holds: a mode, or `auto` (detect it from the URL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PoolModeSetting {
    Auto,
    Fixed(PoolMode),
}

const POOL_MODE_EXPECTED: &str = "`session`, `transaction` or `auto`";

impl FromStr for PoolModeSetting {
    type Err = ConfigError;

    /// Accepts `session`, `transaction` and `auto`, ignoring surrounding white space and
    /// case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(PoolModeSetting::Auto),
            "session" => Ok(PoolModeSetting::Fixed(PoolMode::Session)),
            "transaction" => Ok(PoolModeSetting::Fixed(PoolMode::Transaction)),
            _ => Err(ConfigError::InvalidSetting {
                var: "DB_POOL_MODE",
                value: s.to_owned(),
                expected: POOL_MODE_EXPECTED,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supabase_transaction_pooler_port_is_detected() {
        assert_eq!(
            PoolMode::detect("postgres://u:p@aws-0-eu-central-1.pooler.supabase.com:6543/postgres"),
            PoolMode::Transaction
        );
        for url in [
            "postgres://u:p@aws-0-eu-central-1.pooler.supabase.com:5432/postgres",
            "postgres://u:p@db.example.com/app",
            "not a url",
        ] {
            assert_eq!(PoolMode::detect(url), PoolMode::Session, "{url}");
        }
    }

    #[test]
    fn settings_parse_and_refuse_anything_else() {
        assert_eq!(
            " Transaction ".parse::<PoolModeSetting>().unwrap(),
            PoolModeSetting::Fixed(PoolMode::Transaction)
        );
        assert_eq!(
            "auto".parse::<PoolModeSetting>().unwrap(),
            PoolModeSetting::Auto
        );
        let err = "statement".parse::<PoolModeSetting>().unwrap_err();
        assert!(err.to_string().contains("DB_POOL_MODE"), "{err}");
    }
}
