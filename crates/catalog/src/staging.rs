//! Writes of an open transaction block, staged until `COMMIT`.
//!
//! Inside `BEGIN ... COMMIT`, a session sees each managed table through a
//! view that lists two directories: a staging directory of its own first,
//! then the table's. `INSERT` and `COPY` write new files to the first one, so
//! the session reads its own writes while every other session still sees
//! only committed files. `COMMIT` moves the staged files into the tables'
//! directories; `ROLLBACK` (or the session ending) deletes them. A
//! non-managed (external) table is not staged: writes to it are immediate.
//! Nor is a table the block created: no one else sees it until `COMMIT`
//! stores it (see [`crate::changes`]), so the block writes and rewrites
//! its files in place, and they are there when it appears.
//!
//! An `UPDATE`, `DELETE` or `TRUNCATE` in a block rewrites the files the
//! block sees (see [`crate::rewrite`]): the staged files it read are
//! replaced by its output, and the table's committed files it read are
//! hidden from the block from then on — its view lists them no longer — and
//! replaced at `COMMIT`, through the same recorded switch as an
//! autocommitted rewrite's. Until then the block holds a lease on the
//! table's files, so compaction does not merge away a file it is to
//! replace; if another statement replaced one all the same, `COMMIT` fails
//! with a serialization failure and the block's writes are discarded.
//!
//! Staged files live under the session's temporary directory, which every
//! executor reaches and which a restart clears.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::datasource::listing::ListingTable;

use crate::changes::Changes;
use crate::compaction::{Lease, TableFiles};
use crate::files::{Dir, TableFile};
use crate::rewrite::{parquet_files, switch_files};
use crate::table::listing_like;
use crate::{Error, Result};

/// One session's staged writes.
#[derive(Debug)]
pub struct Staging {
    /// The session's temporary directory.
    session: Dir,
    /// The staged files' directories, under it.
    root: Dir,
    open: Mutex<Option<Open>>,
}

/// The open transaction block: its views, by the table directory they
/// stage, and its DDL.
#[derive(Debug, Default)]
struct Open {
    views: HashMap<String, View>,
    changes: Changes,
}

#[derive(Debug)]
struct View {
    staged: Dir,
    table: Dir,
    provider: Arc<dyn TableProvider>,
    /// The table's columns when the block first read or wrote it.
    columns: SchemaRef,
    /// Once the block rewrote the table: the committed files it replaces.
    rewritten: Option<Rewritten>,
}

/// A table an open block wrote to.
#[derive(Debug)]
pub(crate) struct WrittenTable {
    /// The directory of its files.
    pub(crate) table: Dir,
    /// The files the block wrote.
    pub(crate) staged: Vec<TableFile>,
    /// Once the block rewrote it: its committed files the block replaces.
    pub(crate) replaced: Option<Vec<String>>,
    /// Its columns when the block first saw it: the staged files have them.
    pub(crate) columns: SchemaRef,
}

/// What a block's rewrites of a table replace in the table's directory.
#[derive(Debug)]
struct Rewritten {
    replaces: Vec<String>,
    /// The table's files, for the switch at `COMMIT` (`None` for a
    /// temporary table, which no one else reads or compacts).
    files: Option<Arc<TableFiles>>,
    /// Held from the block's first rewrite of the table until it ends.
    lease: Option<Lease>,
    /// Whether the table's columns change with its files (see
    /// [`crate::Rewrite::reshape`]): the block replaces every file.
    whole: bool,
}

impl Staging {
    /// The staged writes of the session whose temporary directory is `session`.
    pub(crate) fn new(session: Dir) -> Self {
        Self {
            root: session.join("staged"),
            session,
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

    /// Calls `f` with the open block's DDL; `None` outside a block.
    pub(crate) fn with_changes<R>(&self, f: impl FnOnce(&mut Changes) -> R) -> Option<R> {
        self.open().as_mut().map(|open| f(&mut open.changes))
    }

    /// Takes the open block's DDL, to store or discard as it ends.
    pub(crate) fn take_changes(&self) -> Changes {
        self.open()
            .as_mut()
            .map(|open| std::mem::take(&mut open.changes))
            .unwrap_or_default()
    }

    /// The managed table `base`, whose files are in `table`, as the open
    /// transaction block sees it (staged writes first); `None` outside a block.
    pub(crate) fn view(
        &self,
        base: &Arc<dyn TableProvider>,
        table: &Dir,
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
        if let Some(view) = open.views.get_mut(&key) {
            if view.provider.schema() != base.schema() {
                // The block altered the table's columns since: the same
                // files, read as the table's columns are now.
                let urls = view
                    .provider
                    .downcast_ref::<ListingTable>()
                    .map(|staged| staged.table_paths().clone())
                    .unwrap_or_default();
                view.provider = listing_like(listing, urls)?;
            }
            return Ok(Some(view.provider.clone()));
        }
        let table = table.clone();
        let staged = self.root.join(&open.views.len().to_string());
        staged.create()?;
        // The staging directory comes first: `INSERT` writes to a listing
        // table's first path.
        let provider = listing_like(listing, vec![staged.url()?, path.clone()])?;
        open.views.insert(
            key,
            View {
                staged,
                table,
                provider: provider.clone(),
                columns: base.schema(),
                rewritten: None,
            },
        );
        Ok(Some(provider))
    }

    /// Whether the open block has rewritten the table whose files are in
    /// `table` (and so holds a lease on them).
    pub(crate) fn rewrote(&self, table: &Dir) -> bool {
        self.open().as_ref().is_some_and(|open| {
            open.views
                .values()
                .any(|v| v.table == *table && v.rewritten.is_some())
        })
    }

    /// The files the open block sees of the table `base` (whose files are
    /// in `table`), for a rewrite to read: its staged files, then the
    /// committed ones it has not replaced. `lease` (on the table's
    /// `files`) is kept until the block ends, unless the block holds one.
    pub(crate) fn snapshot(
        &self,
        base: &Arc<dyn TableProvider>,
        table: &Dir,
        files: Option<Arc<TableFiles>>,
        lease: Option<Lease>,
    ) -> Result<Vec<TableFile>> {
        self.view(base, table)?;
        let mut open = self.open();
        let view = view_of(&mut open, table)?;
        let mut snapshot = parquet_files(&view.staged)?;
        if view.rewritten.is_none() {
            // Listed under the lease: compaction cannot remove them now.
            snapshot.extend(parquet_files(table)?);
            view.rewritten = Some(Rewritten {
                replaces: Vec::new(),
                files,
                lease,
                whole: false,
            });
        }
        Ok(snapshot)
    }

    /// A rewrite in the block is done: its output (the Parquet files in
    /// `new`) takes the place of the files of `snapshot`, which the block
    /// no longer sees.
    pub(crate) fn replace(
        &self,
        table: &Dir,
        snapshot: &[TableFile],
        new: &[TableFile],
        whole: bool,
    ) -> Result<()> {
        let mut open = self.open();
        let view = view_of(&mut open, table)?;
        let rewritten = view.rewritten.get_or_insert_with(|| Rewritten {
            replaces: Vec::new(),
            files: None,
            lease: None,
            whole: false,
        });
        rewritten.whole |= whole;
        for file in snapshot {
            if file.dir == view.staged {
                view.staged.remove(&file.name)?;
            } else {
                rewritten.replaces.push(file.name.clone());
            }
        }
        for file in new {
            file.dir.rename(&file.name, &view.staged, &file.name)?;
        }
        // From now on the block reads its staged files only.
        let listing = view
            .provider
            .downcast_ref::<ListingTable>()
            .ok_or_else(|| Error::Unsupported("a staged view is a listing table".into()))?;
        view.provider = listing_like(listing, vec![view.staged.url()?])?;
        Ok(())
    }

    /// The files of the table whose files are in `table` as the open
    /// block sees them: those it staged, and the committed ones it has
    /// not replaced; `None` if the block has not written to the table.
    pub(crate) fn seen(&self, table: &Dir) -> Result<Option<(Vec<TableFile>, Vec<TableFile>)>> {
        let mut open = self.open();
        let Some(view) = open
            .as_mut()
            .and_then(|open| open.views.values_mut().find(|v| v.table == *table))
        else {
            return Ok(None);
        };
        let staged = parquet_files(&view.staged)?;
        // After a rewrite the block reads its staged files only.
        let committed = match view.rewritten {
            Some(_) => Vec::new(),
            None => parquet_files(table)?,
        };
        Ok(Some((staged, committed)))
    }

    /// The tables the open block wrote to or rewrote.
    pub(crate) fn written_tables(&self) -> Result<Vec<WrittenTable>> {
        let open = self.open();
        let mut written = Vec::new();
        for view in open.iter().flat_map(|open| open.views.values()) {
            let staged = parquet_files(&view.staged)?;
            if view.rewritten.is_some() || !staged.is_empty() {
                written.push(WrittenTable {
                    table: view.table.clone(),
                    staged,
                    replaced: view.rewritten.as_ref().map(|r| r.replaces.clone()),
                    columns: view.columns.clone(),
                });
            }
        }
        Ok(written)
    }

    /// A new directory for one statement's rewrite (see [`crate::rewrite`])
    /// to write to, beside the staged files: removed with the session.
    pub(crate) fn work_dir(&self) -> Dir {
        self.session
            .join(&format!("rewrite-{}", uuid::Uuid::new_v4().simple()))
    }

    /// Ends the block keeping its writes: staged files move into their
    /// tables (files of a table dropped meanwhile are discarded), in place
    /// of the committed files its rewrites replace. Returns the views of
    /// the tables the block wrote to. Fails with
    /// [`Error::SerializationFailure`] when another statement replaced a
    /// file the block's rewrites replace; the block's writes are then
    /// discarded. The caller holds the key locks [`Staging::check_keys`]
    /// gave it.
    pub(crate) async fn commit(&self) -> Result<Vec<Arc<dyn TableProvider>>> {
        let Some(mut open) = self.open().take() else {
            return Ok(Vec::new());
        };
        let mut result = Ok(());
        for view in open.views.values_mut() {
            let published = match view.rewritten.take() {
                None => publish(&view.staged, &view.table),
                Some(rewritten) => publish_rewrite(&view.staged, &view.table, rewritten).await,
            };
            if let Err(e) = published {
                tracing::error!(table = %view.table, error = %e, "could not commit staged rows");
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
        if let Err(e) = self.root.remove_all() {
            tracing::warn!(dir = %self.root, error = %e, "could not remove staged rows");
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(open) = self.open().take() {
            open.changes.abandon();
        }
        self.clear();
    }
}

/// Puts the staged files of a block that rewrote `table` in place of the
/// committed files its rewrites replace, all at once.
async fn publish_rewrite(staged: &Dir, table: &Dir, rewritten: Rewritten) -> Result<()> {
    let Rewritten {
        replaces,
        files,
        lease,
        whole,
    } = rewritten;
    if !table.exists() {
        return Ok(());
    }
    // The block's own lease would keep the switch waiting for itself.
    drop(lease);
    switch_files(
        table,
        files.as_ref(),
        parquet_files(staged)?,
        replaces,
        whole,
    )
    .await
}

/// The open block's view of the table whose files are in `table`.
fn view_of<'a>(open: &'a mut Option<Open>, table: &Dir) -> Result<&'a mut View> {
    open.as_mut()
        .and_then(|open| open.views.values_mut().find(|v| v.table == *table))
        .ok_or_else(|| Error::Unsupported("no transaction block is open".into()))
}

/// Moves every file of `staged` into `table`.
fn publish(staged: &Dir, table: &Dir) -> Result<()> {
    if !table.exists() {
        return Ok(());
    }
    for file in staged.list()? {
        staged.rename(&file.name, table, &file.name)?;
    }
    Ok(())
}
