//! [`MetaStore`]: the RocksDB database behind a data directory's metadata,
//! one column family per kind of entry. The table catalog and the Wasm
//! function registry share it.

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch, WriteOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Column family holding one JSON [`crate::TableEntry`] per relation,
/// keyed by [`crate::QualifiedName`]'s key.
pub(crate) const TABLES_CF: &str = "tables";
/// Column family holding one JSON [`crate::SchemaEntry`] per schema
/// `CREATE SCHEMA` made, keyed by name.
pub(crate) const SCHEMAS_CF: &str = "schemas";
/// Column family holding Wasm module bytes, keyed by their SHA-256 (hex).
pub const MODULES_CF: &str = "modules";
/// Column family holding one Wasm function definition per overload, keyed by
/// its signature (`name(type, ...)`).
pub const FUNCTIONS_CF: &str = "functions";
/// Login roles and their SCRAM-SHA-256 password verifiers.
pub const ROLES_CF: &str = "roles";
/// The owner and grants of each object other than a table (a table keeps
/// its own in its entry), keyed by [`crate::Object::key`].
pub const ACLS_CF: &str = "acls";
/// The counter of each sequence, keyed by the sequence's id (see
/// [`crate::sequences`]).
pub(crate) const SEQUENCES_CF: &str = "sequences";
/// `COMMENT ON` of objects other than relations (schemas), keyed as ACLs
/// are.
pub(crate) const COMMENTS_CF: &str = "comments";

/// One JSON [`crate::BucketEntry`] per `CREATE BUCKET`, keyed by name.
pub(crate) const BUCKETS_CF: &str = "buckets";
/// The values of every bucket, keyed by `bucket NUL key` (see
/// [`crate::buckets`]).
pub(crate) const BUCKET_VALUES_CF: &str = "bucket_values";
/// What each Wasm function did, summed over every process that ran it: one
/// JSON [`crate::Usage`] per function, keyed by its signature.
pub const FUNCTION_USAGE_CF: &str = "function_usage";

const COLUMN_FAMILIES: &[&str] = &[
    TABLES_CF,
    MODULES_CF,
    FUNCTIONS_CF,
    ROLES_CF,
    ACLS_CF,
    SEQUENCES_CF,
    SCHEMAS_CF,
    COMMENTS_CF,
    BUCKETS_CF,
    BUCKET_VALUES_CF,
    FUNCTION_USAGE_CF,
];

/// When a write must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Before the write returns.
    Now,
    /// At the next [`MetaStore::sync`] (visible at once all the same; lost
    /// only if the machine stops before the sync, not the process).
    Later,
}

/// One change of a [`MetaStore::write`] batch.
#[derive(Debug)]
pub enum Change<'a> {
    Put {
        cf: &'a str,
        key: &'a str,
        value: &'a [u8],
    },
    Delete {
        cf: &'a str,
        key: &'a str,
    },
    /// Every key from `from` (included) to `to` (excluded).
    DeleteRange {
        cf: &'a str,
        from: &'a str,
        to: &'a str,
    },
}

/// Metadata in RocksDB. Writes are synced: DDL is acknowledged only once it
/// is durable.
pub struct MetaStore {
    db: DB,
}

impl std::fmt::Debug for MetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaStore")
            .field("path", &self.db.path())
            .finish()
    }
}

impl MetaStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let families = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, families)?;
        Ok(Self { db })
    }

    /// A consistent copy of the database in the new directory `dir` (its
    /// files hard-linked where they can be), which opens as a database.
    pub fn checkpoint(&self, dir: &Path) -> Result<()> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(dir)?;
        Ok(())
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| Error::Corrupt {
            key: name.to_string(),
            message: "column family missing".to_string(),
        })
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, cf: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf)?, key)?)
    }

    /// Applies `changes` atomically and durably.
    pub fn write(&self, changes: &[Change<'_>]) -> Result<()> {
        self.write_as(changes, Durability::Now)
    }

    /// Applies `changes` atomically; durably now, or at the next
    /// [`MetaStore::sync`].
    pub fn write_as(&self, changes: &[Change<'_>], durability: Durability) -> Result<()> {
        let mut batch = WriteBatch::default();
        for change in changes {
            match change {
                Change::Put { cf, key, value } => batch.put_cf(self.cf(cf)?, key, value),
                Change::Delete { cf, key } => batch.delete_cf(self.cf(cf)?, key),
                Change::DeleteRange { cf, from, to } => {
                    batch.delete_range_cf(self.cf(cf)?, from, to)
                }
            }
        }
        let mut write = WriteOptions::default();
        write.set_sync(durability == Durability::Now);
        Ok(self.db.write_opt(batch, &write)?)
    }

    /// Makes every write so far durable (one sync of the write-ahead log).
    pub fn sync(&self) -> Result<()> {
        Ok(self.db.flush_wal(true)?)
    }

    pub(crate) fn put(&self, cf: &str, key: &str, value: &[u8]) -> Result<()> {
        let mut write = WriteOptions::default();
        write.set_sync(true);
        Ok(self.db.put_cf_opt(self.cf(cf)?, key, value, &write)?)
    }

    pub(crate) fn delete(&self, cf: &str, key: &str) -> Result<()> {
        let mut write = WriteOptions::default();
        write.set_sync(true);
        Ok(self.db.delete_cf_opt(self.cf(cf)?, key, &write)?)
    }

    /// Stores `value` as JSON under `key`, durably.
    pub(crate) fn put_json<T: Serialize>(&self, cf: &str, key: &str, value: &T) -> Result<()> {
        self.put(cf, key, &json(key, value)?)
    }

    /// The JSON value stored under `key`, if any.
    pub(crate) fn get_json<T: DeserializeOwned>(&self, cf: &str, key: &str) -> Result<Option<T>> {
        self.get(cf, key)?
            .map(|value| from_json(key, &value))
            .transpose()
    }

    /// Every `(key, value)` of a column family of JSON values, in key order.
    pub(crate) fn scan_json<T: DeserializeOwned>(&self, cf: &str) -> Result<Vec<(String, T)>> {
        self.scan(cf)?
            .into_iter()
            .map(|(key, value)| Ok((key.clone(), from_json(&key, &value)?)))
            .collect()
    }

    /// Every `(key, value)` of a column family, in key order.
    pub fn scan(&self, cf: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.scan_from(cf, IteratorMode::Start, "")
    }

    /// The `(key, value)`s of a column family whose keys start with
    /// `prefix`, in key order.
    pub(crate) fn scan_prefix(&self, cf: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let start = IteratorMode::From(prefix.as_bytes(), rocksdb::Direction::Forward);
        self.scan_from(cf, start, prefix)
    }

    fn scan_from(
        &self,
        cf: &str,
        start: IteratorMode<'_>,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        self.db
            .iterator_cf(self.cf(cf)?, start)
            .take_while(|item| {
                item.as_ref()
                    .map_or(true, |(key, _)| key.starts_with(prefix.as_bytes()))
            })
            .map(|item| {
                let (key, value) = item?;
                let key = String::from_utf8(key.to_vec()).map_err(|e| Error::Corrupt {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    message: e.to_string(),
                })?;
                Ok((key, value.to_vec()))
            })
            .collect()
    }
}
/// The JSON `value` stored under `key`, decoded.
fn from_json<T: DeserializeOwned>(key: &str, value: &[u8]) -> Result<T> {
    serde_json::from_slice(value).map_err(|e| Error::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    })
}

/// `value` as the JSON stored under `key`.
pub(crate) fn json<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    })
}
