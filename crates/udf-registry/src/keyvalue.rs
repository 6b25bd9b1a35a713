//! `wasi:keyvalue` for Wasm functions: the buckets a function's definition
//! grants it (`SET quiver.wasm.keyvalue = 'rates:read, hits:read-write'`),
//! and nothing else.
//!
//! - `open` of a bucket the definition does not name is `access-denied`,
//!   whether or not the bucket exists; of a granted bucket that does not
//!   exist, `no-such-store`.
//! - Reads see one version of a bucket (see [`quiver_catalog::Buckets`]):
//!   a query planned for the cluster carries the version each bucket had
//!   when it was planned, and every task of it reads that version; a
//!   statement the frontend runs itself reads the latest as of each call
//!   (each batch of rows), plus what the call wrote. A bucket a guest keeps
//!   open across calls is read afresh at the next call.
//! - Writes (`set`, `delete`, `increment`, `set-many`, `delete-many`) need a
//!   `read-write` grant and happen only where the catalog is: in statements
//!   the frontend runs itself, which it does for every statement calling a
//!   function that may write. Each write is visible at once, durable when
//!   the function's call (a batch) returns — one sync for all the call's
//!   writes — and made once: the frontend does not retry. A Ballista task, which
//!   the scheduler may run again after an executor is lost, gets
//!   `access-denied` for writes.
//! - Snapshots of a bucket's versions that tasks in other processes read
//!   are published beside the modules (`bucket-NAME@VERSION.arrow`, an
//!   Arrow IPC file) when a plan is encoded, removed an hour after a newer
//!   version of the bucket is published, and with unused modules when the
//!   server starts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::array::{Array, BinaryArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use quiver_catalog::{BucketSnapshot, BucketWrite, Buckets, Durability};
use serde::{Deserialize, Serialize};
use wasmtime::component::{HasData, Linker, Resource};

use crate::module_dir::ModuleDir;
use crate::runtime::HostState;
use crate::usage::Counters;

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit/deps/keyvalue",
        world: "wasi:keyvalue/imports",
        imports: { default: trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::OpenBucket,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => super::KvError,
        },
    });
}

use generated::wasi::keyvalue::{atomics, batch, store};

/// A bucket a function may open, as its definition grants it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BucketGrant {
    pub bucket: String,
    /// `read-write` rather than `read`.
    pub write: bool,
    /// The version every task of a distributed query reads (set when the
    /// plan is encoded); `None`: the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

impl BucketGrant {
    /// `name:read` or `name:read-write`, as `quiver.functions` shows it.
    pub fn text(&self) -> String {
        let access = if self.write { "read-write" } else { "read" };
        format!("{}:{access}", self.bucket)
    }

    /// Reads `name[:read|:read-write]` (read when no access is given).
    pub fn parse(text: &str) -> Option<Self> {
        let (bucket, access) = match text.trim().split_once(':') {
            Some((bucket, access)) => (bucket.trim(), access.trim().to_ascii_lowercase()),
            None => (text.trim(), "read".to_string()),
        };
        let write = match access.as_str() {
            "read" => false,
            "read-write" | "readwrite" | "write" => true,
            _ => return None,
        };
        let valid = !bucket.is_empty()
            && bucket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        valid.then(|| Self {
            bucket: bucket.to_ascii_lowercase(),
            write,
            version: None,
        })
    }
}

/// The `wasi:keyvalue` errors, before they are lowered into the guest.
#[derive(Debug)]
pub enum KvError {
    NoSuchStore,
    AccessDenied,
    Other(String),
}

impl From<wasmtime::component::ResourceTableError> for KvError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        KvError::Other(e.to_string())
    }
}

impl From<quiver_catalog::Error> for KvError {
    fn from(e: quiver_catalog::Error) -> Self {
        match e {
            quiver_catalog::Error::BucketNotFound(_) => KvError::NoSuchStore,
            other => KvError::Other(other.to_string()),
        }
    }
}

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvError::NoSuchStore => f.write_str("no such bucket"),
            KvError::AccessDenied => f.write_str("access denied"),
            KvError::Other(message) => f.write_str(message),
        }
    }
}

type KvResult<T> = Result<T, KvError>;

/// An open bucket: the version it reads, what this instance wrote
/// through it since (read back before the version: "read your writes"),
/// and whether it may write.
pub struct OpenBucket {
    name: String,
    /// The version read, as of call number `call`.
    snapshot: Arc<BucketSnapshot>,
    call: u64,
    /// Keys written through this bucket: their values now (`None`:
    /// deleted).
    written: BTreeMap<String, Option<Vec<u8>>>,
    write: bool,
}

impl OpenBucket {
    fn get(&self, key: &str) -> Option<&Vec<u8>> {
        match self.written.get(key) {
            Some(value) => value.as_ref(),
            None => self.snapshot.values.get(key),
        }
    }

    /// Every key, in order.
    fn keys(&self) -> Vec<&String> {
        let mut keys: Vec<&String> = self
            .snapshot
            .values
            .keys()
            .filter(|k| !self.written.contains_key(*k))
            .chain(
                self.written
                    .iter()
                    .filter(|(_, v)| v.is_some())
                    .map(|(k, _)| k),
            )
            .collect();
        keys.sort();
        keys
    }
}

/// Where the buckets of a process come from: the catalog, in the process
/// that has it; published snapshots, in the others.
#[derive(Default)]
pub struct BucketSource {
    buckets: Option<Arc<Buckets>>,
    /// Snapshots by bucket and version: the latest of each bucket read
    /// here, and every version a plan pinned.
    snapshots: Mutex<HashMap<(String, u64), Arc<BucketSnapshot>>>,
    /// The latest version of each bucket this process published, by module
    /// directory and bucket.
    published: Mutex<HashMap<(String, String), u64>>,
}

impl std::fmt::Debug for BucketSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketSource")
            .field("catalog", &self.buckets.is_some())
            .finish_non_exhaustive()
    }
}

/// The file a snapshot is published as.
fn snapshot_file(bucket: &str, version: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{bucket}@{version}{SNAPSHOT_SUFFIX}")
}

const SNAPSHOT_PREFIX: &str = "bucket-";
const SNAPSHOT_SUFFIX: &str = ".arrow";

/// Whether `name` is a published snapshot's file.
pub(crate) fn is_snapshot_file(name: &str) -> bool {
    name.starts_with(SNAPSHOT_PREFIX) && name.ends_with(SNAPSHOT_SUFFIX)
}

fn snapshot_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Binary, false),
    ]))
}

impl BucketSource {
    /// A source reading `buckets` (the catalog's), or only published
    /// snapshots when `None`.
    pub fn new(buckets: Option<Arc<Buckets>>) -> Self {
        Self {
            buckets,
            snapshots: Mutex::new(HashMap::new()),
            published: Mutex::new(HashMap::new()),
        }
    }

    pub fn buckets(&self) -> Option<&Arc<Buckets>> {
        self.buckets.as_ref()
    }

    fn cached(&self, bucket: &str, version: u64) -> Option<Arc<BucketSnapshot>> {
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(bucket.to_string(), version))
            .cloned()
    }

    fn keep(&self, bucket: &str, snapshot: BucketSnapshot) -> Arc<BucketSnapshot> {
        let snapshot = Arc::new(snapshot);
        let mut snapshots = self.snapshots.lock().unwrap_or_else(|p| p.into_inner());
        // Older versions of the bucket are no longer read by new queries;
        // a running query holds its own `Arc`.
        snapshots.retain(|(name, version), _| name != bucket || *version > snapshot.version);
        snapshots
            .entry((bucket.to_string(), snapshot.version))
            .or_insert(snapshot)
            .clone()
    }

    /// The latest version of `bucket` (only where the catalog is).
    pub fn latest(&self, bucket: &str) -> KvResult<Arc<BucketSnapshot>> {
        let Some(buckets) = &self.buckets else {
            return Err(KvError::Other(format!(
                "bucket \"{bucket}\" can only be read at a version a plan names here"
            )));
        };
        let entry = buckets.entry(bucket)?.ok_or(KvError::NoSuchStore)?;
        if let Some(snapshot) = self.cached(bucket, entry.version) {
            return Ok(snapshot);
        }
        Ok(self.keep(bucket, buckets.snapshot(bucket)?))
    }

    /// Version `version` of `bucket`: from memory, or the snapshot
    /// published in `published`.
    pub fn at(
        &self,
        bucket: &str,
        version: u64,
        published: Option<&ModuleDir>,
    ) -> KvResult<Arc<BucketSnapshot>> {
        if let Some(snapshot) = self.cached(bucket, version) {
            return Ok(snapshot);
        }
        if self.buckets.is_some() {
            let latest = self.latest(bucket)?;
            if latest.version == version {
                return Ok(latest);
            }
        }
        let Some(dir) = published else {
            return Err(KvError::Other(format!(
                "version {version} of bucket \"{bucket}\" is not available here"
            )));
        };
        let file = snapshot_file(bucket, version);
        let snapshot = dir
            .read_file(&file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| bytes.ok_or_else(|| format!("{file} is missing")))
            .and_then(|bytes| read_snapshot(&bytes, version))
            .map_err(|e| {
                KvError::Other(format!(
                    "cannot read version {version} of bucket \"{bucket}\" from {}: {e}",
                    dir.location()
                ))
            })?;
        Ok(self.keep(bucket, snapshot))
    }

    /// Pins the latest version of `bucket` for a plan: returns it, and
    /// publishes its snapshot in `publish` for other processes.
    pub fn pin(&self, bucket: &str, publish: Option<&ModuleDir>) -> KvResult<u64> {
        let snapshot = self.latest(bucket)?;
        if let Some(dir) = publish {
            // Published once per version and process: every plan pins its
            // buckets, and asking the store each time costs a request where
            // the store is remote. (Two plans at once may both write it.)
            let key = (dir.location().to_string(), bucket.to_string());
            let published = || self.published.lock().unwrap_or_else(|p| p.into_inner());
            if published().get(&key) != Some(&snapshot.version) {
                let file = snapshot_file(bucket, snapshot.version);
                encode_snapshot(&snapshot)
                    .and_then(|bytes| dir.write_file(&file, bytes).map_err(|e| e.to_string()))
                    .map_err(|e| {
                        KvError::Other(format!("cannot publish bucket \"{bucket}\": {e}"))
                    })?;
                published().insert(key, snapshot.version);
                remove_superseded(dir, bucket, SUPERSEDED_KEPT);
            }
        }
        Ok(snapshot.version)
    }

    /// Applies `writes` to `bucket` (only where the catalog is) and returns
    /// the values of the keys written, as they are now.
    fn write(
        &self,
        bucket: &str,
        writes: &[BucketWrite],
    ) -> KvResult<Vec<(String, Option<Vec<u8>>)>> {
        let Some(buckets) = &self.buckets else {
            return Err(KvError::AccessDenied);
        };
        // Durable once the function's call returns (see `KeyValueAccess::sync`):
        // one sync per call, not one per key.
        Ok(buckets.write(bucket, writes, Durability::Later)?)
    }
}

/// How long a published snapshot is kept once a newer version of its
/// bucket is published: queries planned since then read the newer one, so
/// only tasks of queries planned before it can still need the older.
const SUPERSEDED_KEPT: Duration = Duration::from_secs(3600);

/// Removes the published snapshots of `bucket` in `dir` that a newer
/// published version superseded more than `kept` ago. A task of a query
/// planned before that which still reads one fails (it never reads another
/// version).
fn remove_superseded(dir: &ModuleDir, bucket: &str, kept: Duration) {
    let prefix = format!("{SNAPSHOT_PREFIX}{bucket}@");
    let files = match dir.files(|name| name.starts_with(&prefix)) {
        Ok(files) => files,
        Err(e) => {
            tracing::warn!(error = %e, "could not list published bucket snapshots");
            return;
        }
    };
    let now = chrono::Utc::now();
    let mut published: Vec<(u64, String, Option<Duration>)> = files
        .into_iter()
        .filter_map(|entry| {
            let version = entry
                .name
                .strip_prefix(&prefix)?
                .strip_suffix(SNAPSHOT_SUFFIX)?
                .parse()
                .ok()?;
            let age = (now - entry.last_modified).to_std().ok();
            Some((version, entry.name, age))
        })
        .collect();
    published.sort_by_key(|(version, ..)| *version);
    for pair in published.windows(2) {
        let [(_, older, _), (_, _, newer_age)] = pair else {
            continue;
        };
        if newer_age.is_some_and(|age| age > kept)
            && let Err(e) = dir.remove_file(older)
        {
            tracing::warn!(file = %older, error = %e, "could not remove a superseded bucket snapshot");
        }
    }
}

/// A snapshot as an Arrow IPC file.
fn encode_snapshot(snapshot: &BucketSnapshot) -> Result<Vec<u8>, String> {
    let keys = StringArray::from_iter_values(snapshot.values.keys());
    let values = BinaryArray::from_iter_values(snapshot.values.values());
    let batch = RecordBatch::try_new(snapshot_schema(), vec![Arc::new(keys), Arc::new(values)])
        .map_err(|e| e.to_string())?;
    let mut writer =
        FileWriter::try_new(Vec::new(), &snapshot_schema()).map_err(|e| e.to_string())?;
    writer.write(&batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    writer.into_inner().map_err(|e| e.to_string())
}

fn read_snapshot(bytes: &[u8], version: u64) -> Result<BucketSnapshot, String> {
    let reader =
        FileReader::try_new(std::io::Cursor::new(bytes), None).map_err(|e| e.to_string())?;
    let mut snapshot = BucketSnapshot {
        version,
        ..BucketSnapshot::default()
    };
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let keys = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or("keys are not text")?;
        let values = batch
            .column(1)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .ok_or("values are not bytes")?;
        if keys.null_count() > 0 || values.null_count() > 0 {
            return Err("a key or value is null".into());
        }
        for (key, value) in keys.iter().zip(values.iter()) {
            if let (Some(key), Some(value)) = (key, value) {
                snapshot.values.insert(key.to_string(), value.to_vec());
            }
        }
    }
    Ok(snapshot)
}

/// What one instance may reach through `wasi:keyvalue`.
#[derive(Default)]
pub struct KeyValueAccess {
    grants: Vec<BucketGrant>,
    source: Option<Arc<BucketSource>>,
    /// Where published snapshots are read from (a plan's module directory).
    published: Option<ModuleDir>,
    /// The function's counters of reads and writes.
    usage: Arc<Counters>,
    /// Whether this call wrote what is not durable yet.
    unsynced: bool,
}

impl KeyValueAccess {
    pub fn new(
        grants: Vec<BucketGrant>,
        source: Arc<BucketSource>,
        published: Option<ModuleDir>,
        usage: Arc<Counters>,
    ) -> Self {
        Self {
            grants,
            source: Some(source),
            published,
            usage,
            unsynced: false,
        }
    }

    fn grant(&self, identifier: &str) -> KvResult<&BucketGrant> {
        self.grants
            .iter()
            .find(|g| g.bucket == identifier)
            .ok_or(KvError::AccessDenied)
    }

    /// The version of `identifier` its grant reads.
    fn snapshot(&self, identifier: &str) -> KvResult<Arc<BucketSnapshot>> {
        let grant = self.grant(identifier)?;
        let source = self.source.as_ref().ok_or(KvError::AccessDenied)?;
        match grant.version {
            Some(version) => source.at(identifier, version, self.published.as_ref()),
            None => source.latest(identifier),
        }
    }

    /// Makes what the call wrote durable: once per call that wrote, as the
    /// call returns to the host (whether it succeeded or not: writes are
    /// not undone).
    pub(crate) fn sync(&mut self) -> std::result::Result<(), String> {
        if !std::mem::take(&mut self.unsynced) {
            return Ok(());
        }
        match self.source.as_ref().and_then(|s| s.buckets()) {
            Some(buckets) => buckets.sync().map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    fn open(&self, identifier: &str, call: u64) -> KvResult<OpenBucket> {
        let grant = self.grant(identifier)?;
        Ok(OpenBucket {
            name: identifier.to_string(),
            snapshot: self.snapshot(identifier)?,
            call,
            written: BTreeMap::new(),
            // A pinned version: a task of a distributed query, which the
            // scheduler may run again, so its writes could be made twice.
            write: grant.write && grant.version.is_none(),
        })
    }
}

/// `HasData` marker: the host implementations borrow the store's state.
struct KeyValue;

impl HasData for KeyValue {
    type Data<'a> = &'a mut HostState;
}

/// Adds `wasi:keyvalue` (store, atomics, batch) to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    store::add_to_linker::<_, KeyValue>(linker, |state| state)?;
    atomics::add_to_linker::<_, KeyValue>(linker, |state| state)?;
    batch::add_to_linker::<_, KeyValue>(linker, |state| state)?;
    Ok(())
}

impl HostState {
    /// An open bucket, read afresh if it was opened in an earlier call.
    fn bucket(&mut self, bucket: &Resource<OpenBucket>) -> KvResult<&mut OpenBucket> {
        let call = self.calls;
        let open = self.table.get(bucket)?;
        if open.call != call {
            let snapshot = self.keyvalue.snapshot(&open.name)?;
            let open = self.table.get_mut(bucket)?;
            open.snapshot = snapshot;
            open.written.clear();
            open.call = call;
        }
        Ok(self.table.get_mut(bucket)?)
    }

    /// An open bucket to read `keys` keys from (counted as reads).
    fn read(&mut self, bucket: &Resource<OpenBucket>, keys: usize) -> KvResult<&mut OpenBucket> {
        self.keyvalue.usage.bucket_reads(keys);
        self.bucket(bucket)
    }

    /// Writes `writes` through the bucket `bucket`, which must allow it.
    fn write_through(
        &mut self,
        bucket: &Resource<OpenBucket>,
        writes: &[BucketWrite],
    ) -> KvResult<()> {
        let source = self.keyvalue.source.clone();
        let open = self.bucket(bucket)?;
        if !open.write {
            return Err(KvError::AccessDenied);
        }
        let source = source.ok_or(KvError::AccessDenied)?;
        open.written.extend(source.write(&open.name, writes)?);
        self.keyvalue.unsynced = true;
        self.keyvalue.usage.bucket_writes(writes.len());
        Ok(())
    }
}

impl store::Host for HostState {
    fn open(&mut self, identifier: String) -> KvResult<Resource<OpenBucket>> {
        let open = self.keyvalue.open(&identifier, self.calls)?;
        Ok(self.table.push(open)?)
    }

    fn convert_error(&mut self, err: KvError) -> wasmtime::Result<store::Error> {
        Ok(match err {
            KvError::NoSuchStore => store::Error::NoSuchStore,
            KvError::AccessDenied => store::Error::AccessDenied,
            KvError::Other(message) => store::Error::Other(message),
        })
    }
}

/// How many keys one `list-keys` call returns at most.
const KEYS_PER_PAGE: usize = 1000;

impl store::HostBucket for HostState {
    fn get(&mut self, bucket: Resource<OpenBucket>, key: String) -> KvResult<Option<Vec<u8>>> {
        Ok(self.read(&bucket, 1)?.get(&key).cloned())
    }

    fn set(&mut self, bucket: Resource<OpenBucket>, key: String, value: Vec<u8>) -> KvResult<()> {
        self.write_through(&bucket, &[BucketWrite::Set(key, value)])
    }

    fn delete(&mut self, bucket: Resource<OpenBucket>, key: String) -> KvResult<()> {
        self.write_through(&bucket, &[BucketWrite::Delete(key)])
    }

    fn exists(&mut self, bucket: Resource<OpenBucket>, key: String) -> KvResult<bool> {
        Ok(self.read(&bucket, 1)?.get(&key).is_some())
    }

    fn list_keys(
        &mut self,
        bucket: Resource<OpenBucket>,
        cursor: Option<u64>,
    ) -> KvResult<store::KeyResponse> {
        let all = self.read(&bucket, 1)?.keys();
        let start = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
        let keys: Vec<String> = all
            .iter()
            .skip(start)
            .take(KEYS_PER_PAGE)
            .map(|k| (*k).clone())
            .collect();
        let next = start.saturating_add(keys.len());
        Ok(store::KeyResponse {
            cursor: (next < all.len()).then_some(next as u64),
            keys,
        })
    }

    fn drop(&mut self, bucket: Resource<OpenBucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for HostState {
    fn increment(
        &mut self,
        bucket: Resource<OpenBucket>,
        key: String,
        delta: u64,
    ) -> KvResult<u64> {
        self.write_through(&bucket, &[BucketWrite::Add(key.clone(), delta)])?;
        let value = self.bucket(&bucket)?.get(&key).cloned();
        value
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| KvError::Other(format!("key \"{key}\" holds no counter")))
    }
}

impl batch::Host for HostState {
    fn get_many(
        &mut self,
        bucket: Resource<OpenBucket>,
        keys: Vec<String>,
    ) -> KvResult<Vec<Option<(String, Vec<u8>)>>> {
        let open = self.read(&bucket, keys.len())?;
        Ok(keys
            .into_iter()
            .map(|key| open.get(&key).cloned().map(|value| (key, value)))
            .collect())
    }

    fn set_many(
        &mut self,
        bucket: Resource<OpenBucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> KvResult<()> {
        let writes: Vec<BucketWrite> = key_values
            .into_iter()
            .map(|(key, value)| BucketWrite::Set(key, value))
            .collect();
        self.write_through(&bucket, &writes)
    }

    fn delete_many(&mut self, bucket: Resource<OpenBucket>, keys: Vec<String>) -> KvResult<()> {
        let writes: Vec<BucketWrite> = keys.into_iter().map(BucketWrite::Delete).collect();
        self.write_through(&bucket, &writes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_read_as_written() {
        let read = BucketGrant::parse("Rates").expect("read");
        assert_eq!(read.text(), "rates:read");
        let write = BucketGrant::parse(" hits : read-write ").expect("write");
        assert_eq!(write.text(), "hits:read-write");
        assert!(BucketGrant::parse("hits:admin").is_none());
        assert!(BucketGrant::parse("../etc:read").is_none());
        assert!(BucketGrant::parse(":read").is_none());
    }

    fn module_dir(dir: &tempfile::TempDir) -> ModuleDir {
        ModuleDir::open(
            dir.path().to_str().expect("utf-8"),
            &quiver_storage::ObjectStores::new(),
        )
        .expect("module dir")
    }

    #[test]
    fn superseded_snapshots_go_once_superseded_long_enough() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        for (bucket, version, old) in [
            ("rates", 1, true),
            ("rates", 2, true),
            ("rates", 3, false),
            ("rates", 4, false),
            ("rates2", 1, true),
        ] {
            let path = dir.path().join(snapshot_file(bucket, version));
            std::fs::write(&path, b"").expect("write");
            if old {
                std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(hour_ago))
                    .expect("age");
            }
        }
        remove_superseded(&module_dir(&dir), "rates", Duration::from_secs(60));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        // 1 was superseded an hour ago (by 2); 2 only just (by 3); 3 by 4,
        // just now; 4 is the latest; another bucket is another bucket.
        assert_eq!(
            left,
            [
                "bucket-rates2@1.arrow",
                "bucket-rates@2.arrow",
                "bucket-rates@3.arrow",
                "bucket-rates@4.arrow"
            ]
        );
    }

    #[test]
    fn published_snapshots_read_back() {
        let dir = tempfile::tempdir().expect("dir");
        let mut snapshot = BucketSnapshot {
            version: 7,
            ..BucketSnapshot::default()
        };
        snapshot.values.insert("EUR".into(), b"1.08".to_vec());
        snapshot.values.insert("empty".into(), Vec::new());
        let bytes = encode_snapshot(&snapshot).expect("encode");
        assert_eq!(read_snapshot(&bytes, 7).expect("read"), snapshot);
        let modules = module_dir(&dir);
        modules
            .write_file(&snapshot_file("rates", 7), bytes)
            .expect("write");
        let source = BucketSource::new(None);
        let read = source.at("rates", 7, Some(&modules)).expect("at");
        assert_eq!(*read, snapshot);
        assert!(source.at("rates", 8, Some(&modules)).is_err());
        assert!(source.latest("rates").is_err(), "no catalog here");
    }
}
