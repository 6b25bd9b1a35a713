//! Usage statistics of Wasm functions, counted where they run and gathered
//! by the frontend into the catalog ([`quiver_catalog::FunctionUsage`]).
//!
//! Every process counts its calls in memory ([`UsageCounters`]), per
//! function signature. The frontend's process takes its own counts
//! directly. An executor of a cluster runs in a process of its own: about
//! once a second it writes what it counted since the last time to a file
//! of its own in the module directory its plans named
//! (`usage-<process>-<start>-<n>.json`, appearing
//! whole by rename), and the frontend adds such files to the catalog's
//! totals and removes them, every few seconds and whenever the totals are
//! read. So a query's calls are in the totals about a second after it
//! answered, wherever they ran.
//!
//! Counts are of work done: a task the scheduler runs again after losing an
//! executor counts its calls again (they were made twice), and calls of an
//! executor that dies mid-task, never written, are not counted.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quiver_catalog::Usage;

use crate::module_dir::ModuleDir;
use crate::{Error, Result};

/// Prefix and suffix of the files executors write.
const FILE_PREFIX: &str = "usage-";
const FILE_SUFFIX: &str = ".json";

/// Whether `name` is a usage file (which a module directory keeps).
pub(crate) fn is_usage_file(name: &str) -> bool {
    name.starts_with(FILE_PREFIX) && name.ends_with(FILE_SUFFIX)
}

/// The counters of one function in one process.
#[derive(Debug, Default)]
pub struct Counters {
    calls: AtomicU64,
    rows: AtomicU64,
    errors: AtomicU64,
    time_ns: AtomicU64,
    bucket_reads: AtomicU64,
    bucket_writes: AtomicU64,
}

impl Counters {
    /// Counts one call over `rows` rows that took `elapsed`.
    pub(crate) fn call(&self, rows: usize, elapsed: Duration, failed: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.time_ns.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts `n` keys read from buckets.
    pub(crate) fn bucket_reads(&self, n: usize) {
        self.bucket_reads.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts `n` keys written to buckets.
    pub(crate) fn bucket_writes(&self, n: usize) {
        self.bucket_writes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// What was counted since the last take; the counters start again at 0.
    fn take(&self) -> Usage {
        let take = |c: &AtomicU64| c.swap(0, Ordering::Relaxed);
        Usage {
            calls: take(&self.calls),
            rows: take(&self.rows),
            errors: take(&self.errors),
            time_ns: take(&self.time_ns),
            bucket_reads: take(&self.bucket_reads),
            bucket_writes: take(&self.bucket_writes),
        }
    }
}

/// Where one function's counts go: to the module directory its plan named
/// (an executor's functions), or `None` (the catalog's own process).
type Key = (Option<ModuleDir>, String);

/// Every function's counters in this process.
#[derive(Debug, Default)]
pub struct UsageCounters {
    counters: Mutex<HashMap<Key, Arc<Counters>>>,
    /// Numbers this process's usage files.
    files: AtomicU64,
}

impl UsageCounters {
    fn counters(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Counters>>> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counters of the function `signature` from plans naming `modules`.
    pub(crate) fn of(&self, modules: Option<&ModuleDir>, signature: &str) -> Arc<Counters> {
        self.counters()
            .entry((modules.cloned(), signature.to_string()))
            .or_default()
            .clone()
    }

    /// Everything counted in this process since the last take, by signature
    /// (the frontend's share of the totals).
    pub fn take_all(&self) -> BTreeMap<String, Usage> {
        let mut taken: BTreeMap<String, Usage> = BTreeMap::new();
        for ((_, signature), counters) in self.counters().iter() {
            let usage = counters.take();
            if !usage.is_empty() {
                *taken.entry(signature.clone()).or_default() += &usage;
            }
        }
        taken
    }

    /// Writes what functions of plans that named a module directory counted
    /// since the last write into that directory, for the frontend to add
    /// up (an executor does this about once a second).
    pub fn write_out(&self) -> Result<()> {
        let mut by_dir: HashMap<ModuleDir, BTreeMap<String, Usage>> = HashMap::new();
        for ((dir, signature), counters) in self.counters().iter() {
            let Some(dir) = dir else { continue };
            let usage = counters.take();
            if !usage.is_empty() {
                *by_dir
                    .entry(dir.clone())
                    .or_default()
                    .entry(signature.clone())
                    .or_default() += &usage;
            }
        }
        for (dir, usage) in by_dir {
            let n = self.files.fetch_add(1, Ordering::Relaxed);
            let name = format!(
                "{FILE_PREFIX}{}-{}-{n}{FILE_SUFFIX}",
                std::process::id(),
                process_start()
            );
            let bytes = serde_json::to_vec(&usage).map_err(|e| Error::Runtime(e.to_string()))?;
            dir.write_file(&name, bytes)?;
        }
        Ok(())
    }
}

/// When this process started (nanoseconds since the epoch), so that a
/// restarted executor's files never take the names of its predecessor's.
fn process_start() -> u128 {
    static START: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    })
}

/// Reads and removes the usage files executors wrote into `modules`,
/// summed by signature. A file whose contents are not usage is logged and
/// removed; one that cannot be read or removed is left for the next time.
pub fn gather(modules: &ModuleDir) -> Result<BTreeMap<String, Usage>> {
    let mut total: BTreeMap<String, Usage> = BTreeMap::new();
    for file in modules.files(is_usage_file)? {
        // Counted only once removed, so that no file is counted twice; one
        // that cannot be read or removed now waits for the next time.
        let bytes = match modules.read_file(&file.name).and_then(|bytes| {
            modules.remove_file(&file.name)?;
            Ok(bytes.unwrap_or_default())
        }) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(file = %file.name, error = %e, "usage file left for later");
                continue;
            }
        };
        match serde_json::from_slice::<BTreeMap<String, Usage>>(&bytes) {
            Ok(usage) => {
                for (signature, usage) in usage {
                    *total.entry(signature).or_default() += &usage;
                }
            }
            Err(e) => {
                tracing::warn!(file = %file.name, error = %e, "unreadable usage file dropped")
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executor_counts_reach_the_frontend_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let location = dir.path().join("modules");
        let modules = ModuleDir::open(
            location.to_str().expect("utf-8"),
            &quiver_storage::ObjectStores::new(),
        )
        .expect("dir");
        let executor = UsageCounters::default();
        let f = executor.of(Some(&modules), "f(integer)");
        f.call(10, Duration::from_millis(1), false);
        f.call(5, Duration::from_millis(1), true);
        f.bucket_reads(3);
        executor.write_out().expect("write");
        f.call(1, Duration::from_millis(1), false);
        executor.write_out().expect("write");
        executor.write_out().expect("nothing new: no file");

        let gathered = gather(&modules).expect("gather");
        let usage = gathered["f(integer)"];
        assert_eq!((usage.calls, usage.rows, usage.errors), (3, 16, 1));
        assert_eq!(usage.bucket_reads, 3);
        assert!(gather(&modules).expect("gather again").is_empty());

        // The frontend's own functions are taken, not written.
        let frontend = UsageCounters::default();
        frontend.of(None, "g()").call(1, Duration::ZERO, false);
        frontend.write_out().expect("write");
        assert!(gather(&modules).expect("gather").is_empty());
        assert_eq!(frontend.take_all()["g()"].calls, 1);
        assert!(frontend.take_all().is_empty());
    }
}
