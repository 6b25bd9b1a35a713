//! Quiver's system tables (`quiver.functions`, `quiver.executors`): views
//! whose rows are computed afresh at every scan.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session as CatalogSession, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::Expr as DfExpr;
use datafusion::physical_plan::ExecutionPlan;

/// What a system table shows.
#[async_trait]
pub(crate) trait SystemRows: std::fmt::Debug + Send + Sync + 'static {
    fn schema(&self) -> SchemaRef;

    /// The rows, as of now.
    async fn rows(&self) -> DfResult<RecordBatch>;
}

/// A system table as DataFusion sees it: a view over [`SystemRows`].
#[derive(Debug)]
pub(crate) struct SystemTable<T>(pub(crate) T);

#[async_trait]
impl<T: SystemRows> TableProvider for SystemTable<T> {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        _filters: &[DfExpr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![self.0.rows().await?]],
            self.0.schema(),
            projection.cloned(),
        )?)
    }
}
