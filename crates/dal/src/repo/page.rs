//! Keyset pagination: pages continue after a cursor, not at an offset, so rows inserted
//! or deleted meanwhile never shift a page or repeat a row.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use entities::Id;

use crate::DalError;

/// The largest page a repository returns; larger requests are capped to it.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Which page to read: the first, or the one after a cursor.
///
/// ```
/// use dal::repo::PageRequest;
/// assert_eq!(PageRequest::first(500).limit(), dal::repo::MAX_PAGE_SIZE);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Continue after this row (exclusive); `None` starts at the beginning.
    pub after: Option<Cursor>,
    limit: u32,
}

impl PageRequest {
    /// The first page of at most `limit` rows (capped to [`MAX_PAGE_SIZE`], at least 1).
    pub fn first(limit: u32) -> PageRequest {
        PageRequest {
            after: None,
            limit: limit.clamp(1, MAX_PAGE_SIZE),
        }
    }

    /// The page after `cursor`, of at most `limit` rows.
    pub fn after(cursor: Cursor, limit: u32) -> PageRequest {
        PageRequest {
            after: Some(cursor),
            ..PageRequest::first(limit)
        }
    }

    /// The page size, after capping.
    pub fn limit(&self) -> u32 {
        self.limit
    }
}

/// One page of rows, and the cursor of the next page if there are more rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The rows, in the listing's order.
    pub items: Vec<T>,
    /// Pass to [`PageRequest::after`] for the next page; `None` on the last page.
    pub next: Option<Cursor>,
}

/// An opaque position in a listing ordered by `(created_at, id)`: it round-trips through
/// its string form, so it can travel through an HTTP API.
///
/// ```
/// use dal::repo::Cursor;
/// let text = "1767225600000000_0190f7f1a2b37c4d8e9fa0b1c2d3e4f5";
/// assert_eq!(text.parse::<Cursor>().unwrap().to_string(), text);
/// assert!("garbage".parse::<Cursor>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) id: Id,
}

impl Cursor {
    pub(crate) fn new(created_at: DateTime<Utc>, id: Id) -> Cursor {
        Cursor { created_at, id }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}_{}",
            self.created_at.timestamp_micros(),
            self.id.simple()
        )
    }
}

impl FromStr for Cursor {
    type Err = DalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DalError::invalid(format!("{s:?} is not a page cursor"));
        let (micros, id) = s.split_once('_').ok_or_else(bad)?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
        let id = id.parse::<Id>().map_err(|_| bad())?;
        Ok(Cursor { created_at, id })
    }
}

/// Splits `rows` (fetched with `limit + 1`) into a page and the next cursor.
pub(crate) fn paginate<T>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> Cursor) -> Page<T> {
    let limit = limit as usize;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(key)
    } else {
        None
    };
    Page { items: rows, next }
}
