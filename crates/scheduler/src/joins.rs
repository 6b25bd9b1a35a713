//! Nested-loop joins that give the same answer when split into tasks.
//!
//! DataFusion's `NestedLoopJoinExec` collects its left input once and runs
//! once per partition of its right input. For the join types that also emit
//! left rows (unmatched rows of `LEFT`/`FULL` joins, and the rows of
//! left semi, anti and mark joins, which `EXISTS` inside `OR` plans to), the
//! partitions share a bitmap of matched left rows and the last partition to
//! finish emits them. That sharing only works inside one process: Ballista
//! runs each right partition as its own task, so every task emitted every
//! left row — rows came back once per partition. (Ballista already demotes
//! hash joins of these types from `CollectLeft`; nested-loop joins it leaves
//! alone.)
//!
//! [`SingleTaskNestedLoopJoins`] gives such a join a single right partition
//! (a [`SinglePartitionExec`], which lasts through Ballista's per-stage
//! optimization where a plain `CoalescePartitionsExec` would not), so it
//! runs as one task that sees every right row.

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::joins::NestedLoopJoinExec;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, ExecutionPlan, ExecutionPlanProperties, ReplaceChildrenOptions,
};
use quiver_udf_registry::SinglePartitionExec;

/// Coalesces the right input of nested-loop joins that emit left rows (see
/// the module docs).
#[derive(Debug, Default)]
pub struct SingleTaskNestedLoopJoins;

/// The join types whose left rows are emitted after every right row was seen.
fn emits_left_rows(join_type: JoinType) -> bool {
    matches!(
        join_type,
        JoinType::Left
            | JoinType::Full
            | JoinType::LeftSemi
            | JoinType::LeftAnti
            | JoinType::LeftMark
    )
}

impl PhysicalOptimizerRule for SingleTaskNestedLoopJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<NestedLoopJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            let right = join.right();
            if !emits_left_rows(*join.join_type())
                || right.output_partitioning().partition_count() <= 1
            {
                return Ok(Transformed::no(node));
            }
            // This rule runs after DataFusion's distribution rules: coalesce
            // here; `SinglePartitionExec` keeps the coalescing through
            // Ballista's per-stage runs of those rules.
            let coalesced = Arc::new(CoalescePartitionsExec::new(right.clone()));
            let right: Arc<dyn ExecutionPlan> = Arc::new(SinglePartitionExec::new(coalesced));
            let left = join.left().clone();
            let options = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
            Ok(Transformed::yes(
                node.clone().replace_children(vec![left, right], options)?,
            ))
        })
        .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        "quiver_single_task_nested_loop_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
