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

use crate::files::{Dir, TableFile};
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
    dir: Dir,
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
    pub(crate) fn new(dir: Dir, schema: SchemaRef) -> Self {
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
                    tracing::warn!(dir = %files.dir, error = %e, "compaction failed; the table's files are unchanged");
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
            let partial = partial_name(&merged);
            let intent = Intent {
                merged: vec![merged],
                replaces: inputs,
            };
            let (dir, inputs, to) = (self.dir.clone(), intent.replaces.clone(), partial.clone());
            let (schema, props) = (self.schema.clone(), properties.clone());
            let merged =
                blocking(&self.dir, move || merge(&dir, &inputs, &to, &schema, props)).await;
            let lock = match merged {
                Ok(()) => self.switch_lock().await,
                Err(e) => {
                    self.remove_quietly(&partial).await;
                    return Err(e);
                }
            };
            let Some(lock) = lock else {
                // Statements kept reading the table: try after its next write.
                self.remove_quietly(&partial).await;
                tracing::debug!(dir = %self.dir, "compaction postponed: the table is being read");
                return Ok(());
            };
            let dir = self.dir.clone();
            let switched = blocking(&self.dir, move || {
                let _lock = lock;
                // An UPDATE, DELETE or TRUNCATE replaced some inputs
                // meanwhile: the merged file holds rows that are gone.
                if !all_exist(&dir, &intent.replaces)? {
                    let _ = dir.remove(&partial);
                    return Ok(None);
                }
                switch(&dir, &intent).map(|()| Some(intent))
            })
            .await?;
            match switched {
                Some(intent) => {
                    tracing::debug!(dir = %self.dir, merged = ?intent.merged, inputs = intent.replaces.len(), "compacted");
                }
                None => {
                    tracing::debug!(dir = %self.dir, "compaction given up: its inputs were rewritten");
                    return Ok(());
                }
            }
        }
    }

    /// Removes the table's file `name` if it can (a merge's partial file:
    /// one left behind is removed when the catalog next opens).
    async fn remove_quietly(&self, name: &str) {
        let (dir, name) = (self.dir.clone(), name.to_string());
        let _ = blocking(&self.dir, move || dir.remove(&name)).await;
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
pub(crate) fn stores_column(dir: &Dir, column: &str) -> Result<bool> {
    for name in crate::rewrite::parquet_names(dir)? {
        let reader = ParquetRecordBatchReaderBuilder::try_new(dir.open(&name)?)
            .map_err(DataFusionError::from)?;
        if reader.schema().column_with_name(column).is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether every file `names` names is in `dir`.
pub(crate) fn all_exist(dir: &Dir, names: &[String]) -> Result<bool> {
    if names.is_empty() {
        return Ok(true);
    }
    let there = dir.names()?;
    Ok(names.iter().all(|name| there.contains(name)))
}

/// The names of `files`.
pub(crate) fn file_names(files: &[TableFile]) -> Vec<String> {
    files.iter().map(|f| f.name.clone()).collect()
}

/// Runs `work` (file I/O on the table's `dir`) on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    dir: &Dir,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Files {
            location: dir.to_string(),
            message: e.to_string(),
        })?
}

/// The level a file's name gives it (0 for a file a write produced).
fn level(name: &str) -> usize {
    name.strip_prefix('L')
        .and_then(|rest| rest.split_once('-'))
        .and_then(|(level, _)| level.parse().ok())
        .unwrap_or(0)
}

/// Of the levels with at least `FANOUT` small files, the one with the most
/// (the lowest of equals), and those files' names. Not simply the lowest:
/// while writes keep coming, level 0 always has enough, and the levels
/// above it would never be merged.
fn next_merge(dir: &Dir) -> Result<Option<(usize, Vec<String>)>> {
    let mut levels: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    // A table dropped meanwhile lists nothing.
    for file in dir.list()? {
        if file.name.ends_with(".parquet") && file.size < SMALL_FILE {
            levels.entry(level(&file.name)).or_default().push(file.name);
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

/// Writes the rows of the files `inputs` of `dir`, in order, as one
/// Parquet file `to` there, in the table's `schema`.
fn merge(
    dir: &Dir,
    inputs: &[String],
    to: &str,
    schema: &SchemaRef,
    properties: WriterProperties,
) -> Result<()> {
    let out = dir.create_file(to)?;
    // The Arrow schema is in the properties' metadata already.
    let options = ArrowWriterOptions::new()
        .with_properties(properties)
        .with_skip_arrow_metadata(true);
    let mut writer = ArrowWriter::try_new_with_options(out, schema.clone(), options)
        .map_err(DataFusionError::from)?;
    for input in inputs {
        let reader = ParquetRecordBatchReaderBuilder::try_new(dir.open_to_scan(input)?)
            .and_then(|builder| builder.build())
            .map_err(DataFusionError::from)?;
        for batch in reader {
            let batch = conform(batch.map_err(DataFusionError::from)?, schema)?;
            writer.write(&batch).map_err(DataFusionError::from)?;
        }
    }
    writer.into_inner().map_err(DataFusionError::from)?.finish()
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
pub(crate) fn switch(dir: &Dir, intent: &Intent) -> Result<()> {
    let text = serde_json::to_vec(intent).map_err(|e| Error::Corrupt {
        key: format!("{dir}/{INTENT}"),
        message: e.to_string(),
    })?;
    dir.write_durably(INTENT, &text)?;
    finish(dir, intent)
}

/// The second half of a switch: the merged files moved into place, then
/// their inputs deleted, then the record of the switch. Each step may be
/// done again (a crash in the middle of one, in an object store, leaves
/// a merged file both under its partial name and its own).
fn finish(dir: &Dir, intent: &Intent) -> Result<()> {
    let there = dir.names()?;
    let mut complete = true;
    for name in &intent.merged {
        let partial = partial_name(name);
        if there.contains(&partial) {
            dir.rename(&partial, dir, name)?;
        } else {
            complete &= there.contains(name);
        }
    }
    // Without every merged file, the inputs are the only copy of their rows.
    let replaced = if complete {
        intent.replaces.as_slice()
    } else {
        tracing::error!(%dir, merged = ?intent.merged, "merged file missing; keeping the files it was to replace");
        &[]
    };
    for name in replaced {
        dir.remove(name)?;
    }
    dir.sync()?;
    dir.remove(INTENT)
}

/// Repairs a table directory after a crash: finishes a recorded switch whose
/// merged file was written, and removes partial files.
pub(crate) fn recover(dir: &Dir) -> Result<()> {
    if let Some(text) = dir.read(INTENT)? {
        let intent: Intent = serde_json::from_slice(&text).map_err(|e| Error::Corrupt {
            key: format!("{dir}/{INTENT}"),
            message: e.to_string(),
        })?;
        tracing::warn!(%dir, merged = ?intent.merged, "finishing an interrupted switch");
        finish(dir, &intent)?;
    }
    // Merges that never reached their switch, and the temporary file of a
    // record never completed.
    let unfinished_record = format!("{INTENT}.tmp");
    for file in dir.list()? {
        if file.name.ends_with(PARTIAL_SUFFIX) || file.name == unfinished_record {
            let _ = dir.remove(&file.name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::files::tests::each_kind_of_dir;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]))
    }

    /// A file of one row, `k`, named as a write names it.
    fn write_row(dir: &Dir, k: i64) -> TableFile {
        let file = dir.file(&format!("w{k:03}_0.parquet"));
        let batch =
            RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(vec![k]))]).unwrap();
        let mut writer =
            ArrowWriter::try_new(dir.create_file(&file.name).unwrap(), schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.into_inner().unwrap().finish().unwrap();
        file
    }

    /// The names of the files in `dir`, sorted.
    fn names(dir: &Dir) -> Vec<String> {
        let mut names: Vec<_> = dir.list().unwrap().into_iter().map(|f| f.name).collect();
        names.sort();
        names
    }

    /// Every `k` in the table's Parquet files, sorted.
    fn rows(dir: &Dir) -> Vec<i64> {
        let mut rows = Vec::new();
        for name in names(dir) {
            if !name.ends_with(".parquet") {
                continue;
            }
            let reader = ParquetRecordBatchReaderBuilder::try_new(dir.open_to_scan(&name).unwrap())
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
    fn merged_not_switched(dir: &Dir) -> Intent {
        let inputs: Vec<_> = (0..FANOUT as i64).map(|k| write_row(dir, k)).collect();
        let (level, chosen) = next_merge(dir).unwrap().expect("a level to merge");
        assert_eq!((level, chosen.len()), (0, FANOUT));
        let intent = Intent {
            merged: vec!["L1-test.parquet".into()],
            replaces: file_names(&inputs),
        };
        let partial = partial_name("L1-test.parquet");
        merge(
            dir,
            &chosen,
            &partial,
            &schema(),
            WriterProperties::default(),
        )
        .unwrap();
        intent
    }

    #[test]
    fn a_switch_replaces_the_inputs_with_one_file_of_the_next_level() {
        for (_keep, dir) in each_kind_of_dir() {
            let intent = merged_not_switched(&dir);
            switch(&dir, &intent).unwrap();
            assert_eq!(names(&dir), ["L1-test.parquet"], "{dir}");
            assert_eq!(rows(&dir), (0..FANOUT as i64).collect::<Vec<_>>());
            assert_eq!(next_merge(&dir).unwrap(), None);
        }
    }

    #[test]
    fn a_switch_cut_short_is_finished_at_start_up() {
        for (_keep, dir) in each_kind_of_dir() {
            let intent = merged_not_switched(&dir);
            // The crash: the record written, the merged file not yet renamed.
            let record = serde_json::to_vec(&intent).unwrap();
            dir.write_durably(INTENT, &record).unwrap();
            recover(&dir).unwrap();
            assert_eq!(names(&dir), ["L1-test.parquet"], "{dir}");
            assert_eq!(rows(&dir), (0..FANOUT as i64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_move_cut_short_in_an_object_store_is_finished_at_start_up() {
        for (_keep, dir) in each_kind_of_dir() {
            let intent = merged_not_switched(&dir);
            dir.write_durably(INTENT, &serde_json::to_vec(&intent).unwrap())
                .unwrap();
            // The crash: the merged file copied to its name, not yet
            // deleted under its partial one, and one input deleted.
            let partial = partial_name("L1-test.parquet");
            let copy = dir.read(&partial).unwrap().unwrap();
            dir.write_durably("L1-test.parquet", &copy).unwrap();
            dir.remove(&intent.replaces[0]).unwrap();
            recover(&dir).unwrap();
            assert_eq!(names(&dir), ["L1-test.parquet"], "{dir}");
            assert_eq!(rows(&dir), (0..FANOUT as i64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_merge_that_never_reached_its_switch_is_removed_at_start_up() {
        for (_keep, dir) in each_kind_of_dir() {
            merged_not_switched(&dir);
            // A record cut short while it was written.
            dir.write_durably("compaction.json.tmp", b"{\"merged\":")
                .unwrap();
            recover(&dir).unwrap();
            assert!(
                !names(&dir).iter().any(|n| !n.ends_with(".parquet")),
                "{dir}"
            );
            assert_eq!(rows(&dir), (0..FANOUT as i64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_record_whose_merged_file_is_gone_keeps_the_inputs() {
        for (_keep, dir) in each_kind_of_dir() {
            let intent = merged_not_switched(&dir);
            dir.remove("L1-test.parquet.partial").unwrap();
            let record = serde_json::to_vec(&intent).unwrap();
            dir.write_durably(INTENT, &record).unwrap();
            recover(&dir).unwrap();
            assert_eq!(rows(&dir), (0..FANOUT as i64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_record_of_an_earlier_version_names_one_merged_file() {
        let intent: Intent =
            serde_json::from_str(r#"{"merged":"L1-x.parquet","replaces":["a.parquet"]}"#).unwrap();
        assert_eq!(intent.merged, ["L1-x.parquet"]);
    }

    #[test]
    fn a_rewrite_switch_puts_any_number_of_files_in_place_of_its_inputs() {
        for (_keep, root) in each_kind_of_dir() {
            let (dir, new) = (root.join("table"), root.join("new"));
            dir.create().unwrap();
            new.create().unwrap();
            let inputs: Vec<_> = (0..3).map(|k| write_row(&dir, k)).collect();
            let outputs: Vec<_> = [10, 11].map(|k| write_row(&new, k)).to_vec();
            crate::rewrite::replace_files(&dir, &outputs, file_names(&inputs)).unwrap();
            assert_eq!(rows(&dir), [10, 11], "{dir}");
            // A second rewrite of the same inputs finds them gone.
            let again = [write_row(&new, 12)];
            let refused = crate::rewrite::replace_files(&dir, &again, file_names(&inputs));
            assert!(matches!(refused, Err(Error::SerializationFailure(_))));
            assert_eq!(rows(&dir), [10, 11]);
            // A TRUNCATE's switch: no new files.
            let all = crate::rewrite::parquet_files(&dir).unwrap();
            crate::rewrite::replace_files(&dir, &[], file_names(&all)).unwrap();
            assert_eq!(rows(&dir), Vec::<i64>::new());
        }
    }

    #[test]
    fn the_level_with_the_most_files_is_merged_first() {
        for (_keep, dir) in each_kind_of_dir() {
            for k in 0..FANOUT as i64 + 1 {
                write_row(&dir, k);
            }
            for k in 0..FANOUT as i64 + 2 {
                let row = write_row(&dir, 100 + k);
                dir.rename(&row.name, &dir, &format!("L1-{k}.parquet"))
                    .unwrap();
            }
            let (level, files) = next_merge(&dir).unwrap().expect("a merge");
            assert_eq!((level, files.len()), (1, FANOUT + 2));
        }
    }

    #[test]
    fn levels_come_from_merged_files_names_only() {
        assert_eq!(level("L3-0123abcd.parquet"), 3);
        assert_eq!(level("Lx9AbCdEfGh1234_0.parquet"), 0);
        assert_eq!(level("abc_0.parquet"), 0);
    }
}
