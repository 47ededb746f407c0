//! Fills a database with the fixed dummy user that local development and offline use
//! run as, idempotently: running it again, or from two processes at once, changes nothing.
//!
//! ```no_run
//! # async fn run(db: &dal::Database) -> dal::Result<()> {
//! let report = seed::seed(db).await?;
//! println!("{report}");
//! assert_eq!(seed::DUMMY_USER_ID.to_string(), "00000000-0000-4000-8000-000000000001");
//! # Ok(()) }
//! ```

use std::fmt;

use dal::{Database, Result};
use entities::Id;
use sea_orm::{EntityTrait, Set, TryInsertResult};
use uuid::Uuid;

/// The dummy user's id: the same in every database this seeder fills, so links to it
/// stay valid across machines and resets.
pub const DUMMY_USER_ID: Id = Id(Uuid::from_u128(0x00000000_0000_4000_8000_000000000001));

/// The dummy user's email.
pub const DUMMY_USER_EMAIL: &str = "dummy@local.test";

/// What a seeding run did, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// `(table, inserted, already present)`, in seeding order.
    pub tables: Vec<(&'static str, u64, u64)>,
}

impl Report {
    /// Rows inserted in all tables.
    pub fn inserted(&self) -> u64 {
        self.tables.iter().map(|(_, inserted, _)| inserted).sum()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<18} {:>9} {:>16}",
            "table", "inserted", "already present"
        )?;
        for (table, inserted, present) in &self.tables {
            writeln!(f, "{table:<18} {inserted:>9} {present:>16}")?;
        }
        Ok(())
    }
}

/// Applies pending migrations, then inserts the dummy user unless it is there already.
/// Rows that exist are never overwritten.
pub async fn seed(db: &Database) -> Result<Report> {
    db.migrate().await?;
    let user = entities::user::ActiveModel {
        id: Set(DUMMY_USER_ID),
        email: Set(Some(DUMMY_USER_EMAIL.to_owned())),
        display_name: Set(Some("Dummy User".to_owned())),
        created_at: Set(chrono::Utc::now()),
    };
    let result = entities::user::Entity::insert(user)
        .on_conflict_do_nothing()
        .exec(db)
        .await?;
    let inserted = u64::from(matches!(result, TryInsertResult::Inserted(_)));
    Ok(Report {
        tables: vec![("users", inserted, 1 - inserted)],
    })
}
