//! `PRIMARY KEY` and `UNIQUE`: declared in `CREATE TABLE`, added with
//! `ALTER TABLE ... ADD [CONSTRAINT name] PRIMARY KEY | UNIQUE (columns)` or
//! `CREATE UNIQUE INDEX`, dropped with `ALTER TABLE ... DROP CONSTRAINT`
//! or `DROP INDEX`; and enforced.
//!
//! Each is a unique index of the table (see `quiver_catalog::IndexEntry`),
//! named as PostgreSQL names it (`<table>_pkey`, `<table>_<columns>_key`).
//! A write to a table with one is staged and checked (see
//! `quiver_catalog::keys`): in the session's transaction block, or in a
//! block of its own the statement commits, so that an autocommitted
//! statement's rows reach the table only once they are found to keep its
//! keys.

use std::future::Future;

use datafusion::sql::sqlparser::ast::{
    ColumnOption, CreateTable, Expr, Ident, IndexColumn, TableConstraint,
};
use quiver_catalog::{IndexEntry, QualifiedName, TableKind, Target, Uniqueness};

use super::Session;
use crate::names::folded;
use crate::{Error, Result};

impl Session {
    /// Runs `write`, a statement writing rows to `target`; where the table
    /// has unique keys, checks them after it (see the module's
    /// documentation). Outside a transaction block, the statement runs in
    /// a block of its own, whose commit checks the keys (the check after
    /// the statement would read the same files once more): its rows are in
    /// the table once `write` and the check succeeded, and not at all
    /// otherwise.
    pub(super) async fn keeping_keys<T>(
        &self,
        target: &Target,
        write: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        if !self.relations.has_constraints(target) {
            return write.await;
        }
        if !self.staging.is_open() {
            return self.atomically(write).await;
        }
        let written = write.await?;
        self.relations.check_keys(target).await?;
        Ok(written)
    }

    /// `ALTER TABLE name ADD [CONSTRAINT c] PRIMARY KEY | UNIQUE (columns)`:
    /// once the table's rows are found to keep it. A primary key's columns
    /// must be `NOT NULL` already.
    pub(super) async fn add_constraint(
        &self,
        name: &QualifiedName,
        constraint: &TableConstraint,
    ) -> Result<()> {
        let entry = self
            .relations
            .entry(name)
            .ok_or_else(|| Error::UndefinedTable(name.to_string()))?;
        let taken: Vec<String> = entry.indexes.iter().map(|i| i.name.clone()).collect();
        let Some(index) = constraint_index(constraint, &name.name, &taken)? else {
            return Err(Error::FeatureNotSupported(format!(
                "ALTER TABLE ... ADD {constraint} is not supported yet (only PRIMARY KEY and UNIQUE)"
            )));
        };
        let TableKind::Managed { columns, .. } = &entry.kind else {
            return Err(Error::FeatureNotSupported(format!(
                "\"{name}\" is not a managed table: constraints cannot be enforced on it"
            )));
        };
        for key in &index.keys {
            let column = columns.iter().find(|c| &c.name == key).ok_or_else(|| {
                Error::UndefinedColumn(format!("column \"{key}\" named in key does not exist"))
            })?;
            if index.unique == Uniqueness::PrimaryKey && column.nullable {
                return Err(Error::FeatureNotSupported(format!(
                    "column \"{key}\" of a primary key must be declared NOT NULL first: Quiver cannot make a column of \"{}\" NOT NULL yet",
                    name.name
                )));
            }
        }
        if index.unique == Uniqueness::PrimaryKey
            && entry
                .indexes
                .iter()
                .any(|i| i.unique == Uniqueness::PrimaryKey)
        {
            return Err(multiple_primary_keys(&name.name));
        }
        self.relations.create_index(name, index, false).await?;
        Ok(())
    }

    /// `ALTER TABLE name DROP CONSTRAINT [IF EXISTS] c`: `false` when
    /// there is none and `if_exists` is set.
    pub(super) async fn drop_constraint(
        &self,
        name: &QualifiedName,
        constraint: &Ident,
        if_exists: bool,
    ) -> Result<bool> {
        let constraint = folded(constraint);
        if self.relations.drop_foreign_key(name, &constraint).await? {
            return Ok(true);
        }
        let found = self.relations.entry(name).is_some_and(|entry| {
            entry
                .indexes
                .iter()
                .any(|i| i.name == constraint && i.constraint_type().is_some())
        });
        if !found {
            return match if_exists {
                true => Ok(false),
                false => Err(Error::UndefinedObject(format!(
                    "constraint \"{constraint}\" of relation \"{}\" does not exist",
                    name.name
                ))),
            };
        }
        self.relations
            .drop_index(&name.sibling(constraint), false)
            .await?;
        Ok(true)
    }
}

/// The unique indexes a `CREATE TABLE` of `table` declares: its `PRIMARY
/// KEY` and `UNIQUE` constraints, of columns or of the table.
pub(super) fn declared_keys(create: &CreateTable, table: &str) -> Result<Vec<IndexEntry>> {
    let mut keys: Vec<IndexEntry> = Vec::new();
    let mut add = |index: IndexEntry| {
        if index.unique == Uniqueness::PrimaryKey
            && keys.iter().any(|k| k.unique == Uniqueness::PrimaryKey)
        {
            return Err(multiple_primary_keys(table));
        }
        keys.push(index);
        Ok(())
    };
    for column in &create.columns {
        for option in &column.options {
            let (unique, named) = match &option.option {
                ColumnOption::PrimaryKey(key) => (Uniqueness::PrimaryKey, &key.name),
                ColumnOption::Unique(key) => (Uniqueness::Constraint, &key.name),
                _ => continue,
            };
            let columns = vec![folded(&column.name)];
            let name = option.name.as_ref().or(named.as_ref());
            add(IndexEntry {
                name: constraint_name(name, unique, table, &columns, &[]),
                keys: columns,
                unique,
            })?;
        }
    }
    for constraint in &create.constraints {
        if let Some(index) = constraint_index(constraint, table, &[])? {
            add(index)?;
        }
    }
    // Two constraints PostgreSQL would name alike: the later is numbered.
    let mut seen: Vec<String> = Vec::new();
    for key in &mut keys {
        if seen.contains(&key.name) {
            key.name = numbered(&key.name, &seen);
        }
        seen.push(key.name.clone());
    }
    Ok(keys)
}

/// The unique index a table constraint of `table` declares; `None` for
/// another kind of constraint (`CHECK`, `FOREIGN KEY`). `taken`: the
/// names of the table's indexes, which a name made up avoids.
fn constraint_index(
    constraint: &TableConstraint,
    table: &str,
    taken: &[String],
) -> Result<Option<IndexEntry>> {
    let (unique, name, columns) = match constraint {
        TableConstraint::PrimaryKey(key) => (Uniqueness::PrimaryKey, &key.name, &key.columns),
        TableConstraint::Unique(key) => (Uniqueness::Constraint, &key.name, &key.columns),
        _ => return Ok(None),
    };
    let keys = columns.iter().map(key_column).collect::<Result<Vec<_>>>()?;
    Ok(Some(IndexEntry {
        name: constraint_name(name.as_ref(), unique, table, &keys, taken),
        keys,
        unique,
    }))
}

/// The column a key names (keys of expressions are not supported).
pub(super) fn key_column(column: &IndexColumn) -> Result<String> {
    match &column.column.expr {
        Expr::Identifier(ident) => Ok(folded(ident)),
        other => Err(Error::FeatureNotSupported(format!(
            "a unique key of an expression ({other}) is not supported: name columns"
        ))),
    }
}

/// A constraint's name: as given, or as PostgreSQL makes one up
/// (`<table>_pkey`, `<table>_<columns>_key`), numbered past `taken`.
fn constraint_name(
    given: Option<&Ident>,
    unique: Uniqueness,
    table: &str,
    columns: &[String],
    taken: &[String],
) -> String {
    if let Some(name) = given {
        return folded(name);
    }
    let name = match unique {
        Uniqueness::PrimaryKey => format!("{table}_pkey"),
        _ => format!("{table}_{}_key", columns.join("_")),
    };
    match taken.contains(&name) {
        true => numbered(&name, taken),
        false => name,
    }
}

/// `name` with the first number after it that makes it none of `taken`.
fn numbered(name: &str, taken: &[String]) -> String {
    (1..)
        .map(|n| format!("{name}{n}"))
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or_else(|| name.to_string())
}

fn multiple_primary_keys(table: &str) -> Error {
    Error::InvalidTableDefinition(format!(
        "multiple primary keys for table \"{table}\" are not allowed"
    ))
}
