//! Temporary tables: one session's Parquet tables, staged under
//! `<data-dir>/temp/<session>/` (in the store of the tables' files) where every executor can read and write
//! them, gone when the session ends (or, after a crash, at the next start).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::config::TableParquetOptions;

use crate::files::Dir;
use crate::table::managed_table;
use crate::{Error, Result};

/// The directory every session's temporary tables live under, in the
/// directory the tables' files are in.
pub(crate) fn temp_root(data_dir: &Dir) -> Dir {
    data_dir.join("temp")
}

/// One session's temporary tables.
pub struct TempTables {
    dir: Dir,
    /// How their files are written.
    parquet: TableParquetOptions,
    tables: RwLock<BTreeMap<String, TempTable>>,
}

/// One temporary table.
pub(crate) struct TempTable {
    dir: Dir,
    provider: Arc<dyn TableProvider>,
}

impl TempTable {
    /// Removes the table's files.
    pub(crate) fn remove_files(&self) {
        if let Err(e) = self.dir.remove_all() {
            tracing::warn!(dir = %self.dir, error = %e, "could not remove temporary table files");
        }
    }
}

impl std::fmt::Debug for TempTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempTables")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl TempTables {
    pub(crate) fn new(dir: Dir, parquet: TableParquetOptions) -> Self {
        Self {
            dir,
            parquet,
            tables: RwLock::new(BTreeMap::new()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, TempTable>> {
        self.tables.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, TempTable>> {
        self.tables.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A temporary table's provider and the directory of its files.
    pub(crate) fn get(&self, name: &str) -> Option<(Arc<dyn TableProvider>, Dir)> {
        self.read()
            .get(name)
            .map(|t| (t.provider.clone(), t.dir.clone()))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }

    /// Creates a temporary table. Returns `None` when it exists and
    /// `if_not_exists` is set.
    pub fn create(
        &self,
        name: &str,
        schema: SchemaRef,
        if_not_exists: bool,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let mut tables = self.write();
        if tables.contains_key(name) {
            return if if_not_exists {
                Ok(None)
            } else {
                Err(Error::TableExists(name.to_string()))
            };
        }
        let dir = self.dir.join(&uuid::Uuid::new_v4().simple().to_string());
        dir.create()?;
        let provider = managed_table(&dir, schema, &self.parquet)?;
        tables.insert(
            name.to_string(),
            TempTable {
                dir: dir.clone(),
                provider: provider.clone(),
            },
        );
        tracing::debug!(table = name, %dir, "temporary table created");
        Ok(Some(provider))
    }

    /// Renames a temporary table; `false` if there is none of `name`.
    pub fn rename_table(&self, name: &str, new_name: &str) -> Result<bool> {
        let mut tables = self.write();
        if !tables.contains_key(name) {
            return Ok(false);
        }
        if tables.contains_key(new_name) {
            return Err(Error::TableExists(new_name.to_string()));
        }
        if let Some(table) = tables.remove(name) {
            tables.insert(new_name.to_string(), table);
        }
        Ok(true)
    }

    /// Drops a temporary table and its files; `false` if there is none.
    pub fn drop_table(&self, name: &str) -> bool {
        let Some(table) = self.take(name) else {
            return false;
        };
        table.remove_files();
        true
    }

    /// Drops a temporary table keeping its files, for
    /// [`TempTables::restore`] to bring back.
    pub(crate) fn take(&self, name: &str) -> Option<TempTable> {
        self.write().remove(name)
    }

    /// Brings back a table [`TempTables::take`] dropped, unless its name
    /// is taken again (then its files go).
    pub(crate) fn restore(&self, name: &str, table: TempTable) {
        let mut tables = self.write();
        if tables.contains_key(name) {
            table.remove_files();
        } else {
            tables.insert(name.to_string(), table);
        }
    }

    /// The names of the temporary tables.
    pub(crate) fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }
}

impl Drop for TempTables {
    fn drop(&mut self) {
        if let Err(e) = self.dir.remove_all() {
            tracing::warn!(dir = %self.dir, error = %e, "could not remove a session's temporary tables");
        }
    }
}
