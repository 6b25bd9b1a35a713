//! Listings of managed tables' directories, kept while a directory stays
//! as it was.
//!
//! DataFusion lists a table's directory each time it plans a scan of it
//! (and Quiver's planner lists it once more to decide where a query runs),
//! and listing a local directory runs on a blocking thread: for a point
//! lookup of a small table, the listings cost about as much as the read.
//! DataFusion's own listing cache cannot be used: it learns of changes only
//! from `INSERT`s it plans, and forgets the listing before the new files
//! are written, so a listing taken meanwhile would be kept and hide them.
//!
//! [`LocalListings`] is the local file system as DataFusion reads it, with
//! one difference: the listing of a managed table's directory is kept with
//! the directory's modification and change times, and handed out again
//! while a `stat` of the directory shows the same times. Every change to a
//! managed table adds, renames or removes a file in its directory (writes
//! go to a temporary name and are renamed into place; compaction renames
//! its merged file in and removes the files it replaces), and each of those
//! sets the directory's times. A listing is kept only if the times it was
//! taken at are older than [`SETTLED`]: the kernel stamps files with a
//! coarse clock, so a change made within the same clock tick as the one
//! before it could leave the times as they were; a change made after a
//! listing started is stamped later than `SETTLED` before it.

use std::collections::HashMap;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::object_store::local::LocalFileSystem;
use datafusion::object_store::path::Path;
use datafusion::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

/// How old a directory's times must be for its listing to be kept.
pub const SETTLED: Duration = Duration::from_secs(1);

/// The most directories whose listings are kept; past it, all are
/// forgotten and kept anew.
const MAX_KEPT: usize = 4096;

/// The local file system, with the listings of managed tables' directories
/// kept (see the module docs).
#[derive(Debug)]
pub struct LocalListings {
    inner: Arc<LocalFileSystem>,
    /// The directory the managed tables' directories are in.
    tables_dir: PathBuf,
    kept: Arc<Listings>,
}

/// The listings kept, by directory.
#[derive(Debug, Default)]
struct Listings(Mutex<HashMap<PathBuf, Kept>>);

/// A directory's listing, and the times it was taken at.
#[derive(Debug)]
struct Kept {
    times: Times,
    files: Vec<ObjectMeta>,
}

/// A directory's modification and change times, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Times {
    modified: i128,
    changed: i128,
}

impl Times {
    fn of(dir: &FsPath) -> Option<Self> {
        let meta = std::fs::metadata(dir).ok()?;
        let nanos = |secs: i64, nsecs: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsecs);
        Some(Self {
            modified: nanos(meta.mtime(), meta.mtime_nsec()),
            changed: nanos(meta.ctime(), meta.ctime_nsec()),
        })
    }

    /// Both times are older than [`SETTLED`] before `now`.
    fn settled(&self, now: SystemTime) -> bool {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
        let before = now - i128::try_from(SETTLED.as_nanos()).unwrap_or(0);
        self.modified < before && self.changed < before
    }
}

impl LocalListings {
    /// The local file system, keeping the listings of the managed tables'
    /// directories of `data_dir` (which must be canonical, as the tables'
    /// URLs are).
    pub fn new(data_dir: &FsPath) -> Self {
        Self {
            inner: Arc::new(LocalFileSystem::new()),
            tables_dir: crate::catalog::tables_dir(data_dir),
            kept: Arc::default(),
        }
    }

    /// The directory `prefix` names, if it is a managed table's.
    fn table_dir(&self, prefix: Option<&Path>) -> Option<PathBuf> {
        let dir = self.inner.path_to_filesystem(prefix?).ok()?;
        (dir.parent() == Some(self.tables_dir.as_path())).then_some(dir)
    }
}

impl Listings {
    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Kept>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kept listing of `dir`, if its times are still those it was
    /// taken at; `times` are its times now.
    fn lookup(&self, dir: &FsPath, times: Option<Times>) -> Option<Vec<ObjectMeta>> {
        let mut kept = self.kept();
        match (kept.get(dir), times) {
            (Some(listing), Some(times)) if listing.times == times => Some(listing.files.clone()),
            (Some(_), _) => {
                kept.remove(dir);
                None
            }
            (None, _) => None,
        }
    }

    fn keep(&self, dir: PathBuf, times: Times, files: Vec<ObjectMeta>) {
        let mut kept = self.kept();
        if kept.len() >= MAX_KEPT {
            kept.clear();
        }
        kept.insert(dir, Kept { times, files });
    }
}

impl std::fmt::Display for LocalListings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalListings({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for LocalListings {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let Some(dir) = self.table_dir(prefix) else {
            return self.inner.list(prefix);
        };
        // The clock is read before the directory's times: a change after
        // this point is stamped later than `SETTLED` before it.
        let now = SystemTime::now();
        let times = Times::of(&dir);
        if let Some(files) = self.kept.lookup(&dir, times) {
            return stream::iter(files.into_iter().map(Ok)).boxed();
        }
        let listing = self.inner.list(prefix);
        let Some(times) = times.filter(|t| t.settled(now)) else {
            return listing;
        };
        let kept = self.kept.clone();
        let prefix = prefix.cloned().unwrap_or_default();
        stream::once(async move {
            let files: Vec<ObjectMeta> = listing.try_collect().await?;
            // A file in a subdirectory would change without the times.
            let flat = files.iter().all(|f| {
                f.location
                    .prefix_match(&prefix)
                    .is_some_and(|p| p.count() == 1)
            });
            if flat {
                kept.keep(dir, times, files.clone());
            }
            Ok::<_, datafusion::object_store::Error>(stream::iter(files.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;

    /// Sets `path`'s modification time `ago` in the past (its change time
    /// becomes now, so only the modification time is aged).
    fn age(path: &FsPath, ago: Duration) {
        let then = SystemTime::now() - ago;
        File::open(path)
            .and_then(|f| f.set_modified(then))
            .expect("set the time");
    }

    async fn names(store: &LocalListings, dir: &FsPath) -> Vec<String> {
        let prefix = Path::from_filesystem_path(dir).expect("a path");
        let mut names: Vec<String> = store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location.filename().unwrap_or_default().to_string())
            .try_collect()
            .await
            .expect("listed");
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_kept_listing_is_never_handed_out_after_the_directory_changed() {
        let data = tempfile::tempdir().expect("a directory");
        let data_dir = data.path().canonicalize().expect("canonical");
        let table = crate::catalog::tables_dir(&data_dir).join("t1");
        std::fs::create_dir_all(&table).expect("created");
        std::fs::write(table.join("a.parquet"), b"a").expect("written");
        let store = LocalListings::new(&data_dir);

        // Changed just now: listed each time, never kept.
        assert_eq!(names(&store, &table).await, ["a.parquet"]);
        assert!(
            store.kept.kept().is_empty(),
            "an unsettled listing was kept"
        );

        // Settled: kept, and handed out while the directory stays as it is.
        // (Its change time cannot be aged, so the test keeps it by hand.)
        let times = Times::of(&table).expect("times");
        store.kept.keep(table.clone(), times, vec![]);
        assert!(names(&store, &table).await.is_empty(), "the kept listing");

        // A file added or removed changes the directory's times: listed again.
        std::fs::write(table.join("b.parquet"), b"b").expect("written");
        assert_eq!(names(&store, &table).await, ["a.parquet", "b.parquet"]);
        store
            .kept
            .keep(table.clone(), Times::of(&table).expect("times"), vec![]);
        std::fs::remove_file(table.join("a.parquet")).expect("removed");
        assert_eq!(names(&store, &table).await, ["b.parquet"]);
    }

    #[tokio::test]
    async fn only_settled_managed_table_directories_are_kept() {
        let data = tempfile::tempdir().expect("a directory");
        let data_dir = data.path().canonicalize().expect("canonical");
        let tables = crate::catalog::tables_dir(&data_dir);
        let table = tables.join("t1");
        let other = data_dir.join("import");
        for dir in [&table, &other] {
            std::fs::create_dir_all(dir).expect("created");
            std::fs::write(dir.join("a.parquet"), b"a").expect("written");
        }
        let store = LocalListings::new(&data_dir);
        let now = SystemTime::now();
        let old = Times {
            modified: 0,
            changed: 0,
        };
        assert!(old.settled(now));
        let fresh = Times::of(&table).expect("times");
        assert!(
            !fresh.settled(now),
            "a directory changed now is not settled"
        );

        age(&table, Duration::from_secs(5));
        assert_eq!(names(&store, &other).await, ["a.parquet"]);
        assert_eq!(names(&store, &table).await, ["a.parquet"]);
        // Neither is kept: the other directory is not a table's, and the
        // table directory's change time is now.
        assert!(store.kept.kept().is_empty());
        assert!(
            store
                .table_dir(Path::from_filesystem_path(&other).ok().as_ref())
                .is_none()
        );
        assert_eq!(
            store.table_dir(Path::from_filesystem_path(&table).ok().as_ref()),
            Some(table.clone())
        );
    }
}
