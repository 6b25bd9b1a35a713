//! [`ModuleDir`]: the content-addressed module directory every process of a
//! cluster reads.
//!
//! The frontend owns the catalog (module bytes live in its RocksDB) and
//! publishes each module here as `<sha256>.wasm`. Executors and the
//! scheduler read a module they have not compiled yet from the directory a
//! plan names — once per process, checked against its hash — so module
//! bytes never ride in task definitions. The directory is a URL: on one
//! machine a directory under the frontend's data directory, across machines
//! a prefix in an object store (`s3://bucket/quiver/modules/`) or a path
//! mounted at the same place on every node. Executors write into it too:
//! their functions' usage counts (`usage-*.json`, see [`crate::usage`]),
//! which the frontend gathers and removes; and the frontend publishes the
//! versions of key-value buckets plans pin (`bucket-*.arrow`, see
//! [`crate::keyvalue`]).

use std::collections::HashSet;

use quiver_storage::{Directory, Entry, ObjectStores};

use crate::module::ModuleBytes;
use crate::{Error, Result};

/// A directory of `<sha256>.wasm` objects (and usage and bucket files).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModuleDir {
    dir: Directory,
}

impl ModuleDir {
    /// The directory at `location`: a URL, or an absolute local path.
    pub fn open(location: &str, stores: &ObjectStores) -> Result<Self> {
        let dir = Directory::open(location, stores).map_err(|e| Error::Store {
            location: location.to_string(),
            message: e.to_string(),
        })?;
        Ok(Self { dir })
    }

    /// Where it is: the URL plans carry.
    pub fn location(&self) -> &str {
        self.dir.url().as_str()
    }

    fn error(&self, e: impl std::fmt::Display) -> Error {
        Error::Store {
            location: self.location().to_string(),
            message: e.to_string(),
        }
    }

    fn module_file(sha256: &str) -> String {
        format!("{sha256}.wasm")
    }

    /// Whether the module with this hash has been written here.
    pub fn contains(&self, sha256: &str) -> Result<bool> {
        self.dir
            .contains(&Self::module_file(sha256))
            .map_err(|e| self.error(e))
    }

    /// Writes `module` unless it is already there.
    pub fn publish(&self, module: &ModuleBytes) -> Result<()> {
        if self.contains(&module.sha256)? {
            return Ok(());
        }
        self.write_module(module)
    }

    /// Writes `module`, replacing any file of its hash.
    pub(crate) fn write_module(&self, module: &ModuleBytes) -> Result<()> {
        self.write_file(&Self::module_file(&module.sha256), module.bytes.clone())
    }

    /// The size of every module here, by hash (one listing).
    pub(crate) fn module_sizes(&self) -> Result<std::collections::HashMap<String, u64>> {
        Ok(self
            .files(|name| name.ends_with(".wasm"))?
            .into_iter()
            .filter_map(|entry| Some((entry.name.strip_suffix(".wasm")?.to_string(), entry.size)))
            .collect())
    }

    /// Writes the file `name`. It appears whole: a reader never sees half
    /// of it.
    pub(crate) fn write_file(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        self.dir.put(name, bytes).map_err(|e| self.error(e))
    }

    /// The file `name`, if it is here.
    pub(crate) fn read_file(&self, name: &str) -> Result<Option<bytes::Bytes>> {
        self.dir.get(name).map_err(|e| self.error(e))
    }

    /// Removes the file `name` (one already gone is fine).
    pub(crate) fn remove_file(&self, name: &str) -> Result<()> {
        self.dir.delete(name).map_err(|e| self.error(e))
    }

    /// The files here whose names `wanted` accepts.
    pub(crate) fn files(&self, wanted: impl Fn(&str) -> bool) -> Result<Vec<Entry>> {
        let mut files = self.dir.list().map_err(|e| self.error(e))?;
        files.retain(|entry| wanted(&entry.name));
        Ok(files)
    }

    /// The module with this hash. Its bytes are checked against the hash: a
    /// damaged or substituted file is an error, never code that runs.
    pub fn read(&self, sha256: &str) -> Result<ModuleBytes> {
        let name = Self::module_file(sha256);
        let bytes = self
            .read_file(&name)?
            .ok_or_else(|| self.error(format!("module {name} is missing")))?;
        let module = ModuleBytes::new(bytes.to_vec());
        if module.sha256 != sha256 {
            return Err(Error::Runtime(format!(
                "module file {name} in {} does not match its hash (its bytes hash to {})",
                self.location(),
                module.sha256
            )));
        }
        Ok(module)
    }

    /// Removes every module not in `keep` and every published bucket
    /// version, keeping usage files (they wait to be added up). Only safe
    /// when no query can still need them: at start-up. Objects Quiver did
    /// not name are left alone.
    pub fn retain(&self, keep: &HashSet<String>) -> Result<usize> {
        let unused = self.files(|name| match name.strip_suffix(".wasm") {
            Some(sha) => !keep.contains(sha),
            None => crate::keyvalue::is_snapshot_file(name),
        })?;
        for file in &unused {
            self.remove_file(&file.name)?;
        }
        Ok(unused.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_modules_are_read_back_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let location = dir.path().join("modules");
        let modules =
            ModuleDir::open(location.to_str().expect("utf-8"), &ObjectStores::new()).expect("dir");
        let module = ModuleBytes::from_inline("(module)").expect("wat");
        modules.publish(&module).expect("publish");
        modules.publish(&module).expect("publishing twice is fine");
        assert_eq!(
            modules.read(&module.sha256).expect("read").bytes,
            module.bytes
        );

        // A file whose bytes do not match its name is refused.
        let other = ModuleBytes::from_inline("(module (memory 1))").expect("wat");
        std::fs::write(
            location.join(ModuleDir::module_file(&other.sha256)),
            b"\0asm\x01\0\0\0",
        )
        .expect("write");
        assert!(modules.read(&other.sha256).is_err());
        assert!(modules.read("0000").is_err());

        // Usage files stay; unused modules go.
        modules
            .write_file("usage-1-2-3.json", b"{}".to_vec())
            .expect("usage");
        let keep = HashSet::from([module.sha256.clone()]);
        assert_eq!(modules.retain(&keep).expect("retain"), 1);
        assert!(modules.read(&module.sha256).is_ok());
        assert!(location.join("usage-1-2-3.json").exists());
    }
}
