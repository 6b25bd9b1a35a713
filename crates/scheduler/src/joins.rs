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
//!
//! [`PinnedUnionBranchJoins`] keeps a union branch from running in every
//! task of its stage. Ballista gives each task of a union's stage the
//! branches whose partitions it owns and restricts the others away, which
//! works when a branch's partitions come from leaves it can slice. When a
//! stage is resolved, Ballista runs its own join selection again, with real
//! statistics, and may swap a nested-loop or cross join whose right input is
//! one partition: the probe side becomes the collected build side, often a
//! `CoalescePartitionsExec`, which keeps its partition in every task — so
//! every task ran the branch and its rows came back once per task
//! (docs/upstream.md #24). Ballista already plans a union branch it cannot
//! restrict into a stage of its own; a [`SinglePartitionExec`] above such a
//! join's right input makes the branch one (its input is read whole in
//! every task), so the join runs in a stage of one task, swapped or not.

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::joins::{CrossJoinExec, NestedLoopJoinExec};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    ReplaceChildrenOptions,
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
            let right = Arc::new(SinglePartitionExec::new(coalesced));
            Ok(Transformed::yes(with_right_input(&node, right)?))
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

/// Gives the joins of a union branch that Ballista may swap when their stage
/// is resolved a [`SinglePartitionExec`] right input, so the branch is
/// planned as a stage of its own (see the module docs).
#[derive(Debug, Default)]
pub struct PinnedUnionBranchJoins;

impl PhysicalOptimizerRule for PinnedUnionBranchJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if !node.is::<UnionExec>() {
                return Ok(Transformed::no(node));
            }
            node.map_children(pin_swappable_joins)
        })
        .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        "quiver_pinned_union_branch_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Pins the swappable joins of `branch` that run in the union's own stage:
/// the walk stops where Ballista starts another stage.
fn pin_swappable_joins(
    branch: Arc<dyn ExecutionPlan>,
) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
    branch.transform_down(|node| {
        if starts_a_stage(&node) {
            return Ok(Transformed::new(node, false, TreeNodeRecursion::Jump));
        }
        let Some(right) = swappable_right_input(&node) else {
            return Ok(Transformed::no(node));
        };
        let right = Arc::new(SinglePartitionExec::new(right.clone()));
        Ok(Transformed::yes(with_right_input(&node, right)?))
    })
}

/// `join` (a two-input join) reading `right` as its right input.
fn with_right_input(
    join: &Arc<dyn ExecutionPlan>,
    right: Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let left = join.children()[0].clone();
    let options = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
    join.clone().replace_children(vec![left, right], options)
}

/// The operators Ballista's planner puts at the top of a new stage.
fn starts_a_stage(node: &Arc<dyn ExecutionPlan>) -> bool {
    node.is::<CoalescePartitionsExec>()
        || node.is::<SortPreservingMergeExec>()
        || node
            .downcast_ref::<RepartitionExec>()
            .is_some_and(|r| matches!(r.partitioning(), Partitioning::Hash(..)))
}

/// The right input of `node` if Ballista's join selection may swap its
/// inputs at stage resolution: it does so for nested-loop and cross joins
/// whose right input is one partition, when the left looks bigger. A right
/// input that is already a [`SinglePartitionExec`] is pinned.
fn swappable_right_input(node: &Arc<dyn ExecutionPlan>) -> Option<&Arc<dyn ExecutionPlan>> {
    let right = if let Some(join) = node.downcast_ref::<NestedLoopJoinExec>() {
        if !join.join_type().supports_swap() {
            return None;
        }
        join.right()
    } else if let Some(join) = node.downcast_ref::<CrossJoinExec>() {
        join.right()
    } else {
        return None;
    };
    (right.output_partitioning().partition_count() == 1 && !right.is::<SinglePartitionExec>())
        .then_some(right)
}
