//! [`SessionSchema`]: the `public` schema as one session sees it, and the
//! session's DDL.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::exec_err;
use datafusion::datasource::ViewTable;
use datafusion::error::Result as DfResult;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{CreateExternalTable, Expr, LogicalPlan, TableType};

use crate::catalog::{Catalog, Loaded};
use crate::changes::{Changes, TempChange};
use crate::staging::Staging;
use crate::table::with_defaults;
use crate::temp::TempTables;
use crate::{
    Error, IndexEntry, OwnedBy, Privilege, Result, Sequence, SequenceOptions, TableEntry, TableKind,
};

/// The `public` schema as one session sees it: its temporary tables first
/// (as PostgreSQL's `pg_temp` comes first on the search path), then the
/// stored tables; inside a transaction block, the stored tables as the
/// block's DDL left them (see [`crate::changes`]), managed tables with the
/// block's staged writes (see [`crate::staging`]).
///
/// The session's DDL goes through it: outside a block each statement's
/// changes are stored as it ends, inside one they are the block's until
/// it ends.
pub struct SessionSchema {
    temp: Arc<TempTables>,
    shared: Arc<Catalog>,
    staging: Arc<Staging>,
    /// Plans the views the session reads and the defaults of the columns
    /// it writes (set once its context exists).
    planner: OnceLock<Arc<dyn RelationPlanner>>,
    /// Tables whose columns have defaults, with them planned, by the
    /// provider they wrap: a statement looks a table up more than once,
    /// and each lookup must give the same provider (`RETURNING` and
    /// changes in place find the table's scans by it).
    with_defaults: Mutex<Vec<WithDefaults>>,
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

impl std::fmt::Debug for SessionSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSchema")
            .field("temp", &self.temp)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl SessionSchema {
    pub fn new(temp: Arc<TempTables>, shared: Arc<Catalog>, staging: Arc<Staging>) -> Self {
        Self {
            temp,
            shared,
            staging,
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
    fn stored_in(&self, changes: &Changes, name: &str) -> Option<Loaded> {
        match changes.get(name) {
            Some(table) => table.cloned(),
            None => self.shared.loaded(name),
        }
    }

    /// The stored table `name` as the session sees it (not a temporary one).
    pub(crate) fn stored(&self, name: &str) -> Option<Loaded> {
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
    pub fn entry(&self, name: &str) -> Option<TableEntry> {
        self.stored(name).map(|t| t.entry)
    }

    /// Every stored table's entry as the session sees it, in name order.
    pub fn entries(&self) -> Vec<TableEntry> {
        let mut entries: BTreeMap<String, TableEntry> = self
            .shared
            .entries()
            .into_iter()
            .map(|e| (e.name.clone(), e))
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
    async fn change<R>(&self, change: impl FnOnce(&mut Changes) -> Result<R>) -> Result<R> {
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
        name: &str,
        schema: SchemaRef,
        sequences: Vec<(String, SequenceOptions)>,
        if_not_exists: bool,
        owner: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        self.change(|changes| {
            if self.stored_in(changes, name).is_some() {
                return match if_not_exists {
                    true => Ok(None),
                    false => Err(Error::TableExists(name.to_string())),
                };
            }
            for (sequence, options) in sequences {
                if self.stored_in(changes, &sequence).is_some() {
                    return Err(Error::TableExists(sequence));
                }
                let created = self.shared.new_sequence(&sequence, options, owner);
                changes.set(&self.shared, &sequence, Some(created));
            }
            let table = self.shared.new_managed(name, schema, owner)?;
            changes.created_dir(self.shared.dir_of(&table).unwrap_or_default());
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
        name: &str,
        options: SequenceOptions,
        if_not_exists: bool,
        owner: &str,
    ) -> Result<bool> {
        self.change(|changes| {
            if self.stored_in(changes, name).is_some() {
                return match if_not_exists {
                    true => Ok(false),
                    false => Err(Error::TableExists(name.to_string())),
                };
            }
            if let Some(OwnedBy { table, column }) = &options.owned_by {
                self.owning_table(changes, table, column)?;
            }
            let sequence = self.shared.new_sequence(name, options, owner);
            changes.set(&self.shared, name, Some(sequence));
            Ok(true)
        })
        .await
    }

    /// The stored table `table` with the column `column`, which may own a
    /// sequence.
    fn owning_table(&self, changes: &Changes, table: &str, column: &str) -> Result<()> {
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
    pub fn sequence(&self, name: &str) -> Result<Sequence> {
        let relation = self
            .stored(name)
            .ok_or_else(|| Error::TableNotFound(name.to_string()))?;
        relation
            .sequence()
            .ok_or_else(|| Error::WrongObjectType(format!("\"{name}\" is not a sequence")))
    }

    /// The sequence owned by `table`'s column `column` (`SERIAL`,
    /// identity), if there is one.
    pub fn owned_sequence(&self, table: &str, column: &str) -> Option<Sequence> {
        let owner = OwnedBy {
            table: table.to_string(),
            column: column.to_string(),
        };
        self.entries()
            .iter()
            .filter_map(TableEntry::sequence)
            .find(|sequence| sequence.options.owned_by.as_ref() == Some(&owner))
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
        name: &str,
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
                (Some(_), false) => return Err(Error::TableExists(name.to_string())),
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
    pub async fn drop_table(&self, name: &str, if_exists: bool) -> Result<bool> {
        self.drop_relation(name, if_exists, Relation::Table).await
    }

    /// `DROP VIEW`. `false` when there is none and `if_exists` is set.
    pub async fn drop_view(&self, name: &str, if_exists: bool) -> Result<bool> {
        self.drop_relation(name, if_exists, Relation::View).await
    }

    /// `DROP SEQUENCE`: not one a table's column owns (2BP01). `false`
    /// when there is none and `if_exists` is set.
    pub async fn drop_sequence(&self, name: &str, if_exists: bool) -> Result<bool> {
        self.drop_relation(name, if_exists, Relation::Sequence)
            .await
    }

    /// `DROP TABLE`, `DROP VIEW` or `DROP SEQUENCE` (`kind`) of `name`,
    /// which must be of that kind.
    async fn drop_relation(&self, name: &str, if_exists: bool, kind: Relation) -> Result<bool> {
        self.change(|changes| {
            let Some(table) = self.stored_in(changes, name) else {
                return match if_exists {
                    true => Ok(false),
                    false => Err(kind.not_found(name)),
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
                && self.stored_in(changes, &owner).is_some()
            {
                return Err(Error::DependentObjects(format!(
                    "cannot drop sequence {name} because column {column} of table {owner} requires it"
                )));
            }
            for sequence in self.owned_by(changes, name) {
                changes.set(&self.shared, &sequence.entry.name, None);
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
    fn owned_by(&self, changes: &Changes, table: &str) -> Vec<Loaded> {
        self.relations(changes)
            .into_iter()
            .filter(|relation| {
                relation
                    .sequence()
                    .and_then(|s| s.options.owned_by)
                    .is_some_and(|owner| owner.table == table)
            })
            .collect()
    }

    /// Every stored relation as `changes` leave them.
    fn relations(&self, changes: &Changes) -> Vec<Loaded> {
        let mut names: Vec<String> = self.shared.entries().into_iter().map(|e| e.name).collect();
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
        name: &str,
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
                Some(_) => return Err(Error::TableExists(name.to_string())),
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
    pub async fn rename_table(&self, name: &str, new_name: &str) -> Result<()> {
        self.change(|changes| {
            let mut table = self
                .stored_in(changes, name)
                .ok_or_else(|| Error::TableNotFound(name.to_string()))?;
            if self.stored_in(changes, new_name).is_some() {
                return Err(Error::TableExists(new_name.to_string()));
            }
            // Its columns' sequences follow it.
            for mut sequence in self.owned_by(changes, name) {
                if let TableKind::Sequence { options, .. } = &mut sequence.entry.kind
                    && let Some(owner) = &mut options.owned_by
                {
                    owner.table = new_name.to_string();
                }
                changes.set(&self.shared, &sequence.entry.name.clone(), Some(sequence));
            }
            table.entry.name = new_name.to_string();
            changes.set(&self.shared, name, None);
            changes.set(&self.shared, new_name, Some(table));
            Ok(())
        })
        .await
    }

    /// `GRANT` (`give`) or `REVOKE` of `privileges` on the stored table
    /// `name` to or from `grantee` ([`crate::PUBLIC`]: every role).
    pub async fn set_privileges(
        &self,
        name: &str,
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

    /// `CREATE INDEX` on the stored table `table` (not a view): recorded
    /// with it (see [`IndexEntry`]). `false` when a relation or index of
    /// its name exists and `if_not_exists` is set.
    pub async fn create_index(
        &self,
        table: &str,
        index: IndexEntry,
        if_not_exists: bool,
    ) -> Result<bool> {
        self.change(|changes| {
            let mut stored = self
                .stored_in(changes, table)
                .ok_or_else(|| Error::TableNotFound(table.to_string()))?;
            if stored.is_view() {
                return Err(Error::WrongObjectType(format!(
                    "cannot create index on relation \"{table}\": it is a view"
                )));
            }
            if self.stored_in(changes, &index.name).is_some()
                || self.index_table(changes, &index.name).is_some()
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
    pub async fn drop_index(&self, name: &str, if_exists: bool) -> Result<bool> {
        self.change(|changes| {
            let Some(mut table) = self.index_table(changes, name) else {
                return match if_exists {
                    true => Ok(false),
                    false => Err(Error::IndexNotFound(name.to_string())),
                };
            };
            table.entry.indexes.retain(|index| index.name != name);
            changes.set(&self.shared, &table.entry.name.clone(), Some(table));
            Ok(true)
        })
        .await
    }

    /// The stored table the index `name` is on, as `changes` leave it.
    fn index_table(&self, changes: &Changes, name: &str) -> Option<Loaded> {
        self.relations(changes)
            .into_iter()
            .find(|table| table.entry.indexes.iter().any(|index| index.name == name))
    }

    /// `COMMIT` of the open transaction block: its DDL is stored, then its
    /// staged writes published (see [`Staging::commit`]). Returns the
    /// tables the block wrote to. If the DDL cannot be stored (another
    /// session changed a name the block changed), nothing of the block is
    /// kept.
    pub async fn commit(&self) -> Result<Vec<Arc<dyn TableProvider>>> {
        let changes = self.staging.take_changes();
        if !changes.is_empty() {
            let ddl = self.shared.ddl_lock().await;
            if let Err(e) = self.shared.store(&changes, &ddl) {
                drop(ddl);
                self.staging.rollback();
                changes.discard(&self.temp);
                return Err(e);
            }
        }
        let published = self.staging.commit().await;
        changes.finish(&self.shared);
        published
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
    fn staged(
        &self,
        table: &Loaded,
        provider: Arc<dyn TableProvider>,
        dir: PathBuf,
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

#[async_trait]
impl SchemaProvider for SessionSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries()
            .into_iter()
            .map(|e| e.name)
            .filter(|name| self.stored(name).is_some_and(|t| t.listed()))
            .collect();
        names.extend(self.temp.names());
        names.sort();
        names.dedup();
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some((provider, dir)) = self.temp.get(name) {
            let provider = self.staging.view(&provider, &dir)?.unwrap_or(provider);
            return self.with_defaults(provider).map(Some);
        }
        let Some(table) = self.stored(name) else {
            return Ok(None);
        };
        if let TableKind::View { definition, .. } = &table.entry.kind {
            return self.view(&table, definition).await.map(Some);
        }
        let provider = match provider_of(&table) {
            Ok(provider) => provider,
            Err(e) => return exec_err!("{e}"),
        };
        let provider = match self.shared.dir_of(&table) {
            Some(dir) => self.staged(&table, provider, dir)?,
            None => provider,
        };
        self.with_defaults(provider).map(Some)
    }

    async fn table_type(&self, name: &str) -> DfResult<Option<TableType>> {
        // A view's type is known without planning it.
        if !self.temp.contains(name) && self.stored(name).is_some_and(|t| t.is_view()) {
            return Ok(Some(TableType::View));
        }
        Ok(self.table(name).await?.map(|t| t.table_type()))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.temp.contains(name) || self.stored(name).is_some()
    }

    fn register_table(
        &self,
        name: String,
        _table: Arc<dyn TableProvider>,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        datafusion::common::not_impl_err!(
            "cannot register \"{name}\" in the persistent schema outside Quiver's DDL"
        )
    }

    fn deregister_table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        datafusion::common::not_impl_err!(
            "cannot deregister \"{name}\" from the persistent schema outside Quiver's DDL"
        )
    }
}
