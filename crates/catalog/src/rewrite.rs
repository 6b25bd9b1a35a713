//! Changes of rows in place — `UPDATE`, `DELETE`, `TRUNCATE` — as rewrites
//! of a table's files.
//!
//! A managed table's rows are in Parquet files that are never changed, so a
//! statement that changes rows in place copies on write: it reads a fixed
//! set of the table's files (every file there is when it starts: its
//! snapshot), writes the rows those files are to hold afterwards to new
//! files, and then switches: the new files take the place of the
//! snapshot's all at once, through the recorded switch compaction uses (see
//! [`crate::compaction`]), so a crash leaves either the old files or the new
//! ones. Rows other statements add meanwhile are in files outside the
//! snapshot and stay. The statement holds a lease on the table's files while
//! it reads them, so compaction does not merge them away under it; if
//! another rewrite replaced one of them all the same (two `DELETE`s at
//! once), the later switch fails with a serialization failure and changes
//! nothing.
//!
//! Which rows the new files hold is the frontend's business: it plans the
//! statement as a query of [`Rewrite::source`] (the snapshot) written to
//! [`Rewrite::target`] (a directory of the session's), which runs where any
//! `INSERT ... SELECT` runs — on the frontend or as a Ballista job — and then
//! calls [`Rewrite::finish`]. Inside a transaction block the switch is the
//! block's (see [`crate::staging`]).

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::datasource::listing::ListingTable;

use crate::compaction::{
    Intent, Lease, TableFiles, all_exist, blocking, file_names, partial_name, switch,
};
use crate::files::{Dir, TableFile};
use crate::keys::files_of;
use crate::session_catalog::{SessionCatalog, Target, provider_of};
use crate::staging::Staging;
use crate::table::{listing_like, listing_with_schema};
use crate::{Error, Result};

/// One statement's rewrite of one table.
pub struct Rewrite {
    /// The table's directory.
    table: Dir,
    /// The files the statement reads and replaces.
    snapshot: Vec<TableFile>,
    source: Arc<dyn TableProvider>,
    target: Arc<dyn TableProvider>,
    /// The statement's own directory; its output is in `new` under it.
    work: Dir,
    new: Dir,
    place: Place,
    /// Set when the new files have other columns than the table's (see
    /// [`Rewrite::reshape`]).
    whole: bool,
}

/// Where the new files go.
enum Place {
    /// Into the table's directory, now.
    Table {
        /// `None` for a temporary table (no one else reads or compacts it).
        files: Option<Arc<TableFiles>>,
        lease: Option<Lease>,
    },
    /// Among the open transaction block's staged files, until it commits.
    Block(Arc<Staging>),
}

impl std::fmt::Debug for Rewrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewrite")
            .field("table", &self.table)
            .field("snapshot", &self.snapshot.len())
            .finish_non_exhaustive()
    }
}

impl SessionCatalog {
    /// Starts rewriting table `target` as the session sees it (inside a
    /// transaction block, with its staged writes). External tables cannot
    /// be rewritten: their files are the user's.
    pub async fn begin_rewrite(&self, target: &Target) -> Result<Rewrite> {
        let staging = self.staging();
        let temp = match target {
            Target::Temp(name) => self.temp().get(name),
            Target::Stored(_) => None,
        };
        // A table the open block created is no one else's: rewritten in
        // place, as outside a block.
        let (base, table, files, in_block) = match (temp, target) {
            (Some((provider, dir)), _) => (provider, dir, None, staging.is_open()),
            (None, Target::Temp(name)) => return Err(Error::TableNotFound(name.clone())),
            (None, Target::Stored(name)) => {
                let stored = self
                    .stored(name)
                    .ok_or_else(|| Error::TableNotFound(name.to_string()))?;
                if stored.is_view() {
                    return Err(Error::Unsupported(format!(
                        "cannot change rows of view \"{name}\": Quiver's views are not updatable"
                    )));
                }
                let provider = provider_of(&stored)?;
                let Some(dir) = self.shared().dir_of(&stored) else {
                    return Err(Error::Unsupported(format!(
                        "\"{name}\" is an external table: its files are not Quiver's to change (only INSERT appends to it)"
                    )));
                };
                let in_block = staging.is_open() && !self.created_in_block(&stored);
                (
                    provider,
                    dir,
                    stored.files.map(|(_, files)| files),
                    in_block,
                )
            }
        };
        let listing = base.downcast_ref::<ListingTable>().ok_or_else(|| {
            Error::Unsupported(format!("table \"{}\" has no files", target_name(target)))
        })?;
        let (snapshot, place) = if in_block {
            let lease = match &files {
                Some(files) if !staging.rewrote(&table) => Some(files.lease().await),
                _ => None,
            };
            let snapshot = staging.snapshot(&base, &table, files, lease)?;
            (snapshot, Place::Block(staging.clone()))
        } else {
            // Taken before the files are listed: compaction cannot remove
            // one of them now.
            let lease = match &files {
                Some(files) => Some(files.lease().await),
                None => None,
            };
            (parquet_files(&table)?, Place::Table { files, lease })
        };
        let work = staging.work_dir();
        let (new, none) = (work.join("new"), work.join("none"));
        for dir in [&new, &none] {
            dir.create()?;
        }
        let source = match snapshot.is_empty() {
            // A listing table reads at least one path: an empty directory.
            true => listing_like(listing, vec![none.url()?])?,
            false => files_of(listing, &snapshot)?,
        };
        let target = listing_like(listing, vec![new.url()?])?;
        Ok(Rewrite {
            table,
            snapshot,
            source,
            target,
            work,
            new,
            place,
            whole: false,
        })
    }
}

impl Rewrite {
    /// The table as the statement reads it: the files of its snapshot.
    pub fn source(&self) -> &Arc<dyn TableProvider> {
        &self.source
    }

    /// Where the statement writes the rows the table is to hold.
    pub fn target(&self) -> &Arc<dyn TableProvider> {
        &self.target
    }

    /// The new files are to have the columns `columns` (an `ALTER TABLE`
    /// changes the table's columns along with its files): they must
    /// replace every file of the table, or the switch fails (see
    /// [`switch_files`]).
    pub fn reshape(&mut self, columns: SchemaRef) -> Result<()> {
        let listing = self
            .target
            .downcast_ref::<ListingTable>()
            .ok_or_else(|| Error::Unsupported("a rewrite's target is a listing table".into()))?;
        self.target = listing_with_schema(listing, vec![self.new.url()?], columns)?;
        self.whole = true;
        Ok(())
    }

    /// How many rows the snapshot holds (read from the files' footers).
    pub fn rows_read(&self) -> Result<u64> {
        let mut rows = 0u64;
        for file in &self.snapshot {
            let metadata = file.dir.parquet_metadata(&file.name)?;
            rows += u64::try_from(metadata.file_metadata().num_rows()).unwrap_or(0);
        }
        Ok(rows)
    }

    /// Puts what the statement wrote to [`Rewrite::target`] in place of
    /// the snapshot: in the table's directory, or, in a transaction block,
    /// among the block's staged files.
    pub async fn finish(mut self) -> Result<()> {
        let new = parquet_files(&self.new)?;
        let place = std::mem::replace(
            &mut self.place,
            Place::Table {
                files: None,
                lease: None,
            },
        );
        match place {
            Place::Block(staging) => staging.replace(&self.table, &self.snapshot, &new, self.whole),
            Place::Table { files, lease } => {
                // The statement's own lease would keep the switch waiting.
                drop(lease);
                let replaces = file_names(&self.snapshot);
                switch_files(&self.table, files.as_ref(), new, replaces, self.whole).await
            }
        }
    }
}

impl Drop for Rewrite {
    fn drop(&mut self) {
        if let Err(e) = self.work.remove_all() {
            tracing::warn!(dir = %self.work, error = %e, "could not remove a rewrite's files");
        }
    }
}

/// With the table whose files are in `table` to itself (its `files`; none
/// for a temporary table, which no one else reads), moves the files `new`
/// into `table` in place of its files `replaces`, all at once (see
/// [`replace_files`]). With `whole`, `replaces` must be every file the
/// table has (its columns change with the switch: files other statements
/// wrote meanwhile have the old ones), else it fails with a serialization
/// failure. The caller holds no lease on the table's files.
pub(crate) async fn switch_files(
    table: &Dir,
    files: Option<&Arc<TableFiles>>,
    new: Vec<TableFile>,
    replaces: Vec<String>,
    whole: bool,
) -> Result<()> {
    let lock = match files {
        Some(files) => Some(files.switch_lock().await.ok_or_else(|| {
            Error::LockNotAvailable(format!(
                "could not obtain the files of {table} to replace: other statements kept reading them"
            ))
        })?),
        None => None,
    };
    let dir = table.clone();
    blocking(table, move || {
        let _lock = lock;
        if whole && file_names(&parquet_files(&dir)?) != sorted(&replaces) {
            return Err(Error::SerializationFailure(
                "could not serialize access: rows were written to the table while its columns changed"
                    .into(),
            ));
        }
        replace_files(&dir, &new, replaces)
    })
    .await
}

/// Moves the files `new` into the directory `table` in place of its files
/// `replaces`, all at once; fails, changing nothing, if one of those is
/// gone (another statement replaced it). The caller has the table to itself.
pub(crate) fn replace_files(table: &Dir, new: &[TableFile], replaces: Vec<String>) -> Result<()> {
    if !all_exist(table, &replaces)? {
        return Err(Error::SerializationFailure(
            "could not serialize access due to concurrent update".into(),
        ));
    }
    for file in new {
        file.dir
            .rename(&file.name, table, &partial_name(&file.name))?;
    }
    switch(
        table,
        &Intent {
            merged: file_names(new),
            replaces,
        },
    )
}

/// The Parquet files in `dir`, by name; none if it does not exist.
pub(crate) fn parquet_files(dir: &Dir) -> Result<Vec<TableFile>> {
    Ok(parquet_names(dir)?
        .iter()
        .map(|name| dir.file(name))
        .collect())
}

/// The names of the Parquet files in `dir`, sorted; none if it does not exist.
pub(crate) fn parquet_names(dir: &Dir) -> Result<Vec<String>> {
    let mut names: Vec<String> = dir
        .list()?
        .into_iter()
        .map(|file| file.name)
        .filter(|name| name.ends_with(".parquet"))
        .collect();
    names.sort();
    Ok(names)
}

/// The name of `target` as messages give it.
fn target_name(target: &Target) -> String {
    match target {
        Target::Temp(name) => name.clone(),
        Target::Stored(name) => name.to_string(),
    }
}

/// `names`, sorted.
fn sorted(names: &[String]) -> Vec<String> {
    let mut names = names.to_vec();
    names.sort();
    names
}
