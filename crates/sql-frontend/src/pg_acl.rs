//! Table privileges where clients look for them: `pg_class.relacl`, in
//! PostgreSQL's ACL form (psql's `\dp` shows it), and
//! `information_schema.table_privileges`.
//!
//! An ACL item is `grantee=privileges/grantor` (`=r/alice` for `PUBLIC`),
//! the privileges as letters (`r` SELECT, `a` INSERT, `w` UPDATE, `d`
//! DELETE, `D` TRUNCATE). As in PostgreSQL, a table nobody granted anything
//! on has no ACL (`NULL`: its owner's default privileges); once it has
//! grants, the owner's own item comes first.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, AsArray, ListBuilder, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{ExecutionPlan, collect};
use quiver_catalog::{Acl, Catalog, DEFAULT_SCHEMA, Object, PUBLIC, Privilege};

use crate::DATABASE;
use crate::system::SystemRows;

/// The ACL items of an object whose privileges are `all`; `None` when
/// nothing was granted on it.
pub(crate) fn acl(acl: &Acl, all: &[Privilege]) -> Option<Vec<String>> {
    if acl.grants.is_empty() {
        return None;
    }
    let owner = acl.owner.clone().unwrap_or_default();
    let letters = |privileges: &mut dyn Iterator<Item = &Privilege>| -> String {
        privileges.map(|p| p.letter()).collect()
    };
    let mut items = Vec::new();
    if !owner.is_empty() {
        let all = letters(&mut all.iter());
        items.push(format!("{owner}={all}/{owner}"));
    }
    for (grantee, privileges) in &acl.grants {
        let grantee = if grantee == PUBLIC { "" } else { grantee };
        let granted = letters(&mut privileges.iter());
        items.push(format!("{grantee}={granted}/{owner}"));
    }
    Some(items)
}

/// `pg_class` whose `relacl` (a list of text, `NULL` in `inner`) holds the
/// ACL of each stored table.
#[derive(Debug)]
pub(crate) struct PgClassAcl {
    pub inner: Arc<dyn TableProvider>,
    pub catalog: Arc<Catalog>,
}

impl PgClassAcl {
    fn with_acls(&self, batch: RecordBatch) -> DfResult<RecordBatch> {
        let (Some(names), Some(position)) = (
            batch.column_by_name("relname"),
            batch.schema().index_of("relacl").ok(),
        ) else {
            return Ok(batch);
        };
        let mut acls = ListBuilder::new(StringBuilder::new());
        for name in names.as_string::<i32>().iter() {
            match name.and_then(|n| {
                let entry = self.catalog.entry(n)?;
                acl(&entry.acl, Object::Table(entry.name).privileges())
            }) {
                Some(items) => {
                    for item in items {
                        acls.values().append_value(item);
                    }
                    acls.append(true);
                }
                None => acls.append(false),
            }
        }
        let mut columns = batch.columns().to_vec();
        let acls: ArrayRef = Arc::new(acls.finish());
        columns[position] = acls;
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    }
}

#[async_trait]
impl TableProvider for PgClassAcl {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        // pg_class is small: read it whole, fill in the ACLs, project.
        let plan = self.inner.scan(state, None, &[], None).await?;
        let batches = collect(plan, state.task_ctx())
            .await?
            .into_iter()
            .map(|batch| self.with_acls(batch))
            .collect::<DfResult<Vec<_>>>()?;
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            self.schema(),
            projection.cloned(),
        )?)
    }
}

/// `information_schema.table_privileges` (served as
/// `quiver.table_privileges`, which [`crate::rewrite`] puts in its place):
/// one row per privilege a role holds on a stored table, its owner's own
/// among them, as PostgreSQL lists them.
#[derive(Debug)]
pub(crate) struct TablePrivilegesTable {
    catalog: Arc<Catalog>,
    schema: SchemaRef,
}

impl TablePrivilegesTable {
    pub(crate) fn new(catalog: Arc<Catalog>) -> Self {
        let columns = [
            "grantor",
            "grantee",
            "table_catalog",
            "table_schema",
            "table_name",
            "privilege_type",
            "is_grantable",
            "with_hierarchy",
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|name| Field::new(*name, DataType::Utf8, false))
                .collect::<Vec<_>>(),
        );
        Self {
            catalog,
            schema: Arc::new(schema),
        }
    }
}

#[async_trait]
impl SystemRows for TablePrivilegesTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    async fn rows(&self) -> DfResult<RecordBatch> {
        let mut columns: Vec<StringBuilder> = (0..self.schema.fields().len())
            .map(|_| StringBuilder::new())
            .collect();
        for entry in self.catalog.entries() {
            let table = Object::Table(entry.name.clone());
            let owner = entry.acl.owner.clone().unwrap_or_default();
            // The owner holds every privilege, and may grant it.
            let owners = (!owner.is_empty()).then(|| {
                (
                    owner.clone(),
                    table.privileges().iter().collect::<Vec<_>>(),
                    "YES",
                )
            });
            let granted = entry.acl.grants.iter().map(|(grantee, privileges)| {
                let grantee = if grantee == PUBLIC { "PUBLIC" } else { grantee };
                (grantee.to_string(), privileges.iter().collect(), "NO")
            });
            for (grantee, privileges, grantable) in owners.into_iter().chain(granted) {
                for privilege in privileges {
                    let hierarchy = if *privilege == Privilege::Select {
                        "YES"
                    } else {
                        "NO"
                    };
                    let row = [
                        owner.as_str(),
                        grantee.as_str(),
                        DATABASE,
                        DEFAULT_SCHEMA,
                        entry.name.as_str(),
                        &privilege.to_string(),
                        grantable,
                        hierarchy,
                    ];
                    for (column, value) in columns.iter_mut().zip(row) {
                        column.append_value(value);
                    }
                }
            }
        }
        let columns = columns
            .iter_mut()
            .map(|c| Arc::new(c.finish()) as ArrayRef)
            .collect();
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acls_are_written_as_postgresql_writes_them() {
        let table = Object::Table("t".into());
        let mut entry = Acl::owned_by("quiver");
        assert_eq!(acl(&entry, table.privileges()), None);
        entry.change("alice", &[Privilege::Select, Privilege::Insert], true);
        entry.change(PUBLIC, &[Privilege::Select], true);
        assert_eq!(
            acl(&entry, table.privileges()).unwrap(),
            ["quiver=arwdD/quiver", "alice=ar/quiver", "=r/quiver"]
        );
    }
}
