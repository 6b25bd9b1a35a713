//! The RocksDB database behind the catalog: one column family per kind of entry.

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteOptions};

use crate::{Error, Result};

/// Column family holding one JSON [`crate::TableEntry`] per table, keyed by name.
pub(crate) const TABLES_CF: &str = "tables";

const COLUMN_FAMILIES: &[&str] = &[TABLES_CF];

/// Catalog metadata in RocksDB. Writes are synced: DDL is acknowledged only once
/// it is durable.
pub(crate) struct MetaStore {
    db: DB,
}

impl MetaStore {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let families = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, families)?;
        Ok(Self { db })
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| Error::Corrupt {
            key: name.to_string(),
            message: "column family missing".to_string(),
        })
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

    /// Every `(key, value)` of a column family, in key order.
    pub(crate) fn scan(&self, cf: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.db
            .iterator_cf(self.cf(cf)?, IteratorMode::Start)
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
