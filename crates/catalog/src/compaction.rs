//! Keeps the number of files of a managed table bounded.
//!
//! Every `INSERT`, `COPY` and committed transaction block adds at least one
//! Parquet file to its table's directory, so a table written a row at a
//! time would grow a file per row, and every scan (and DataFusion's
//! `insert_into`, which lists the table before it writes) would list and
//! open them all. After each write, the table's small files are merged in
//! the background, by level: a file a write produced is at level 0, a file
//! merged from files at level `n` is at level `n + 1` (its name says so:
//! `L<n>-<uuid>.parquet`). Once [`FANOUT`] small files share a level, they
//! are merged into one file of the next level; files of [`SMALL_FILE`] bytes
//! or more are left as they are. A table therefore keeps fewer than
//! `FANOUT` small files per level, and each row is rewritten once per level
//! (the levels grow `FANOUT`-fold).
//!
//! The merge itself runs beside readers and writers: its result is written
//! under a name scans do not list (`.parquet.partial`). Only the switch —
//! the merged file renamed into place and the files it replaces deleted —
//! needs the table to itself: statements hold a read [`Lease`] on every
//! managed table they read from planning until their last row, and the
//! switch takes the table's write lock, so no statement ever sees both the
//! merged file and its inputs, or lists a file that is then deleted under
//! it. The switch waits at most [`SWITCH_WAIT`] at a time for running
//! statements (a long query, a portal left open), so a compaction delays
//! other statements by at most that long; after a few such waits the merge
//! is given up until the table's next write.
//!
//! A crash mid-switch is repaired when the catalog opens: the merged file is
//! complete and synced before the switch starts, and the switch first
//! records what it replaces in the table's `compaction.json`, so an
//! interrupted switch is finished (the merged file renamed into place if it
//! is not yet, its remaining inputs deleted). Partial files of merges that
//! never reached their switch are deleted.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use datafusion::arrow::array::{RecordBatch, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::config::TableParquetOptions;
use datafusion::error::DataFusionError;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::arrow_writer::ArrowWriterOptions;
use datafusion::parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use crate::{Error, Result};

/// How many small files of one level are merged into one of the next.
pub const FANOUT: usize = 8;

/// Files this large are never merged (bytes).
pub const SMALL_FILE: u64 = 16 << 20;

/// How long a switch waits for the statements reading the table.
pub const SWITCH_WAIT: Duration = Duration::from_millis(250);

/// How many times a switch waits before the merge is given up.
const SWITCH_ATTEMPTS: usize = 8;

/// The record of a switch in progress, in the table's directory.
const INTENT: &str = "compaction.json";

/// Appended to a merged file's name while it is written.
const PARTIAL_SUFFIX: &str = ".partial";

/// A statement's claim on a managed table's current files: while one is
/// held, no compaction deletes a file of the table.
pub type Lease = OwnedRwLockReadGuard<()>;

/// A commit's hold on a table's unique keys (see [`crate::keys`]).
pub(crate) type KeyLock = tokio::sync::OwnedMutexGuard<()>;

/// The files of one managed table, as compaction sees them.
pub(crate) struct TableFiles {
    dir: PathBuf,
    schema: SchemaRef,
    /// Read by statements, written by a switch.
    lock: Arc<RwLock<()>>,
    /// Held by a commit to the table from the check of its unique keys
    /// until its files are in place (see [`crate::keys`]).
    keys: Arc<tokio::sync::Mutex<()>>,
    /// Set while a compaction of the table runs.
    running: AtomicBool,
    /// Set by a write; cleared by the compaction that will see its files.
    pending: AtomicBool,
}

impl std::fmt::Debug for TableFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableFiles")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// What a switch replaces: written before it starts, removed after it ends.
/// A compaction's switch puts one merged file in place of its inputs; a
/// rewrite's (see [`crate::rewrite`]) puts any number of files, none for a
/// `TRUNCATE`, in place of every file it read.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Intent {
    /// The new files' names; each is written as `<name>.partial` first.
    #[serde(deserialize_with = "one_or_many")]
    pub(crate) merged: Vec<String>,
    pub(crate) replaces: Vec<String>,
}

/// `merged` as a list, or as the one name records of earlier versions held.
fn one_or_many<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Names::deserialize(d)? {
        Names::One(name) => vec![name],
        Names::Many(names) => names,
    })
}

/// The name a file to come is written under: scans do not list it.
pub(crate) fn partial_name(name: &str) -> String {
    format!("{name}{PARTIAL_SUFFIX}")
}

impl TableFiles {
    pub(crate) fn new(dir: PathBuf, schema: SchemaRef) -> Self {
        Self {
            dir,
            schema,
            lock: Arc::new(RwLock::new(())),
            keys: Arc::new(tokio::sync::Mutex::new(())),
            running: AtomicBool::new(false),
            pending: AtomicBool::new(false),
        }
    }

    /// The same table's files, merged with the columns of `schema` from
    /// now on (`ALTER TABLE`); leases on either are leases on both.
    pub(crate) fn with_schema(&self, schema: SchemaRef) -> Self {
        Self {
            dir: self.dir.clone(),
            schema,
            lock: self.lock.clone(),
            keys: self.keys.clone(),
            running: AtomicBool::new(false),
            pending: AtomicBool::new(false),
        }
    }

    /// The table's keys to one commit, until its files are in place.
    pub(crate) async fn key_lock(&self) -> KeyLock {
        self.keys.clone().lock_owned().await
    }

    /// A read lease on the table's files.
    pub(crate) async fn lease(&self) -> Lease {
        self.lock.clone().read_owned().await
    }

    /// Starts compacting the table in the background, unless a compaction
    /// of it is already running; merged files are written with `options`
    /// (the server session's Parquet options).
    pub(crate) fn compact_soon(self: &Arc<Self>, options: &TableParquetOptions) {
        self.pending.store(true, Ordering::SeqCst);
        if self.running.swap(true, Ordering::SeqCst) {
            return;
        }
        let files = self.clone();
        let options = options.clone();
        tokio::spawn(async move {
            loop {
                files.pending.store(false, Ordering::SeqCst);
                let compacted = match files.properties(options.clone()) {
                    Ok(properties) => files.compact(properties).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = compacted {
                    tracing::warn!(dir = %files.dir.display(), error = %e, "compaction failed; the table's files are unchanged");
                }
                files.running.store(false, Ordering::SeqCst);
                // A write that found this compaction running after it had
                // last listed the table: look again, unless that write
                // started a compaction of its own.
                if !files.pending.load(Ordering::SeqCst)
                    || files.running.swap(true, Ordering::SeqCst)
                {
                    return;
                }
            }
        });
    }

    /// How a merged file is written: as DataFusion writes the files of an
    /// `INSERT`, the table's Arrow schema among its metadata.
    fn properties(&self, mut options: TableParquetOptions) -> Result<WriterProperties> {
        if !options.global.skip_arrow_metadata {
            options.arrow_schema(&self.schema);
        }
        Ok(WriterPropertiesBuilder::try_from(&options)?.build())
    }

    /// Merges levels until none has `FANOUT` small files.
    async fn compact(&self, properties: WriterProperties) -> Result<()> {
        loop {
            let dir = self.dir.clone();
            let Some((level, inputs)) = blocking(&self.dir, move || next_merge(&dir)).await? else {
                return Ok(());
            };
            let merged = format!("L{}-{}.parquet", level + 1, uuid::Uuid::new_v4().simple());
            let partial = self.dir.join(partial_name(&merged));
            let intent = Intent {
                merged: vec![merged],
                replaces: file_names(&inputs),
            };
            let (to, schema, props) = (partial.clone(), self.schema.clone(), properties.clone());
            let merged = blocking(&self.dir, move || merge(&inputs, &to, &schema, props)).await;
            let lock = match merged {
                Ok(()) => self.switch_lock().await,
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(e);
                }
            };
            let Some(lock) = lock else {
                // Statements kept reading the table: try after its next write.
                let _ = std::fs::remove_file(&partial);
                tracing::debug!(dir = %self.dir.display(), "compaction postponed: the table is being read");
                return Ok(());
            };
            let dir = self.dir.clone();
            let switched = blocking(&self.dir, move || {
                let _lock = lock;
                // An UPDATE, DELETE or TRUNCATE replaced some inputs
                // meanwhile: the merged file holds rows that are gone.
                if !all_exist(&dir, &intent.replaces) {
                    let _ = std::fs::remove_file(&partial);
                    return Ok(None);
                }
                switch(&dir, &intent).map(|()| Some(intent))
            })
            .await?;
            match switched {
                Some(intent) => {
                    tracing::debug!(dir = %self.dir.display(), merged = ?intent.merged, inputs = intent.replaces.len(), "compacted");
                }
                None => {
                    tracing::debug!(dir = %self.dir.display(), "compaction given up: its inputs were rewritten");
                    return Ok(());
                }
            }
        }
    }

    /// The table to itself, for a switch: [`SWITCH_ATTEMPTS`] waits of at
    /// most [`SWITCH_WAIT`] each, a second apart, so that a statement that
    /// reads the table for long delays others by no more than one wait.
    pub(crate) async fn switch_lock(&self) -> Option<OwnedRwLockWriteGuard<()>> {
        for attempt in 0..SWITCH_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            if let Ok(lock) =
                tokio::time::timeout(SWITCH_WAIT, self.lock.clone().write_owned()).await
            {
                return Some(lock);
            }
        }
        None
    }
}

/// Whether a Parquet file of `dir` stores a column `column` (one dropped
/// from its table: its values stay in the files written before, which
/// scans and merges pass over).
pub(crate) fn stores_column(dir: &Path, column: &str) -> Result<bool> {
    for path in crate::rewrite::parquet_files(dir)? {
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(DataFusionError::from)?;
        if reader.schema().column_with_name(column).is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether every file `names` names is in `dir`.
pub(crate) fn all_exist(dir: &Path, names: &[String]) -> bool {
    names.iter().all(|name| dir.join(name).is_file())
}

/// The names of `paths`' files.
pub(crate) fn file_names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .filter_map(|p| Some(p.file_name()?.to_str()?.to_string()))
        .collect()
}

/// Runs `work` (file I/O on the table's `dir`) on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    dir: &Path,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::io(dir, std::io::Error::other(e)))?
}

/// The level a file's name gives it (0 for a file a write produced).
fn level(name: &str) -> usize {
    name.strip_prefix('L')
        .and_then(|rest| rest.split_once('-'))
        .and_then(|(level, _)| level.parse().ok())
        .unwrap_or(0)
}

/// Of the levels with at least `FANOUT` small files, the one with the most
/// (the lowest of equals), and those files. Not simply the lowest: while
/// writes keep coming, level 0 always has enough, and the levels above it
/// would never be merged.
fn next_merge(dir: &Path) -> Result<Option<(usize, Vec<PathBuf>)>> {
    let mut levels: BTreeMap<usize, Vec<PathBuf>> = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // Dropped meanwhile.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.ends_with(".parquet") {
            continue;
        }
        let meta = entry.metadata().map_err(|e| Error::io(entry.path(), e))?;
        if meta.is_file() && meta.len() < SMALL_FILE {
            levels.entry(level(name)).or_default().push(entry.path());
        }
    }
    let busiest = levels
        .into_iter()
        .filter(|(_, files)| files.len() >= FANOUT)
        .max_by(|(a, a_files), (b, b_files)| a_files.len().cmp(&b_files.len()).then(b.cmp(a)));
    Ok(busiest.map(|(level, mut files)| {
        files.sort();
        (level, files)
    }))
}

/// Writes the rows of `inputs`, in order, as one Parquet file `to`, in the
/// table's `schema`.
fn merge(
    inputs: &[PathBuf],
    to: &Path,
    schema: &SchemaRef,
    properties: WriterProperties,
) -> Result<()> {
    let out = File::create(to).map_err(|e| Error::io(to, e))?;
    // The Arrow schema is in the properties' metadata already.
    let options = ArrowWriterOptions::new()
        .with_properties(properties)
        .with_skip_arrow_metadata(true);
    let mut writer = ArrowWriter::try_new_with_options(out, schema.clone(), options)
        .map_err(DataFusionError::from)?;
    for input in inputs {
        let file = File::open(input).map_err(|e| Error::io(input, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|builder| builder.build())
            .map_err(DataFusionError::from)?;
        for batch in reader {
            let batch = conform(batch.map_err(DataFusionError::from)?, schema)?;
            writer.write(&batch).map_err(DataFusionError::from)?;
        }
    }
    let out = writer.into_inner().map_err(DataFusionError::from)?;
    out.sync_all().map_err(|e| Error::io(to, e))
}

/// `batch` with the table's schema (a file may store a column in another
/// Arrow type that reads back as the same values, or without the table's
/// field metadata, and lacks the columns added after it was written,
/// which are NULL in its rows, as scans read them).
fn conform(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
            Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
            Some(column) => cast(column, field.data_type()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(DataFusionError::from)?;
    Ok(RecordBatch::try_new(schema.clone(), columns).map_err(DataFusionError::from)?)
}

/// Puts the merged files in place of their inputs, recording the switch
/// first so that a crash in the middle is repaired by [`recover`].
pub(crate) fn switch(dir: &Path, intent: &Intent) -> Result<()> {
    let record = dir.join(INTENT);
    let text = serde_json::to_vec(intent).map_err(|e| Error::io(&record, e.into()))?;
    write_durably(&record, &text)?;
    finish(dir, intent)
}

/// The second half of a switch: the merged files renamed into place, then
/// their inputs deleted, then the record of the switch.
fn finish(dir: &Path, intent: &Intent) -> Result<()> {
    let mut complete = true;
    for name in &intent.merged {
        let merged = dir.join(name);
        let partial = dir.join(partial_name(name));
        if partial.exists() {
            std::fs::rename(&partial, &merged).map_err(|e| Error::io(&merged, e))?;
        }
        complete &= merged.exists();
    }
    // Without every merged file, the inputs are the only copy of their rows.
    let replaced = if complete {
        intent.replaces.as_slice()
    } else {
        tracing::error!(dir = %dir.display(), merged = ?intent.merged, "merged file missing; keeping the files it was to replace");
        &[]
    };
    for name in replaced {
        let input = dir.join(name);
        match std::fs::remove_file(&input) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(&input, e));
            }
            _ => {}
        }
    }
    sync_dir(dir)?;
    let record = dir.join(INTENT);
    std::fs::remove_file(&record).map_err(|e| Error::io(&record, e))
}

/// Repairs a table directory after a crash: finishes a recorded switch whose
/// merged file was written, and removes partial files.
pub(crate) fn recover(dir: &Path) -> Result<()> {
    let record = dir.join(INTENT);
    match std::fs::read(&record) {
        Ok(text) => {
            let intent: Intent = serde_json::from_slice(&text).map_err(|e| Error::Corrupt {
                key: record.display().to_string(),
                message: e.to_string(),
            })?;
            tracing::warn!(dir = %dir.display(), merged = ?intent.merged, "finishing an interrupted switch");
            finish(dir, &intent)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&record, e)),
    }
    // Merges that never reached their switch, and the temporary file of a
    // record never completed.
    let unfinished_record = format!("{INTENT}.tmp");
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(PARTIAL_SUFFIX) || name == unfinished_record {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file, synced, then renamed.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    let temp = PathBuf::from(format!("{}.tmp", path.display()));
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&temp)?;
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    };
    write().map_err(|e| Error::io(path, e))?;
    sync_dir(path.parent().unwrap_or(path))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]))
    }

    /// A file of one row, `k`, named as a write names it.
    fn write_row(dir: &Path, k: i64) -> PathBuf {
        let path = dir.join(format!("w{k:03}_0.parquet"));
        let batch =
            RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(vec![k]))]).unwrap();
        let mut writer =
            ArrowWriter::try_new(File::create(&path).unwrap(), schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        path
    }

    /// Every `k` in the table's Parquet files, sorted.
    fn rows(dir: &Path) -> Vec<i64> {
        let mut rows = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if !path.to_string_lossy().ends_with(".parquet") {
                continue;
            }
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
                .unwrap()
                .build()
                .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let k = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                rows.extend((0..k.len()).map(|i| k.value(i)));
            }
        }
        rows.sort();
        rows
    }

    /// A merge of `FANOUT` one-row files, written but not switched.
    fn merged_not_switched(dir: &Path) -> Intent {
        let inputs: Vec<_> = (0..FANOUT as i64).map(|k| write_row(dir, k)).collect();
        let (level, chosen) = next_merge(dir).unwrap().expect("a level to merge");
        assert_eq!((level, chosen.len()), (0, FANOUT));
        let intent = Intent {
            merged: vec!["L1-test.parquet".into()],
            replaces: file_names(&inputs),
        };
        let partial = dir.join(partial_name("L1-test.parquet"));
        merge(&chosen, &partial, &schema(), WriterProperties::default()).unwrap();
        intent
    }

    #[test]
    fn a_switch_replaces_the_inputs_with_one_file_of_the_next_level() {
        let dir = tempfile::tempdir().unwrap();
        let intent = merged_not_switched(dir.path());
        switch(dir.path(), &intent).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["L1-test.parquet"]);
        assert_eq!(rows(dir.path()), (0..FANOUT as i64).collect::<Vec<_>>());
        assert_eq!(next_merge(dir.path()).unwrap(), None);
    }

    #[test]
    fn a_switch_cut_short_is_finished_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let intent = merged_not_switched(dir.path());
        // The crash: the record written, the merged file not yet renamed.
        let record = serde_json::to_vec(&intent).unwrap();
        write_durably(&dir.path().join(INTENT), &record).unwrap();
        recover(dir.path()).unwrap();
        assert!(dir.path().join("L1-test.parquet").exists());
        assert!(!dir.path().join(INTENT).exists());
        assert_eq!(rows(dir.path()), (0..FANOUT as i64).collect::<Vec<_>>());
    }

    #[test]
    fn a_merge_that_never_reached_its_switch_is_removed_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        merged_not_switched(dir.path());
        // A record cut short while it was written.
        std::fs::write(dir.path().join("compaction.json.tmp"), b"{\"merged\":").unwrap();
        recover(dir.path()).unwrap();
        assert!(!dir.path().join("L1-test.parquet.partial").exists());
        assert!(!dir.path().join("compaction.json.tmp").exists());
        assert_eq!(rows(dir.path()), (0..FANOUT as i64).collect::<Vec<_>>());
    }

    #[test]
    fn a_record_whose_merged_file_is_gone_keeps_the_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let intent = merged_not_switched(dir.path());
        std::fs::remove_file(dir.path().join("L1-test.parquet.partial")).unwrap();
        let record = serde_json::to_vec(&intent).unwrap();
        write_durably(&dir.path().join(INTENT), &record).unwrap();
        recover(dir.path()).unwrap();
        assert_eq!(rows(dir.path()), (0..FANOUT as i64).collect::<Vec<_>>());
    }

    #[test]
    fn a_record_of_an_earlier_version_names_one_merged_file() {
        let intent: Intent =
            serde_json::from_str(r#"{"merged":"L1-x.parquet","replaces":["a.parquet"]}"#).unwrap();
        assert_eq!(intent.merged, ["L1-x.parquet"]);
    }

    #[test]
    fn a_rewrite_switch_puts_any_number_of_files_in_place_of_its_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let inputs: Vec<_> = (0..3).map(|k| write_row(dir.path(), k)).collect();
        let new = tempfile::tempdir().unwrap();
        let outputs: Vec<_> = [10, 11].map(|k| write_row(new.path(), k)).to_vec();
        crate::rewrite::replace_files(dir.path(), &outputs, file_names(&inputs)).unwrap();
        assert_eq!(rows(dir.path()), [10, 11]);
        // A second rewrite of the same inputs finds them gone.
        let again = [write_row(new.path(), 12)];
        let refused = crate::rewrite::replace_files(dir.path(), &again, file_names(&inputs));
        assert!(matches!(refused, Err(Error::SerializationFailure(_))));
        assert_eq!(rows(dir.path()), [10, 11]);
        // A TRUNCATE's switch: no new files.
        let all = crate::rewrite::parquet_files(dir.path()).unwrap();
        crate::rewrite::replace_files(dir.path(), &[], file_names(&all)).unwrap();
        assert_eq!(rows(dir.path()), Vec::<i64>::new());
    }

    #[test]
    fn the_level_with_the_most_files_is_merged_first() {
        let dir = tempfile::tempdir().unwrap();
        for k in 0..FANOUT as i64 + 1 {
            write_row(dir.path(), k);
        }
        for k in 0..FANOUT as i64 + 2 {
            let row = write_row(dir.path(), 100 + k);
            std::fs::rename(&row, dir.path().join(format!("L1-{k}.parquet"))).unwrap();
        }
        let (level, files) = next_merge(dir.path()).unwrap().expect("a merge");
        assert_eq!((level, files.len()), (1, FANOUT + 2));
    }

    #[test]
    fn levels_come_from_merged_files_names_only() {
        assert_eq!(level("L3-0123abcd.parquet"), 3);
        assert_eq!(level("Lx9AbCdEfGh1234_0.parquet"), 0);
        assert_eq!(level("abc_0.parquet"), 0);
    }
}
