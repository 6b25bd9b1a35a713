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
//!
//! A `FOREIGN KEY` is checked the same way, at the same two times, with an
//! anti join: the rows a block wrote to the referencing table must find
//! their key among the referenced table's rows, and once a block rewrote
//! the referenced table (`UPDATE`, `DELETE`), every row of each table
//! referencing it must still find its key there. At `COMMIT` both tables'
//! key locks are held, so a block that deletes a referenced row and one
//! that adds a row referencing it cannot both commit. A key `INITIALLY
//! DEFERRED` is checked at `COMMIT` only.

use std::sync::Arc;

use datafusion::arrow::util::display::array_value_to_string;
use datafusion::catalog::TableProvider;
use datafusion::common::{Column, JoinType};
use datafusion::datasource::listing::ListingTable;
use datafusion::functions_aggregate::count::count;
use datafusion::logical_expr::{Expr, and, cast, col, lit};
use datafusion::prelude::{DataFrame, SessionContext};

use crate::catalog::Loaded;
use crate::changes::Changes;
use crate::compaction::{KeyLock, Lease, TableFiles};
use crate::files::{Dir, TableFile};
use crate::rewrite::parquet_files;
use crate::session_catalog::{SessionCatalog, Target, provider_of};
use crate::staging::WrittenTable;
use crate::table::{listing_like, listing_urls};
use crate::{Error, ForeignKey, IndexEntry, QualifiedName, Result, TableEntry};

/// The name a committed row's key column has beside a staged row's.
const COMMITTED: &str = "__quiver_committed";

impl SessionCatalog {
    /// Whether the stored table `target` has a unique key or a foreign
    /// key, or a foreign key references it, as the session sees it: writes
    /// to it must be staged and checked (see the module's documentation).
    pub fn has_constraints(&self, target: &Target) -> bool {
        let Target::Stored(name) = target else {
            return false;
        };
        let Some(table) = self.stored(name) else {
            return false;
        };
        table.entry.indexes.iter().any(IndexEntry::is_unique)
            || !table.entry.foreign_keys.is_empty()
            || self.is_referenced(name)
    }

    /// Whether a foreign key of a stored table references the table `name`.
    pub fn is_referenced(&self, name: &QualifiedName) -> bool {
        !self.referencing(name).is_empty()
    }

    /// The foreign keys that reference the table `name`, with their tables,
    /// as the session sees them.
    pub fn referencing(&self, name: &QualifiedName) -> Vec<(TableEntry, ForeignKey)> {
        let mut found = Vec::new();
        for entry in self.entries() {
            for key in &entry.foreign_keys {
                if key.references(name) {
                    found.push((entry.clone(), key.clone()));
                }
            }
        }
        found
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

    /// Checks the constraints of the stored table `target` after a
    /// statement of the open transaction block wrote to it: the rows the
    /// block wrote must not repeat a unique key, among themselves or of the
    /// table's rows the block sees, and must find the keys they reference;
    /// once the block rewrote the table, the rows referencing it must find
    /// theirs. Fails with [`Error::UniqueViolation`] or
    /// [`Error::ForeignKeyViolation`]. Keys `INITIALLY DEFERRED` wait for
    /// `COMMIT`.
    pub async fn check_keys(&self, target: &Target) -> Result<()> {
        let Target::Stored(name) = target else {
            return Ok(());
        };
        let Some(table) = self.stored(name) else {
            return Ok(());
        };
        let Some(dir) = self.shared().dir_of(&table) else {
            return Ok(());
        };
        // A table the block created is no one else's: all its rows are new.
        let created = self.created_in_block(&table);
        let (written, committed) = match created {
            true => (parquet_files(&dir)?, Vec::new()),
            false => match self.staging().seen(&dir)? {
                Some(seen) => seen,
                None => return Ok(()),
            },
        };
        let _lease = lease_of(&table).await;
        let provider = provider_of(&table)?;
        let ctx = self.shared().query_context();
        for index in table.entry.indexes.iter().filter(|i| i.is_unique()) {
            check_unique(&ctx, provider.as_ref(), &written, &committed, index).await?;
        }
        for key in table.entry.foreign_keys.iter().filter(|k| !k.deferred) {
            let Some(referenced) = self.stored(&key.referenced_table()) else {
                continue;
            };
            let _lease = lease_of(&referenced).await;
            let theirs = self.visible_files(&referenced)?;
            let found = missing_key(&ctx, &table, &written, key, &referenced, &theirs).await?;
            if let Some(missing) = found {
                return Err(not_present(&table, key, &missing));
            }
        }
        if created || self.staging().rewrote(&dir) {
            let rows = self.visible_files(&table)?;
            for (child, key) in self.referencing(name) {
                let Some(child) = self.stored(&child.qualified()).filter(|_| !key.deferred) else {
                    continue;
                };
                let _lease = lease_of(&child).await;
                let theirs = self.visible_files(&child)?;
                if let Some(missing) =
                    missing_key(&ctx, &child, &theirs, &key, &table, &rows).await?
                {
                    return Err(still_referenced(&table, &child, &key, &missing));
                }
            }
        }
        Ok(())
    }

    /// The files of the stored managed table `table` the session sees:
    /// with the open block's writes.
    pub(crate) fn visible_files(&self, table: &Loaded) -> Result<Vec<TableFile>> {
        let Some(dir) = self.shared().dir_of(table) else {
            return Ok(Vec::new());
        };
        if !self.created_in_block(table)
            && let Some((mut staged, committed)) = self.staging().seen(&dir)?
        {
            staged.extend(committed);
            return Ok(staged);
        }
        parquet_files(&dir)
    }

    /// Before `COMMIT`: checks the rows the open block wrote against the
    /// constraints of their tables, with the rows committed meanwhile (see
    /// the module's documentation); `changes` are the block's DDL, `written`
    /// the tables it wrote to. Returns
    /// the key locks of the tables checked, to hold until the block's
    /// files are in place.
    pub(crate) async fn check_at_commit(
        &self,
        changes: &Changes,
        written: &[WrittenTable],
    ) -> Result<Vec<KeyLock>> {
        if written.is_empty() {
            return Ok(Vec::new());
        }
        let ctx = self.shared().query_context();
        let relations = self.relations(changes);
        let by_dir = |dir: &Dir| {
            relations
                .iter()
                .find(|t| self.shared().dir_of(t).as_ref() == Some(dir))
        };
        let by_name = |name: &QualifiedName| {
            relations
                .iter()
                .find(|t| t.entry.schema == name.schema && t.entry.name == name.name)
        };
        let referencing = |name: &QualifiedName| -> Vec<(&Loaded, &ForeignKey)> {
            relations
                .iter()
                .flat_map(|t| t.entry.foreign_keys.iter().map(move |k| (t, k)))
                .filter(|(_, k)| k.references(name))
                .collect()
        };
        // What to check, and the tables whose keys to lock meanwhile.
        enum Check<'a> {
            Unique(&'a Loaded, &'a IndexEntry, &'a WrittenTable),
            References(&'a Loaded, &'a ForeignKey, &'a WrittenTable, &'a Loaded),
            Referenced(&'a Loaded, &'a Loaded, &'a ForeignKey),
        }
        let mut checks = Vec::new();
        let mut locked: Vec<&Loaded> = Vec::new();
        for w in written {
            let Some(table) = by_dir(&w.table) else {
                continue;
            };
            if !w.staged.is_empty() {
                for index in table.entry.indexes.iter().filter(|i| i.is_unique()) {
                    checks.push(Check::Unique(table, index, w));
                    locked.push(table);
                }
                for key in &table.entry.foreign_keys {
                    if let Some(referenced) = by_name(&key.referenced_table()) {
                        checks.push(Check::References(table, key, w, referenced));
                        locked.extend([table, referenced]);
                    }
                }
            }
            if w.replaced.is_some() {
                for (child, key) in referencing(&table.entry.qualified()) {
                    checks.push(Check::Referenced(table, child, key));
                    locked.extend([table, child]);
                }
            }
        }
        // Taken in one order, so two commits never wait for each other.
        let mut files: Vec<(String, Arc<TableFiles>)> = locked
            .iter()
            .filter_map(|t| {
                let files = t.files.as_ref()?.1.clone();
                Some((self.shared().dir_of(t)?.to_string(), files))
            })
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        files.dedup_by(|a, b| a.0 == b.0);
        let mut locks = Vec::new();
        let mut leases = Vec::new();
        for (_, files) in &files {
            locks.push(files.key_lock().await);
            leases.push(files.lease().await);
        }
        // The files each table will have once the block's are in place.
        let at_commit = |table: &Loaded| -> Result<Vec<TableFile>> {
            let Some(dir) = self.shared().dir_of(table) else {
                return Ok(Vec::new());
            };
            match written.iter().find(|w| w.table == dir) {
                Some(w) => {
                    let mut files = files_but(&dir, w.replaced.as_deref().unwrap_or_default())?;
                    files.extend(w.staged.iter().cloned());
                    Ok(files)
                }
                None => parquet_files(&dir),
            }
        };
        for check in checks {
            match check {
                Check::Unique(table, index, w) => {
                    let committed = files_but(&w.table, w.replaced.as_deref().unwrap_or_default())?;
                    check_unique(
                        &ctx,
                        provider_of(table)?.as_ref(),
                        &w.staged,
                        &committed,
                        index,
                    )
                    .await?;
                }
                Check::References(table, key, w, referenced) => {
                    let theirs = at_commit(referenced)?;
                    if let Some(missing) =
                        missing_key(&ctx, table, &w.staged, key, referenced, &theirs).await?
                    {
                        return Err(not_present(table, key, &missing));
                    }
                }
                Check::Referenced(table, child, key) => {
                    let (rows, theirs) = (at_commit(table)?, at_commit(child)?);
                    if let Some(missing) =
                        missing_key(&ctx, child, &theirs, key, table, &rows).await?
                    {
                        return Err(still_referenced(table, child, key, &missing));
                    }
                }
            }
        }
        drop(leases);
        Ok(locks)
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
        let ctx = self.shared().query_context();
        match repeated_key(&ctx, provider_of(table)?.as_ref(), &rows, &[], index).await? {
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
    ctx: &SessionContext,
    table: &dyn TableProvider,
    written: &[TableFile],
    committed: &[TableFile],
    index: &IndexEntry,
) -> Result<()> {
    match repeated_key(ctx, table, written, committed, index).await? {
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
    ctx: &SessionContext,
    table: &dyn TableProvider,
    written: &[TableFile],
    committed: &[TableFile],
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
    let (new, keys) = whole_keys(ctx, listing, written, &index.keys)?;
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

/// A key of the foreign key `key` of the table `table` that a row of its
/// files `rows` has (all of its columns non-NULL) and no row of the files
/// `theirs` of the table `referenced` has.
async fn missing_key(
    ctx: &SessionContext,
    table: &Loaded,
    rows: &[TableFile],
    key: &ForeignKey,
    referenced: &Loaded,
    theirs: &[TableFile],
) -> Result<Option<Vec<String>>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let (mine, other) = (provider_of(table)?, provider_of(referenced)?);
    let (referencing, columns) = whole_keys(ctx, files_table(&mine, table)?, rows, &key.columns)?;
    if theirs.is_empty() {
        return first_key(referencing, columns.len()).await;
    }
    // Their key columns, named apart and of the referencing columns' types.
    let schema = mine.schema();
    let names: Vec<String> = (0..columns.len())
        .map(|i| format!("{COMMITTED}{i}"))
        .collect();
    let keys = ctx
        .read_table(files_of(files_table(&other, referenced)?, theirs)?)?
        .select(
            key.referenced
                .iter()
                .zip(&key.columns)
                .zip(&names)
                .map(|((r, c), name)| {
                    let column = Expr::Column(Column::new_unqualified(r));
                    match schema.field_with_name(c) {
                        Ok(field) => cast(column, field.data_type().clone()).alias(name),
                        Err(_) => column.alias(name),
                    }
                })
                .collect::<Vec<_>>(),
        )?;
    let on: Vec<Expr> = columns
        .iter()
        .zip(&names)
        .map(|(c, name)| c.clone().eq(Expr::Column(Column::new_unqualified(name))))
        .collect();
    let missing = referencing.join_on(keys, JoinType::LeftAnti, on)?;
    first_key(missing, columns.len()).await
}

/// The rows of the files `files` of the table `listing` whose columns
/// `names` (a key) are all non-NULL, those columns only; and the columns.
fn whole_keys(
    ctx: &SessionContext,
    listing: &ListingTable,
    files: &[TableFile],
    names: &[String],
) -> Result<(DataFrame, Vec<Expr>)> {
    let columns: Vec<Expr> = names
        .iter()
        .map(|name| Expr::Column(Column::new_unqualified(name)))
        .collect();
    let not_null = columns
        .iter()
        .map(|c| c.clone().is_not_null())
        .reduce(and)
        .unwrap_or(lit(true));
    let rows = ctx
        .read_table(files_of(listing, files)?)?
        .select(columns.clone())?
        .filter(not_null)?;
    Ok((rows, columns))
}

/// `provider`, the stored table `table`'s, as the listing table of files
/// it is.
fn files_table<'a>(
    provider: &'a Arc<dyn TableProvider>,
    table: &Loaded,
) -> Result<&'a ListingTable> {
    provider.downcast_ref::<ListingTable>().ok_or_else(|| {
        Error::Unsupported(format!(
            "the rows of \"{}\" are not in files: its keys cannot be checked",
            table.entry.name
        ))
    })
}

/// Fails with [`Error::ForeignKeyViolation`] if a row of the files `rows`
/// of `table` references a key of `key` that no row of the files `theirs`
/// of the table it references has.
pub(crate) async fn check_references(
    ctx: &SessionContext,
    table: &Loaded,
    rows: &[TableFile],
    key: &ForeignKey,
    referenced: &Loaded,
    theirs: &[TableFile],
) -> Result<()> {
    match missing_key(ctx, table, rows, key, referenced, theirs).await? {
        Some(missing) => Err(not_present(table, key, &missing)),
        None => Ok(()),
    }
}

/// A row of `table` references a key of `key` no row has.
fn not_present(table: &Loaded, key: &ForeignKey, missing: &[String]) -> Error {
    Error::ForeignKeyViolation {
        message: format!(
            "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
            table.entry.name, key.name
        ),
        detail: format!(
            "Key ({})=({}) is not present in table \"{}\".",
            key.columns.join(", "),
            missing.join(", "),
            key.table
        ),
    }
}

/// A row of `child` references a key of `table` that a change took away.
fn still_referenced(table: &Loaded, child: &Loaded, key: &ForeignKey, missing: &[String]) -> Error {
    Error::ForeignKeyViolation {
        message: format!(
            "update or delete on table \"{}\" violates foreign key constraint \"{}\" on table \"{}\"",
            table.entry.name, key.name, child.entry.name
        ),
        detail: format!(
            "Key ({})=({}) is still referenced from table \"{}\".",
            key.referenced.join(", "),
            missing.join(", "),
            child.entry.name
        ),
    }
}

/// A lease on the files of the stored table `table` (none for one whose
/// files are not the catalog's).
async fn lease_of(table: &Loaded) -> Option<Lease> {
    match &table.files {
        Some((_, files)) => Some(files.lease().await),
        None => None,
    }
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
pub(crate) fn files_of(like: &ListingTable, files: &[TableFile]) -> Result<Arc<dyn TableProvider>> {
    let urls = files.iter().map(TableFile::url).collect::<Result<_>>()?;
    listing_like(like, urls)
}

/// Files of `dir`, but for those named in `except`.
pub(crate) fn files_but(dir: &Dir, except: &[String]) -> Result<Vec<TableFile>> {
    let mut files = parquet_files(dir)?;
    files.retain(|file| !except.contains(&file.name));
    Ok(files)
}
