//! [`AppEnv`]: which world the process runs in.

use std::fmt;
use std::str::FromStr;

use crate::ConfigError;

/// The value of `APP_ENV`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum AppEnv {
    /// Offline / development: an embedded SQLite file (`./local.db` unless `DATABASE_URL`
    /// names another). The default when `APP_ENV` is unset or empty.
    #[default]
    Local,
    /// Hosted: Postgres (e.g. Supabase) at `DATABASE_URL`, which is then required.
    Web,
}

impl AppEnv {
    /// The string `APP_ENV` holds for this value.
    pub const fn as_str(self) -> &'static str {
        match self {
            AppEnv::Local => "local",
            AppEnv::Web => "web",
        }
    }
}

impl fmt::Display for AppEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AppEnv {
    type Err = ConfigError;

    /// Accepts `local` and `web`, ignoring surrounding white space and case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(AppEnv::Local),
            "web" => Ok(AppEnv::Web),
            _ => Err(ConfigError::UnknownAppEnv {
                value: s.to_owned(),
            }),
        }
    }
}
