//! Statements a connection parsed before, kept by their text.
//!
//! Drivers send the same text again and again: pgbench and libpq's
//! `PQexecParams` parse every statement anew (the unnamed statement),
//! psycopg does until a text has run five times, and every connection of a
//! pool prepares the same few texts. Parsing and planning such a text again
//! gives the same plan as long as nothing it was planned from has changed:
//! the tables (the catalog's [`generation`]), the Wasm functions (the
//! registry's), this session's settings and temporary tables (the
//! session's generation, which every statement other than a query, an
//! `INSERT` or transaction control advances) and its transaction block
//! (inside one, tables are the block's views of them). A [`Stamp`] is those
//! four, read before planning; a kept plan is handed out only while the
//! stamp is still the same, and a named statement whose stamp is no longer
//! the session's is planned again before it runs.
//!
//! Only plans that read nothing but listing tables (Quiver's managed tables,
//! external tables, the staged views of a transaction block) are kept: a
//! listing table finds its files when it is scanned, so a kept plan reads
//! the rows there are when it runs. Other providers (the `pg_catalog` and
//! `information_schema` tables, table functions) may hold what they read
//! when the plan was made.
//!
//! [`generation`]: quiver_catalog::Catalog::generation

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{LogicalPlan, TableSource};

/// The most texts a connection keeps; the one used longest ago goes first.
const CAPACITY: usize = 32;

/// Longer texts are not kept (a key holds the whole text).
const LONGEST_TEXT: usize = 16 * 1024;

/// What a plan was made from, read before it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) catalog: u64,
    pub(crate) functions: u64,
    pub(crate) session: u64,
    /// The open transaction block's number; 0 outside blocks.
    pub(crate) block: u64,
}

/// A statement's text and the parameter types the client declared (OIDs).
type Key = (String, Vec<Option<u32>>);

struct Kept<V> {
    stamp: Stamp,
    /// When it was last handed out or kept, on `Kept::clock`.
    used: u64,
    value: V,
}

/// One connection's kept statements.
pub(crate) struct PlanCache<V> {
    kept: Mutex<(HashMap<Key, Kept<V>>, u64)>,
}

impl<V> Default for PlanCache<V> {
    fn default() -> Self {
        Self {
            kept: Mutex::new((HashMap::new(), 0)),
        }
    }
}

impl<V: Clone> PlanCache<V> {
    /// What was kept for `sql` with `types`, if made under `stamp`.
    pub(crate) fn get(&self, sql: &str, types: &[Option<u32>], stamp: Stamp) -> Option<V> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let (entries, clock) = &mut *kept;
        let key = (sql.to_string(), types.to_vec());
        let entry = entries.get_mut(&key)?;
        if entry.stamp != stamp {
            entries.remove(&key);
            return None;
        }
        *clock += 1;
        entry.used = *clock;
        Some(entry.value.clone())
    }

    /// Keeps `value`, made from `sql` with `types` under `stamp`.
    pub(crate) fn put(&self, sql: &str, types: &[Option<u32>], stamp: Stamp, value: V) {
        if sql.len() > LONGEST_TEXT {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let (entries, clock) = &mut *kept;
        let key = (sql.to_string(), types.to_vec());
        if entries.len() >= CAPACITY && !entries.contains_key(&key) {
            // Stale entries first, then the one used longest ago.
            let evicted = entries
                .iter()
                .min_by_key(|(_, e)| (e.stamp == stamp, e.used))
                .map(|(k, _)| k.clone());
            if let Some(evicted) = evicted {
                entries.remove(&evicted);
            }
        }
        *clock += 1;
        let used = *clock;
        entries.insert(key, Kept { stamp, used, value });
    }
}

/// Whether `plan` reads (and writes) only listing tables, whose files are
/// found when the plan runs: then running it later reads what is there
/// then.
pub(crate) fn reads_when_run(plan: &LogicalPlan) -> bool {
    let listing = |source: &Arc<dyn TableSource>| {
        source_as_provider(source).is_ok_and(|p| p.downcast_ref::<ListingTable>().is_some())
    };
    let mut only_listings = true;
    let _ = plan.apply_with_subqueries(|node| {
        only_listings &= match node {
            LogicalPlan::TableScan(scan) => listing(&scan.source),
            LogicalPlan::Dml(dml) => listing(&dml.target),
            _ => true,
        };
        Ok(if only_listings {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    only_listings
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        catalog: 1,
        functions: 1,
        session: 1,
        block: 0,
    };

    #[test]
    fn kept_only_under_the_same_stamp() {
        let cache = PlanCache::default();
        cache.put("SELECT $1", &[None], STAMP, 1);
        assert_eq!(cache.get("SELECT $1", &[None], STAMP), Some(1));
        assert_eq!(cache.get("SELECT $1", &[Some(20)], STAMP), None);
        let later = Stamp {
            session: 2,
            ..STAMP
        };
        assert_eq!(cache.get("SELECT $1", &[None], later), None);
        // Gone, not just hidden.
        assert_eq!(cache.get("SELECT $1", &[None], STAMP), None);
    }

    #[test]
    fn the_text_used_longest_ago_goes_first() {
        let cache = PlanCache::default();
        for n in 0..CAPACITY {
            cache.put(&format!("SELECT {n}"), &[], STAMP, n);
        }
        assert_eq!(cache.get("SELECT 0", &[], STAMP), Some(0));
        cache.put("SELECT new", &[], STAMP, CAPACITY);
        assert_eq!(cache.get("SELECT 0", &[], STAMP), Some(0));
        assert_eq!(cache.get("SELECT 1", &[], STAMP), None);
        assert_eq!(cache.get("SELECT new", &[], STAMP), Some(CAPACITY));
        let long = "x".repeat(LONGEST_TEXT + 1);
        cache.put(&long, &[], STAMP, 0);
        assert_eq!(cache.get(&long, &[], STAMP), None);
    }
}
