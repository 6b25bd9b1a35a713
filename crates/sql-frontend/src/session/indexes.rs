//! `CREATE [UNIQUE] INDEX` and `DROP INDEX`, recorded as metadata: a
//! managed table's rows are in Parquet files that queries prune by the
//! statistics in their footers, and no other structure is kept (see
//! [`quiver_catalog::IndexEntry`]). Tools create indexes as a matter of
//! course (pandas' `to_sql`, SQLAlchemy's `index=True`, Alembic), so
//! they are accepted rather than refused. A unique index is enforced, as
//! a `UNIQUE` constraint is (see `super::unique_keys`).

use datafusion::sql::sqlparser::ast::{CreateIndex, Expr, ObjectName};
use quiver_catalog::{IndexEntry, TableKind, Target, Uniqueness};

use super::{Completion, Outcome, Session, object_name};
use crate::names::folded;
use crate::{Error, Result};

impl Session {
    /// `CREATE INDEX [IF NOT EXISTS] [name] ON table (keys)`, by the
    /// table's owner; an index without a name is named as PostgreSQL
    /// names it (`<table>_<column>_idx`).
    pub(super) async fn create_index(&self, create: CreateIndex) -> Result<Outcome> {
        let reference = crate::names::table_reference(&create.table_name);
        let Target::Stored(table) = self.target(&reference)? else {
            return Err(Error::FeatureNotSupported(
                "indexes on temporary tables are not supported".into(),
            ));
        };
        let entry = self
            .relations
            .entry(&table)
            .ok_or_else(|| Error::UndefinedTable(reference.to_string()))?;
        self.check_owner(&table)?;
        let mut keys = Vec::new();
        for key in create.columns.iter().filter(|_| create.unique) {
            keys.push(super::unique_keys::key_column(key)?);
        }
        for key in create.columns.iter().filter(|_| !create.unique) {
            let expr = &key.column.expr;
            if let (Expr::Identifier(ident), TableKind::Managed { columns, .. }) =
                (expr, &entry.kind)
            {
                let column = folded(ident);
                if !columns.iter().any(|c| c.name == column) {
                    return Err(Error::UndefinedColumn(column));
                }
                keys.push(column);
            } else {
                keys.push(expr.to_string());
            }
        }
        let name = match &create.name {
            // An index is in its table's schema.
            Some(name) => object_name(name)
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_string(),
            None if create.unique => format!("{}_{}_key", table.name, keys.join("_")),
            None => format!("{}_{}_idx", table.name, keys.join("_")),
        };
        if let (true, TableKind::Managed { columns, .. }) = (create.unique, &entry.kind) {
            for key in &keys {
                if !columns.iter().any(|c| &c.name == key) {
                    return Err(Error::UndefinedColumn(key.clone()));
                }
            }
        }
        let created = self
            .relations
            .create_index(
                &table,
                IndexEntry {
                    name: name.clone(),
                    keys,
                    unique: match create.unique {
                        true => Uniqueness::Index,
                        false => Uniqueness::None,
                    },
                },
                create.if_not_exists,
            )
            .await?;
        Ok(Completion::tag("CREATE INDEX")
            .with_notice(
                (!created).then(|| format!("relation \"{name}\" already exists, skipping")),
            )
            .into())
    }

    /// `DROP INDEX [IF EXISTS] name, ...`, by the owner of each index's table.
    pub(super) async fn drop_indexes(
        &self,
        names: &[ObjectName],
        if_exists: bool,
    ) -> Result<Outcome> {
        let mut notices = Vec::new();
        for name in names {
            let reference = crate::names::table_reference(name);
            let name = self
                .relations
                .resolve_index(reference.schema(), reference.table())?;
            if let Some(table) = self.relations.entries().into_iter().find(|t| {
                t.schema == name.schema && t.indexes.iter().any(|index| index.name == name.name)
            }) {
                self.check_owner(&table.qualified())?;
                let backs_constraint = table
                    .indexes
                    .iter()
                    .any(|index| index.name == name.name && index.constraint_type().is_some());
                if backs_constraint {
                    return Err(Error::DependentObjects(format!(
                        "cannot drop index {0} because constraint {0} on table {1} requires it",
                        name.name, table.name
                    )));
                }
            }
            if !self.relations.drop_index(&name, if_exists).await? {
                notices.push(format!("index \"{}\" does not exist, skipping", name.name));
            }
        }
        Ok(Completion::tag("DROP INDEX")
            .with_notice((!notices.is_empty()).then(|| notices.join("\n")))
            .into())
    }
}
