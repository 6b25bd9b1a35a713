//! Writes of an open transaction block, staged until `COMMIT`.
//!
//! Inside `BEGIN ... COMMIT`, a session sees each managed table through a
//! view that lists two directories: a staging directory of its own first,
//! then the table's. `INSERT` and `COPY` write new files to the first one, so
//! the session reads its own writes while every other session still sees
//! only committed files. `COMMIT` moves the staged files into the tables'
//! directories; `ROLLBACK` (or the session ending) deletes them. A
//! non-managed (external) table is not staged: writes to it are immediate.
//!
//! Staged files live under the session's temporary directory, which every
//! executor reaches and which a restart clears.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datafusion::catalog::TableProvider;
use datafusion::datasource::listing::{ListingTable, ListingTableConfig, ListingTableUrl};

use crate::{Error, Result};

/// One session's staged writes.
#[derive(Debug)]
pub struct Staging {
    root: PathBuf,
    open: Mutex<Option<Open>>,
}

/// The open transaction block: its views, by the table directory they stage.
#[derive(Debug, Default)]
struct Open {
    views: HashMap<String, View>,
}

#[derive(Debug)]
struct View {
    staged: PathBuf,
    table: PathBuf,
    provider: Arc<dyn TableProvider>,
}

impl Staging {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self {
            root,
            open: Mutex::new(None),
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Option<Open>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a transaction block is open.
    pub fn is_open(&self) -> bool {
        self.open().is_some()
    }

    /// Opens a transaction block: from now on writes are staged.
    pub fn begin(&self) {
        self.open().get_or_insert_with(Open::default);
    }

    /// The managed table `base`, whose files are in `table`, as the open
    /// transaction block sees it (staged writes first); `None` outside a block.
    pub(crate) fn view(
        &self,
        base: &Arc<dyn TableProvider>,
        table: &Path,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let mut open = self.open();
        let Some(open) = open.as_mut() else {
            return Ok(None);
        };
        let Some(listing) = base.downcast_ref::<ListingTable>() else {
            return Ok(None);
        };
        let [path] = listing.table_paths().as_slice() else {
            return Ok(None);
        };
        let key = path.as_str().to_string();
        if let Some(view) = open.views.get(&key) {
            return Ok(Some(view.provider.clone()));
        }
        let table = table.to_path_buf();
        let staged = self.root.join(open.views.len().to_string());
        std::fs::create_dir_all(&staged).map_err(|e| Error::io(&staged, e))?;
        // The staging directory comes first: `INSERT` writes to a listing
        // table's first path.
        let url = ListingTableUrl::parse(format!("{}/", staged.display()))?;
        let config = ListingTableConfig::new_with_multi_paths(vec![url, path.clone()])
            .with_listing_options(listing.options().clone())
            .with_schema(listing.schema());
        let provider: Arc<dyn TableProvider> = Arc::new(ListingTable::try_new(config)?);
        open.views.insert(
            key,
            View {
                staged,
                table,
                provider: provider.clone(),
            },
        );
        Ok(Some(provider))
    }

    /// Ends the block keeping its writes: staged files move into their
    /// tables (files of a table dropped meanwhile are discarded). Returns
    /// the views of the tables the block wrote to.
    pub fn commit(&self) -> Result<Vec<Arc<dyn TableProvider>>> {
        let Some(open) = self.open().take() else {
            return Ok(Vec::new());
        };
        let mut result = Ok(());
        for view in open.views.values() {
            if let Err(e) = publish(&view.staged, &view.table) {
                tracing::error!(table = %view.table.display(), error = %e, "could not commit staged rows");
                result = result.and(Err(e));
            }
        }
        self.clear();
        result.map(|()| open.views.into_values().map(|v| v.provider).collect())
    }

    /// Ends the block discarding its writes.
    pub fn rollback(&self) {
        self.open().take();
        self.clear();
    }

    fn clear(&self) {
        if self.root.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.root)
        {
            tracing::warn!(dir = %self.root.display(), error = %e, "could not remove staged rows");
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Moves every file of `staged` into `table`.
fn publish(staged: &Path, table: &Path) -> Result<()> {
    if !table.is_dir() {
        return Ok(());
    }
    let entries = match std::fs::read_dir(staged) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(staged, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(staged, e))?;
        let to = table.join(entry.file_name());
        std::fs::rename(entry.path(), &to).map_err(|e| Error::io(&to, e))?;
    }
    Ok(())
}
