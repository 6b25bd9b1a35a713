//! Where external tables may point: only under directories the operator
//! allows.
//!
//! `CREATE EXTERNAL TABLE ... LOCATION` names files the server reads (and,
//! through `INSERT`, writes) as its own user. Without a limit any client
//! could read `/etc/shadow` or the `--users` file, or write wherever the
//! server may. A location is allowed only under the data directory's
//! `import` directory or a directory given with `--external-dir`. It is
//! resolved the way the table will read it (DataFusion's `ListingTableUrl`:
//! `file://` URLs, percent-encoding, relative paths against the working
//! directory, `..` collapsed), and then through the file system, so that a
//! symbolic link inside an allowed directory cannot lead out of it. Object
//! stores are not configured, so their URLs are refused too.

use std::path::{Component, Path, PathBuf};

use datafusion::datasource::listing::ListingTableUrl;

use crate::{Error, Result};

/// The directories external tables may read and write under.
#[derive(Debug)]
pub struct ExternalLocations {
    /// Canonical paths: no symbolic links, absolute.
    allowed: Vec<PathBuf>,
}

impl ExternalLocations {
    /// Allows `dirs`, which must exist.
    pub fn new(dirs: impl IntoIterator<Item = PathBuf>) -> Result<Self> {
        let allowed = dirs
            .into_iter()
            .map(|dir| {
                dir.canonicalize().map_err(|e| {
                    Error::InvalidParameterValue(format!(
                        "external directory {}: {e}",
                        dir.display()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { allowed })
    }

    /// Refuses `location` (42501) unless it lies under an allowed directory.
    pub fn check(&self, location: &str) -> Result<()> {
        let url = ListingTableUrl::parse(location)?;
        let refuse = |what: String| {
            Error::InsufficientPrivilege(format!(
                "permission denied for external table location \"{location}\": {what}; \
                 external tables may only read and write under {} (the server's --external-dir)",
                self.describe()
            ))
        };
        if url.scheme() != "file" {
            return Err(refuse(format!(
                "no object store is configured for {}://",
                url.scheme()
            )));
        }
        let path = url
            .get_url()
            .to_file_path()
            .map_err(|()| refuse("not a local path".into()))?;
        let resolved = resolve(&path).ok_or_else(|| refuse("it cannot be resolved".into()))?;
        if self.allowed.iter().any(|dir| resolved.starts_with(dir)) {
            Ok(())
        } else {
            Err(refuse(format!("it is {}", resolved.display())))
        }
    }

    fn describe(&self) -> String {
        self.allowed
            .iter()
            .map(|dir| dir.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `path` with every symbolic link of its existing part followed. The part
/// that does not exist yet (a directory `INSERT` will create) is kept as
/// written, which is safe only without `..`: `None` for a path with one
/// (`ListingTableUrl` has collapsed them already).
fn resolve(path: &Path) -> Option<PathBuf> {
    if path.components().any(|c| c == Component::ParentDir) {
        return None;
    }
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            let mut resolved = canonical;
            for part in rest.iter().rev() {
                resolved.push(part);
            }
            return Some(resolved);
        }
        let name = existing.file_name()?;
        rest.push(name.to_os_string());
        existing = existing.parent()?;
    }
}
