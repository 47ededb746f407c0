//! Fills a database with the fixed dummy user and sample data, idempotently: running it
//! again, or from two processes at once, leaves exactly the same rows and inserts nothing.
//!
//! * [`seed`]: migrate, then the built-in sample: the dummy user ([`DUMMY_USER_ID`]), three
//!   projects with shots, timelines, generations and a task DAG with every status. Every id
//!   (UUIDv5 from a stable name) and timestamp is fixed; rows that exist are never
//!   overwritten, rows it did not create are never touched.
//! * [`fixtures`]: JSON fixture files in a directory, upserted the same idempotent way;
//!   [`watch()`] keeps following the directory.
//! * [`scale`]: N generated projects with a realistic fan-out, through the bulk path.
//!
//! ```no_run
//! # async fn run(db: &dal::Database) -> dal::Result<()> {
//! let report = seed::seed(db).await?;
//! print!("{report}");
//! assert_eq!(seed::DUMMY_USER_ID.to_string(), "00000000-0000-4000-8000-000000000001");
//! # Ok(()) }
//! ```

mod dataset;
pub mod fixtures;
mod ids;
mod report;
mod sample;
pub mod scale;
pub mod watch;

use dal::{Database, Result};
use entities::Id;
use uuid::Uuid;

pub use dataset::Dataset;
pub use ids::seed_id;
pub use report::{Counts, Report};
pub use sample::sample;
pub use watch::{WatchEvent, watch};

/// The dummy user's id: the same in every database this seeder fills, so links to it
/// stay valid across machines and resets. Local development runs as this user.
pub const DUMMY_USER_ID: Id = Id(Uuid::from_u128(0x00000000_0000_4000_8000_000000000001));

/// The dummy user's email.
pub const DUMMY_USER_EMAIL: &str = "dummy@local.test";

/// Applies pending migrations, then writes the sample rows that are missing, in one
/// transaction. Returns what was inserted and what was there already, per table.
///
/// Two seeders at once each insert what is missing and skip what the other wrote. On
/// Postgres, `ON CONFLICT (id) DO NOTHING` covers only the key, so the one that loses the
/// race on the dummy user's unique email gets a conflict once the other commits; the write
/// is then tried again, and finds the rows present.
pub async fn seed(db: &Database) -> Result<Report> {
    db.migrate().await?;
    const ATTEMPTS: usize = 3;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut report = Report::default();
        let uow = db.begin().await?;
        let written = sample()
            .write(&uow, dataset::Existing::Keep, &mut report)
            .await;
        match written {
            Ok(()) => {
                uow.commit().await?;
                return Ok(report);
            }
            Err(dal::DalError::Conflict { .. }) if attempt < ATTEMPTS => {
                let _ = uow.rollback().await;
            }
            Err(e) => return Err(e),
        }
    }
}
