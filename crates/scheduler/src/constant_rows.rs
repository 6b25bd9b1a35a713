//! Leaves that make their own rows, planned so that every task of a stage
//! reports the same operators.
//!
//! `SELECT 5000000000` reads no table: DataFusion plans its one row as a
//! `PlaceholderRowExec`, and a branch known to be empty as an `EmptyExec`.
//! Neither keeps metrics. Ballista gives each task of a stage the stage's
//! plan restricted to the task's partitions, and there swaps such a leaf
//! that gets no partition — a `UNION ALL` branch another task reads — for
//! an in-memory source, which keeps metrics. The tasks of one stage then
//! report different numbers of operator metrics; the scheduler refuses the
//! odd one ("task metrics array size 9 does not equal with the stage
//! metrics array size 8"), and drops the task's completion with it, so the
//! job never finishes: `SELECT i FROM t UNION ALL SELECT 5000000000 UNION
//! ALL VALUES (7)` waited forever. [`MeteredConstantRows`] plans those
//! leaves as in-memory sources from the start: the same rows, and the same
//! operator in every task.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, RecordBatchOptions, new_null_array};
use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::placeholder_row::PlaceholderRowExec;

/// Replaces `PlaceholderRowExec` (one row per partition) and
/// `EmptyExec` (no rows) with in-memory sources of the same rows (see the
/// module docs).
#[derive(Debug, Default)]
pub struct MeteredConstantRows;

impl PhysicalOptimizerRule for MeteredConstantRows {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let schema = node.schema();
            let partitions = node.properties().output_partitioning().partition_count();
            let rows = if node.downcast_ref::<PlaceholderRowExec>().is_some() {
                // One row of NULLs: no one reads its columns (a projection
                // of constants above it, as for an aggregate answered from
                // statistics). Left alone where a column cannot be NULL.
                let columns = schema
                    .fields()
                    .iter()
                    .map(|field| new_null_array(field.data_type(), 1))
                    .collect();
                let options = RecordBatchOptions::new().with_row_count(Some(1));
                let Ok(row) = RecordBatch::try_new_with_options(schema.clone(), columns, &options)
                else {
                    return Ok(Transformed::no(node));
                };
                vec![vec![row]; partitions]
            } else if node.downcast_ref::<EmptyExec>().is_some() {
                vec![vec![]; partitions]
            } else {
                return Ok(Transformed::no(node));
            };
            let source = MemorySourceConfig::try_new(&rows, schema, None)?;
            Ok(Transformed::yes(DataSourceExec::from_data_source(source)))
        })
        .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        "quiver_metered_constant_rows"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
