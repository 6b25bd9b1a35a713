//! Temporary tables: one session's Parquet tables, staged under
//! `<data-dir>/temp/<session>/` where every executor can read and write
//! them, gone when the session ends (or, after a crash, at the next start).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::config::TableParquetOptions;
use datafusion::error::Result as DfResult;

use crate::catalog::Catalog;
use crate::staging::Staging;
use crate::table::managed_table;
use crate::{Error, Result};

/// The directory every session's temporary tables live under.
pub(crate) fn temp_root(data_dir: &Path) -> PathBuf {
    data_dir.join("temp")
}

/// One session's temporary tables.
pub struct TempTables {
    dir: PathBuf,
    /// How their files are written.
    parquet: TableParquetOptions,
    tables: RwLock<BTreeMap<String, TempTable>>,
}

struct TempTable {
    dir: PathBuf,
    provider: Arc<dyn TableProvider>,
}

impl std::fmt::Debug for TempTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempTables")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl TempTables {
    pub(crate) fn new(dir: PathBuf, parquet: TableParquetOptions) -> Self {
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
    pub(crate) fn get(&self, name: &str) -> Option<(Arc<dyn TableProvider>, PathBuf)> {
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
        let dir = self.dir.join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let provider = managed_table(&dir, schema, &self.parquet)?;
        tables.insert(
            name.to_string(),
            TempTable {
                dir: dir.clone(),
                provider: provider.clone(),
            },
        );
        tracing::debug!(table = name, dir = %dir.display(), "temporary table created");
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
        let Some(table) = self.write().remove(name) else {
            return false;
        };
        if let Err(e) = std::fs::remove_dir_all(&table.dir) {
            tracing::warn!(dir = %table.dir.display(), error = %e, "could not remove temporary table files");
        }
        true
    }
}

impl Drop for TempTables {
    fn drop(&mut self) {
        if self.dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.dir)
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove a session's temporary tables");
        }
    }
}

/// The `public` schema as one session sees it: its temporary tables first
/// (as PostgreSQL's `pg_temp` comes first on the search path), then the
/// persistent tables; inside a transaction block, managed tables with the
/// session's staged writes.
#[derive(Debug)]
pub struct SessionSchema {
    temp: Arc<TempTables>,
    shared: Arc<Catalog>,
    staging: Arc<Staging>,
}

impl SessionSchema {
    pub fn new(temp: Arc<TempTables>, shared: Arc<Catalog>, staging: Arc<Staging>) -> Self {
        Self {
            temp,
            shared,
            staging,
        }
    }
}

#[async_trait]
impl SchemaProvider for SessionSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.shared.table_names();
        names.extend(self.temp.read().keys().cloned());
        names.sort();
        names.dedup();
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let managed = match self.temp.get(name) {
            Some(temp) => temp,
            None => match (
                self.shared.table(name).await?,
                self.shared.managed_dir(name),
            ) {
                (Some(provider), Some(dir)) => (provider, dir),
                (provider, _) => return Ok(provider),
            },
        };
        let (provider, dir) = managed;
        Ok(Some(
            self.staging.view(&provider, &dir)?.unwrap_or(provider),
        ))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.temp.contains(name) || self.shared.table_exist(name)
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        self.shared.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        self.shared.deregister_table(name)
    }
}
