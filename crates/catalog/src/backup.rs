//! `quiver backup` and `quiver restore`: a data directory copied to a
//! directory of an object store (or a local one) and back, on another
//! machine if need be.
//!
//! A backup holds what cannot be rebuilt: the catalog — a RocksDB
//! checkpoint, so its files are consistent with each other — and the
//! managed tables' files (`tables/`) and the `import/` directory, as they
//! are. What the server rebuilds is left out: temporary tables (a restart
//! drops them), published modules (republished from the catalog at start)
//! and compiled Wasm (a cache).
//!
//! The server must be stopped: it holds the catalog (RocksDB's lock), and a
//! copy of the tables taken while statements change them would not match
//! the catalog. The backup holds that lock in turn until its last file is
//! copied, so a server started meanwhile fails to start instead. Every file goes up as it is read, then `MANIFEST.json` —
//! every file's name, size and SHA-256 — last: a backup without one is
//! incomplete and is never restored. A restore downloads into a directory
//! beside the target, checks every file against the manifest, and only
//! then renames it into place, so a failed restore leaves nothing that
//! looks like a data directory.

use std::path::{Path, PathBuf};

use quiver_storage::{Directory, ObjectStores};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::MetaStore;
use crate::{Error, Result};

/// The name of the manifest, written last.
const MANIFEST: &str = "MANIFEST.json";

/// Where in a data directory the catalog is.
pub const CATALOG_DIR: &str = "catalog";

/// The directories of a data directory a backup holds besides the catalog.
const DATA_DIRS: [&str; 2] = ["tables", "import"];

/// What a backup holds.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    /// The format of this manifest.
    format: u32,
    /// The version of Quiver that wrote it.
    quiver: String,
    /// When the backup was taken (RFC 3339).
    created: String,
    files: Vec<BackedUpFile>,
}

#[derive(Debug, Serialize, Deserialize)]
struct BackedUpFile {
    /// Its path in the data directory, `/`-separated.
    path: String,
    size: u64,
    sha256: String,
}

/// How much a backup or restore copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub files: usize,
    pub bytes: u64,
}

fn backup_error(message: impl Into<String>) -> Error {
    Error::Backup(message.into())
}

/// Copies the data directory `data_dir` (its server stopped) to `to`, a
/// URL or an absolute path, which must not hold a backup already.
pub async fn backup(data_dir: &Path, to: &str, stores: &ObjectStores) -> Result<Copied> {
    let target = Directory::open(to, stores)?;
    if target
        .contains(MANIFEST)
        .map_err(|e| backup_error(format!("{to}: {e}")))?
    {
        return Err(backup_error(format!(
            "{to} already holds a backup: give each backup a location of its own"
        )));
    }
    let checkpoint = data_dir.join(format!(
        "{CHECKPOINT_PREFIX}{}",
        uuid::Uuid::new_v4().simple()
    ));
    let copied = async {
        // Held until the last file is copied: no server starts on the data
        // directory (and changes its tables) meanwhile.
        let _catalog = checkpoint_catalog(data_dir, &checkpoint)?;
        let mut files = Vec::new();
        let mut copied = Copied { files: 0, bytes: 0 };
        let mut sources = vec![(CATALOG_DIR.to_string(), checkpoint.clone())];
        for dir in DATA_DIRS {
            sources.push((dir.to_string(), data_dir.join(dir)));
        }
        for (name, dir) in sources {
            for (path, file) in files_under(&name, &dir)? {
                // Hashed as it is read for the upload: each file is read once.
                let mut hasher = Sha256::new();
                let size = target
                    .upload(&path, &file, |chunk| hasher.update(chunk))
                    .await
                    .map_err(|e| backup_error(format!("cannot copy {}: {e}", file.display())))?;
                let sha256 = hex::encode(hasher.finalize());
                copied.files += 1;
                copied.bytes += size;
                files.push(BackedUpFile { path, size, sha256 });
            }
        }
        let manifest = Manifest {
            format: 1,
            quiver: env!("CARGO_PKG_VERSION").to_string(),
            created: chrono::Utc::now().to_rfc3339(),
            files,
        };
        let bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| backup_error(format!("cannot write the manifest: {e}")))?;
        target
            .put(MANIFEST, bytes)
            .map_err(|e| backup_error(format!("cannot write {MANIFEST}: {e}")))?;
        Ok::<_, Error>(copied)
    }
    .await;
    if checkpoint.exists()
        && let Err(e) = std::fs::remove_dir_all(&checkpoint)
    {
        tracing::warn!(dir = %checkpoint.display(), error = %e, "could not remove the catalog's checkpoint");
    }
    copied
}

/// Names the catalog's checkpoints in the data directory while a backup runs.
const CHECKPOINT_PREFIX: &str = ".backup-";

/// A consistent copy of `data_dir`'s catalog in `into` (RocksDB hard-links
/// its files there), and the catalog, open: while it is, no server can
/// start on the data directory. Fails, saying so, while a server holds the
/// catalog. Checkpoints an interrupted backup left behind are removed.
fn checkpoint_catalog(data_dir: &Path, into: &Path) -> Result<MetaStore> {
    let catalog = data_dir.join(CATALOG_DIR);
    if !catalog.join("CURRENT").is_file() {
        return Err(backup_error(format!(
            "{} is not a data directory (it has no catalog)",
            data_dir.display()
        )));
    }
    let store = MetaStore::open(&catalog).map_err(|e| match e {
        Error::Storage(e) if e.to_string().contains("lock") => backup_error(format!(
            "the catalog in {} is in use: stop the server (quiver serve) first ({e})",
            data_dir.display()
        )),
        other => other,
    })?;
    let entries = std::fs::read_dir(data_dir).map_err(|e| Error::io(data_dir, e))?;
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(CHECKPOINT_PREFIX))
        {
            let stale = entry.path();
            std::fs::remove_dir_all(&stale).map_err(|e| Error::io(&stale, e))?;
        }
    }
    store.checkpoint(into)?;
    Ok(store)
}

/// The regular files under `dir`, with their backup paths (`name/...`),
/// in a stable order; none if `dir` does not exist.
fn files_under(name: &str, dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut entries: Vec<_> = entries
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io(dir, e))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(backup_error(format!(
                "{} is not named in UTF-8",
                path.display()
            )));
        };
        let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
        let backed_up = format!("{name}/{file_name}");
        if kind.is_dir() {
            files.extend(files_under(&backed_up, &path)?);
        } else if kind.is_file() {
            files.push((backed_up, path));
        }
    }
    Ok(files)
}

/// Restores the backup at `from` (a URL or an absolute path) as the data
/// directory `data_dir`, which must not exist or be empty.
pub async fn restore(from: &str, data_dir: &Path, stores: &ObjectStores) -> Result<Copied> {
    let occupied = std::fs::read_dir(data_dir)
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false);
    if occupied {
        return Err(backup_error(format!(
            "{} is not empty: restore into a new directory",
            data_dir.display()
        )));
    }
    let source = Directory::open(from, stores)?;
    let manifest = source
        .get(MANIFEST)
        .map_err(|e| backup_error(format!("{from}: {e}")))?
        .ok_or_else(|| {
            backup_error(format!(
                "{from} holds no complete backup (no {MANIFEST}: none was taken there, or it did not finish)"
            ))
        })?;
    let manifest: Manifest = serde_json::from_slice(&manifest)
        .map_err(|e| backup_error(format!("{from}/{MANIFEST} is damaged: {e}")))?;
    if manifest.format != 1 {
        return Err(backup_error(format!(
            "{from} is a backup of format {}, which this Quiver does not read",
            manifest.format
        )));
    }
    let name = data_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| backup_error(format!("{} names no directory", data_dir.display())))?;
    let staging = data_dir.with_file_name(format!(".{name}.restoring-{}", std::process::id()));
    let restored = async {
        let mut copied = Copied { files: 0, bytes: 0 };
        for file in &manifest.files {
            let to = staging.join(relative(&file.path)?);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            let mut hasher = Sha256::new();
            let size = source
                .download(&file.path, &to, |chunk| hasher.update(chunk))
                .await
                .map_err(|e| {
                    backup_error(format!("cannot read {} of the backup: {e}", file.path))
                })?;
            if size != file.size || hex::encode(hasher.finalize()) != file.sha256 {
                return Err(backup_error(format!(
                    "{} of the backup is damaged: it does not match the manifest",
                    file.path
                )));
            }
            copied.files += 1;
            copied.bytes += size;
        }
        // A data directory that was empty is replaced by the restored one.
        if data_dir.exists() {
            std::fs::remove_dir(data_dir).map_err(|e| Error::io(data_dir, e))?;
        }
        std::fs::rename(&staging, data_dir).map_err(|e| Error::io(data_dir, e))?;
        Ok::<_, Error>(copied)
    }
    .await;
    if restored.is_err() && staging.exists() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    restored
}

/// A manifest's path as a relative local path; one that would leave the
/// data directory is refused.
fn relative(path: &str) -> Result<PathBuf> {
    let mut relative = PathBuf::new();
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(backup_error(format!(
                "the manifest names {path:?}, which is not a path in a data directory"
            )));
        }
        relative.push(part);
    }
    Ok(relative)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Change, FUNCTIONS_CF};

    fn data_dir(root: &Path) -> PathBuf {
        let data = root.join("data");
        let store = MetaStore::open(&data.join(CATALOG_DIR)).expect("catalog");
        store
            .write(&[Change::Put {
                cf: FUNCTIONS_CF,
                key: "f(integer)",
                value: b"{}",
            }])
            .expect("write");
        drop(store);
        std::fs::create_dir_all(data.join("tables/1")).expect("dir");
        std::fs::write(data.join("tables/1/a.parquet"), b"rows").expect("file");
        std::fs::create_dir_all(data.join("temp/s1")).expect("dir");
        std::fs::write(data.join("temp/s1/x.parquet"), b"gone").expect("file");
        data
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_backup_restores_what_it_copied() {
        let root = tempfile::tempdir().expect("tempdir");
        let data = data_dir(root.path());
        let stores = ObjectStores::new();
        let to = root.path().join("backup");
        let to = to.to_str().expect("utf-8");
        // What a killed backup left behind goes.
        std::fs::create_dir_all(data.join(".backup-old/x")).expect("stale");
        let copied = backup(&data, to, &stores).await.expect("backup");
        assert!(copied.files >= 3, "{copied:?}");
        let left: Vec<_> = std::fs::read_dir(&data)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert!(
            !left
                .iter()
                .any(|n| n.to_string_lossy().starts_with(".backup-")),
            "{left:?}"
        );
        let again = backup(&data, to, &stores)
            .await
            .expect_err("one backup per location");
        assert!(
            again.to_string().contains("already holds a backup"),
            "{again}"
        );

        let restored = root.path().join("restored");
        assert_eq!(
            restore(to, &restored, &stores).await.expect("restore"),
            copied
        );
        assert_eq!(
            std::fs::read(restored.join("tables/1/a.parquet")).expect("table file"),
            b"rows"
        );
        assert!(
            !restored.join("temp").exists(),
            "temporary tables are not kept"
        );
        let store = MetaStore::open(&restored.join(CATALOG_DIR)).expect("restored catalog");
        assert_eq!(
            store
                .get(FUNCTIONS_CF, "f(integer)")
                .expect("get")
                .as_deref(),
            Some(&b"{}"[..])
        );
        let occupied = restore(to, &restored, &stores)
            .await
            .expect_err("not empty");
        assert!(occupied.to_string().contains("not empty"), "{occupied}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_damaged_or_unfinished_backup_is_not_restored() {
        let root = tempfile::tempdir().expect("tempdir");
        let data = data_dir(root.path());
        let stores = ObjectStores::new();
        let to = root.path().join("backup");
        backup(&data, to.to_str().expect("utf-8"), &stores)
            .await
            .expect("backup");
        std::fs::write(to.join("tables/1/a.parquet"), b"ROWS").expect("damage");
        let restored = root.path().join("restored");
        let damaged = restore(to.to_str().expect("utf-8"), &restored, &stores)
            .await
            .expect_err("damaged");
        assert!(damaged.to_string().contains("damaged"), "{damaged}");
        assert!(!restored.exists(), "nothing left behind");
        assert_eq!(std::fs::read_dir(root.path()).expect("list").count(), 2);

        std::fs::remove_file(to.join(MANIFEST)).expect("unfinish");
        let unfinished = restore(to.to_str().expect("utf-8"), &restored, &stores)
            .await
            .expect_err("unfinished");
        assert!(
            unfinished.to_string().contains("no complete backup"),
            "{unfinished}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_catalog_in_use_is_not_backed_up() {
        let root = tempfile::tempdir().expect("tempdir");
        let data = data_dir(root.path());
        let _server = MetaStore::open(&data.join(CATALOG_DIR)).expect("held");
        let to = root.path().join("backup");
        let error = backup(&data, to.to_str().expect("utf-8"), &ObjectStores::new())
            .await
            .expect_err("in use");
        assert!(error.to_string().contains("stop the server"), "{error}");
        assert!(!to.join(MANIFEST).exists());
    }

    #[test]
    fn manifest_paths_stay_inside() {
        assert!(relative("tables/1/a.parquet").is_ok());
        for bad in ["../x", "tables/../../x", "/etc/passwd", "a//b"] {
            assert!(relative(bad).is_err(), "{bad}");
        }
    }
}
