//! [`TaskStatus`]: the six states of a task, stored as text with a CHECK on both backends.

use std::fmt;
use std::str::FromStr;

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Where a task is in its life. The database strings are exactly the variant's
/// [`as_str`](TaskStatus::as_str); both databases refuse any other string with a CHECK.
///
/// ```
/// use entities::TaskStatus;
/// assert_eq!("In Progress".parse::<TaskStatus>().unwrap(), TaskStatus::InProgress);
/// assert!("Done".parse::<TaskStatus>().is_err());
/// ```
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum TaskStatus {
    /// Created, not yet queued.
    #[sea_orm(string_value = "Pending")]
    #[serde(rename = "Pending")]
    Pending,
    /// A worker is running it.
    #[sea_orm(string_value = "In Progress")]
    #[serde(rename = "In Progress")]
    InProgress,
    /// Finished successfully.
    #[sea_orm(string_value = "Complete")]
    #[serde(rename = "Complete")]
    Complete,
    /// Finished with an error.
    #[sea_orm(string_value = "Failed")]
    #[serde(rename = "Failed")]
    Failed,
    /// Waiting for a worker (and for its dependencies to complete).
    #[sea_orm(string_value = "Queued")]
    #[serde(rename = "Queued")]
    Queued,
    /// Stopped before it finished.
    #[sea_orm(string_value = "Cancelled")]
    #[serde(rename = "Cancelled")]
    Cancelled,
}

impl TaskStatus {
    /// Every status, in the order the CHECK constraint lists them.
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Pending,
        TaskStatus::InProgress,
        TaskStatus::Complete,
        TaskStatus::Failed,
        TaskStatus::Queued,
        TaskStatus::Cancelled,
    ];

    /// The string stored in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "Pending",
            TaskStatus::InProgress => "In Progress",
            TaskStatus::Complete => "Complete",
            TaskStatus::Failed => "Failed",
            TaskStatus::Queued => "Queued",
            TaskStatus::Cancelled => "Cancelled",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the six task statuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownTaskStatus(pub String);

impl fmt::Display for UnknownTaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a task status; expected one of ", self.0)?;
        for (i, status) in TaskStatus::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{:?}", status.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownTaskStatus {}

impl FromStr for TaskStatus {
    type Err = UnknownTaskStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownTaskStatus(s.to_owned()))
    }
}
