//! [`SessionCatalog`]: the stored schemas and relations as one session
//! sees them, and the session's DDL; [`SessionSchema`]: one schema of it,
//! or its search path, as DataFusion reads it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::exec_err;
use datafusion::datasource::ViewTable;
use datafusion::error::Result as DfResult;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{CreateExternalTable, Expr, LogicalPlan, TableType};

use crate::catalog::{Catalog, Loaded};
use crate::changes::{Changes, TempChange};
use crate::files::Dir;
use crate::staging::{Staging, WrittenTable};
use crate::table::with_defaults;
use crate::temp::TempTables;
use crate::{
    Acl, DEFAULT_SCHEMA, Error, IndexEntry, OwnedBy, Privilege, QualifiedName, Result, SchemaEntry,
    Sequence, SequenceOptions, TableEntry, TableKind,
};

/// The stored schemas and relations as one session sees them: inside a
/// transaction block, as the block's DDL left them (see
/// [`crate::changes`]), managed tables with the block's staged writes
/// (see [`crate::staging`]); and its temporary tables, which come first
/// on its search path (as PostgreSQL's `pg_temp` does).
///
/// The session's DDL goes through it: outside a block each statement's
/// changes are stored as it ends, inside one they are the block's until
/// it ends.
pub struct SessionCatalog {
    temp: Arc<TempTables>,
    shared: Arc<Catalog>,
    staging: Arc<Staging>,
    /// The schemas unqualified names are looked up in, in order (whether
    /// they exist or not: see [`SessionCatalog::set_search_path`]).
    search_path: RwLock<SearchPath>,
    /// Plans the views the session reads and the defaults of the columns
    /// it writes (set once its context exists).
    planner: OnceLock<Arc<dyn RelationPlanner>>,
    /// Tables whose columns have defaults, with them planned, by the
    /// provider they wrap: a statement looks a table up more than once,
    /// and each lookup must give the same provider (`RETURNING` and
    /// changes in place find the table's scans by it).
    with_defaults: Mutex<Vec<WithDefaults>>,
}

/// One schema as a session sees it (`None`: the session's search path),
/// as DataFusion reads it. `public` and the search path have the
/// session's temporary tables first.
#[derive(Debug)]
pub struct SessionSchema {
    session: Arc<SessionCatalog>,
    schema: Option<String>,
}

/// What a name in a statement names, as the session resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The session's temporary table of that name.
    Temp(String),
    /// A stored relation (one that may not exist: a `CREATE` makes it).
    Stored(QualifiedName),
}

/// A session's search path: as the parameter's text, and the schemas it
/// names (`$user`: the session's role).
#[derive(Debug, Default)]
struct SearchPath {
    text: String,
    role: String,
    schemas: Vec<String>,
}

/// A table's provider, and the provider of it with its defaults planned.
type WithDefaults = (Arc<dyn TableProvider>, Arc<dyn TableProvider>);

/// Plans what the catalog stores as SQL text, as the session it is used
/// in plans statements.
#[async_trait]
pub trait RelationPlanner: Send + Sync {
    /// The plan of the query of `definition`, a `CREATE VIEW` statement.
    /// A statement that reads a view plans it anew, so the view sees the
    /// tables as they are then (created, dropped, renamed, in the
    /// session's transaction block) and runs wherever the statement runs.
    async fn plan_view(&self, definition: &str) -> DfResult<LogicalPlan>;

    /// The expression of a column's `DEFAULT`, written as `sql` (see
    /// [`crate::COLUMN_DEFAULT`]): with the session's functions, so that
    /// `nextval` counts the sequence the session sees by its name.
    fn plan_default(&self, sql: &str) -> DfResult<Expr>;
}

/// What kind of relation a statement is for (`DROP TABLE`, `DROP VIEW`,
/// `DROP SEQUENCE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    Table,
    View,
    Sequence,
}

impl Relation {
    fn of(table: &Loaded) -> Self {
        match table.entry.kind {
            TableKind::View { .. } => Relation::View,
            TableKind::Sequence { .. } => Relation::Sequence,
            TableKind::Managed { .. } | TableKind::External { .. } => Relation::Table,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Relation::Table => "table",
            Relation::View => "view",
            Relation::Sequence => "sequence",
        }
    }

    /// The error for `name`, which names no relation of this kind.
    fn not_found(self, name: &str) -> Error {
        let name = name.to_string();
        match self {
            Relation::Table => Error::TableNotFound(name),
            Relation::View => Error::ViewNotFound(name),
            Relation::Sequence => Error::SequenceNotFound(name),
        }
    }
}

impl std::fmt::Debug for SessionCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCatalog")
            .field("temp", &self.temp)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl SessionCatalog {
    pub fn new(temp: Arc<TempTables>, shared: Arc<Catalog>, staging: Arc<Staging>) -> Self {
        Self {
            temp,
            shared,
            staging,
            search_path: RwLock::new(SearchPath {
                schemas: vec![DEFAULT_SCHEMA.to_string()],
                ..SearchPath::default()
            }),
            planner: OnceLock::new(),
            with_defaults: Mutex::new(Vec::new()),
        }
    }

    /// Views and columns' defaults are planned by `planner` from now on.
    pub fn plan_with(&self, planner: Arc<dyn RelationPlanner>) {
        let _ = self.planner.set(planner);
    }

    /// The view `table` as a provider: its definition planned now.
    async fn view(&self, table: &Loaded, definition: &str) -> DfResult<Arc<dyn TableProvider>> {
        let Some(planner) = self.planner.get() else {
            return exec_err!("view \"{}\" cannot be read here", table.entry.name);
        };
        let plan = planner.plan_view(definition).await?;
        Ok(Arc::new(ViewTable::new(plan, Some(definition.to_string()))))
    }

    /// The stored table `name` as the session sees it (not a temporary
    /// one), looked up in `changes` first.
    pub(crate) fn stored_in(&self, changes: &Changes, name: &QualifiedName) -> Option<Loaded> {
        match changes.get(name) {
            Some(table) => table.cloned(),
            None => self.shared.loaded(name),
        }
    }

    /// The stored table `name` as the session sees it (not a temporary one).
    pub(crate) fn stored(&self, name: &QualifiedName) -> Option<Loaded> {
        self.staging
            .with_changes(|changes| self.stored_in(changes, name))
            .unwrap_or_else(|| self.shared.loaded(name))
    }

    /// Whether the open transaction block created the stored table `table`
    /// (whose files no one else sees: the block writes to them directly).
    pub(crate) fn created_in_block(&self, table: &Loaded) -> bool {
        let Some(dir) = self.shared.dir_of(table) else {
            return false;
        };
        self.staging
            .with_changes(|changes| changes.created(&dir))
            .unwrap_or(false)
    }

    /// The stored table `name`'s entry, as the session sees it.
    pub fn entry(&self, name: &QualifiedName) -> Option<TableEntry> {
        self.stored(name).map(|t| t.entry)
    }

    /// Every stored table's entry as the session sees it, in schema and
    /// name order.
    pub fn entries(&self) -> Vec<TableEntry> {
        let mut entries: BTreeMap<QualifiedName, TableEntry> = self
            .shared
            .entries()
            .into_iter()
            .map(|e| (e.qualified(), e))
            .collect();
        self.staging.with_changes(|changes| {
            for (name, table) in changes.tables() {
                match table {
                    Some(table) => entries.insert(name.clone(), table.entry.clone()),
                    None => entries.remove(name),
                };
            }
        });
        entries.into_values().collect()
    }

    /// Whether the schema `name` exists, as the session sees it.
    pub fn schema_exists(&self, name: &str) -> bool {
        name == DEFAULT_SCHEMA || self.schema_entry(name).is_some()
    }

    /// Whether the schema `name` exists, as `changes` leave it.
    fn schema_exists_in(&self, changes: &Changes, name: &str) -> bool {
        match changes.schema(name) {
            Some(schema) => schema.is_some(),
            None => name == DEFAULT_SCHEMA || self.shared.schema_entry(name).is_some(),
        }
    }

    /// The stored schema `name`'s entry as the session sees it (`None`
    /// for `public`, which has none).
    pub fn schema_entry(&self, name: &str) -> Option<SchemaEntry> {
        self.staging
            .with_changes(|changes| changes.schema(name).map(|s| s.cloned()))
            .flatten()
            .unwrap_or_else(|| self.shared.schema_entry(name))
    }

    /// The names of the stored schemas as the session sees them, in order.
    pub fn schema_names(&self) -> Vec<String> {
        let mut names = self.shared.schema_names();
        self.staging.with_changes(|changes| {
            for (name, schema) in changes.schemas() {
                match schema {
                    Some(_) => names.push(name.clone()),
                    None => names.retain(|n| n != name),
                }
            }
        });
        names.sort();
        names.dedup();
        names
    }

    /// The schema `name` as DataFusion reads it, if it exists.
    pub fn schema(self: &Arc<Self>, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.schema_exists(name).then(|| {
            Arc::new(SessionSchema {
                session: self.clone(),
                schema: Some(name.to_string()),
            }) as Arc<dyn SchemaProvider>
        })
    }

    /// The session's search path as DataFusion reads it (see
    /// [`crate::SEARCH_PATH`]).
    pub fn search_path_schema(self: &Arc<Self>) -> Arc<dyn SchemaProvider> {
        Arc::new(SessionSchema {
            session: self.clone(),
            schema: None,
        })
    }

    /// Unqualified names are looked up in the schemas the search path
    /// `text` names from now on, in order (see [`crate::parse_search_path`]);
    /// those that do not exist are passed over, as PostgreSQL does.
    pub fn set_search_path(&self, text: &str) {
        let mut path = self.search_path.write().unwrap_or_else(|p| p.into_inner());
        path.schemas = crate::parse_search_path(text, &path.role);
        path.text = text.to_string();
    }

    /// The session acts as `role` from now on: `$user` on its search path
    /// names that role's schema.
    pub fn set_role(&self, role: &str) {
        let mut path = self.search_path.write().unwrap_or_else(|p| p.into_inner());
        path.role = role.to_string();
        path.schemas = crate::parse_search_path(&path.text, role);
    }

    /// The schemas of the search path that exist, in order
    /// (`current_schemas(false)`).
    pub fn search_path(&self) -> Vec<String> {
        let path = self.search_path.read().unwrap_or_else(|p| p.into_inner());
        path.schemas
            .iter()
            .filter(|schema| self.schema_exists(schema))
            .cloned()
            .collect()
    }

    /// The schema an unqualified `CREATE` creates in: the first of the
    /// search path that exists (`current_schema()`).
    pub fn creation_schema(&self) -> Result<String> {
        self.search_path()
            .into_iter()
            .next()
            .ok_or(Error::NoSchemaSelected)
    }

    /// The stored relation `schema.name` names (`schema` as written, if
    /// it was): in the first schema of the search path that has one of
    /// that name, or, if none does, the name a `CREATE` would give it.
    pub fn resolve(&self, schema: Option<&str>, name: &str) -> Result<QualifiedName> {
        // The search path written as a schema is the search path.
        let schema = schema.filter(|schema| *schema != crate::SEARCH_PATH);
        if let Some(schema) = schema {
            if !self.schema_exists(schema) {
                return Err(Error::SchemaNotFound(schema.to_string()));
            }
            return Ok(QualifiedName::new(schema, name));
        }
        let path = self.search_path();
        let found = path
            .iter()
            .map(|schema| QualifiedName::new(schema.clone(), name))
            .find(|candidate| self.stored(candidate).is_some());
        match found {
            Some(found) => Ok(found),
            None => Ok(QualifiedName::new(self.creation_schema()?, name)),
        }
    }

    /// The name a `CREATE` of `schema.name` gives a stored relation: in
    /// `schema` if it is written (which must exist), else in the first
    /// schema of the search path that exists.
    pub fn creation_name(&self, schema: Option<&str>, name: &str) -> Result<QualifiedName> {
        let schema = match schema {
            Some(schema) if self.schema_exists(schema) => schema.to_string(),
            Some(schema) => return Err(Error::SchemaNotFound(schema.to_string())),
            None => self.creation_schema()?,
        };
        Ok(QualifiedName::new(schema, name))
    }

    /// What `schema.name` names: the session's temporary table of that
    /// name if it is unqualified (or in `pg_temp`, or in `public`, whose
    /// [`SessionSchema`] lists the session's temporary tables too) and
    /// there is one, else the stored relation [`SessionCatalog::resolve`]
    /// finds.
    pub fn target(&self, schema: Option<&str>, name: &str) -> Result<Target> {
        let temp_schema = matches!(
            schema,
            None | Some("pg_temp" | DEFAULT_SCHEMA | crate::SEARCH_PATH)
        );
        if temp_schema && self.temp.contains(name) {
            return Ok(Target::Temp(name.to_string()));
        }
        self.resolve(schema, name).map(Target::Stored)
    }

    /// `CREATE SCHEMA name` owned by `owner`. `false` when it exists and
    /// `if_not_exists` is set.
    pub async fn create_schema(
        &self,
        name: &str,
        if_not_exists: bool,
        owner: &str,
    ) -> Result<bool> {
        self.change(|changes| {
            if self.schema_exists_in(changes, name) {
                return match if_not_exists {
                    true => Ok(false),
                    false => Err(Error::SchemaExists(name.to_string())),
                };
            }
            let schema = SchemaEntry {
                name: name.to_string(),
                created_at_ms: crate::catalog::now_ms(),
                acl: Acl::owned_by(owner),
            };
            changes.set_schema(&self.shared, name, Some(schema));
            Ok(true)
        })
        .await
    }

    /// `DROP SCHEMA name`: with the relations in it if `cascade` is set,
    /// else only if it has none (2BP01). `false` when there is none and
    /// `if_exists` is set.
    pub async fn drop_schema(&self, name: &str, if_exists: bool, cascade: bool) -> Result<bool> {
        if name == DEFAULT_SCHEMA {
            return Err(Error::Unsupported(format!(
                "schema \"{DEFAULT_SCHEMA}\" cannot be dropped in Quiver"
            )));
        }
        self.change(|changes| {
            if !self.schema_exists_in(changes, name) {
                return match if_exists {
                    true => Ok(false),
                    false => Err(Error::SchemaNotFound(name.to_string())),
                };
            }
            let contents: Vec<Loaded> = self
                .relations(changes)
                .into_iter()
                .filter(|relation| relation.entry.schema == name)
                .collect();
            if !contents.is_empty() && !cascade {
                return Err(Error::DependentObjects(format!(
                    "cannot drop schema {name} because other objects depend on it"
                )));
            }
            for relation in contents {
                if let Some(dir) = self.shared.dir_of(&relation) {
                    changes.dropped_dir(dir);
                }
                changes.set(&self.shared, &relation.entry.qualified(), None);
            }
            changes.set_schema(&self.shared, name, None);
            Ok(true)
        })
        .await
    }

    /// The session's temporary tables.
    pub fn temp(&self) -> &Arc<TempTables> {
        &self.temp
    }

    /// The catalog of the stored tables.
    pub fn shared(&self) -> &Arc<Catalog> {
        &self.shared
    }

    /// The session's transaction block.
    pub fn staging(&self) -> &Arc<Staging> {
        &self.staging
    }

    /// Makes the changes `change` records: the open block's, or, outside a
    /// block, stored at once (under the DDL lock, which `change`'s checks
    /// are made under too).
    pub(crate) async fn change<R>(
        &self,
        change: impl FnOnce(&mut Changes) -> Result<R>,
    ) -> Result<R> {
        if self.staging.is_open() {
            return self
                .staging
                .with_changes(change)
                .unwrap_or_else(|| Err(Error::Unsupported("the transaction block ended".into())));
        }
        let ddl = self.shared.ddl_lock().await;
        let mut changes = Changes::default();
        let result = change(&mut changes).and_then(|r| {
            self.shared.store(&changes, &ddl)?;
            Ok(r)
        });
        drop(ddl);
        match result {
            Ok(_) => changes.finish(&self.shared),
            Err(_) => changes.discard(&self.temp),
        }
        result
    }

    /// Records a change of the session's temporary tables, for `ROLLBACK`
    /// of the open block to undo; outside a block, finishes it.
    fn temp_changed(&self, change: TempChange) {
        let mut change = Some(change);
        self.staging
            .with_changes(|changes| changes.temp(change.take()));
        // A temporary table dropped outside a block loses its files now.
        if let Some(TempChange::Dropped(_, table)) = change {
            table.remove_files();
        }
    }

    /// `CREATE TABLE` of a stored managed table with `schema`, owned by
    /// `owner`, and the sequences of its `SERIAL` or identity columns
    /// (`sequences`, by name). `None` when it exists and `if_not_exists`
    /// is set.
    pub async fn create_table(
        &self,
        name: &QualifiedName,
        schema: SchemaRef,
        sequences: Vec<(String, SequenceOptions)>,
        indexes: Vec<IndexEntry>,
        if_not_exists: bool,
        owner: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        self.change(|changes| {
            if self.stored_in(changes, name).is_some() {
                return match if_not_exists {
                    true => Ok(None),
                    false => Err(Error::TableExists(name.name.clone())),
                };
            }
            for index in &indexes {
                let index_name = name.sibling(index.name.clone());
                if self.stored_in(changes, &index_name).is_some()
                    || self.index_table(changes, &index_name).is_some()
                {
                    return Err(Error::TableExists(index.name.clone()));
                }
            }
            for (sequence, options) in sequences {
                let sequence = name.sibling(sequence);
                if self.stored_in(changes, &sequence).is_some() {
                    return Err(Error::TableExists(sequence.name));
                }
                let created = self.shared.new_sequence(&sequence, options, owner);
                changes.set(&self.shared, &sequence, Some(created));
            }
            let mut table = self.shared.new_managed(name, schema, owner)?;
            table.entry.indexes = indexes;
            if let Some(dir) = self.shared.dir_of(&table) {
                changes.created_dir(dir);
            }
            let provider = table.provider.clone();
            changes.set(&self.shared, name, Some(table));
            Ok(provider)
        })
        .await
    }

    /// `CREATE SEQUENCE name`, owned by `owner`. `false` when a relation
    /// of its name exists and `if_not_exists` is set.
    pub async fn create_sequence(
        &self,
        name: &QualifiedName,
        options: SequenceOptions,
        if_not_exists: bool,
        owner: &str,
    ) -> Result<bool> {
        self.change(|changes| {
            if self.stored_in(changes, name).is_some() {
                return match if_not_exists {
                    true => Ok(false),
                    false => Err(Error::TableExists(name.name.clone())),
                };
            }
            if let Some(OwnedBy { table, column }) = &options.owned_by {
                self.owning_table(changes, &name.sibling(table.clone()), column)?;
            }
            let sequence = self.shared.new_sequence(name, options, owner);
            changes.set(&self.shared, name, Some(sequence));
            Ok(true)
        })
        .await
    }

    /// The stored table `table` with the column `column`, which may own a
    /// sequence.
    fn owning_table(&self, changes: &Changes, table: &QualifiedName, column: &str) -> Result<()> {
        let owner = self
            .stored_in(changes, table)
            .filter(|t| Relation::of(t) == Relation::Table)
            .ok_or_else(|| Error::TableNotFound(table.to_string()))?;
        let has_column = owner
            .provider
            .as_ref()
            .is_some_and(|p| p.schema().column_with_name(column).is_some());
        if !has_column {
            return Err(Error::WrongObjectType(format!(
                "column \"{column}\" of relation \"{table}\" does not exist"
            )));
        }
        Ok(())
    }

    /// The sequence `name`, as the session sees it.
    pub fn sequence(&self, name: &QualifiedName) -> Result<Sequence> {
        let relation = self
            .stored(name)
            .ok_or_else(|| Error::TableNotFound(name.to_string()))?;
        relation
            .sequence()
            .ok_or_else(|| Error::WrongObjectType(format!("\"{name}\" is not a sequence")))
    }

    /// The sequence owned by `table`'s column `column` (`SERIAL`,
    /// identity), if there is one.
    pub fn owned_sequence(
        &self,
        table: &QualifiedName,
        column: &str,
    ) -> Option<(QualifiedName, Sequence)> {
        let owner = OwnedBy {
            table: table.name.clone(),
            column: column.to_string(),
        };
        self.entries()
            .iter()
            .filter(|entry| entry.schema == table.schema)
            .filter_map(|entry| Some((entry.qualified(), entry.sequence()?)))
            .find(|(_, sequence)| sequence.options.owned_by.as_ref() == Some(&owner))
    }

    /// `CREATE TEMPORARY TABLE`. `None` when it exists and `if_not_exists`
    /// is set.
    pub fn create_temp_table(
        &self,
        name: &str,
        schema: SchemaRef,
        if_not_exists: bool,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let created = self.temp.create(name, schema, if_not_exists)?;
        if created.is_some() {
            self.temp_changed(TempChange::Created(name.to_string()));
        }
        Ok(created)
    }

    /// `CREATE EXTERNAL TABLE` from its planned `command` (a table named
    /// `name`), owned by `owner`; `definition` is the statement's text.
    pub async fn create_external_table(
        &self,
        state: &SessionState,
        command: &CreateExternalTable,
        name: &QualifiedName,
        definition: String,
        owner: &str,
    ) -> Result<()> {
        if self.stored(name).is_some() && command.if_not_exists {
            return Ok(());
        }
        let table = self
            .shared
            .new_external(state, command, name, definition, owner)
            .await?;
        self.change(|changes| {
            match (self.stored_in(changes, name), command.if_not_exists) {
                (None, _) => changes.set(&self.shared, name, Some(table)),
                (Some(_), true) => {}
                (Some(_), false) => return Err(Error::TableExists(name.name.clone())),
            }
            Ok(())
        })
        .await
    }

    /// `DROP TABLE` of the session's temporary table `name`: `false` if
    /// there is none.
    pub fn drop_temp_table(&self, name: &str) -> bool {
        let Some(table) = self.temp.take(name) else {
            return false;
        };
        self.temp_changed(TempChange::Dropped(name.to_string(), table));
        true
    }

    /// `DROP TABLE` of a stored table (a managed table's files go once the
    /// drop is stored), with the sequences its columns own. `false` when
    /// there is none and `if_exists` is set.
    pub async fn drop_table(&self, name: &QualifiedName, if_exists: bool) -> Result<bool> {
        self.drop_relation(name, if_exists, Relation::Table).await
    }

    /// `DROP VIEW`. `false` when there is none and `if_exists` is set.
    pub async fn drop_view(&self, name: &QualifiedName, if_exists: bool) -> Result<bool> {
        self.drop_relation(name, if_exists, Relation::View).await
    }

    /// `DROP SEQUENCE`: not one a table's column owns (2BP01). `false`
    /// when there is none and `if_exists` is set.
    pub async fn drop_sequence(&self, name: &QualifiedName, if_exists: bool) -> Result<bool> {
        self.drop_relation(name, if_exists, Relation::Sequence)
            .await
    }

    /// `DROP TABLE`, `DROP VIEW` or `DROP SEQUENCE` (`kind`) of `name`,
    /// which must be of that kind.
    async fn drop_relation(
        &self,
        name: &QualifiedName,
        if_exists: bool,
        kind: Relation,
    ) -> Result<bool> {
        self.change(|changes| {
            let Some(table) = self.stored_in(changes, name) else {
                return match if_exists {
                    true => Ok(false),
                    false => Err(kind.not_found(&name.to_string())),
                };
            };
            if Relation::of(&table) != kind {
                return Err(Error::WrongObjectType(format!(
                    "\"{name}\" is not a {}",
                    kind.name()
                )));
            }
            if let Some(OwnedBy { table: owner, column }) =
                table.sequence().and_then(|s| s.options.owned_by)
                && self.stored_in(changes, &name.sibling(owner.clone())).is_some()
            {
                return Err(Error::DependentObjects(format!(
                    "cannot drop sequence {name} because column {column} of table {owner} requires it"
                )));
            }
            if kind == Relation::Table {
                self.check_unreferenced(changes, name, None, &format!("table {}", name.name))?;
            }
            for sequence in self.owned_by(changes, name) {
                changes.set(&self.shared, &sequence.entry.qualified(), None);
            }
            if let Some(dir) = self.shared.dir_of(&table) {
                changes.dropped_dir(dir);
            }
            changes.set(&self.shared, name, None);
            Ok(true)
        })
        .await
    }

    /// The sequences the columns of the stored table `table` own, as
    /// `changes` leave them.
    fn owned_by(&self, changes: &Changes, table: &QualifiedName) -> Vec<Loaded> {
        self.relations(changes)
            .into_iter()
            .filter(|relation| {
                relation.entry.schema == table.schema
                    && relation
                        .sequence()
                        .and_then(|s| s.options.owned_by)
                        .is_some_and(|owner| owner.table == table.name)
            })
            .collect()
    }

    /// Every stored relation as `changes` leave them.
    pub(crate) fn relations(&self, changes: &Changes) -> Vec<Loaded> {
        let mut names: Vec<QualifiedName> = self
            .shared
            .entries()
            .iter()
            .map(TableEntry::qualified)
            .collect();
        names.extend(changes.tables().map(|(name, _)| name.clone()));
        names.sort();
        names.dedup();
        names
            .iter()
            .filter_map(|name| self.stored_in(changes, name))
            .collect()
    }

    /// `CREATE [OR REPLACE] VIEW name` with the columns of `schema`,
    /// defined by its statement (`definition`), owned by `owner` (a replaced view keeps its owner
    /// and privileges).
    pub async fn create_view(
        &self,
        name: &QualifiedName,
        definition: String,
        schema: &Schema,
        or_replace: bool,
        owner: &str,
    ) -> Result<()> {
        self.change(|changes| {
            let mut view = self.shared.new_view(name, definition, schema, owner);
            match self.stored_in(changes, name) {
                None => {}
                Some(old) if or_replace && old.is_view() => {
                    view.entry.acl = old.entry.acl;
                    view.entry.created_at_ms = old.entry.created_at_ms;
                }
                Some(old) if or_replace => {
                    return Err(Error::WrongObjectType(format!(
                        "\"{}\" is not a view",
                        old.entry.name
                    )));
                }
                Some(_) => return Err(Error::TableExists(name.name.clone())),
            }
            changes.set(&self.shared, name, Some(view));
            Ok(())
        })
        .await
    }

    /// `ALTER TABLE name RENAME TO new_name` of the session's temporary
    /// table `name`: `false` if there is none.
    pub fn rename_temp_table(&self, name: &str, new_name: &str) -> Result<bool> {
        let renamed = self.temp.rename_table(name, new_name)?;
        if renamed {
            self.temp_changed(TempChange::Renamed {
                from: name.to_string(),
                to: new_name.to_string(),
            });
        }
        Ok(renamed)
    }

    /// `ALTER TABLE name RENAME TO new_name` of a stored table: it keeps
    /// its files, owner and privileges under its new name.
    pub async fn rename_table(&self, name: &QualifiedName, new_name: &str) -> Result<()> {
        let new_name = &name.sibling(new_name);
        self.change(|changes| {
            let mut table = self
                .stored_in(changes, name)
                .ok_or_else(|| Error::TableNotFound(name.to_string()))?;
            if self.stored_in(changes, new_name).is_some() {
                return Err(Error::TableExists(new_name.name.clone()));
            }
            // Its columns' sequences follow it.
            for mut sequence in self.owned_by(changes, name) {
                if let TableKind::Sequence { options, .. } = &mut sequence.entry.kind
                    && let Some(owner) = &mut options.owned_by
                {
                    owner.table = new_name.name.clone();
                }
                changes.set(&self.shared, &sequence.entry.qualified(), Some(sequence));
            }
            table.entry.name = new_name.name.clone();
            changes.set(&self.shared, name, None);
            changes.set(&self.shared, new_name, Some(table));
            self.rename_references(changes, name, &new_name.name);
            Ok(())
        })
        .await
    }

    /// `ALTER TABLE name ...` of the columns of the stored managed table
    /// `name`: `change` makes its new columns from its present ones.
    pub async fn alter_columns(
        &self,
        name: &QualifiedName,
        change: impl FnOnce(&Schema) -> Result<Schema>,
    ) -> Result<()> {
        self.change(|changes| {
            self.alter_columns_in(changes, name, |columns| change(columns).map(Some))
                .map(|_| ())
        })
        .await
    }

    /// `ALTER TABLE name DROP [COLUMN] column` of the stored managed table
    /// `name`, with the sequence the column owns (`SERIAL`). Its values
    /// stay in the table's files, unread (see [`SessionCatalog::stores_column`]).
    /// `false` when it has no such column and `if_exists` is set.
    pub async fn drop_column(
        &self,
        name: &QualifiedName,
        column: &str,
        if_exists: bool,
    ) -> Result<bool> {
        self.change(|changes| {
            let what = format!("column {column} of table {}", name.name);
            self.check_unreferenced(changes, name, Some(&[column.to_string()]), &what)?;
            let dropped = self.alter_columns_in(changes, name, |columns| {
                if columns.column_with_name(column).is_none() {
                    return match if_exists {
                        true => Ok(None),
                        false => Err(Error::UndefinedColumn(format!(
                            "column \"{column}\" of relation \"{}\" does not exist",
                            name.name
                        ))),
                    };
                }
                if columns.fields().len() == 1 {
                    return Err(Error::Unsupported(format!(
                        "cannot drop column \"{column}\", the last of table \"{}\": Quiver's tables have columns",
                        name.name
                    )));
                }
                let kept: Vec<_> = columns
                    .fields()
                    .iter()
                    .filter(|f| f.name() != column)
                    .cloned()
                    .collect();
                Ok(Some(Schema::new_with_metadata(
                    kept,
                    columns.metadata().clone(),
                )))
            })?;
            if dropped {
                // As in PostgreSQL, the indexes (and so the constraints)
                // on the column go with it.
                if let Some(mut table) = self.stored_in(changes, name) {
                    table
                        .entry
                        .indexes
                        .retain(|index| !index.keys.iter().any(|key| key == column));
                    table
                        .entry
                        .foreign_keys
                        .retain(|key| !key.columns.iter().any(|c| c == column));
                    changes.set(&self.shared, name, Some(table));
                }
                for sequence in self.owned_by(changes, name) {
                    let owned = sequence
                        .sequence()
                        .and_then(|s| s.options.owned_by)
                        .is_some_and(|owner| owner.column == column);
                    if owned {
                        changes.set(&self.shared, &sequence.entry.qualified(), None);
                    }
                }
            }
            Ok(dropped)
        })
        .await
    }

    /// `ALTER TABLE name RENAME [COLUMN] column TO new` of the stored
    /// managed table `name`: its indexes and the sequence it owns follow
    /// the column. Its values are where they were: the caller rewrote the
    /// table's files to hold them under the new name too.
    pub async fn rename_column(&self, name: &QualifiedName, column: &str, new: &str) -> Result<()> {
        self.change(|changes| {
            self.alter_columns_in(changes, name, |columns| {
                if columns.column_with_name(column).is_none() {
                    return Err(Error::UndefinedColumn(format!(
                        "column \"{column}\" does not exist"
                    )));
                }
                if columns.column_with_name(new).is_some() {
                    return Err(Error::DuplicateColumn(format!(
                        "column \"{new}\" of relation \"{}\" already exists",
                        name.name
                    )));
                }
                let renamed: Vec<Field> = columns
                    .fields()
                    .iter()
                    .map(|f| match f.name() == column {
                        true => f.as_ref().clone().with_name(new),
                        false => f.as_ref().clone(),
                    })
                    .collect();
                Ok(Some(Schema::new_with_metadata(
                    renamed,
                    columns.metadata().clone(),
                )))
            })?;
            if let Some(mut table) = self.stored_in(changes, name) {
                for index in &mut table.entry.indexes {
                    for key in &mut index.keys {
                        if key == column {
                            *key = new.to_string();
                        }
                    }
                }
                changes.set(&self.shared, name, Some(table));
            }
            for mut sequence in self.owned_by(changes, name) {
                if let TableKind::Sequence { options, .. } = &mut sequence.entry.kind
                    && let Some(owner) = &mut options.owned_by
                    && owner.column == column
                {
                    owner.column = new.to_string();
                    changes.set(&self.shared, &sequence.entry.qualified(), Some(sequence));
                }
            }
            self.rename_key_column(changes, name, column, new);
            Ok(())
        })
        .await
    }

    /// Records in `changes` new columns of the stored managed table `name`,
    /// which `change` makes from its present ones (`None`: it leaves them
    /// as they are). Whether it changed them.
    fn alter_columns_in(
        &self,
        changes: &mut Changes,
        name: &QualifiedName,
        change: impl FnOnce(&Schema) -> Result<Option<Schema>>,
    ) -> Result<bool> {
        let table = self
            .stored_in(changes, name)
            .ok_or_else(|| Error::TableNotFound(name.to_string()))?;
        if Relation::of(&table) != Relation::Table {
            return Err(Error::WrongObjectType(format!(
                "\"{}\" is not a table",
                name.name
            )));
        }
        let columns = provider_of(&table)?.schema();
        let Some(altered) = change(&columns)? else {
            return Ok(false);
        };
        let altered = self.shared.with_columns(&table, Arc::new(altered))?;
        changes.set(&self.shared, name, Some(altered));
        Ok(true)
    }

    /// Whether the files of the stored managed table `name` still hold
    /// values of a column `column` (one dropped: a column added under its
    /// name would read them).
    pub fn stores_column(&self, name: &QualifiedName, column: &str) -> Result<bool> {
        match self
            .stored(name)
            .and_then(|table| self.shared.dir_of(&table))
        {
            Some(dir) => crate::compaction::stores_column(&dir, column),
            None => Ok(false),
        }
    }

    /// `GRANT` (`give`) or `REVOKE` of `privileges` on the stored table
    /// `name` to or from `grantee` ([`crate::PUBLIC`]: every role).
    pub async fn set_privileges(
        &self,
        name: &QualifiedName,
        grantee: &str,
        privileges: &[Privilege],
        give: bool,
    ) -> Result<()> {
        self.change(|changes| {
            let mut table = self
                .stored_in(changes, name)
                .ok_or_else(|| Error::TableNotFound(name.to_string()))?;
            table.entry.acl.change(grantee, privileges, give);
            changes.set(&self.shared, name, Some(table));
            Ok(())
        })
        .await
    }

    /// `COMMENT ON TABLE|VIEW|SEQUENCE name IS comment` (`None`: `IS NULL`)
    /// of the stored relation `name`.
    pub async fn set_comment(&self, name: &QualifiedName, comment: Option<String>) -> Result<()> {
        self.change(|changes| {
            let mut relation = self
                .stored_in(changes, name)
                .ok_or_else(|| Error::TableNotFound(name.to_string()))?;
            relation.entry.comment = comment;
            changes.set(&self.shared, name, Some(relation));
            Ok(())
        })
        .await
    }

    /// `ALTER SEQUENCE name OWNED BY table.column` (`None`: `OWNED BY
    /// NONE`): the sequence goes with the table from then on.
    pub async fn set_sequence_owner(
        &self,
        name: &QualifiedName,
        owned_by: Option<OwnedBy>,
    ) -> Result<()> {
        self.change(|changes| {
            let mut relation = self
                .stored_in(changes, name)
                .ok_or_else(|| Error::SequenceNotFound(name.to_string()))?;
            if let Some(OwnedBy { table, column }) = &owned_by {
                self.owning_table(changes, &name.sibling(table.clone()), column)?;
            }
            let TableKind::Sequence { options, .. } = &mut relation.entry.kind else {
                return Err(Error::WrongObjectType(format!(
                    "\"{name}\" is not a sequence"
                )));
            };
            options.owned_by = owned_by;
            changes.set(&self.shared, name, Some(relation));
            Ok(())
        })
        .await
    }

    /// `ALTER ... OWNER TO owner` of the stored relation `name`, and of the
    /// sequences its columns own (as PostgreSQL moves them along).
    pub async fn set_owner(&self, name: &QualifiedName, owner: &str) -> Result<()> {
        self.change(|changes| {
            let mut relation = self
                .stored_in(changes, name)
                .ok_or_else(|| Error::TableNotFound(name.to_string()))?;
            relation.entry.acl.owner = Some(owner.to_string());
            changes.set(&self.shared, name, Some(relation));
            for mut sequence in self.owned_by(changes, name) {
                sequence.entry.acl.owner = Some(owner.to_string());
                let sequence_name = sequence.entry.qualified();
                changes.set(&self.shared, &sequence_name, Some(sequence));
            }
            Ok(())
        })
        .await
    }

    /// `CREATE INDEX` on the stored table `table` (not a view): recorded
    /// with it (see [`IndexEntry`]); a unique one once the table's rows
    /// are found to keep it. `false` when a relation or index of its name
    /// exists and `if_not_exists` is set.
    pub async fn create_index(
        &self,
        table: &QualifiedName,
        index: IndexEntry,
        if_not_exists: bool,
    ) -> Result<bool> {
        if index.is_unique()
            && let Some(stored) = self.stored(table)
            && !stored.is_view()
        {
            self.check_new_key(&stored, &index).await?;
        }
        self.change(|changes| {
            let mut stored = self
                .stored_in(changes, table)
                .ok_or_else(|| Error::TableNotFound(table.to_string()))?;
            if stored.is_view() {
                return Err(Error::WrongObjectType(format!(
                    "cannot create index on relation \"{table}\": it is a view"
                )));
            }
            let index_name = table.sibling(index.name.clone());
            if self.stored_in(changes, &index_name).is_some()
                || self.index_table(changes, &index_name).is_some()
            {
                return match if_not_exists {
                    true => Ok(false),
                    false => Err(Error::TableExists(index.name)),
                };
            }
            stored.entry.indexes.push(index);
            changes.set(&self.shared, table, Some(stored));
            Ok(true)
        })
        .await
    }

    /// `DROP INDEX`. `false` when there is none and `if_exists` is set.
    pub async fn drop_index(&self, name: &QualifiedName, if_exists: bool) -> Result<bool> {
        self.change(|changes| {
            let Some(mut table) = self.index_table(changes, name) else {
                return match if_exists {
                    true => Ok(false),
                    false => Err(Error::IndexNotFound(name.to_string())),
                };
            };
            // A foreign key references the key if no other has its columns.
            let sorted = |keys: &[String]| {
                let mut keys = keys.to_vec();
                keys.sort();
                keys
            };
            let indexes = &table.entry.indexes;
            if let Some(index) = indexes
                .iter()
                .find(|i| i.name == name.name && i.is_unique())
                && !indexes.iter().any(|other| {
                    other.name != index.name
                        && other.is_unique()
                        && sorted(&other.keys) == sorted(&index.keys)
                })
            {
                let what = format!("index {}", index.name);
                self.check_unreferenced(
                    changes,
                    &table.entry.qualified(),
                    Some(&index.keys),
                    &what,
                )?;
            }
            table.entry.indexes.retain(|index| index.name != name.name);
            changes.set(&self.shared, &table.entry.qualified(), Some(table));
            Ok(true)
        })
        .await
    }

    /// The stored table the index `name` is on, as `changes` leave it.
    fn index_table(&self, changes: &Changes, name: &QualifiedName) -> Option<Loaded> {
        self.relations(changes).into_iter().find(|table| {
            table.entry.schema == name.schema
                && table
                    .entry
                    .indexes
                    .iter()
                    .any(|index| index.name == name.name)
        })
    }

    /// The schema of the index `name` (unqualified: the first schema of
    /// the search path with a table that has it).
    pub fn resolve_index(&self, schema: Option<&str>, name: &str) -> Result<QualifiedName> {
        if schema.is_some() {
            return self.resolve(schema, name);
        }
        let found = self.search_path().into_iter().find(|schema| {
            self.entries().iter().any(|entry| {
                &entry.schema == schema && entry.indexes.iter().any(|index| index.name == name)
            })
        });
        match found {
            Some(schema) => Ok(QualifiedName::new(schema, name)),
            None => self.resolve(None, name),
        }
    }

    /// `COMMIT` of the open transaction block: its DDL is stored, then its
    /// staged writes published (see [`Staging::commit`]). Returns the
    /// tables the block wrote to. If the DDL cannot be stored (another
    /// session changed a name the block changed), nothing of the block is
    /// kept.
    pub async fn commit(&self) -> Result<Vec<Arc<dyn TableProvider>>> {
        let changes = self.staging.take_changes();
        let checked = match self.staging.written_tables() {
            Ok(written) => self
                .check_at_commit(&changes, &written)
                .await
                .map(|locks| (written, locks)),
            Err(e) => Err(e),
        };
        let (written, key_locks) = match checked {
            Ok(checked) => checked,
            Err(e) => {
                self.staging.rollback();
                changes.discard(&self.temp);
                return Err(e);
            }
        };
        // The block's files are put in place before its DDL is stored, and
        // under the DDL lock once the DDL is known to be storable: a table
        // reads the files of a column it no longer has as if they were not
        // there, so the table's old columns read the new files (an `ALTER
        // TABLE` that rewrote them keeps what the old ones read) until the
        // new columns are stored, and a crash between the two leaves the
        // table readable.
        let ddl = match changes.is_empty() && written.is_empty() {
            true => None,
            false => Some(self.shared.ddl_lock().await),
        };
        if let Some(ddl) = &ddl
            && let Err(e) = self
                .shared
                .check_changes(&changes, ddl)
                .and_then(|()| self.check_columns(&changes, &written))
        {
            self.staging.rollback();
            changes.discard(&self.temp);
            return Err(e);
        }
        let published = self.staging.commit().await;
        drop(key_locks);
        let published = match (published, &ddl) {
            (Err(e), _) => Err(e),
            (Ok(providers), Some(ddl)) => self.shared.store(&changes, ddl).map(|()| providers),
            (Ok(providers), None) => Ok(providers),
        };
        drop(ddl);
        match published {
            Ok(_) => changes.finish(&self.shared),
            Err(_) => changes.discard(&self.temp),
        }
        published
    }

    /// Before `COMMIT`, under the DDL lock: whether the tables the block
    /// wrote to (`written`: their directories, and their columns when the
    /// block first saw them) still have those columns, unless the block
    /// itself changed them (then [`Catalog::check_changes`] sees to it).
    /// Another transaction's `ALTER TABLE` meanwhile fails the block with
    /// a serialization failure: its files have the old columns (a column
    /// renamed since would read NULL there).
    fn check_columns(&self, changes: &Changes, written: &[WrittenTable]) -> Result<()> {
        if written.is_empty() {
            return Ok(());
        }
        let names_and_types = |schema: &Schema| -> Vec<(String, DataType)> {
            schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect()
        };
        for entry in self.shared.entries() {
            let name = entry.qualified();
            let Some(table) = self.shared.loaded(&name) else {
                continue;
            };
            let Some(dir) = self.shared.dir_of(&table) else {
                continue;
            };
            let Some(w) = written.iter().find(|w| w.table == dir) else {
                continue;
            };
            let now = provider_of(&table)?.schema();
            if !changes.changes(&name) && names_and_types(&now) != names_and_types(&w.columns) {
                return Err(Error::SerializationFailure(format!(
                    "could not serialize access: the columns of table \"{name}\" were changed by another transaction"
                )));
            }
        }
        Ok(())
    }

    /// `ROLLBACK` of the open transaction block: its DDL and writes are
    /// undone.
    pub fn rollback(&self) {
        let changes = self.staging.take_changes();
        self.staging.rollback();
        changes.discard(&self.temp);
    }

    /// `provider` with its columns' defaults, planned for this session
    /// (once: see [`SessionSchema::with_defaults`]'s field).
    fn with_defaults(&self, provider: Arc<dyn TableProvider>) -> DfResult<Arc<dyn TableProvider>> {
        let Some(planner) = self.planner.get() else {
            return Ok(provider);
        };
        let mut cache = self.with_defaults.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, planned)) = cache.iter().find(|(base, _)| Arc::ptr_eq(base, &provider)) {
            return Ok(planned.clone());
        }
        let planned = with_defaults(provider.clone(), |sql| planner.plan_default(sql))?;
        if !Arc::ptr_eq(&planned, &provider) {
            // Tables no one else holds any more are gone or changed.
            cache.retain(|(base, _)| Arc::strong_count(base) > 1);
            cache.push((provider, planned.clone()));
        }
        Ok(planned)
    }

    /// The managed table `table` (files in `dir`) as the session's open
    /// transaction block sees it: with its staged writes, unless the
    /// block created it.
    pub(crate) fn staged(
        &self,
        table: &Loaded,
        provider: Arc<dyn TableProvider>,
        dir: Dir,
    ) -> Result<Arc<dyn TableProvider>> {
        if self.created_in_block(table) {
            return Ok(provider);
        }
        Ok(self.staging.view(&provider, &dir)?.unwrap_or(provider))
    }
}

/// A stored table's provider; an error for one that could not be loaded.
pub(crate) fn provider_of(table: &Loaded) -> Result<Arc<dyn TableProvider>> {
    table.provider.clone().ok_or_else(|| {
        Error::Unsupported(format!(
            "table \"{}\" could not be loaded at start-up (see the server log); DROP it or fix its files and restart",
            table.entry.name
        ))
    })
}

impl SessionSchema {
    /// The stored relation `name` as this schema has it: for the search
    /// path, in its first schema that has one.
    fn stored(&self, name: &str) -> Option<Loaded> {
        match &self.schema {
            Some(schema) => self
                .session
                .stored(&QualifiedName::new(schema.clone(), name)),
            None => self
                .session
                .search_path()
                .into_iter()
                .find_map(|schema| self.session.stored(&QualifiedName::new(schema, name))),
        }
    }

    /// Whether the session's temporary tables come first here.
    fn has_temp(&self) -> bool {
        self.schema.as_deref().is_none_or(|s| s == DEFAULT_SCHEMA)
    }

    /// The stored relation `name`'s entry, as the session sees it.
    pub fn entry(&self, name: &str) -> Option<TableEntry> {
        self.stored(name).map(|t| t.entry)
    }
}

#[async_trait]
impl SchemaProvider for SessionSchema {
    fn table_names(&self) -> Vec<String> {
        let Some(schema) = &self.schema else {
            // Not listed (see `crate::SEARCH_PATH`).
            return Vec::new();
        };
        let session = &self.session;
        let mut names: Vec<String> = session
            .entries()
            .into_iter()
            .filter(|e| &e.schema == schema)
            .filter(|e| session.stored(&e.qualified()).is_some_and(|t| t.listed()))
            .map(|e| e.name)
            .collect();
        if self.has_temp() {
            names.extend(session.temp.names());
        }
        names.sort();
        names.dedup();
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let session = &self.session;
        if self.has_temp()
            && let Some((provider, dir)) = session.temp.get(name)
        {
            let provider = session.staging.view(&provider, &dir)?.unwrap_or(provider);
            return session.with_defaults(provider).map(Some);
        }
        let Some(table) = self.stored(name) else {
            return Ok(None);
        };
        if let TableKind::View { definition, .. } = &table.entry.kind {
            return session.view(&table, definition).await.map(Some);
        }
        let provider = match provider_of(&table) {
            Ok(provider) => provider,
            Err(e) => return exec_err!("{e}"),
        };
        let provider = match session.shared.dir_of(&table) {
            Some(dir) => session.staged(&table, provider, dir)?,
            None => provider,
        };
        session.with_defaults(provider).map(Some)
    }

    async fn table_type(&self, name: &str) -> DfResult<Option<TableType>> {
        // A view's type is known without planning it.
        let temp = self.has_temp() && self.session.temp.contains(name);
        if !temp && self.stored(name).is_some_and(|t| t.is_view()) {
            return Ok(Some(TableType::View));
        }
        Ok(self.table(name).await?.map(|t| t.table_type()))
    }

    fn table_exist(&self, name: &str) -> bool {
        (self.has_temp() && self.session.temp.contains(name)) || self.stored(name).is_some()
    }

    fn register_table(
        &self,
        name: String,
        _table: Arc<dyn TableProvider>,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        datafusion::common::not_impl_err!(
            "cannot register \"{name}\" in a stored schema outside Quiver's DDL"
        )
    }

    fn deregister_table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        datafusion::common::not_impl_err!(
            "cannot deregister \"{name}\" from a stored schema outside Quiver's DDL"
        )
    }
}
