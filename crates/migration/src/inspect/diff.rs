//! [`Schema::differences`]: how a live schema departs from the history's, in words.

use std::collections::BTreeMap;

use super::{Schema, Table, normalise};

impl Schema {
    /// How `self` (a live database) differs from `expected` (what the migration history
    /// produces), one sentence per difference; empty when they match. Definitions
    /// (functions, triggers, policies) are compared with white space collapsed.
    pub fn differences(&self, expected: &Schema) -> Vec<String> {
        let mut out = Vec::new();
        for name in expected
            .tables
            .keys()
            .filter(|t| !self.tables.contains_key(*t))
        {
            out.push(format!("table {name} is missing"));
        }
        for name in self
            .tables
            .keys()
            .filter(|t| !expected.tables.contains_key(*t))
        {
            out.push(format!("table {name} is not in the migrations"));
        }
        for (name, live) in &self.tables {
            if let Some(want) = expected.tables.get(name) {
                table_differences(name, live, want, &mut out);
            }
        }
        let definitions = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            m.iter().map(|(k, v)| (k.clone(), normalise(v))).collect()
        };
        compare_named(
            None,
            "function",
            &definitions(&self.functions),
            &definitions(&expected.functions),
            &mut out,
        );
        let sequences = |s: &Schema| -> BTreeMap<String, String> {
            s.sequences
                .iter()
                .map(|(name, seq)| {
                    let owner = seq.owned_by.as_deref().unwrap_or("no column");
                    (
                        name.clone(),
                        format!("{}, owned by {owner}", seq.definition),
                    )
                })
                .collect()
        };
        compare_named(
            None,
            "sequence",
            &sequences(self),
            &sequences(expected),
            &mut out,
        );
        out
    }
}

fn table_differences(table: &str, live: &Table, want: &Table, out: &mut Vec<String>) {
    for w in &want.columns {
        match live.columns.iter().find(|c| c.name == w.name) {
            None => out.push(format!("{table}.{} is missing", w.name)),
            Some(l) => {
                if l.data_type != w.data_type {
                    out.push(format!(
                        "{table}.{} has type {} but the migrations say {}",
                        w.name, l.data_type, w.data_type
                    ));
                }
                if l.nullable != w.nullable {
                    let say = |n: bool| if n { "nullable" } else { "NOT NULL" };
                    out.push(format!(
                        "{table}.{} is {} but the migrations say {}",
                        w.name,
                        say(l.nullable),
                        say(w.nullable)
                    ));
                }
                if l.default != w.default {
                    let say = |d: &Option<String>| d.clone().unwrap_or_else(|| "no default".into());
                    out.push(format!(
                        "{table}.{} has default {} but the migrations say {}",
                        w.name,
                        say(&l.default),
                        say(&w.default)
                    ));
                }
            }
        }
    }
    for l in live
        .columns
        .iter()
        .filter(|l| !want.columns.iter().any(|w| w.name == l.name))
    {
        out.push(format!(
            "{table}.{} ({}) is not in the migrations",
            l.name, l.data_type
        ));
    }
    let t = Some(table);
    compare_named(t, "constraint", &live.constraints, &want.constraints, out);
    compare_named(t, "index", &live.indexes, &want.indexes, out);
    let triggers = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter().map(|(k, v)| (k.clone(), normalise(v))).collect()
    };
    compare_named(
        t,
        "trigger",
        &triggers(&live.triggers),
        &triggers(&want.triggers),
        out,
    );
    let say = |on: bool| if on { "enabled" } else { "disabled" };
    if live.row_security != want.row_security {
        out.push(format!(
            "{table}: row-level security is {} but the migrations say {}",
            say(live.row_security),
            say(want.row_security)
        ));
    }
    if live.force_row_security != want.force_row_security {
        out.push(format!(
            "{table}: forced row-level security (for the owner too) is {} but the migrations say {}",
            say(live.force_row_security),
            say(want.force_row_security)
        ));
    }
    compare_named(t, "policy", &live.policies, &want.policies, out);
    compare_named(t, "rule", &live.rules, &want.rules, out);
}

/// Compares two sets of named definitions; `table` prefixes the sentences of a table's.
fn compare_named(
    table: Option<&str>,
    what: &str,
    live: &BTreeMap<String, String>,
    want: &BTreeMap<String, String>,
    out: &mut Vec<String>,
) {
    let on = table.map(|t| format!("{t}: ")).unwrap_or_default();
    for (key, def) in want {
        match live.get(key) {
            None => out.push(format!("{on}{what} {key} is missing (`{def}`)")),
            Some(l) if l != def => out.push(format!(
                "{on}{what} {key} is `{l}` but the migrations say `{def}`"
            )),
            Some(_) => {}
        }
    }
    for (key, def) in live.iter().filter(|(k, _)| !want.contains_key(*k)) {
        out.push(format!(
            "{on}{what} {key} is not in the migrations (`{def}`)"
        ));
    }
}
