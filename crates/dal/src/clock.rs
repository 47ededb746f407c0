//! The library's clock: UTC, truncated to the microseconds both backends keep.

use chrono::{DateTime, SubsecRound, Utc};

/// Now, in UTC, truncated to microseconds, so a timestamp written and read back is equal
/// on SQLite and on Postgres.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
