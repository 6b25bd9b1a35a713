//! [`FunctionUsage`]: what each Wasm function did — calls, rows, time,
//! errors, bucket reads and writes — summed over every process that ran it
//! and kept across restarts, as `quiver.function_stats` shows it.
//!
//! Processes count in memory; the frontend adds what they counted here
//! (see `quiver_udf_registry::usage`), so the totals only ever grow until
//! the function is dropped.

use std::collections::BTreeMap;
use std::ops::AddAssign;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::store::{Change, FUNCTION_USAGE_CF, MetaStore, json};

/// What one function did, over some span of time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Calls into the guest (a scalar function is called once per batch of
    /// rows, an aggregate once per batch and state operation, a table
    /// function once per batch of rows it returns).
    pub calls: u64,
    /// Rows passed in (scalar functions, aggregates) or returned (table
    /// functions).
    pub rows: u64,
    /// Calls that failed: a trap, a row error, a limit.
    pub errors: u64,
    /// Wall time inside the calls, in nanoseconds.
    pub time_ns: u64,
    /// `wasi:keyvalue` reads (each key of a `get-many` counts).
    pub bucket_reads: u64,
    /// `wasi:keyvalue` writes (sets, deletes, increments).
    pub bucket_writes: u64,
}

impl Usage {
    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }
}

impl AddAssign<&Usage> for Usage {
    fn add_assign(&mut self, other: &Usage) {
        self.calls += other.calls;
        self.rows += other.rows;
        self.errors += other.errors;
        self.time_ns += other.time_ns;
        self.bucket_reads += other.bucket_reads;
        self.bucket_writes += other.bucket_writes;
    }
}

/// The usage totals of a data directory's functions.
#[derive(Debug)]
pub struct FunctionUsage {
    store: Arc<MetaStore>,
    /// Held while totals are read, added to and written back.
    lock: Mutex<()>,
}

impl FunctionUsage {
    pub fn new(store: Arc<MetaStore>) -> Self {
        Self {
            store,
            lock: Mutex::new(()),
        }
    }

    /// Adds `counted` (by function signature) to the totals, in one batch.
    pub fn add(&self, counted: &BTreeMap<String, Usage>) -> Result<()> {
        if counted.values().all(Usage::is_empty) {
            return Ok(());
        }
        let _lock = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut values = Vec::with_capacity(counted.len());
        for (signature, usage) in counted {
            let mut total: Usage = self
                .store
                .get_json(FUNCTION_USAGE_CF, signature)?
                .unwrap_or_default();
            total += usage;
            values.push((signature, json(signature, &total)?));
        }
        let changes: Vec<Change<'_>> = values
            .iter()
            .map(|(key, value)| Change::Put {
                cf: FUNCTION_USAGE_CF,
                key,
                value,
            })
            .collect();
        self.store.write(&changes)
    }

    /// Every function's totals, by signature.
    pub fn totals(&self) -> Result<BTreeMap<String, Usage>> {
        Ok(self
            .store
            .scan_json(FUNCTION_USAGE_CF)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_and_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let counted = |calls, rows| {
            BTreeMap::from([(
                "f(integer)".to_string(),
                Usage {
                    calls,
                    rows,
                    ..Usage::default()
                },
            )])
        };
        {
            let usage = FunctionUsage::new(Arc::new(MetaStore::open(dir.path()).expect("open")));
            usage.add(&counted(1, 10)).expect("add");
            usage.add(&counted(2, 5)).expect("add");
        }
        let usage = FunctionUsage::new(Arc::new(MetaStore::open(dir.path()).expect("open")));
        let totals = usage.totals().expect("totals");
        assert_eq!(totals["f(integer)"].calls, 3);
        assert_eq!(totals["f(integer)"].rows, 15);
    }
}
