//! DDL as a set of changes to the stored schemas and relations, stored all
//! at once.
//!
//! A statement that creates, drops, renames or grants on a table or view,
//! creates or drops an index or a schema, does not change the catalog directly: it
//! records [`Changes`] — each changed name
//! with the table it now names (or none), and what was stored under it when
//! it was first changed — and [`Catalog::store`] then writes them in one
//! RocksDB batch, after checking that every changed name still holds what
//! it held then. Outside a transaction block that happens as the statement
//! ends, under the catalog's DDL lock. Inside one, the block's changes
//! accumulate (its session sees them at once, no one else does: see
//! [`crate::SessionCatalog`]) and are stored at `COMMIT`; `ROLLBACK` drops
//! them, as PostgreSQL's transactional DDL does — a failed Alembic or dbt
//! migration leaves nothing behind. A name another session changed since
//! the block first changed it fails the `COMMIT`: 42P07 when both created
//! it, 42P01 when it was dropped, 40001 otherwise.
//!
//! A managed table's directory is made when the table is created and
//! removed when its drop is stored; a created table the changes do not
//! keep (rolled back, or dropped again) loses its directory with them.
//! A crash before the store leaves such a directory without an entry,
//! which the next start removes.

use std::collections::{BTreeMap, HashSet};

use crate::catalog::{Catalog, Loaded};
use crate::files::Dir;
use crate::store::{Change, SCHEMAS_CF, TABLES_CF};
use crate::temp::{TempTable, TempTables};
use crate::{DEFAULT_SCHEMA, Error, QualifiedName, Result, SchemaEntry, TableEntry};

/// Changes to the stored schemas and relations, not stored yet.
#[derive(Default)]
pub(crate) struct Changes {
    /// The changed names, with the table each now names (`None`: none).
    tables: BTreeMap<QualifiedName, Option<Loaded>>,
    /// What was stored under each changed name when it was first changed.
    found: BTreeMap<QualifiedName, Option<TableEntry>>,
    /// The schemas created or dropped, with what each name now names.
    schemas: BTreeMap<String, Option<SchemaEntry>>,
    /// What was stored under each changed schema name when it was first
    /// changed.
    found_schemas: BTreeMap<String, Option<SchemaEntry>>,
    /// Directories of the managed tables the changes created.
    created: Vec<Dir>,
    /// Directories of the managed tables the changes dropped.
    dropped: Vec<Dir>,
    /// What the changes did to the session's temporary tables, oldest
    /// first (only a transaction block records them: they are undone if
    /// it rolls back).
    temp: Vec<TempChange>,
}

/// A change of a session's temporary tables, undone by `ROLLBACK`.
pub(crate) enum TempChange {
    Created(String),
    /// The table is kept (its files too) until the block ends.
    Dropped(String, TempTable),
    Renamed {
        from: String,
        to: String,
    },
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes")
            .field("tables", &self.tables.keys().collect::<Vec<_>>())
            .field("created", &self.created)
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

impl Changes {
    /// The table `name` names as changed: `None` if the changes leave
    /// the name alone, `Some(None)` if they leave it naming nothing.
    pub(crate) fn get(&self, name: &QualifiedName) -> Option<Option<&Loaded>> {
        self.tables.get(name).map(Option::as_ref)
    }

    /// Every changed name with what it names now.
    pub(crate) fn tables(&self) -> impl Iterator<Item = (&QualifiedName, Option<&Loaded>)> {
        self.tables.iter().map(|(name, t)| (name, t.as_ref()))
    }

    /// The schema `name` as changed: `None` if the changes leave it
    /// alone, `Some(None)` if they dropped it.
    pub(crate) fn schema(&self, name: &str) -> Option<Option<&SchemaEntry>> {
        self.schemas.get(name).map(Option::as_ref)
    }

    /// Every changed schema name with what it names now.
    pub(crate) fn schemas(&self) -> impl Iterator<Item = (&String, Option<&SchemaEntry>)> {
        self.schemas.iter().map(|(name, s)| (name, s.as_ref()))
    }

    /// `name` now names the schema `schema` (`None`: none).
    pub(crate) fn set_schema(
        &mut self,
        catalog: &Catalog,
        name: &str,
        schema: Option<SchemaEntry>,
    ) {
        self.found_schemas
            .entry(name.to_string())
            .or_insert_with(|| catalog.schema_entry(name));
        self.schemas.insert(name.to_string(), schema);
    }

    /// Whether the changes change what `name` names.
    pub(crate) fn changes(&self, name: &QualifiedName) -> bool {
        self.tables.contains_key(name)
    }

    /// Whether the changes created the managed table whose files are in `dir`.
    pub(crate) fn created(&self, dir: &Dir) -> bool {
        self.created.iter().any(|d| d == dir)
    }

    /// `name` now names `table` (`None`: nothing). What `catalog` holds
    /// under it is recorded when `name` is first changed.
    pub(crate) fn set(&mut self, catalog: &Catalog, name: &QualifiedName, table: Option<Loaded>) {
        self.found
            .entry(name.clone())
            .or_insert_with(|| catalog.entry(name));
        self.tables.insert(name.clone(), table);
    }

    /// A managed table was created with its files in `dir`.
    pub(crate) fn created_dir(&mut self, dir: Dir) {
        self.created.push(dir);
    }

    /// The managed table whose files are in `dir` was dropped.
    pub(crate) fn dropped_dir(&mut self, dir: Dir) {
        self.dropped.push(dir);
    }

    /// Records a change of the session's temporary tables (if any).
    pub(crate) fn temp(&mut self, change: Option<TempChange>) {
        self.temp.extend(change);
    }

    /// Whether there is nothing to store or undo.
    pub(crate) fn is_empty(&self) -> bool {
        self.tables.is_empty()
            && self.schemas.is_empty()
            && self.created.is_empty()
            && self.temp.is_empty()
    }

    /// The changes were stored: removes the files of the tables they
    /// dropped (and of those they created and did not keep, and of the
    /// temporary tables they dropped).
    pub(crate) fn finish(self, catalog: &Catalog) {
        let kept: HashSet<Dir> = self
            .tables
            .values()
            .flatten()
            .filter_map(|t| catalog.dir_of(t))
            .collect();
        for dir in self.created.iter().chain(&self.dropped) {
            if !kept.contains(dir) {
                remove_dir(dir);
            }
        }
        for change in self.temp {
            if let TempChange::Dropped(_, table) = change {
                table.remove_files();
            }
        }
    }

    /// The changes are given up: removes the directories of the tables
    /// they created and undoes what they did to the temporary tables.
    pub(crate) fn discard(self, temp: &TempTables) {
        self.abandon();
        for change in self.temp.into_iter().rev() {
            match change {
                TempChange::Created(name) => {
                    temp.drop_table(&name);
                }
                TempChange::Dropped(name, table) => temp.restore(&name, table),
                TempChange::Renamed { from, to } => {
                    let _ = temp.rename_table(&to, &from);
                }
            }
        }
    }

    /// Removes the directories of the tables the changes created (the
    /// session ended with the block open).
    pub(crate) fn abandon(&self) {
        for dir in &self.created {
            remove_dir(dir);
        }
    }
}

fn remove_dir(dir: &Dir) {
    if let Err(e) = dir.remove_all() {
        // The entry is gone; the directory is an orphan removed at next start.
        tracing::warn!(%dir, error = %e, "could not remove table files");
    }
}

impl Catalog {
    /// Stores `changes` in one write, if every name they change still
    /// holds what it held when they first changed it. The caller holds
    /// the DDL lock ([`Catalog::ddl_lock`]).
    pub(crate) fn store(&self, changes: &Changes, ddl: &DdlLock<'_>) -> Result<()> {
        self.check_changes(changes, ddl)?;
        self.write_changes(changes)
    }

    /// Whether `changes` can be stored: every name they change still
    /// holds what it held when they first changed it. Under the DDL lock,
    /// they still can until it is released.
    pub(crate) fn check_changes(&self, changes: &Changes, _ddl: &DdlLock<'_>) -> Result<()> {
        for (name, found) in &changes.found_schemas {
            let stored = self.schema_entry(name);
            match (found, &stored) {
                (None, Some(_)) => return Err(Error::SchemaExists(name.clone())),
                (Some(_), None) => return Err(Error::SchemaNotFound(name.clone())),
                _ => {}
            }
        }
        // A relation made in a schema another session dropped meanwhile.
        for (name, table) in &changes.tables {
            let schema = &name.schema;
            let exists = match changes.schemas.get(schema) {
                Some(entry) => entry.is_some(),
                None => schema == DEFAULT_SCHEMA || self.schema_entry(schema).is_some(),
            };
            if table.is_some() && !exists {
                return Err(Error::SchemaNotFound(schema.clone()));
            }
        }
        for (name, found) in &changes.found {
            let stored = self.entry(name);
            match (found, &stored) {
                _ if *found == stored => {}
                (None, Some(_)) => return Err(Error::TableExists(name.name.clone())),
                (Some(_), None) => return Err(Error::TableNotFound(name.to_string())),
                (Some(_), Some(_)) => {
                    return Err(Error::SerializationFailure(format!(
                        "could not serialize access: table \"{name}\" was changed by another transaction"
                    )));
                }
                (None, None) => {}
            }
        }
        Ok(())
    }

    /// Stores `changes` in one write (see [`Catalog::store`]).
    fn write_changes(&self, changes: &Changes) -> Result<()> {
        if changes.tables.is_empty() && changes.schemas.is_empty() {
            return Ok(());
        }
        let mut values = Vec::new();
        for (name, schema) in &changes.schemas {
            let value = schema
                .as_ref()
                .map(|s| crate::store::json(name, s))
                .transpose()?;
            values.push((SCHEMAS_CF, name.clone(), value));
        }
        for (name, table) in &changes.tables {
            let key = name.key();
            if let Some(table) = table {
                let value = crate::store::json(&key, &table.entry)?;
                values.push((TABLES_CF, key, Some(value)));
            } else if changes.found.get(name).is_some_and(Option::is_some) {
                values.push((TABLES_CF, key, None));
            }
        }
        let batch: Vec<Change<'_>> = values
            .iter()
            .map(|(cf, key, value)| match value {
                Some(value) => Change::Put { cf, key, value },
                None => Change::Delete { cf, key },
            })
            .collect();
        self.store_changes(&batch)?;
        self.apply_schemas(
            changes
                .schemas
                .iter()
                .map(|(name, schema)| (name.clone(), schema.clone())),
        );
        self.apply(
            changes
                .tables
                .iter()
                .map(|(name, table)| (name.clone(), table.clone())),
        );
        Ok(())
    }
}

/// Held while DDL checks and stores changes: see [`Catalog::ddl_lock`].
pub(crate) type DdlLock<'a> = tokio::sync::MutexGuard<'a, ()>;
