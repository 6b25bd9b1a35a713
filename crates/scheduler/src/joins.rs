//! Joins planned for a cluster: hash joins only where their build side fits
//! in memory, and nested-loop joins that give the same answer when split
//! into tasks.
//!
//! [`DistributedHashJoins`]: Quiver plans equi-joins as hash joins
//! (DataFusion's default; Ballista's is sort-merge joins, because a hash
//! join cannot spill its build side to disk). A sort-merge join shuffles
//! and sorts both inputs, even a 25-row dimension table: TPC-H ran 4.5
//! times as long as DataFusion alone, whose joins are hash joins, and 2.7
//! times with hash joins (bench/README.md). Two things make hash joins safe
//! here:
//!
//! - A join whose build side is collected whole (`CollectLeft`) runs in
//!   every task of its stage, each with its own bitmap of matched build
//!   rows, so only join types whose rows are decided by probe rows are
//!   correct that way (inner, right, right semi/anti/mark). DataFusion's
//!   `JoinSelection` collects small build sides of every type, and
//!   Ballista demotes the other types to partitioned joins while it cuts
//!   stages — and any join whose build side it cannot show to be under its
//!   broadcast limit — after DataFusion's distribution rules: the join's
//!   output then has more partitions than the operators above it were
//!   planned for, and a sort above a one-partition join read one of
//!   sixteen (a `FULL JOIN` of two one-file tables answered no rows; a
//!   `DELETE` with a correlated scalar subquery kept none of the table's
//!   rows; docs/upstream.md #6). This rule partitions those joins right
//!   after `JoinSelection`, so that the distribution rules plan around them
//!   and Ballista finds none to demote.
//! - A hash join whose build side is estimated to hold more than
//!   `ballista.optimizer.hash_join_max_build_partition_bytes` a partition
//!   (64 MiB unless set) becomes a sort-merge join, which spills, as
//!   Ballista's adaptive planner does for such joins; one whose size is
//!   not known stays a hash join, and fails with SQLSTATE 53200 rather
//!   than exceed the memory limit.
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

use ballista_core::config::BallistaConfig;
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::Schema;
use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{JoinSide, JoinType};
use datafusion::config::ConfigOptions;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::joins::utils::JoinFilter;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, PartitionMode, SortMergeJoinExec,
};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    ReplaceChildrenOptions,
};
use quiver_udf_registry::SinglePartitionExec;

/// Partitions the hash joins that cannot run with a collected build side in
/// several tasks, and turns those whose build side would not fit in memory
/// into sort-merge joins (see the module docs). It runs right after
/// DataFusion's `JoinSelection`, which chooses each hash join's build side
/// and mode, and before the rules that add the shuffles and sorts a join
/// needs.
#[derive(Debug, Default)]
pub struct DistributedHashJoins;

impl PhysicalOptimizerRule for DistributedHashJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let ballista = config
            .extensions
            .get::<BallistaConfig>()
            .cloned()
            .unwrap_or_default();
        let limit = ballista.hash_join_max_build_partition_bytes();
        let broadcast_limit = ballista.broadcast_join_threshold_bytes();
        let partitions = config.execution.target_partitions.max(1);
        let statistics = StatisticsContext::new();
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            // A null-aware anti join (`NOT IN`) Ballista runs as one task.
            if join.null_aware {
                return Ok(Transformed::no(node));
            }
            let mode = *join.partition_mode();
            if mode == PartitionMode::CollectLeft
                && (!probe_decides_rows(*join.join_type())
                    || estimated_bytes(&statistics, join.left().as_ref())?
                        .is_none_or(|bytes| bytes >= broadcast_limit))
            {
                let partitioned = join
                    .builder()
                    .with_partition_mode(PartitionMode::Partitioned)
                    .build_exec()?;
                return Ok(Transformed::yes(partitioned));
            }
            // 0 turns the size check off, as it does for Ballista's
            // adaptive planner; a join that projects its output is left as
            // DataFusion made it.
            if mode != PartitionMode::Partitioned || limit == 0 || join.projection.is_some() {
                return Ok(Transformed::no(node));
            }
            let Some(bytes) = estimated_bytes(&statistics, join.left().as_ref())? else {
                return Ok(Transformed::no(node));
            };
            if bytes / partitions <= limit {
                return Ok(Transformed::no(node));
            }
            let merge = SortMergeJoinExec::try_new(
                join.left().clone(),
                join.right().clone(),
                join.on().to_vec(),
                join.filter().map(left_columns_first).transpose()?,
                *join.join_type(),
                vec![SortOptions::default(); join.on().len()],
                join.null_equality(),
            )?;
            Ok(Transformed::yes(Arc::new(merge) as Arc<dyn ExecutionPlan>))
        })
        .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        "quiver_distributed_hash_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The bytes `plan` is estimated to produce: from its statistics, or its
/// row count times 32 bytes a column (no less than Ballista's broadcast
/// check counts for any type, so that a side this finds small Ballista does
/// too); `None` if neither is known or the count is 0 (which Ballista does
/// not trust either).
fn estimated_bytes(
    statistics: &StatisticsContext,
    plan: &dyn ExecutionPlan,
) -> Result<Option<usize>> {
    let stats = statistics.compute(plan, &StatisticsArgs::new())?;
    if let Some(&bytes) = stats.total_byte_size.get_value()
        && bytes != 0
    {
        return Ok(Some(bytes));
    }
    let width = 32 * plan.schema().fields().len().max(1);
    Ok(stats
        .num_rows
        .get_value()
        .filter(|&&rows| rows != 0)
        .map(|rows| rows.saturating_mul(width)))
}

/// `filter` with its columns in the order a sort-merge join hands them over:
/// every left column before every right one. DataFusion's
/// `SortMergeJoinExec` assumes that order, which its planner always gives;
/// `JoinSelection` swaps a hash join's inputs by swapping the sides of the
/// filter's columns, so the filter of a swapped join lists them right side
/// first, and a sort-merge join made of it compared the wrong columns
/// (docs/upstream.md #31).
fn left_columns_first(filter: &JoinFilter) -> Result<JoinFilter> {
    let columns = filter.column_indices();
    let is_left = |at: &usize| columns[*at].side == JoinSide::Left;
    let order: Vec<usize> = (0..columns.len())
        .filter(is_left)
        .chain((0..columns.len()).filter(|at| !is_left(at)))
        .collect();
    let mut moved_to = vec![0; order.len()];
    for (new, &old) in order.iter().enumerate() {
        moved_to[old] = new;
    }
    let expression = filter
        .expression()
        .clone()
        .transform(|expr| {
            let Some(column) = expr.downcast_ref::<Column>() else {
                return Ok(Transformed::no(expr));
            };
            let moved = Column::new(column.name(), moved_to[column.index()]);
            Ok(Transformed::yes(Arc::new(moved) as Arc<dyn PhysicalExpr>))
        })
        .map(|transformed| transformed.data)?;
    let schema = filter.schema();
    let fields: Vec<_> = order.iter().map(|&at| schema.field(at).clone()).collect();
    Ok(JoinFilter::new(
        expression,
        order.iter().map(|&at| columns[at].clone()).collect(),
        Arc::new(Schema::new(fields)),
    ))
}

/// The join types whose every output row is decided by one probe (right)
/// row, which a task sees alone: a collected build side may be read by
/// every task of the stage.
fn probe_decides_rows(join_type: JoinType) -> bool {
    matches!(
        join_type,
        JoinType::Inner
            | JoinType::Right
            | JoinType::RightSemi
            | JoinType::RightAnti
            | JoinType::RightMark
    )
}

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
