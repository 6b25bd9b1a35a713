//! [`Buckets`]: key-value buckets Wasm functions read and write through
//! `wasi:keyvalue`, kept in the data directory's RocksDB.
//!
//! A bucket is a catalog object of its own (`CREATE BUCKET`): its entry in
//! [`BUCKETS_CF`] names its owner and its version, and its values live in
//! [`BUCKET_VALUES_CF`] under `bucket NUL key`. One column family holds
//! every bucket's values: a bucket is created and dropped inside the
//! catalog's atomic batches, as tables are, with no column family to open
//! or drop while statements run. Every change of a bucket's values raises
//! its version in the same batch, so a version names one state of the
//! bucket: what a query reads is the state at its version, whatever is
//! written while it runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::store::{BUCKET_VALUES_CF, BUCKETS_CF, Change, Durability, MetaStore, json};
use crate::{Error, Result};

/// One bucket, as `quiver.buckets` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEntry {
    pub name: String,
    pub owner: String,
    /// Raised by every change of the bucket's values.
    pub version: u64,
}

/// A change of one key, as a statement's writes are committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketWrite {
    Set(String, Vec<u8>),
    Delete(String),
    /// `wasi:keyvalue/atomics.increment`: adds to the decimal number the
    /// key holds (0 when it holds nothing).
    Add(String, u64),
}

/// The values of one bucket at one version, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketSnapshot {
    pub version: u64,
    pub values: BTreeMap<String, Vec<u8>>,
}

/// The buckets of a data directory.
#[derive(Debug)]
pub struct Buckets {
    store: Arc<MetaStore>,
    /// Held by writes and snapshots, so that a snapshot's values are those
    /// of its version.
    lock: Mutex<()>,
}

/// The values column family's key of `key` in `bucket`.
fn value_key(bucket: &str, key: &str) -> String {
    format!("{bucket}\0{key}")
}

/// Decimal text of a counter, as `increment` keeps it.
fn counter(key: &str, value: Option<&[u8]>) -> Result<u64> {
    let Some(value) = value else {
        return Ok(0);
    };
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            Error::InvalidParameter(format!(
                "cannot increment key \"{key}\": its value is not a whole number"
            ))
        })
}

impl Buckets {
    pub fn new(store: Arc<MetaStore>) -> Self {
        Self {
            store,
            lock: Mutex::new(()),
        }
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every bucket, by name.
    pub fn entries(&self) -> Result<Vec<BucketEntry>> {
        Ok(self
            .store
            .scan_json::<BucketEntry>(BUCKETS_CF)?
            .into_iter()
            .map(|(_, entry)| entry)
            .collect())
    }

    /// The bucket called `name`, if there is one.
    pub fn entry(&self, name: &str) -> Result<Option<BucketEntry>> {
        self.store.get_json(BUCKETS_CF, name)
    }

    /// `CREATE BUCKET name`: an empty bucket owned by `owner`; `false` if
    /// one of that name exists.
    pub fn create(&self, name: &str, owner: &str) -> Result<bool> {
        let _held = self.locked();
        if self.entry(name)?.is_some() {
            return Ok(false);
        }
        let entry = BucketEntry {
            name: name.to_string(),
            owner: owner.to_string(),
            version: 1,
        };
        self.store.put_json(BUCKETS_CF, name, &entry)?;
        Ok(true)
    }

    /// `DROP BUCKET name`: the bucket and its values; `false` if there was
    /// none.
    pub fn remove(&self, name: &str) -> Result<bool> {
        let _held = self.locked();
        if self.entry(name)?.is_none() {
            return Ok(false);
        }
        // Every key `name NUL ...`: the range up to `name SOH`.
        let (from, to) = (value_key(name, ""), format!("{name}\u{1}"));
        self.store.write(&[
            Change::DeleteRange {
                cf: BUCKET_VALUES_CF,
                from: &from,
                to: &to,
            },
            Change::Delete {
                cf: BUCKETS_CF,
                key: name,
            },
        ])?;
        Ok(true)
    }

    /// The bucket's values now, with the version they are.
    pub fn snapshot(&self, name: &str) -> Result<BucketSnapshot> {
        let _held = self.locked();
        let entry = self.existing(name)?;
        let prefix = value_key(name, "");
        let values = self
            .store
            .scan_prefix(BUCKET_VALUES_CF, &prefix)?
            .into_iter()
            .map(|(key, value)| (key[prefix.len()..].to_string(), value))
            .collect();
        Ok(BucketSnapshot {
            version: entry.version,
            values,
        })
    }

    fn existing(&self, name: &str) -> Result<BucketEntry> {
        self.entry(name)?
            .ok_or_else(|| Error::BucketNotFound(name.to_string()))
    }

    /// Applies `writes` to the bucket in order, atomically and durably, and
    /// returns the values of the keys written, as they are now (`None`:
    /// deleted), in key order.
    pub fn write(
        &self,
        name: &str,
        writes: &[BucketWrite],
        durability: Durability,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        let _held = self.locked();
        let mut entry = self.existing(name)?;
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        // The last write of each key decides it; counters add up.
        let mut last: BTreeMap<&str, Option<Vec<u8>>> = BTreeMap::new();
        for write in writes {
            match write {
                BucketWrite::Set(key, value) => {
                    last.insert(key, Some(value.clone()));
                }
                BucketWrite::Delete(key) => {
                    last.insert(key, None);
                }
                BucketWrite::Add(key, delta) => {
                    let current = match last.get(key.as_str()) {
                        Some(value) => value.clone(),
                        None => self.store.get(BUCKET_VALUES_CF, &value_key(name, key))?,
                    };
                    let sum = counter(key, current.as_deref())?
                        .checked_add(*delta)
                        .ok_or_else(|| {
                            Error::OutOfRange(format!("incrementing key \"{key}\" overflows"))
                        })?;
                    last.insert(key, Some(sum.to_string().into_bytes()));
                }
            }
        }
        entry.version += 1;
        let written: Vec<(String, Option<Vec<u8>>)> = last
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect();
        let keys: Vec<(String, &Option<Vec<u8>>)> = written
            .iter()
            .map(|(key, value)| (value_key(name, key), value))
            .collect();
        let entry_json = json(name, &entry)?;
        let mut changes: Vec<Change<'_>> = keys
            .iter()
            .map(|(key, value)| match value {
                Some(value) => Change::Put {
                    cf: BUCKET_VALUES_CF,
                    key,
                    value,
                },
                None => Change::Delete {
                    cf: BUCKET_VALUES_CF,
                    key,
                },
            })
            .collect();
        changes.push(Change::Put {
            cf: BUCKETS_CF,
            key: name,
            value: &entry_json,
        });
        self.store.write_as(&changes, durability)?;
        Ok(written)
    }

    /// Makes every write so far durable (after writes made
    /// [`Durability::Later`]).
    pub fn sync(&self) -> Result<()> {
        self.store.sync()
    }

    /// Keys and bytes of values the bucket holds.
    pub fn size(&self, name: &str) -> Result<(u64, u64)> {
        let values = self
            .store
            .scan_prefix(BUCKET_VALUES_CF, &value_key(name, ""))?;
        let bytes = values.iter().map(|(_, v)| v.len() as u64).sum();
        Ok((values.len() as u64, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets() -> (tempfile::TempDir, Buckets) {
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(MetaStore::open(dir.path()).expect("store"));
        (dir, Buckets::new(store))
    }

    #[test]
    fn writes_raise_the_version_and_counters_add_up() {
        let (_dir, buckets) = buckets();
        assert!(buckets.create("rates", "ada").expect("create"));
        assert!(!buckets.create("rates", "ada").expect("again"));
        assert!(buckets.create("rates2", "ada").expect("a name it prefixes"));
        let written = buckets
            .write(
                "rates",
                &[
                    BucketWrite::Set("EUR".into(), b"1.08".to_vec()),
                    BucketWrite::Add("n".into(), 2),
                    BucketWrite::Add("n".into(), 3),
                    BucketWrite::Set("GBP".into(), b"1.27".to_vec()),
                    BucketWrite::Delete("GBP".into()),
                ],
                Durability::Now,
            )
            .expect("write");
        assert_eq!(
            written,
            vec![
                ("EUR".to_string(), Some(b"1.08".to_vec())),
                ("GBP".to_string(), None),
                ("n".to_string(), Some(b"5".to_vec()))
            ]
        );
        buckets
            .write(
                "rates2",
                &[BucketWrite::Set("x".into(), b"y".to_vec())],
                Durability::Later,
            )
            .expect("other");
        let snapshot = buckets.snapshot("rates").expect("snapshot");
        assert_eq!(snapshot.version, 2);
        assert_eq!(
            snapshot.values.into_iter().collect::<Vec<_>>(),
            vec![
                ("EUR".to_string(), b"1.08".to_vec()),
                ("n".to_string(), b"5".to_vec())
            ]
        );
        let overflow = buckets.write(
            "rates",
            &[BucketWrite::Add("EUR".into(), 1)],
            Durability::Now,
        );
        assert!(overflow.is_err(), "1.08 is no counter");
        assert_eq!(buckets.size("rates").expect("size"), (2, 5));
        assert!(buckets.remove("rates").expect("drop"));
        assert!(!buckets.remove("rates").expect("dropped"));
        assert_eq!(buckets.size("rates").expect("size"), (0, 0));
        assert_eq!(buckets.size("rates2").expect("size"), (1, 1));
        assert!(matches!(
            buckets.snapshot("rates"),
            Err(Error::BucketNotFound(_))
        ));
    }
}
