#![doc = include_str!("../README.md")]

mod directory;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreRegistry;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, ObjectStoreScheme};
use url::Url;

pub use directory::{Directory, Entry, block_on, location_url};

/// The object stores of one process, by `scheme://authority`: registered
/// ones (the frontend's listing-caching local store) first, then ones
/// built on first use from the URL and the environment.
#[derive(Debug)]
pub struct ObjectStores {
    stores: RwLock<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl Default for ObjectStores {
    fn default() -> Self {
        Self::new()
    }
}

impl ObjectStores {
    /// A registry with the local file system at `file://`.
    pub fn new() -> Self {
        let local: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
        Self {
            stores: RwLock::new(HashMap::from([("file://".to_string(), local)])),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<dyn ObjectStore>>> {
        self.stores.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<dyn ObjectStore>>> {
        self.stores.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The store a URL names: its scheme and authority (bucket, container,
/// host and port), as DataFusion's own registry keys stores.
pub fn store_key(url: &Url) -> String {
    format!(
        "{}://{}",
        url.scheme(),
        &url[url::Position::BeforeHost..url::Position::AfterPort]
    )
}

/// Builds the store of `url` from its standard environment variables.
fn build(url: &Url) -> Result<Arc<dyn ObjectStore>> {
    let unsupported = |what: &str| {
        DataFusionError::Plan(format!(
            "{what} is not an object store Quiver reads: use file://, s3://, gs:// or az://"
        ))
    };
    let (scheme, _) = ObjectStoreScheme::parse(url).map_err(|_| unsupported(url.as_str()))?;
    let store: Arc<dyn ObjectStore> = match scheme {
        ObjectStoreScheme::Local => Arc::new(LocalFileSystem::new()),
        ObjectStoreScheme::AmazonS3 => {
            Arc::new(AmazonS3Builder::from_env().with_url(url.as_str()).build()?)
        }
        ObjectStoreScheme::GoogleCloudStorage => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .build()?,
        ),
        ObjectStoreScheme::MicrosoftAzure => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .build()?,
        ),
        // Reading any web address would let a client make the server fetch
        // what it likes; memory:// stores would differ between processes.
        _ => return Err(unsupported(&format!("{}://", url.scheme()))),
    };
    Ok(store)
}

impl ObjectStoreRegistry for ObjectStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.write().insert(store_key(url), store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.write()
            .remove(&store_key(url))
            .ok_or_else(|| DataFusionError::Execution(format!("no object store for {url}")))
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let key = store_key(url);
        if let Some(store) = self.read().get(&key) {
            return Ok(store.clone());
        }
        let built = build(url)?;
        // Another task may have built it meanwhile: keep the first.
        Ok(self.write().entry(key).or_insert(built).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("a URL")
    }

    #[test]
    fn a_bucket_is_built_once_and_kept() {
        let stores = ObjectStores::new();
        let a = stores.get_store(&url("s3://bucket/a/b.parquet")).unwrap();
        let b = stores.get_store(&url("s3://bucket/c")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let other = stores.get_store(&url("s3://other/c")).unwrap();
        assert!(!Arc::ptr_eq(&a, &other));
    }

    #[test]
    fn a_registered_store_comes_first() {
        let stores = ObjectStores::new();
        let mine: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        stores.register_store(&url("file:///"), mine.clone());
        assert!(Arc::ptr_eq(
            &stores.get_store(&url("file:///tmp/x")).unwrap(),
            &mine
        ));
    }

    #[test]
    fn web_addresses_and_memory_are_refused() {
        let stores = ObjectStores::new();
        for refused in ["http://example.com/x.csv", "memory:///x", "ftp://h/x"] {
            let error = stores.get_store(&url(refused)).unwrap_err();
            assert!(
                error.to_string().contains("not an object store"),
                "{refused}: {error}"
            );
        }
    }
}
