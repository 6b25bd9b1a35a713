//! [`ModuleDir`]: the content-addressed module directory every process of a
//! cluster reads.
//!
//! The frontend owns the catalog (module bytes live in its RocksDB) and
//! publishes each module here as `<sha256>.wasm`. Executors and the
//! scheduler read a module they have not compiled yet from the directory a
//! plan names — once per process, checked against its hash — so module
//! bytes never ride in task definitions. On one machine this is a directory
//! under the frontend's data directory; across machines, a shared path
//! mounted at the same place on every node. Executors write into it too:
//! their functions' usage counts (`usage-*.json`, see [`crate::usage`]),
//! which the frontend gathers and removes.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::module::ModuleBytes;
use crate::usage::is_usage_file;
use crate::{Error, Result};

/// A directory of `<sha256>.wasm` files.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModuleDir {
    path: PathBuf,
}

impl ModuleDir {
    /// Opens (creating) the directory.
    pub fn create(path: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Self { path })
    }

    /// A directory named by a plan; not created, only read.
    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file(&self, sha256: &str) -> PathBuf {
        self.path.join(format!("{sha256}.wasm"))
    }

    /// Whether the module with this hash has been written here.
    pub fn contains(&self, sha256: &str) -> bool {
        self.file(sha256).is_file()
    }

    /// Writes `module` unless it is already there.
    pub fn publish(&self, module: &ModuleBytes) -> Result<()> {
        if self.contains(&module.sha256) {
            return Ok(());
        }
        self.write_file(&format!("{}.wasm", module.sha256), &module.bytes)
    }

    /// Writes the file `name`. It appears whole (written aside, synced,
    /// renamed) so a reader never sees half of it.
    pub(crate) fn write_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path.join(name);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let aside = self
            .path
            .join(format!(".{name}.{}.partial", std::process::id()));
        let mut file = std::fs::File::create(&aside).map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&aside, &path).map_err(io)?;
        Ok(())
    }

    /// The paths of the files here whose names `wanted` accepts.
    pub(crate) fn files(&self, wanted: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.path).map_err(io)? {
            let entry = entry.map_err(io)?;
            if wanted(&entry.file_name().to_string_lossy()) {
                files.push(entry.path());
            }
        }
        Ok(files)
    }

    /// The module with this hash. Its bytes are checked against the hash: a
    /// damaged or substituted file is an error, never code that runs.
    pub fn read(&self, sha256: &str) -> Result<ModuleBytes> {
        let path = self.file(sha256);
        let bytes = std::fs::read(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let module = ModuleBytes::new(bytes);
        if module.sha256 != sha256 {
            return Err(Error::Runtime(format!(
                "module file {} does not match its hash (its bytes hash to {})",
                path.display(),
                module.sha256
            )));
        }
        Ok(module)
    }

    /// Removes every module not in `keep` (and leftovers of interrupted
    /// writes), keeping usage files. Only safe when no query can still need them: at start-up.
    pub fn retain(&self, keep: &HashSet<String>) -> Result<usize> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.path).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Usage files wait for the frontend to add them up.
            let wanted = is_usage_file(&name)
                || name
                    .strip_suffix(".wasm")
                    .is_some_and(|sha| keep.contains(sha));
            if !wanted {
                std::fs::remove_file(entry.path()).map_err(io)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_modules_are_read_back_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let modules = ModuleDir::create(dir.path().join("modules")).expect("dir");
        let module = ModuleBytes::from_inline("(module)").expect("wat");
        modules.publish(&module).expect("publish");
        modules.publish(&module).expect("publishing twice is fine");
        assert_eq!(
            modules.read(&module.sha256).expect("read").bytes,
            module.bytes
        );

        // A file whose bytes do not match its name is refused.
        let other = ModuleBytes::from_inline("(module (memory 1))").expect("wat");
        std::fs::write(modules.file(&other.sha256), b"\0asm\x01\0\0\0").expect("write");
        assert!(modules.read(&other.sha256).is_err());
        assert!(modules.read("0000").is_err());

        let keep = HashSet::from([module.sha256.clone()]);
        assert_eq!(modules.retain(&keep).expect("retain"), 1);
        assert!(modules.read(&module.sha256).is_ok());
    }
}
