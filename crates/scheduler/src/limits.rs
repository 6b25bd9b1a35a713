//! `OFFSET` without `LIMIT`, as the frontend meant it.
//!
//! `datafusion-proto` 55 writes a logical `Limit` without a fetch count as
//! a fetch of `i64::MAX` rows, and reads that back as `Some(i64::MAX)`.
//! The physical planner then pushes `skip + fetch` rows into the scan as a
//! limit, and the physical encoding of a scan's limit is a `u32`: for
//! `SELECT x FROM t OFFSET 98` the executor scanned
//! `(98 + i64::MAX) mod 2^32 = 97` rows and skipped 98 of them — no rows
//! at all. [`UnboundedLimits`] turns the fetch back into "all rows" before
//! the scheduler plans the job.
//!
//! And `OFFSET` over a merge of sorted partitions, as the query meant it.
//! `SELECT DISTINCT y FROM (SELECT ... ORDER BY 1 OFFSET 2) s` skips the
//! two smallest rows in a `GlobalLimitExec` over a `SortPreservingMergeExec`.
//! Ballista cuts stages at the hash repartition above and runs DataFusion's
//! `EnsureRequirements` on each stage's plan, which finds no operator that
//! requires the merge's order (a limit states none) and replaces the merge
//! with a `CoalescePartitionsExec`: the offset skipped two arbitrary rows.
//! [`OrderedOffsets`] sorts such a limit's input after coalescing it, an
//! order `EnsureRequirements` keeps.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::{Expr, Limit, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{ChildrenPropertiesMode, ExecutionPlan, ReplaceChildrenOptions};

/// Reads a decoded fetch of `i64::MAX` rows as no fetch (see the module docs).
#[derive(Debug, Default)]
pub struct UnboundedLimits;

/// The fetch count `datafusion-proto` writes for "no limit".
fn encodes_no_fetch(fetch: &Expr) -> bool {
    matches!(fetch, Expr::Literal(ScalarValue::Int64(Some(i64::MAX)), _))
}

impl AnalyzerRule for UnboundedLimits {
    fn name(&self) -> &str {
        "quiver_unbounded_limits"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Limit(Limit {
                skip,
                fetch: Some(fetch),
                input,
            }) if encodes_no_fetch(&fetch) => Ok(Transformed::yes(LogicalPlan::Limit(Limit {
                skip,
                fetch: None,
                input,
            }))),
            node => Ok(Transformed::no(node)),
        })
        .map(|transformed| transformed.data)
    }
}

/// Keeps the order a `GlobalLimitExec` selects rows by (see the module
/// docs).
#[derive(Debug, Default)]
pub struct OrderedOffsets;

impl PhysicalOptimizerRule for OrderedOffsets {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(limit) = node.downcast_ref::<GlobalLimitExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(ordered) = sorted_after_coalescing(limit.input())? else {
                return Ok(Transformed::no(node));
            };
            let limit = GlobalLimitExec::new(ordered, limit.skip(), limit.fetch());
            Ok(Transformed::yes(Arc::new(limit) as Arc<dyn ExecutionPlan>))
        })
        .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        "quiver_ordered_offsets"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `plan` with the merge a limit reads through it (past operators that
/// keep its order, such as a projection) replaced by a sort of the
/// coalesced partitions; `None` if there is no such merge. A merge with a
/// fetch keeps its order through `EnsureRequirements` already (as a sort
/// with that fetch).
fn sorted_after_coalescing(
    plan: &Arc<dyn ExecutionPlan>,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if let Some(merge) = plan.downcast_ref::<SortPreservingMergeExec>() {
        if merge.fetch().is_some() {
            return Ok(None);
        }
        let coalesced = Arc::new(CoalescePartitionsExec::new(merge.input().clone()));
        return Ok(Some(Arc::new(SortExec::new(
            merge.expr().clone(),
            coalesced,
        ))));
    }
    let children = plan.children();
    let [child] = children.as_slice() else {
        return Ok(None);
    };
    if plan.downcast_ref::<SortExec>().is_some() || !plan.maintains_input_order()[0] {
        return Ok(None);
    }
    match sorted_after_coalescing(child)? {
        Some(ordered) => {
            let options = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
            Ok(Some(plan.clone().replace_children(vec![ordered], options)?))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::LogicalPlanBuilder;

    #[test]
    fn a_decoded_offset_fetches_every_row() {
        let plan = LogicalPlanBuilder::empty(true)
            .limit(98, Some(i64::MAX as usize))
            .and_then(|b| b.build())
            .expect("a limit plan");
        let plan = UnboundedLimits
            .analyze(plan, &ConfigOptions::default())
            .expect("analyzes");
        let LogicalPlan::Limit(limit) = plan else {
            panic!("still a limit");
        };
        assert!(limit.fetch.is_none());
        assert!(limit.skip.is_some());
    }
}
