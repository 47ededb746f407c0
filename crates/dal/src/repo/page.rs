//! Keyset pagination: pages continue after a cursor, not at an offset, so rows inserted
//! or deleted meanwhile never shift a page or repeat a row.
//!
//! Every listing is ordered by `(created_at, id)`, a total order (ids are unique), so a
//! cursor names one position exactly even among rows created in the same microsecond.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use entities::Id;
use sea_orm::{ColumnTrait, Condition};

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

/// An opaque position in one listing, after which the next page starts.
///
/// A cursor belongs to the listing that returned it: it records which listing that was
/// (and so its order), and any other listing refuses it with
/// [`DalError::InvalidValue`] instead of paging from a position that means something
/// else there. The listings differ in direction: `projects().list_for_user` runs newest
/// first, the task and generation listings oldest first, each by `(created_at, id)`.
///
/// It round-trips through its string form, so it can travel through an HTTP API. The
/// form names the listing (`tasks.<micros>_<id>`); the untagged form of earlier releases
/// (`<micros>_<id>`, only ever given out by the project listing) still reads as a
/// project cursor.
///
/// ```
/// use dal::repo::Cursor;
/// let text = "tasks.1767225600000000_0190f7f1a2b37c4d8e9fa0b1c2d3e4f5";
/// assert_eq!(text.parse::<Cursor>().unwrap().to_string(), text);
/// let legacy = "1767225600000000_0190f7f1a2b37c4d8e9fa0b1c2d3e4f5";
/// assert_eq!(legacy.parse::<Cursor>().unwrap().to_string(), format!("projects.{legacy}"));
/// assert!("garbage".parse::<Cursor>().is_err());
/// assert!("shots.1767225600000000_0190f7f1a2b37c4d8e9fa0b1c2d3e4f5".parse::<Cursor>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub(crate) listing: Listing,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) id: Id,
}

/// The keyset listings, each with its own cursors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listing {
    /// `projects().list_for_user`: newest first.
    Projects,
    /// `tasks().list_for_project`: oldest first.
    Tasks,
    /// `tasks().ready`: oldest first.
    ReadyTasks,
    /// `generations().list_for_project`: oldest first.
    Generations,
}

impl Listing {
    const ALL: [Listing; 4] = [
        Listing::Projects,
        Listing::Tasks,
        Listing::ReadyTasks,
        Listing::Generations,
    ];

    fn tag(self) -> &'static str {
        match self {
            Listing::Projects => "projects",
            Listing::Tasks => "tasks",
            Listing::ReadyTasks => "ready",
            Listing::Generations => "generations",
        }
    }

    /// Whether the listing runs oldest first (ascending `(created_at, id)`).
    pub(crate) fn oldest_first(self) -> bool {
        !matches!(self, Listing::Projects)
    }

    fn describe(self) -> String {
        let order = if self.oldest_first() {
            "oldest first"
        } else {
            "newest first"
        };
        format!("the {} listing ({order})", self.tag())
    }
}

impl Cursor {
    pub(crate) fn new(listing: Listing, created_at: DateTime<Utc>, id: Id) -> Cursor {
        Cursor {
            listing,
            created_at,
            id,
        }
    }
}

impl PageRequest {
    /// The cursor to continue `listing` after, refusing one that another listing gave out.
    pub(crate) fn after_in(&self, listing: Listing) -> Result<Option<Cursor>, DalError> {
        match self.after {
            Some(cursor) if cursor.listing != listing => Err(DalError::invalid(format!(
                "a cursor of {} cannot continue {}",
                cursor.listing.describe(),
                listing.describe()
            ))),
            after => Ok(after),
        }
    }
}

/// Rows strictly after `cursor` in its listing's order over the columns `created_at`
/// and `id`.
pub(crate) fn after_cursor(
    cursor: Cursor,
    created_at: impl ColumnTrait,
    id: impl ColumnTrait,
) -> Condition {
    let (beyond_time, beyond_id) = if cursor.listing.oldest_first() {
        (created_at.gt(cursor.created_at), id.gt(cursor.id))
    } else {
        (created_at.lt(cursor.created_at), id.lt(cursor.id))
    };
    Condition::any().add(beyond_time).add(
        Condition::all()
            .add(created_at.eq(cursor.created_at))
            .add(beyond_id),
    )
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}_{}",
            self.listing.tag(),
            self.created_at.timestamp_micros(),
            self.id.simple()
        )
    }
}

impl FromStr for Cursor {
    type Err = DalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DalError::invalid(format!("{s:?} is not a page cursor"));
        let (listing, position) = match s.split_once('.') {
            Some((tag, position)) => {
                let listing = Listing::ALL
                    .into_iter()
                    .find(|l| l.tag() == tag)
                    .ok_or_else(bad)?;
                (listing, position)
            }
            None => (Listing::Projects, s),
        };
        let (micros, id) = position.split_once('_').ok_or_else(bad)?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
        let id = id.parse::<Id>().map_err(|_| bad())?;
        Ok(Cursor::new(listing, created_at, id))
    }
}

/// Splits `rows` (fetched with `limit + 1`) into a page of `listing` and the next cursor.
pub(crate) fn paginate<T>(
    mut rows: Vec<T>,
    limit: u32,
    listing: Listing,
    key: impl Fn(&T) -> (DateTime<Utc>, Id),
) -> Page<T> {
    let limit = limit as usize;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|row| {
            let (created_at, id) = key(row);
            Cursor::new(listing, created_at, id)
        })
    } else {
        None
    };
    Page { items: rows, next }
}
