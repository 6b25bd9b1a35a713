//! Where managed tables' files are: [`Dir`], a directory of the local file
//! system or a folder of an object store (`--data-dir s3://…`).
//!
//! Everything the catalog does to table files — list them, move written
//! files into place, record and finish a switch, read footers, merge — goes
//! through a [`Dir`], so the same code serves both. A local directory is
//! used exactly as a file system allows: renames are atomic and files and
//! directories are synced where durability needs it. An object store has
//! neither renames nor directories: a "rename" copies and then deletes (a
//! crash in between leaves both copies, which the recorded switch of
//! [`crate::compaction`] accounts for), a directory exists once an object
//! is in it, and an object appears whole once written.
//!
//! Calls block: from a runtime worker they go through
//! [`quiver_storage::block_on`] (the caller is marked as blocking), as the
//! catalog's file work did when it was all local.

use std::collections::HashSet;
use std::fs::{DirEntry, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use datafusion::parquet::file::reader::{ChunkReader, Length};
use quiver_storage::Directory;
use url::Url;

use crate::{Error, Result};

/// A directory of table files (see the module docs).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum Dir {
    Local(PathBuf),
    Store(Directory),
}

impl std::fmt::Debug for Dir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for Dir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dir::Local(path) => write!(f, "{}", path.display()),
            Dir::Store(directory) => write!(f, "{}", directory.url()),
        }
    }
}

/// One file of a [`Dir`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TableFile {
    pub(crate) dir: Dir,
    pub(crate) name: String,
}

impl TableFile {
    /// Its URL, for a listing table that reads it alone.
    pub(crate) fn url(&self) -> Result<ListingTableUrl> {
        // Its path, or its object's URL (see `Display`).
        Ok(ListingTableUrl::parse(self.to_string())?)
    }
}

impl std::fmt::Display for TableFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.dir {
            Dir::Local(path) => write!(f, "{}", path.join(&self.name).display()),
            Dir::Store(directory) => write!(f, "{}{}", directory.url(), self.name),
        }
    }
}

/// A file in a directory listing: its name and size.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub(crate) name: String,
    pub(crate) size: u64,
}

impl Dir {
    /// The directory at `url`: a local one for a `file://` URL, else a
    /// folder of the object store `state`'s runtime has for it.
    pub(crate) fn at(url: &Url, state: &SessionState) -> Result<Dir> {
        if url.scheme() == "file" {
            let path = url.to_file_path().map_err(|()| Error::Files {
                location: url.to_string(),
                message: "not a local path".into(),
            })?;
            return Ok(Dir::Local(path));
        }
        let store = state.runtime_env().object_store_registry.get_store(url)?;
        Ok(Dir::Store(Directory::in_store(url.clone(), store)?))
    }

    /// The directory `name` below this one.
    pub(crate) fn join(&self, name: &str) -> Dir {
        match self {
            Dir::Local(path) => Dir::Local(path.join(name)),
            Dir::Store(directory) => Dir::Store(directory.child(name)),
        }
    }

    /// The file `name` of this directory.
    pub(crate) fn file(&self, name: &str) -> TableFile {
        TableFile {
            dir: self.clone(),
            name: name.to_string(),
        }
    }

    /// Its URL, as a listing table reads it (ending with `/`: every file in it).
    pub(crate) fn url(&self) -> Result<ListingTableUrl> {
        Ok(match self {
            Dir::Local(path) => ListingTableUrl::parse(format!("{}/", path.display()))?,
            Dir::Store(directory) => ListingTableUrl::parse(directory.url().as_str())?,
        })
    }

    fn error(&self, e: impl std::fmt::Display) -> Error {
        Error::Files {
            location: self.to_string(),
            message: e.to_string(),
        }
    }

    /// Makes it, if it is a local directory (an object store's appear by themselves).
    pub(crate) fn create(&self) -> Result<()> {
        match self {
            Dir::Local(path) => std::fs::create_dir_all(path).map_err(|e| Error::io(path, e)),
            Dir::Store(_) => Ok(()),
        }
    }

    /// Whether it is there: a local directory not removed; always, for a
    /// folder of an object store (which has no empty folders).
    pub(crate) fn exists(&self) -> bool {
        match self {
            Dir::Local(path) => path.is_dir(),
            Dir::Store(_) => true,
        }
    }

    /// The files directly in it, in no order; none if it is not there.
    pub(crate) fn list(&self) -> Result<Vec<Listed>> {
        match self {
            Dir::Local(path) => {
                let mut files = Vec::new();
                for entry in entries(path)? {
                    let entry = entry.map_err(|e| Error::io(path, e))?;
                    let Ok(name) = entry.file_name().into_string() else {
                        continue;
                    };
                    let meta = match entry.metadata() {
                        Ok(meta) => meta,
                        // Renamed or removed since it was listed.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(Error::io(entry.path(), e)),
                    };
                    if meta.is_file() {
                        files.push(Listed {
                            name,
                            size: meta.len(),
                        });
                    }
                }
                Ok(files)
            }
            Dir::Store(directory) => Ok(directory
                .list()
                .map_err(|e| self.error(e))?
                .into_iter()
                .map(|entry| Listed {
                    name: entry.name,
                    size: entry.size,
                })
                .collect()),
        }
    }

    /// The names of the files directly in it.
    pub(crate) fn names(&self) -> Result<HashSet<String>> {
        Ok(self.list()?.into_iter().map(|file| file.name).collect())
    }

    /// The names of the directories directly in it.
    pub(crate) fn dirs(&self) -> Result<Vec<String>> {
        match self {
            Dir::Local(path) => Ok(entries(path)?
                .flatten()
                .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|entry| entry.file_name().into_string().ok())
                .collect()),
            Dir::Store(directory) => directory.dirs().map_err(|e| self.error(e)),
        }
    }

    /// The file `name`'s bytes, or `None` if it is not there.
    pub(crate) fn read(&self, name: &str) -> Result<Option<Bytes>> {
        match self {
            Dir::Local(path) => match std::fs::read(path.join(name)) {
                Ok(bytes) => Ok(Some(bytes.into())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(path.join(name), e)),
            },
            Dir::Store(directory) => directory.get(name).map_err(|e| self.error(e)),
        }
    }

    /// Removes the file `name`; one already gone is fine.
    pub(crate) fn remove(&self, name: &str) -> Result<()> {
        match self {
            Dir::Local(path) => match std::fs::remove_file(path.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(Error::io(path.join(name), e))
                }
                _ => Ok(()),
            },
            Dir::Store(directory) => directory.delete(name).map_err(|e| self.error(e)),
        }
    }

    /// Removes it and everything in it; one already gone is fine.
    pub(crate) fn remove_all(&self) -> Result<()> {
        match self {
            Dir::Local(path) => match std::fs::remove_dir_all(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
                _ => Ok(()),
            },
            Dir::Store(directory) => directory.remove_all().map_err(|e| self.error(e)),
        }
    }

    /// Moves its file `name` to `to_name` in the directory `to` (of the same
    /// file system or store), replacing any there.
    pub(crate) fn rename(&self, name: &str, to: &Dir, to_name: &str) -> Result<()> {
        match (self, to) {
            (Dir::Local(from), Dir::Local(to)) => {
                let to = to.join(to_name);
                std::fs::rename(from.join(name), &to).map_err(|e| Error::io(&to, e))
            }
            (Dir::Store(from), Dir::Store(to)) => {
                from.rename(name, to, to_name).map_err(|e| self.error(e))
            }
            _ => Err(self.error(format_args!("cannot move {name} to {to}: another store"))),
        }
    }

    /// Writes the small file `name` so that it is whole after a crash (a
    /// local file through a synced temporary file renamed into place).
    pub(crate) fn write_durably(&self, name: &str, bytes: &[u8]) -> Result<()> {
        match self {
            Dir::Local(dir) => {
                let (temp, path) = (dir.join(format!("{name}.tmp")), dir.join(name));
                let write = || -> std::io::Result<()> {
                    let mut file = File::create(&temp)?;
                    file.write_all(bytes)?;
                    file.sync_all()?;
                    std::fs::rename(&temp, &path)
                };
                write().map_err(|e| Error::io(&path, e))?;
                self.sync()
            }
            Dir::Store(directory) => directory
                .put(name, bytes.to_vec())
                .map_err(|e| self.error(e)),
        }
    }

    /// Makes the renames and removals in it durable (a local directory's
    /// entries are synced; an object store's changes are durable at once).
    pub(crate) fn sync(&self) -> Result<()> {
        match self {
            Dir::Local(path) => File::open(path)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io(path, e)),
            Dir::Store(_) => Ok(()),
        }
    }

    /// The file `name` for Parquet's readers to read a little of (a
    /// footer, a schema): a local file, or an object read by ranges as the
    /// reader asks for them (a footer costs two requests, not the object).
    pub(crate) fn open(&self, name: &str) -> Result<Readable> {
        match self {
            Dir::Local(_) => self.open_to_scan(name),
            Dir::Store(directory) => {
                let size = directory
                    .size(name)
                    .map_err(|e| self.error(e))?
                    .ok_or_else(|| self.error(format_args!("{name}: no such file")))?;
                Ok(Readable::Ranged {
                    directory: directory.clone(),
                    name: name.to_string(),
                    size,
                })
            }
        }
    }

    /// The file `name` for Parquet's readers to read all of: a local file,
    /// or an object fetched whole with one request (Parquet's page reader
    /// asks for every page header apart).
    pub(crate) fn open_to_scan(&self, name: &str) -> Result<Readable> {
        match self {
            Dir::Local(path) => {
                let path = path.join(name);
                let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
                Ok(Readable::Local(file))
            }
            Dir::Store(_) => {
                let bytes = self
                    .read(name)?
                    .ok_or_else(|| self.error(format_args!("{name}: no such file")))?;
                Ok(Readable::Fetched(bytes))
            }
        }
    }

    /// The footer of the Parquet file `name`.
    pub(crate) fn parquet_metadata(&self, name: &str) -> Result<ParquetMetaData> {
        let readable = self.open(name)?;
        Ok(ParquetMetaDataReader::new()
            .parse_and_finish(&readable)
            .map_err(DataFusionError::from)?)
    }

    /// A new file `name`, written by the caller and then
    /// [`NewFile::finish`]ed; it is not in the directory before.
    pub(crate) fn create_file(&self, name: &str) -> Result<NewFile> {
        match self {
            Dir::Local(dir) => {
                let path = dir.join(name);
                let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
                Ok(NewFile::Local { file, path })
            }
            Dir::Store(directory) => {
                // Written aside, then uploaded whole (in parts when large).
                let file = tempfile::NamedTempFile::new()
                    .map_err(|e| Error::io(std::env::temp_dir(), e))?;
                Ok(NewFile::Store {
                    file,
                    directory: directory.clone(),
                    name: name.to_string(),
                })
            }
        }
    }
}

/// The entries of the local directory `path`; none if it is not there.
fn entries(path: &Path) -> Result<Box<dyn Iterator<Item = std::io::Result<DirEntry>>>> {
    match std::fs::read_dir(path) {
        Ok(entries) => Ok(Box::new(entries)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Box::new(std::iter::empty())),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// A file a [`Dir`] hands to Parquet's readers.
pub(crate) enum Readable {
    Local(File),
    /// An object, fetched whole.
    Fetched(Bytes),
    /// An object, read by ranges.
    Ranged {
        directory: Directory,
        name: String,
        size: u64,
    },
}

impl Length for Readable {
    fn len(&self) -> u64 {
        match self {
            Readable::Local(file) => file.len(),
            Readable::Fetched(bytes) => bytes.len() as u64,
            Readable::Ranged { size, .. } => *size,
        }
    }
}

impl ChunkReader for Readable {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> datafusion::parquet::errors::Result<Self::T> {
        match self {
            Readable::Local(file) => Ok(Box::new(file.get_read(start)?)),
            Readable::Fetched(bytes) => Ok(Box::new(bytes.get_read(start)?)),
            Readable::Ranged {
                directory,
                name,
                size,
            } => Ok(Box::new(RangedRead {
                directory: directory.clone(),
                name: name.clone(),
                at: start,
                end: *size,
                buffer: Bytes::new(),
            })),
        }
    }

    fn get_bytes(&self, start: u64, length: usize) -> datafusion::parquet::errors::Result<Bytes> {
        match self {
            Readable::Local(file) => file.get_bytes(start, length),
            Readable::Fetched(bytes) => bytes.get_bytes(start, length),
            Readable::Ranged {
                directory, name, ..
            } => directory
                .get_range(name, start..start + length as u64)
                .map_err(|e| ParquetError::External(Box::new(e))),
        }
    }
}

/// An object read from `at` on, a range of [`RangedRead::CHUNK`] bytes at a time.
struct RangedRead {
    directory: Directory,
    name: String,
    at: u64,
    end: u64,
    buffer: Bytes,
}

impl RangedRead {
    const CHUNK: u64 = 64 << 10;
}

impl Read for RangedRead {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.buffer.is_empty() && self.at < self.end {
            let until = self.end.min(self.at + Self::CHUNK);
            self.buffer = self
                .directory
                .get_range(&self.name, self.at..until)
                .map_err(std::io::Error::other)?;
            self.at = until;
        }
        let n = out.len().min(self.buffer.len());
        out[..n].copy_from_slice(&self.buffer.split_to(n));
        Ok(n)
    }
}

/// A file being written to a [`Dir`] (see [`Dir::create_file`]).
pub(crate) enum NewFile {
    Local {
        file: File,
        path: PathBuf,
    },
    Store {
        file: tempfile::NamedTempFile,
        directory: Directory,
        name: String,
    },
}

impl Write for NewFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            NewFile::Local { file, .. } => file.write(buf),
            NewFile::Store { file, .. } => file.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            NewFile::Local { file, .. } => file.flush(),
            NewFile::Store { file, .. } => file.flush(),
        }
    }
}

impl NewFile {
    /// Makes the written file durable in its directory: a local file is
    /// synced, a store's is uploaded.
    pub(crate) fn finish(self) -> Result<()> {
        match self {
            NewFile::Local { file, path } => file.sync_all().map_err(|e| Error::io(&path, e)),
            NewFile::Store {
                mut file,
                directory,
                name,
            } => {
                file.flush().map_err(|e| Error::io(file.path(), e))?;
                let (from, target) = (file.path().to_path_buf(), directory.clone());
                let uploaded =
                    quiver_storage::block_on(
                        async move { target.upload(&name, &from, |_| {}).await },
                    );
                drop(file);
                uploaded.map(|_| ()).map_err(|e| Error::Files {
                    location: directory.url().to_string(),
                    message: e.to_string(),
                })
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;

    /// An empty directory of each kind, a local one and one of an
    /// (in-memory) object store, with the temporary directory that holds
    /// the local one.
    pub(crate) fn each_kind_of_dir() -> Vec<(Option<tempfile::TempDir>, Dir)> {
        let local = tempfile::tempdir().unwrap();
        let path = local.path().to_path_buf();
        let url = Url::parse("memory://bucket/data/").unwrap();
        let store = Arc::new(datafusion::object_store::memory::InMemory::new());
        let directory = Directory::in_store(url, store).unwrap();
        vec![
            (Some(local), Dir::Local(path)),
            (None, Dir::Store(directory)),
        ]
    }

    #[test]
    fn files_are_written_listed_moved_and_removed_in_either_kind() {
        for (_keep, root) in each_kind_of_dir() {
            let (a, b) = (root.join("a"), root.join("b"));
            a.create().unwrap();
            b.create().unwrap();
            assert!(a.list().unwrap().is_empty());
            a.write_durably("one", b"1").unwrap();
            a.write_durably("two", b"22").unwrap();
            let mut listed: Vec<_> = a
                .list()
                .unwrap()
                .into_iter()
                .map(|f| (f.name, f.size))
                .collect();
            listed.sort();
            assert_eq!(listed, [("one".into(), 1), ("two".into(), 2)], "{root}");
            a.rename("one", &b, "uno").unwrap();
            assert!(a.read("one").unwrap().is_none());
            assert_eq!(b.read("uno").unwrap().as_deref(), Some(&b"1"[..]));
            let mut dirs = root.dirs().unwrap();
            dirs.sort();
            assert_eq!(dirs, ["a", "b"]);
            assert_eq!(a.open("two").unwrap().get_bytes(1, 1).unwrap(), &b"2"[..]);
            let mut read = String::new();
            a.open("two")
                .unwrap()
                .get_read(0)
                .unwrap()
                .read_to_string(&mut read)
                .unwrap();
            assert_eq!(read, "22");
            let whole = a.open_to_scan("two").unwrap();
            assert_eq!(whole.get_bytes(0, 2).unwrap(), &b"22"[..]);
            a.remove("two").unwrap();
            a.remove("two").unwrap();
            assert!(a.list().unwrap().is_empty());
            // An object store has no empty folders: `a` keeps one file.
            a.write_durably("three", b"3").unwrap();
            b.remove_all().unwrap();
            b.remove_all().unwrap();
            assert!(b.read("uno").unwrap().is_none());
            assert_eq!(root.dirs().unwrap(), ["a"], "{root}");
        }
    }
}
