//! [`Directory`]: a folder of objects (a prefix in a store, or a local
//! directory) that code which cannot `await` reads and writes.

use std::future::Future;
use std::ops::Range;
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreRegistry;
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};
use url::Url;

use crate::ObjectStores;

/// The URL of a place given on a command line or in a plan: a URL with a
/// scheme (`s3://bucket/prefix`, `file:///srv/quiver`), or an absolute
/// local path. Always ends with `/` (it names a directory).
pub fn location_url(location: &str) -> Result<Url> {
    let invalid = |why: &str| DataFusionError::Configuration(format!("{location}: {why}"));
    let mut url = if location.contains("://") {
        Url::parse(location).map_err(|e| invalid(&e.to_string()))?
    } else {
        Url::from_directory_path(location)
            .map_err(|()| invalid("neither a URL nor an absolute path"))?
    };
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    Ok(url)
}

/// Runs object-store calls for code that cannot `await` (plan decoding,
/// functions' first calls, a thread writing counters) and waits for them.
///
/// The calls run on a small runtime of this process's own, never on the
/// caller's: the caller may be a runtime's worker (which waiting would
/// otherwise stall: on a multi-threaded runtime it is marked as blocking, so
/// its other tasks move on) or no runtime at all, and connections an object
/// store keeps stay with the one runtime that made them.
pub fn block_on<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    static IO: LazyLock<Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("quiver-storage")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the object-store runtime: {e}"))
    });
    let (done, result) = std::sync::mpsc::sync_channel(1);
    IO.spawn(async move {
        let _ = done.send(work.await);
    });
    let wait = move || result.recv();
    let received = match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    };
    // The sender is dropped unsent only if the work panicked.
    received.unwrap_or_else(|_| panic!("an object-store call panicked"))
}

/// One object of a [`Directory`].
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its name in the directory.
    pub name: String,
    pub last_modified: DateTime<Utc>,
    pub size: u64,
}

/// A folder of objects: a prefix in an object store, or a directory of the
/// local file system (`file://`). Every call blocks (see [`block_on`]).
///
/// An object written here appears whole: a PUT to an object store is
/// atomic, and the local file system's store writes aside and renames.
#[derive(Clone)]
pub struct Directory {
    url: Url,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.url.as_str())
    }
}

impl PartialEq for Directory {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
    }
}

impl Eq for Directory {}

impl std::hash::Hash for Directory {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.url.hash(state);
    }
}

impl Directory {
    /// The directory at `location` (see [`location_url`]), in its store from
    /// `stores`. Nothing is created: a directory of an object store exists
    /// once an object is in it, and a local one is created by the first
    /// write.
    pub fn open(location: &str, stores: &ObjectStores) -> Result<Self> {
        let url = location_url(location)?;
        let store = stores.get_store(&url)?;
        let prefix = Path::from_url_path(url.path())?;
        Ok(Self { url, store, prefix })
    }

    /// The directory `url` (ending with `/`) of `store`, a store that no
    /// registry holds (an in-memory one, say).
    pub fn in_store(url: Url, store: Arc<dyn ObjectStore>) -> Result<Self> {
        let prefix = Path::from_url_path(url.path())?;
        Ok(Self { url, store, prefix })
    }

    /// Where it is, as a URL ending with `/`.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The local path, for a `file://` directory.
    pub fn local_path(&self) -> Option<std::path::PathBuf> {
        self.url.to_file_path().ok()
    }

    /// The object `name`: a file name, or a `/`-separated path below this
    /// directory.
    fn object(&self, name: &str) -> Path {
        name.split('/')
            .fold(self.prefix.clone(), |path, part| path.join(part))
    }

    /// The directory `name` below this one (nothing is created).
    pub fn child(&self, name: &str) -> Self {
        let mut url = self.url.clone();
        url.set_path(&format!("{}{name}/", self.url.path()));
        Self {
            url,
            store: self.store.clone(),
            prefix: self.object(name),
        }
    }

    /// Writes the object `name`, replacing any.
    pub fn put(&self, name: &str, bytes: Vec<u8>) -> object_store::Result<()> {
        let (store, path) = (self.store.clone(), self.object(name));
        block_on(async move { store.put(&path, PutPayload::from(bytes)).await.map(|_| ()) })
    }

    /// The object `name`, or `None` if there is none.
    pub fn get(&self, name: &str) -> object_store::Result<Option<Bytes>> {
        let (store, path) = (self.store.clone(), self.object(name));
        block_on(async move {
            match store.get(&path).await {
                Ok(found) => found.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    /// Whether the object `name` is here.
    pub fn contains(&self, name: &str) -> object_store::Result<bool> {
        let (store, path) = (self.store.clone(), self.object(name));
        block_on(async move {
            match store.head(&path).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    /// The objects directly in this directory (not in folders below it).
    pub fn list(&self) -> object_store::Result<Vec<Entry>> {
        let (store, prefix) = (self.store.clone(), self.prefix.clone());
        block_on(async move {
            let listed = match store.list_with_delimiter(Some(&prefix)).await {
                Ok(listed) => listed,
                // A local directory nothing was written to yet.
                Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            Ok(listed
                .objects
                .into_iter()
                .filter_map(|meta| {
                    Some(Entry {
                        name: meta.location.filename()?.to_string(),
                        last_modified: meta.last_modified,
                        size: meta.size,
                    })
                })
                .collect())
        })
    }

    /// The names of the directories directly below this one (prefixes of
    /// objects in an object store).
    pub fn dirs(&self) -> object_store::Result<Vec<String>> {
        let (store, prefix) = (self.store.clone(), self.prefix.clone());
        block_on(async move {
            match store.list_with_delimiter(Some(&prefix)).await {
                Ok(listed) => Ok(listed
                    .common_prefixes
                    .iter()
                    .filter_map(|p| Some(p.filename()?.to_string()))
                    .collect()),
                Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        })
    }

    /// The size of the object `name`, or `None` if there is none.
    pub fn size(&self, name: &str) -> object_store::Result<Option<u64>> {
        let (store, path) = (self.store.clone(), self.object(name));
        block_on(async move {
            match store.head(&path).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    /// The bytes `range` of the object `name`.
    pub fn get_range(&self, name: &str, range: Range<u64>) -> object_store::Result<Bytes> {
        let (store, path) = (self.store.clone(), self.object(name));
        block_on(async move { store.get_range(&path, range).await })
    }

    /// Moves the object `name` to `to_name` in the directory `to` (of the
    /// same store), replacing any there. An object store copies, then
    /// deletes the original: a crash in between leaves both.
    pub fn rename(&self, name: &str, to: &Directory, to_name: &str) -> object_store::Result<()> {
        let (store, from, to) = (self.store.clone(), self.object(name), to.object(to_name));
        block_on(async move { store.rename(&from, &to).await })
    }

    /// Removes every object in this directory and the directories below it.
    pub fn remove_all(&self) -> object_store::Result<()> {
        let (store, prefix) = (self.store.clone(), self.prefix.clone());
        block_on(async move {
            let objects = store
                .list(Some(&prefix))
                .map_ok(|meta| meta.location)
                .boxed();
            store
                .delete_stream(objects)
                .try_for_each(|_| futures::future::ready(Ok(())))
                .await
        })
    }

    /// Copies the local file `from` to the object `name` as a stream (in
    /// parts, for a large file), showing every chunk to `seen` on the way;
    /// returns its size. The object appears only once the whole file is
    /// there.
    pub async fn upload(
        &self,
        name: &str,
        from: &std::path::Path,
        mut seen: impl FnMut(&[u8]),
    ) -> std::io::Result<u64> {
        let mut file = tokio::fs::File::open(from).await?;
        let mut writer = BufWriter::new(self.store.clone(), self.object(name));
        let mut chunk = vec![0; 1 << 20];
        let mut size = 0;
        let copied: std::io::Result<()> = async {
            loop {
                let n = file.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
                seen(&chunk[..n]);
                writer.write_all(&chunk[..n]).await?;
                size += n as u64;
            }
        }
        .await;
        if let Err(e) = copied {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.shutdown().await?;
        Ok(size)
    }

    /// Copies the object `name` to the local file `to` as a stream, showing
    /// every chunk to `seen` on the way; returns its size.
    pub async fn download(
        &self,
        name: &str,
        to: &std::path::Path,
        mut seen: impl FnMut(&[u8]),
    ) -> object_store::Result<u64> {
        let found = self.store.get(&self.object(name)).await?;
        let mut stream = found.into_stream();
        let io = |source: std::io::Error| object_store::Error::Generic {
            store: "local file",
            source: Box::new(source),
        };
        let mut file = tokio::fs::File::create(to).await.map_err(io)?;
        let mut size = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            seen(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
            size += chunk.len() as u64;
        }
        file.sync_all().await.map_err(io)?;
        Ok(size)
    }

    /// Removes the object `name`; one already gone is fine.
    pub fn delete(&self, name: &str) -> object_store::Result<()> {
        let (store, path) = (self.store.clone(), self.object(name));
        block_on(async move {
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_urls_of_directories() {
        assert_eq!(
            location_url("/srv/quiver/modules").unwrap().as_str(),
            "file:///srv/quiver/modules/"
        );
        assert_eq!(
            location_url("s3://bucket/quiver").unwrap().as_str(),
            "s3://bucket/quiver/"
        );
        assert_eq!(
            location_url("s3://bucket").unwrap().as_str(),
            "s3://bucket/"
        );
        assert!(location_url("relative/dir").is_err());
    }

    fn local() -> (tempfile::TempDir, Directory) {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join("sub");
        let directory = Directory::open(location.to_str().unwrap(), &ObjectStores::new()).unwrap();
        (dir, directory)
    }

    #[test]
    fn a_local_directory_is_written_listed_and_emptied() {
        let (_dir, directory) = local();
        assert!(directory.list().unwrap().is_empty());
        assert_eq!(directory.get("a").unwrap(), None);
        directory.put("a", b"one".to_vec()).unwrap();
        directory.put("b", b"two".to_vec()).unwrap();
        assert!(directory.contains("a").unwrap());
        assert_eq!(directory.get("a").unwrap().as_deref(), Some(&b"one"[..]));
        let mut names: Vec<_> = directory
            .list()
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        directory.delete("a").unwrap();
        directory.delete("a").unwrap();
        assert!(!directory.contains("a").unwrap());

        // Names with slashes are below it; `list` shows its own objects.
        directory.put("c/d", b"three".to_vec()).unwrap();
        let local = directory.local_path().unwrap();
        assert_eq!(std::fs::read(local.join("c").join("d")).unwrap(), b"three");
        let names: Vec<_> = directory
            .list()
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["b"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_from_a_runtime_worker_do_not_stall_it() {
        let (_dir, directory) = local();
        directory.put("a", b"one".to_vec()).unwrap();
        assert!(directory.contains("a").unwrap());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn calls_from_a_single_threaded_runtime_work_too() {
        let (_dir, directory) = local();
        directory.put("a", b"one".to_vec()).unwrap();
        assert_eq!(directory.list().unwrap().len(), 1);
    }
}
