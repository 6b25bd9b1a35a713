//! Where external tables may point: only under directories and object-store
//! prefixes the operator allows.
//!
//! `CREATE EXTERNAL TABLE ... LOCATION` names files the server reads (and,
//! through `INSERT`, writes) as its own user. Without a limit any client
//! could read `/etc/shadow` or the `--users` file, or write wherever the
//! server may. A location is allowed only under the data directory's
//! `import` directory or a place given with `--external-dir`: a directory,
//! or an object-store URL such as `s3://bucket/prefix`.
//!
//! A location is resolved the way the table will read it (DataFusion's
//! `ListingTableUrl`: `file://` URLs, percent-encoding, relative paths
//! against the working directory, `..` collapsed). A local one is then
//! resolved through the file system, so that a symbolic link inside an
//! allowed directory cannot lead out of it; an object-store one must name
//! the same bucket as an allowed URL and lie under its prefix, segment by
//! segment (`s3://b/data` allows `s3://b/data/x.csv`, not
//! `s3://b/database/x.csv`).

use std::path::{Component, Path, PathBuf};

use datafusion::datasource::listing::ListingTableUrl;
use datafusion::object_store::path::Path as ObjectPath;
use quiver_storage::store_key;

use crate::{Error, Result};

/// The places external tables may read and write under.
#[derive(Debug)]
pub struct ExternalLocations {
    allowed: Vec<Allowed>,
}

/// One allowed place.
#[derive(Debug)]
enum Allowed {
    /// A canonical path: no symbolic links, absolute.
    Directory(PathBuf),
    /// A prefix in an object store.
    Prefix {
        /// `scheme://authority`: the store and bucket.
        store: String,
        prefix: ObjectPath,
        /// As the operator wrote it.
        shown: String,
    },
}

impl Allowed {
    fn parse(place: &str) -> Result<Self> {
        let invalid = |e: &dyn std::fmt::Display| {
            Error::InvalidParameterValue(format!("external directory {place}: {e}"))
        };
        if place.contains("://") && !place.starts_with("file://") {
            let url = ListingTableUrl::parse(place).map_err(|e| invalid(&e))?;
            return Ok(Self::Prefix {
                store: store_key(url.get_url()),
                prefix: url.prefix().clone(),
                shown: place.to_string(),
            });
        }
        let dir = match ListingTableUrl::parse(place) {
            Ok(url) if place.starts_with("file://") => url
                .get_url()
                .to_file_path()
                .map_err(|()| invalid(&"not a local path"))?,
            _ => PathBuf::from(place),
        };
        dir.canonicalize()
            .map(Self::Directory)
            .map_err(|e| invalid(&e))
    }

    fn shown(&self) -> String {
        match self {
            Self::Directory(dir) => dir.display().to_string(),
            Self::Prefix { shown, .. } => shown.clone(),
        }
    }
}

impl ExternalLocations {
    /// Allows `places`: directories, which must exist, or object-store URLs.
    pub fn new(places: impl IntoIterator<Item = String>) -> Result<Self> {
        let allowed = places
            .into_iter()
            .map(|place| Allowed::parse(&place))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { allowed })
    }

    /// Refuses `location` (42501) unless it lies under an allowed place.
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
            let store = store_key(url.get_url());
            let inside = self.allowed.iter().any(|allowed| match allowed {
                Allowed::Prefix {
                    store: allowed,
                    prefix,
                    ..
                } => *allowed == store && url.prefix().prefix_matches(prefix),
                Allowed::Directory(_) => false,
            });
            return if inside {
                Ok(())
            } else {
                Err(refuse(format!("{store} is not among them there")))
            };
        }
        let path = url
            .get_url()
            .to_file_path()
            .map_err(|()| refuse("not a local path".into()))?;
        let resolved = resolve(&path).ok_or_else(|| refuse("it cannot be resolved".into()))?;
        let inside = self.allowed.iter().any(|allowed| match allowed {
            Allowed::Directory(dir) => resolved.starts_with(dir),
            Allowed::Prefix { .. } => false,
        });
        if inside {
            Ok(())
        } else {
            Err(refuse(format!("it is {}", resolved.display())))
        }
    }

    fn describe(&self) -> String {
        self.allowed
            .iter()
            .map(Allowed::shown)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(places: &[&str]) -> ExternalLocations {
        ExternalLocations::new(places.iter().map(|p| p.to_string())).expect("allowed")
    }

    #[test]
    fn object_store_locations_lie_under_an_allowed_prefix_segment_by_segment() {
        let locations = allowed(&["s3://bucket/data", "gs://other"]);
        for inside in [
            "s3://bucket/data/x.csv",
            "s3://bucket/data/",
            "s3://bucket/data/sub/y.parquet",
            "gs://other/anything.json",
        ] {
            locations.check(inside).expect(inside);
        }
        for outside in [
            "s3://bucket/database/x.csv",
            "s3://bucket/x.csv",
            "s3://bucket/data/../secret/x.csv",
            "s3://elsewhere/data/x.csv",
            "gs://bucket/data/x.csv",
            "az://other/x.csv",
        ] {
            let error = locations.check(outside).expect_err(outside);
            assert!(
                matches!(error, Error::InsufficientPrivilege(_)),
                "{outside}: {error}"
            );
        }
    }

    #[test]
    fn a_local_directory_allows_no_object_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let locations = allowed(&[&dir.path().display().to_string()]);
        locations
            .check(&format!("{}/x.csv", dir.path().display()))
            .expect("inside");
        locations
            .check(&format!("file://{}/x.csv", dir.path().display()))
            .expect("inside, as a URL");
        assert!(locations.check("s3://bucket/x.csv").is_err());
    }
}
