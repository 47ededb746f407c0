//! [`Report`]: what a seeding run did, per table.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::AddAssign;

/// Row counts for one table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rows written that were not there before.
    pub inserted: u64,
    /// Rows that were there already (left alone by the sample seed, overwritten by fixtures).
    pub present: u64,
    /// Rows removed (fixture records whose file or entry went away).
    pub deleted: u64,
}

impl AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.inserted += other.inserted;
        self.present += other.present;
        self.deleted += other.deleted;
    }
}

/// Counts per table, in the order tables are written (parents first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    tables: BTreeMap<usize, (&'static str, Counts)>,
}

impl Report {
    /// Adds `counts` to `table`'s row.
    pub fn add(&mut self, table: &'static str, counts: Counts) {
        // Parents first, as the registry orders the tables.
        let order = entities::schema::order(table);
        self.tables
            .entry(order)
            .or_insert((table, Counts::default()))
            .1 += counts;
    }

    /// The counts of `table` (zero if untouched).
    pub fn table(&self, table: &str) -> Counts {
        self.tables
            .values()
            .find(|(name, _)| *name == table)
            .map(|(_, counts)| *counts)
            .unwrap_or_default()
    }

    /// Rows inserted in all tables.
    pub fn inserted(&self) -> u64 {
        self.tables.values().map(|(_, c)| c.inserted).sum()
    }

    /// Merges another report into this one.
    pub fn merge(&mut self, other: Report) {
        for (_, (table, counts)) in other.tables {
            self.add(table, counts);
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let deletions = self.tables.values().any(|(_, c)| c.deleted > 0);
        write!(
            f,
            "{:<18} {:>9} {:>16}",
            "table", "inserted", "already present"
        )?;
        if deletions {
            write!(f, " {:>8}", "deleted")?;
        }
        writeln!(f)?;
        for (table, c) in self.tables.values() {
            write!(f, "{table:<18} {:>9} {:>16}", c.inserted, c.present)?;
            if deletions {
                write!(f, " {:>8}", c.deleted)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
