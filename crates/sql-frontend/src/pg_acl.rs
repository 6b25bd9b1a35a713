//! Table privileges where clients look for them: `pg_class.relacl`, in
//! PostgreSQL's ACL form (psql's `\dp` shows it).
//!
//! An ACL item is `grantee=privileges/grantor` (`=r/alice` for `PUBLIC`),
//! the privileges as letters (`r` SELECT, `a` INSERT, `w` UPDATE, `d`
//! DELETE, `D` TRUNCATE). As in PostgreSQL, a table nobody granted anything
//! on has no ACL (`NULL`: its owner's default privileges); once it has
//! grants, the owner's own item comes first.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, AsArray, ListBuilder, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{ExecutionPlan, collect};
use quiver_catalog::{Catalog, PUBLIC, Privilege, TableEntry};

/// The ACL items of a stored table; `None` when nothing was granted on it.
pub(crate) fn acl(entry: &TableEntry) -> Option<Vec<String>> {
    if entry.grants.is_empty() {
        return None;
    }
    let owner = entry.owner.clone().unwrap_or_default();
    let letters = |privileges: &mut dyn Iterator<Item = &Privilege>| -> String {
        privileges.map(|p| p.letter()).collect()
    };
    let mut items = Vec::new();
    if !owner.is_empty() {
        let all = letters(&mut Privilege::ALL.iter());
        items.push(format!("{owner}={all}/{owner}"));
    }
    for (grantee, privileges) in &entry.grants {
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
            match name.and_then(|n| acl(&self.catalog.entry(n)?)) {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use quiver_catalog::TableKind;

    use super::*;

    #[test]
    fn acls_are_written_as_postgresql_writes_them() {
        let mut entry = TableEntry {
            name: "t".into(),
            kind: TableKind::External {
                definition: String::new(),
            },
            created_at_ms: 0,
            owner: Some("quiver".into()),
            grants: BTreeMap::new(),
        };
        assert_eq!(acl(&entry), None);
        entry.grants.insert(
            "alice".into(),
            [Privilege::Select, Privilege::Insert].into(),
        );
        entry
            .grants
            .insert(PUBLIC.into(), [Privilege::Select].into());
        assert_eq!(
            acl(&entry).unwrap(),
            ["quiver=arwdD/quiver", "alice=ar/quiver", "=r/quiver"]
        );
    }
}
