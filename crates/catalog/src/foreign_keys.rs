//! `FOREIGN KEY` constraints as the catalog keeps them: on the referencing
//! table's entry, naming the referenced table and columns (see
//! [`crate::ForeignKey`]). Names are what tie them, so renaming a table or
//! a column renames it in the keys that name it, and a table, column or
//! key that a foreign key references cannot go while it does (2BP01), as
//! in PostgreSQL. Their rows are checked in [`crate::keys`].

use crate::catalog::Loaded;
use crate::changes::Changes;
use crate::session_catalog::SessionCatalog;
use crate::{Error, ForeignKey, QualifiedName, Result};

impl SessionCatalog {
    /// Adds `key` to the stored table `name`, once the rows the session
    /// sees have the keys they reference (the caller checked the rest).
    pub async fn add_foreign_key(&self, name: &QualifiedName, key: ForeignKey) -> Result<()> {
        let Some(table) = self.stored(name) else {
            return Err(Error::TableNotFound(name.to_string()));
        };
        let referenced = match key.references(name) {
            true => table.clone(),
            false => self
                .stored(&key.referenced_table())
                .ok_or_else(|| Error::TableNotFound(key.referenced_table().to_string()))?,
        };
        let mine = self.visible_files(&table)?;
        let theirs = self.visible_files(&referenced)?;
        let ctx = self.shared().query_context();
        crate::keys::check_references(&ctx, &table, &mine, &key, &referenced, &theirs).await?;
        self.change(|changes| {
            let mut table = self
                .stored_in(changes, name)
                .ok_or_else(|| Error::TableNotFound(name.to_string()))?;
            table.entry.foreign_keys.push(key);
            changes.set(self.shared(), name, Some(table));
            Ok(())
        })
        .await
    }

    /// Drops the foreign key `constraint` of the stored table `name`:
    /// `false` if it has none.
    pub async fn drop_foreign_key(&self, name: &QualifiedName, constraint: &str) -> Result<bool> {
        self.change(|changes| {
            let Some(mut table) = self.stored_in(changes, name) else {
                return Ok(false);
            };
            let before = table.entry.foreign_keys.len();
            table.entry.foreign_keys.retain(|k| k.name != constraint);
            if table.entry.foreign_keys.len() == before {
                return Ok(false);
            }
            changes.set(self.shared(), name, Some(table));
            Ok(true)
        })
        .await
    }

    /// `DROP TABLE name CASCADE`: drops the foreign keys of other tables
    /// that reference `name`; returns them as `(constraint, table)`.
    pub async fn drop_references_to(&self, name: &QualifiedName) -> Result<Vec<(String, String)>> {
        self.change(|changes| {
            let mut dropped = Vec::new();
            for mut table in self.relations(changes) {
                let table_name = table.entry.qualified();
                if table_name == *name {
                    continue;
                }
                let (gone, kept) = std::mem::take(&mut table.entry.foreign_keys)
                    .into_iter()
                    .partition(|k| k.references(name));
                table.entry.foreign_keys = kept;
                let gone: Vec<ForeignKey> = gone;
                if !gone.is_empty() {
                    dropped.extend(gone.into_iter().map(|k| (k.name, table.entry.name.clone())));
                    changes.set(self.shared(), &table_name, Some(table));
                }
            }
            Ok(dropped)
        })
        .await
    }

    /// Fails with 2BP01 if a foreign key of a table other than `name`
    /// references the table `name` (at all, `columns` of `None`, or one of
    /// `columns`): `what` is what would go, as the message names it.
    pub(crate) fn check_unreferenced(
        &self,
        changes: &Changes,
        name: &QualifiedName,
        columns: Option<&[String]>,
        what: &str,
    ) -> Result<()> {
        for table in self.relations(changes) {
            for key in &table.entry.foreign_keys {
                let references = key.references(name)
                    && columns.is_none_or(|c| key.referenced.iter().any(|r| c.contains(r)));
                let own = table.entry.qualified() == *name;
                if references && !(own && columns.is_none()) {
                    return Err(Error::DependentObjects(format!(
                        "cannot drop {what} because other objects depend on it: constraint {} on table {} depends on it",
                        key.name, table.entry.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// Records in `changes` that the table `from` is now `to`: the foreign
    /// keys that reference it name it so.
    pub(crate) fn rename_references(&self, changes: &mut Changes, from: &QualifiedName, to: &str) {
        self.change_references(changes, from, |key| key.table = to.to_string());
    }

    /// Records in `changes` that the column `column` of the table `name`
    /// is now `new`: in its own foreign keys, and in those that reference it.
    pub(crate) fn rename_key_column(
        &self,
        changes: &mut Changes,
        name: &QualifiedName,
        column: &str,
        new: &str,
    ) {
        let rename = |columns: &mut Vec<String>| {
            for c in columns.iter_mut().filter(|c| *c == column) {
                *c = new.to_string();
            }
        };
        if let Some(mut table) = self.stored_in(changes, name) {
            for key in &mut table.entry.foreign_keys {
                rename(&mut key.columns);
            }
            changes.set(self.shared(), name, Some(table));
        }
        self.change_references(changes, name, |key| rename(&mut key.referenced));
    }

    /// Applies `change` to every foreign key that references the table
    /// `name`, as `changes` leave them, and records the tables changed.
    fn change_references(
        &self,
        changes: &mut Changes,
        name: &QualifiedName,
        mut change: impl FnMut(&mut ForeignKey),
    ) {
        let tables: Vec<Loaded> = self
            .relations(changes)
            .into_iter()
            .filter(|t| t.entry.foreign_keys.iter().any(|k| k.references(name)))
            .collect();
        for mut table in tables {
            for key in table
                .entry
                .foreign_keys
                .iter_mut()
                .filter(|k| k.references(name))
            {
                change(key);
            }
            changes.set(self.shared(), &table.entry.qualified(), Some(table));
        }
    }
}
