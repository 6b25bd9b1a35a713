//! [`Catalog`]: the stored schemas and the relations in them.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::config::TableParquetOptions;
use datafusion::datasource::source_as_provider;
use datafusion::execution::SessionState;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{CreateExternalTable, LogicalPlan, TableSource};
use datafusion::prelude::{SessionConfig, SessionContext};
use url::Url;

use crate::changes::DdlLock;
use crate::compaction::{Lease, TableFiles};
use crate::files::Dir;
use crate::sequences::SequenceTable;
use crate::staging::Staging;
use crate::store::{ACLS_CF, COMMENTS_CF, Change, MetaStore, SCHEMAS_CF, TABLES_CF};
use crate::table::{
    ListedView, columns_of, external_table, listing_urls, managed_table, replay_external,
};
use crate::temp::TempTables;
use crate::{
    Acl, Error, Object, QualifiedName, Result, SchemaEntry, Sequence, SequenceOptions, Sequences,
    TableEntry, TableKind,
};

/// The schema every data directory has, first on the default search path.
pub const DEFAULT_SCHEMA: &str = "public";

/// The durable catalog of one data directory: its schemas and the
/// relations in them.
pub struct Catalog {
    store: Arc<MetaStore>,
    tables_dir: Dir,
    temp_dir: Dir,
    tables: RwLock<BTreeMap<QualifiedName, Loaded>>,
    /// The schemas `CREATE SCHEMA` made (`public` is always there).
    schemas: RwLock<BTreeMap<String, SchemaEntry>>,
    /// Changes with every change of `tables` (see [`Catalog::generation`]).
    generation: AtomicU64,
    /// The ACLs [`Catalog::set_acl`] stored, by [`Object::key`].
    acls: RwLock<BTreeMap<String, Acl>>,
    /// What `COMMENT ON` says about objects other than relations, by key.
    comments: RwLock<BTreeMap<String, String>>,
    /// Serialises DDL so that check-then-write sequences are atomic.
    ddl: tokio::sync::Mutex<()>,
    /// How compaction writes the files it merges: as the server's session
    /// writes Parquet.
    parquet: TableParquetOptions,
    /// The sequences' counters.
    sequences: Arc<Sequences>,
    /// The server's runtime (its object stores, memory pool and caches),
    /// for the queries the catalog runs itself (see [`Catalog::query_context`]).
    runtime: Arc<RuntimeEnv>,
}

/// A stored table, as the catalog has it at hand.
#[derive(Clone)]
pub(crate) struct Loaded {
    pub(crate) entry: TableEntry,
    /// `None` when the table could not be rebuilt at start-up (an external
    /// table whose files are gone, say): it can still be dropped. A view's
    /// only lists it (see [`crate::table::ListedView`]).
    pub(crate) provider: Option<Arc<dyn TableProvider>>,
    /// A managed table's files, by the URL its provider lists.
    pub(crate) files: Option<(String, Arc<TableFiles>)>,
}

impl Loaded {
    /// Whether the relation is a view.
    pub(crate) fn is_view(&self) -> bool {
        matches!(self.entry.kind, TableKind::View { .. })
    }

    /// Whether catalogs listing tables and views (`pg_class`,
    /// `information_schema.tables`) list it: not a table that could not be
    /// loaded, nor a sequence (which they would list as a table).
    pub(crate) fn listed(&self) -> bool {
        self.provider.is_some() && !matches!(self.entry.kind, TableKind::Sequence { .. })
    }

    /// The relation as a sequence, if it is one.
    pub(crate) fn sequence(&self) -> Option<Sequence> {
        self.entry.sequence()
    }
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("tables_dir", &self.tables_dir)
            .finish_non_exhaustive()
    }
}

/// The directory of the data directory the managed tables' directories are in.
const TABLES: &str = "tables";

/// The directory of the local data directory `data_dir` the managed
/// tables' directories are in.
pub(crate) fn tables_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(TABLES)
}

impl Catalog {
    /// Opens the catalog whose metadata is in `store` and whose tables'
    /// files are at `files` (a local directory's `file://` URL, or a folder
    /// of an object store `state`'s runtime reaches): rebuilds every stored
    /// table with `state` (external tables are replayed through its table
    /// factories), and removes table directories no entry points at and
    /// temporary tables sessions of an earlier run left behind.
    pub async fn open(store: Arc<MetaStore>, files: &Url, state: &SessionState) -> Result<Self> {
        let root = Dir::at(files, state)?;
        let tables_dir = root.join(TABLES);
        tables_dir.create()?;
        let temp_dir = crate::temp::temp_root(&root);
        temp_dir.remove_all()?;
        let catalog = Self {
            sequences: Arc::new(Sequences::new(store.clone())),
            store,
            tables_dir,
            temp_dir,
            tables: RwLock::new(BTreeMap::new()),
            schemas: RwLock::new(BTreeMap::new()),
            generation: AtomicU64::new(0),
            acls: RwLock::new(BTreeMap::new()),
            comments: RwLock::new(BTreeMap::new()),
            ddl: tokio::sync::Mutex::new(()),
            parquet: state.table_options().parquet.clone(),
            runtime: state.runtime_env().clone(),
        };
        catalog.load(state).await?;
        catalog.load_acls()?;
        Ok(catalog)
    }

    fn load_acls(&self) -> Result<()> {
        let acls = self.store.scan_json::<Acl>(ACLS_CF)?;
        *self.acls.write().unwrap_or_else(|p| p.into_inner()) = acls.into_iter().collect();
        let comments = self.store.scan_json::<String>(COMMENTS_CF)?;
        *self.comments.write().unwrap_or_else(|p| p.into_inner()) = comments.into_iter().collect();
        Ok(())
    }

    /// The bytes the files of the managed table `entry` take (`None` for
    /// other relations, and while they cannot be listed).
    pub fn table_size(&self, entry: &TableEntry) -> Option<u64> {
        let TableKind::Managed { id, .. } = &entry.kind else {
            return None;
        };
        let files = self.tables_dir.join(id).list().ok()?;
        Some(files.iter().map(|file| file.size).sum())
    }

    /// What `COMMENT ON` says about `object` (not a relation: those keep
    /// theirs in their entries).
    pub fn comment(&self, object: &Object) -> Option<String> {
        let comments = self.comments.read().unwrap_or_else(|p| p.into_inner());
        comments.get(&object.key()).cloned()
    }

    /// Stores what `COMMENT ON` says about `object` (`None`: forgets it, as
    /// when the object is dropped), durably.
    pub fn set_comment(&self, object: &Object, comment: Option<String>) -> Result<()> {
        let key = object.key();
        let mut comments = self.comments.write().unwrap_or_else(|p| p.into_inner());
        match comment {
            Some(comment) => {
                self.store.put_json(COMMENTS_CF, &key, &comment)?;
                comments.insert(key, comment);
            }
            None => {
                self.store.delete(COMMENTS_CF, &key)?;
                comments.remove(&key);
            }
        }
        Ok(())
    }

    async fn load(&self, state: &SessionState) -> Result<()> {
        let schemas = self.store.scan_json::<SchemaEntry>(SCHEMAS_CF)?;
        *self.schemas.write().unwrap_or_else(|p| p.into_inner()) = schemas.into_iter().collect();
        let mut loaded = BTreeMap::new();
        let mut live_dirs = HashSet::new();
        let mut live_sequences = HashSet::new();
        for (_, entry) in self.store.scan_json::<TableEntry>(TABLES_CF)? {
            if let TableKind::Sequence { id, .. } = &entry.kind {
                live_sequences.insert(id.clone());
            }
            if let TableKind::Managed { id, .. } = &entry.kind {
                live_dirs.insert(id.clone());
                let dir = self.tables_dir.join(id);
                if let Err(e) = crate::compaction::recover(&dir) {
                    tracing::error!(table = %entry.name, error = %e, "could not finish an interrupted compaction");
                }
            }
            let built = self.build(state, &entry).await.and_then(|provider| {
                let files = self.table_files(&entry)?;
                Ok((provider, files))
            });
            let (provider, files) = match built {
                Ok((provider, files)) => (Some(provider), files),
                Err(e) => {
                    tracing::error!(table = %entry.name, error = %e, "table could not be loaded");
                    (None, None)
                }
            };
            loaded.insert(
                entry.qualified(),
                Loaded {
                    entry,
                    provider,
                    files,
                },
            );
        }
        self.remove_orphan_dirs(&live_dirs);
        self.sequences.remove_orphans(&live_sequences)?;
        tracing::info!(tables = loaded.len(), "catalog loaded");
        *self.write() = loaded;
        Ok(())
    }

    fn remove_orphan_dirs(&self, live: &HashSet<String>) {
        let names = match self.tables_dir.dirs() {
            Ok(names) => names,
            Err(e) => {
                tracing::error!(dir = %self.tables_dir, error = %e, "could not list the tables' directories");
                return;
            }
        };
        for name in names.iter().filter(|name| !live.contains(*name)) {
            let dir = self.tables_dir.join(name);
            tracing::warn!(%dir, "removing table directory with no catalog entry");
            if let Err(e) = dir.remove_all() {
                tracing::error!(%dir, error = %e, "could not remove directory");
            }
        }
    }

    async fn build(
        &self,
        state: &SessionState,
        entry: &TableEntry,
    ) -> Result<Arc<dyn TableProvider>> {
        match &entry.kind {
            TableKind::Managed { id, columns } => managed_table(
                &self.tables_dir.join(id),
                entry.managed_schema(columns)?,
                &self.parquet,
            ),
            TableKind::External { definition } => replay_external(state, definition).await,
            TableKind::View { columns, .. } => Ok(Arc::new(ListedView {
                schema: entry.managed_schema(columns)?,
            })),
            TableKind::Sequence { id, options } => Ok(self.sequence_table(Sequence {
                name: entry.name.clone(),
                id: id.clone(),
                options: options.clone(),
            })),
        }
    }

    /// A managed table's files, with the URL its provider lists.
    fn table_files(&self, entry: &TableEntry) -> Result<Option<(String, Arc<TableFiles>)>> {
        let TableKind::Managed { id, columns } = &entry.kind else {
            return Ok(None);
        };
        let dir = self.tables_dir.join(id);
        let url = dir.url()?.as_str().to_string();
        let files = TableFiles::new(dir, entry.managed_schema(columns)?);
        Ok(Some((url, Arc::new(files))))
    }

    /// The files of the managed tables that `providers` read.
    fn files_of<'a>(
        &self,
        providers: impl IntoIterator<Item = &'a dyn TableProvider>,
    ) -> Vec<Arc<TableFiles>> {
        let urls: HashSet<&str> = providers.into_iter().flat_map(listing_urls).collect();
        self.read()
            .values()
            .filter_map(|l| l.files.as_ref())
            .filter(|(url, _)| urls.contains(url.as_str()))
            .map(|(_, files)| files.clone())
            .collect()
    }

    /// Leases on the files of every managed table `plan` reads, to be held
    /// until it has run: compaction does not delete a file of a leased
    /// table (see [`crate::compaction`]). A table `plan` only writes needs
    /// none: a write adds files, and the listing DataFusion makes before it
    /// writes only names them.
    pub async fn leases(&self, plan: &LogicalPlan) -> Vec<Lease> {
        let mut sources: Vec<Arc<dyn TableSource>> = Vec::new();
        let _ = plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                sources.push(scan.source.clone());
            }
            Ok(TreeNodeRecursion::Continue)
        });
        let providers: Vec<_> = sources
            .iter()
            .filter_map(|source| source_as_provider(source).ok())
            .collect();
        let mut leases = Vec::new();
        for files in self.files_of(providers.iter().map(|p| p.as_ref())) {
            leases.push(files.lease().await);
        }
        leases
    }

    /// Notes that rows were written to `table` (a managed table, or a
    /// transaction block's view of one): its small files are merged in the
    /// background once there are enough of them.
    pub fn written(&self, table: &dyn TableProvider) {
        for files in self.files_of([table]) {
            files.compact_soon(&self.parquet);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<QualifiedName, Loaded>> {
        self.tables.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<QualifiedName, Loaded>> {
        let tables = self.tables.write().unwrap_or_else(|p| p.into_inner());
        // Counted while the change is still to come and readers wait for
        // it: whoever reads the new generation then reads the new tables.
        self.generation.fetch_add(1, Ordering::AcqRel);
        tables
    }

    /// Changes whenever a table or schema is created or dropped or its entry changes:
    /// a plan made while this stayed the same names the tables there are.
    /// Read it before planning.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A new, empty set of temporary tables for the session `session_id`
    /// (removed with it).
    pub fn temp_tables(&self, session_id: &str) -> TempTables {
        TempTables::new(self.temp_dir.join(session_id), self.parquet.clone())
    }

    /// The writes a session's transaction blocks stage (under its
    /// temporary directory, removed with it).
    pub fn staging(&self, session_id: &str) -> Staging {
        Staging::new(self.temp_dir.join(session_id))
    }

    /// The stored relation `name`.
    pub(crate) fn loaded(&self, name: &QualifiedName) -> Option<Loaded> {
        self.read().get(name).cloned()
    }

    /// Every stored relation, in schema and name order.
    pub fn entries(&self) -> Vec<TableEntry> {
        self.read().values().map(|l| l.entry.clone()).collect()
    }

    /// The stored relation `name`.
    pub fn entry(&self, name: &QualifiedName) -> Option<TableEntry> {
        self.read().get(name).map(|l| l.entry.clone())
    }

    /// The stored schema `name`'s entry (`None` for `public`, which has
    /// none, and for a schema there is not).
    pub fn schema_entry(&self, name: &str) -> Option<SchemaEntry> {
        self.schemas
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The names of the stored schemas, `public` among them, in order.
    pub fn schema_names(&self) -> Vec<String> {
        let schemas = self.schemas.read().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = schemas.keys().cloned().collect();
        names.push(DEFAULT_SCHEMA.to_string());
        names.sort();
        names
    }

    /// The ACL of `object` (not a table: see [`TableEntry::acl`]): as
    /// stored, or [`Object::default_acl`] when nothing was stored.
    pub fn acl(&self, object: &Object) -> Acl {
        if let Object::Schema(name) = object
            && let Some(schema) = self.schema_entry(name)
        {
            return schema.acl;
        }
        self.acls
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&object.key())
            .cloned()
            .unwrap_or_else(|| object.default_acl(None))
    }

    /// Every stored ACL of an object other than a table, by key.
    pub fn acls(&self) -> BTreeMap<String, Acl> {
        self.acls.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stores the ACL of `object` (`None`: forgets it, as when a function
    /// is dropped), durably.
    pub fn set_acl(&self, object: &Object, acl: Option<Acl>) -> Result<()> {
        if let Object::Schema(name) = object
            && let Some(mut schema) = self.schema_entry(name)
        {
            // A schema `CREATE SCHEMA` made keeps its ACL in its entry.
            schema.acl = acl.unwrap_or_else(|| object.default_acl(None));
            self.store.put_json(SCHEMAS_CF, name, &schema)?;
            self.apply_schemas([(name.clone(), Some(schema))]);
            return Ok(());
        }
        let key = object.key();
        let mut acls = self.acls.write().unwrap_or_else(|p| p.into_inner());
        match acl {
            Some(acl) => {
                self.store.put_json(ACLS_CF, &key, &acl)?;
                acls.insert(key, acl);
            }
            None => {
                self.store.delete(ACLS_CF, &key)?;
                acls.remove(&key);
            }
        }
        Ok(())
    }

    /// A new managed table `name` with `schema`, owned by `owner`, and its
    /// (new, empty) directory: not stored yet (see [`crate::changes`]).
    pub(crate) fn new_managed(
        &self,
        name: &QualifiedName,
        schema: SchemaRef,
        owner: &str,
    ) -> Result<Loaded> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.tables_dir.join(&id);
        dir.create()?;
        let built = managed_table(&dir, schema.clone(), &self.parquet).and_then(|provider| {
            let entry = TableEntry {
                schema: name.schema.clone(),
                name: name.name.clone(),
                kind: TableKind::managed(id, &schema),
                created_at_ms: now_ms(),
                acl: Acl::owned_by(owner),
                indexes: Vec::new(),
                foreign_keys: Vec::new(),
                comment: None,
            };
            let files = self.table_files(&entry)?;
            Ok(Loaded {
                entry,
                provider: Some(provider),
                files,
            })
        });
        if built.is_err() {
            let _ = dir.remove_all();
        }
        built
    }

    /// The managed table `table` with the columns of `schema` (its files
    /// as they are: a column they lack reads as NULL). Not stored yet (see
    /// [`crate::changes`]).
    pub(crate) fn with_columns(&self, table: &Loaded, schema: SchemaRef) -> Result<Loaded> {
        let TableKind::Managed { id, .. } = &table.entry.kind else {
            return Err(Error::Unsupported(format!(
                "only the columns of a table Quiver manages can change, not \"{}\"'s",
                table.entry.name
            )));
        };
        let provider = managed_table(&self.tables_dir.join(id), schema.clone(), &self.parquet)?;
        let entry = TableEntry {
            kind: TableKind::managed(id.clone(), &schema),
            ..table.entry.clone()
        };
        let files = match &table.files {
            Some((url, files)) => Some((url.clone(), Arc::new(files.with_schema(schema)))),
            None => self.table_files(&entry)?,
        };
        Ok(Loaded {
            entry,
            provider: Some(provider),
            files,
        })
    }

    /// A new external table from its planned `command`, owned by `owner`;
    /// `definition` is the statement's text, stored to rebuild the table at
    /// start-up. Not stored yet (see [`crate::changes`]).
    pub(crate) async fn new_external(
        &self,
        state: &SessionState,
        command: &CreateExternalTable,
        name: &QualifiedName,
        definition: String,
        owner: &str,
    ) -> Result<Loaded> {
        let provider = external_table(state, command).await?;
        Ok(Loaded {
            entry: TableEntry {
                schema: name.schema.clone(),
                name: name.name.clone(),
                kind: TableKind::External { definition },
                created_at_ms: now_ms(),
                acl: Acl::owned_by(owner),
                indexes: Vec::new(),
                foreign_keys: Vec::new(),
                comment: None,
            },
            provider: Some(provider),
            files: None,
        })
    }

    /// A new view `name` with the columns of `schema`, defined by its
    /// `CREATE VIEW` statement (`definition`), owned by `owner`. Not stored
    /// yet (see [`crate::changes`]).
    pub(crate) fn new_view(
        &self,
        name: &QualifiedName,
        definition: String,
        schema: &Schema,
        owner: &str,
    ) -> Loaded {
        Loaded {
            entry: TableEntry {
                schema: name.schema.clone(),
                name: name.name.clone(),
                kind: TableKind::View {
                    definition,
                    // A view's columns have no defaults of their own (its
                    // query's may carry its tables').
                    columns: columns_of(schema)
                        .into_iter()
                        .map(|mut column| {
                            column.metadata.remove(crate::COLUMN_DEFAULT);
                            column
                        })
                        .collect(),
                },
                created_at_ms: now_ms(),
                acl: Acl::owned_by(owner),
                indexes: Vec::new(),
                foreign_keys: Vec::new(),
                comment: None,
            },
            provider: Some(Arc::new(ListedView {
                schema: Arc::new(schema.clone()),
            })),
            files: None,
        }
    }

    /// A new sequence `name` counting as `options` say, owned by `owner`.
    /// Not stored yet (see [`crate::changes`]); its counter is stored by
    /// its first `nextval` or `setval`.
    pub(crate) fn new_sequence(
        &self,
        name: &QualifiedName,
        options: SequenceOptions,
        owner: &str,
    ) -> Loaded {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let sequence = Sequence {
            name: name.name.clone(),
            id: id.clone(),
            options: options.clone(),
        };
        Loaded {
            entry: TableEntry {
                schema: name.schema.clone(),
                name: name.name.clone(),
                kind: TableKind::Sequence { id, options },
                created_at_ms: now_ms(),
                acl: Acl::owned_by(owner),
                indexes: Vec::new(),
                foreign_keys: Vec::new(),
                comment: None,
            },
            provider: Some(self.sequence_table(sequence)),
            files: None,
        }
    }

    fn sequence_table(&self, sequence: Sequence) -> Arc<dyn TableProvider> {
        Arc::new(SequenceTable {
            sequences: self.sequences.clone(),
            sequence,
        })
    }

    /// A context for the queries the catalog runs itself (the checks of
    /// unique and foreign keys): the server's runtime, so they reach the
    /// object stores tables are in and count against its memory limit.
    pub(crate) fn query_context(&self) -> SessionContext {
        SessionContext::new_with_config_rt(SessionConfig::new(), self.runtime.clone())
    }

    /// The sequences' counters.
    pub fn sequences(&self) -> &Arc<Sequences> {
        &self.sequences
    }

    /// The directory of a managed table's files; `None` for another relation.
    pub(crate) fn dir_of(&self, table: &Loaded) -> Option<Dir> {
        match &table.entry.kind {
            TableKind::Managed { id, .. } => Some(self.tables_dir.join(id)),
            TableKind::External { .. } | TableKind::View { .. } | TableKind::Sequence { .. } => {
                None
            }
        }
    }

    /// Serialises DDL: whoever checks what is stored and then stores
    /// changes holds it from the check to the store.
    pub(crate) async fn ddl_lock(&self) -> DdlLock<'_> {
        self.ddl.lock().await
    }

    /// Writes `batch` to the catalog's store, at once.
    pub(crate) fn store_changes(&self, batch: &[Change<'_>]) -> Result<()> {
        self.store.write(batch)
    }

    /// Makes each name of `tables` name its table (`None`: none).
    pub(crate) fn apply(&self, tables: impl IntoIterator<Item = (QualifiedName, Option<Loaded>)>) {
        let mut stored = self.write();
        for (name, table) in tables {
            match table {
                Some(table) => stored.insert(name, table),
                None => stored.remove(&name),
            };
        }
    }

    /// Makes each name of `schemas` name its schema (`None`: none).
    pub(crate) fn apply_schemas(
        &self,
        schemas: impl IntoIterator<Item = (String, Option<SchemaEntry>)>,
    ) {
        let mut stored = self.schemas.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        for (name, schema) in schemas {
            match schema {
                Some(schema) => stored.insert(name, schema),
                None => stored.remove(&name),
            };
        }
    }

    /// The relations of the stored schema `schema` that catalogs list, by name.
    pub(crate) fn listed_in(&self, schema: &str) -> Vec<String> {
        self.read()
            .iter()
            .filter(|(name, l)| name.schema == schema && l.listed())
            .map(|(name, _)| name.name.clone())
            .collect()
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
