//! Unique keys — `PRIMARY KEY`, `UNIQUE` and `CREATE UNIQUE INDEX` —
//! enforced.
//!
//! A managed table's rows are in Parquet files with nothing beside them, so
//! a key is checked by reading the table's key columns. A write to a table
//! with unique keys is always staged: inside the session's transaction
//! block, or, for an autocommitted statement, in a block of its own that
//! the statement commits (the frontend sees to that). Then
//!
//! - after each statement, the rows the block staged are checked among
//!   themselves and against the table's committed rows the block sees
//!   ([`SessionCatalog::check_keys`]), so the statement that breaks a key
//!   fails, as in PostgreSQL;
//! - at `COMMIT`, holding the table's key lock from the check until the
//!   block's files are in the table, the staged rows are checked once more
//!   against the committed rows as they are then (see
//!   [`crate::staging::Staging::check_keys`]): rows another session committed
//!   meanwhile. Of two sessions writing the same key at once, the second to
//!   commit fails with a unique violation, and its writes are discarded
//!   (PostgreSQL makes the second writer wait for the first at its `INSERT`
//!   and then fails that statement).
//!
//! As in PostgreSQL, rows whose key has a NULL are never equal to another.
//! Temporary tables' keys are not enforced.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::util::display::array_value_to_string;
use datafusion::catalog::TableProvider;
use datafusion::common::{Column, JoinType};
use datafusion::datasource::listing::{ListingTable, ListingTableUrl};
use datafusion::functions_aggregate::count::count;
use datafusion::logical_expr::{Expr, and, col, lit};
use datafusion::prelude::{DataFrame, SessionContext};

use crate::rewrite::parquet_files;
use crate::session_catalog::{SessionCatalog, Target, provider_of};
use crate::table::{listing_like, listing_urls};
use crate::{Error, IndexEntry, Result};

/// The name a committed row's key column has beside a staged row's.
const COMMITTED: &str = "__quiver_committed";

impl SessionCatalog {
    /// Whether the stored table `target` has a unique key, as the session
    /// sees it: writes to it must be staged and checked (see the module's
    /// documentation).
    pub fn has_unique_keys(&self, target: &Target) -> bool {
        match target {
            Target::Temp(_) => false,
            Target::Stored(name) => self
                .stored(name)
                .is_some_and(|table| table.entry.indexes.iter().any(IndexEntry::is_unique)),
        }
    }

    /// `planned`, the provider a statement planned outside a transaction
    /// block writes to, as the block now open writes to it: staged. A
    /// provider planned inside the block is its view already.
    pub fn staged_target(
        &self,
        target: &Target,
        planned: Arc<dyn TableProvider>,
    ) -> Result<Arc<dyn TableProvider>> {
        let Target::Stored(name) = target else {
            return Ok(planned);
        };
        let Some(table) = self.stored(name) else {
            return Ok(planned);
        };
        let committed = match &table.files {
            Some((url, _)) => listing_urls(planned.as_ref()) == [url.as_str()],
            None => false,
        };
        match self.shared().dir_of(&table) {
            Some(dir) if committed => self.staged(&table, planned, dir),
            _ => Ok(planned),
        }
    }

    /// Checks the unique keys of the stored table `target` after a
    /// statement of the open transaction block wrote to it: the rows the
    /// block wrote must not repeat a key, among themselves or of the
    /// table's rows the block sees. Fails with [`Error::UniqueViolation`].
    pub async fn check_keys(&self, target: &Target) -> Result<()> {
        let Target::Stored(name) = target else {
            return Ok(());
        };
        let Some(table) = self.stored(name) else {
            return Ok(());
        };
        let unique: Vec<&IndexEntry> = table
            .entry
            .indexes
            .iter()
            .filter(|i| i.is_unique())
            .collect();
        let Some(dir) = self.shared().dir_of(&table) else {
            return Ok(());
        };
        if unique.is_empty() {
            return Ok(());
        }
        // A table the block created is no one else's: all its rows are new.
        let (written, committed) = match self.created_in_block(&table) {
            true => (parquet_files(&dir)?, Vec::new()),
            false => match self.staging().seen(&dir)? {
                Some(seen) => seen,
                None => return Ok(()),
            },
        };
        let _lease = match &table.files {
            Some((_, files)) => Some(files.lease().await),
            None => None,
        };
        let provider = provider_of(&table)?;
        for index in unique {
            check_unique(provider.as_ref(), &written, &committed, index).await?;
        }
        Ok(())
    }

    /// Checks that the rows of the stored table `name`, as the session
    /// sees them, keep the new unique index `index` (`ALTER TABLE ... ADD
    /// PRIMARY KEY`, `CREATE UNIQUE INDEX`).
    pub(crate) async fn check_new_key(
        &self,
        table: &crate::catalog::Loaded,
        index: &IndexEntry,
    ) -> Result<()> {
        let Some(dir) = self.shared().dir_of(table) else {
            return Err(Error::Unsupported(format!(
                "\"{}\" is not a managed table: its keys cannot be enforced",
                table.entry.name
            )));
        };
        let mut rows = parquet_files(&dir)?;
        if !self.created_in_block(table)
            && let Some((staged, committed)) = self.staging().seen(&dir)?
        {
            rows = staged;
            rows.extend(committed);
        }
        let _lease = match &table.files {
            Some((_, files)) => Some(files.lease().await),
            None => None,
        };
        match repeated_key(provider_of(table)?.as_ref(), &rows, &[], index).await? {
            Some(key) => Err(Error::DuplicatedKeys {
                index: index.name.clone(),
                detail: format!("Key {} is duplicated.", key_text(index, &key)),
            }),
            None => Ok(()),
        }
    }
}

/// Fails with [`Error::UniqueViolation`] if two rows of the files `written`
/// have equal keys of `index`, or a row of `written` and one of
/// `committed`. Both are files of the table `table` (a listing table).
pub(crate) async fn check_unique(
    table: &dyn TableProvider,
    written: &[PathBuf],
    committed: &[PathBuf],
    index: &IndexEntry,
) -> Result<()> {
    match repeated_key(table, written, committed, index).await? {
        Some(key) => Err(Error::UniqueViolation {
            constraint: index.name.clone(),
            detail: format!("Key {} already exists.", key_text(index, &key)),
        }),
        None => Ok(()),
    }
}

/// `(a, b)=(1, x)`: the key `key` (values as text) of `index`.
fn key_text(index: &IndexEntry, key: &[String]) -> String {
    format!("({})=({})", index.keys.join(", "), key.join(", "))
}

/// A key of `index` that two rows of the files `written` have, or a row
/// of `written` and one of `committed`.
async fn repeated_key(
    table: &dyn TableProvider,
    written: &[PathBuf],
    committed: &[PathBuf],
    index: &IndexEntry,
) -> Result<Option<Vec<String>>> {
    if written.is_empty() {
        return Ok(None);
    }
    let listing = table.downcast_ref::<ListingTable>().ok_or_else(|| {
        Error::Unsupported(format!(
            "the keys of index \"{}\" are not on a table of files",
            index.name
        ))
    })?;
    let ctx = SessionContext::new();
    let keys: Vec<Expr> = index
        .keys
        .iter()
        .map(|k| Expr::Column(Column::new_unqualified(k)))
        .collect();
    let not_null = keys
        .iter()
        .map(|k| k.clone().is_not_null())
        .reduce(and)
        .unwrap_or(lit(true));
    let new = ctx
        .read_table(files_of(listing, written)?)?
        .select(keys.clone())?
        .filter(not_null)?;
    // Equal keys among the rows written.
    let repeated = new
        .clone()
        .aggregate(keys.clone(), vec![count(lit(1)).alias("__quiver_rows")])?
        .filter(col("__quiver_rows").gt(lit(1)))?;
    if let Some(key) = first_key(repeated, keys.len()).await? {
        return Ok(Some(key));
    }
    if committed.is_empty() {
        return Ok(None);
    }
    let theirs: Vec<String> = (0..keys.len()).map(|i| format!("{COMMITTED}{i}")).collect();
    let old = ctx.read_table(files_of(listing, committed)?)?.select(
        keys.iter()
            .zip(&theirs)
            .map(|(key, name)| key.clone().alias(name))
            .collect::<Vec<_>>(),
    )?;
    let on: Vec<Expr> = keys
        .iter()
        .zip(&theirs)
        .map(|(key, name)| key.clone().eq(Expr::Column(Column::new_unqualified(name))))
        .collect();
    let clashing = new.join_on(old, JoinType::LeftSemi, on)?;
    first_key(clashing, keys.len()).await
}

/// The first `width` columns of the first row of `rows`, as text.
async fn first_key(rows: DataFrame, width: usize) -> Result<Option<Vec<String>>> {
    let batches = rows.limit(0, Some(1))?.collect().await?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let key = batch.columns()[..width]
        .iter()
        .map(|column| array_value_to_string(column, 0))
        .collect::<std::result::Result<_, _>>()
        .map_err(datafusion::error::DataFusionError::from)?;
    Ok(Some(key))
}

/// The table `like` reading the files `files` only.
pub(crate) fn files_of(like: &ListingTable, files: &[PathBuf]) -> Result<Arc<dyn TableProvider>> {
    let urls = files
        .iter()
        .map(|file| ListingTableUrl::parse(file.display().to_string()))
        .collect::<datafusion::error::Result<_>>()?;
    listing_like(like, urls)
}

/// Files of `dir`, but for those named in `except`.
pub(crate) fn files_but(dir: &Path, except: &[String]) -> Result<Vec<PathBuf>> {
    let mut files = parquet_files(dir)?;
    files.retain(|file| {
        file.file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|name| !except.iter().any(|e| e == name))
    });
    Ok(files)
}
