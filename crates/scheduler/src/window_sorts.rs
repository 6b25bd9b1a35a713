//! Sorts below window functions that say what the window needs.
//!
//! DataFusion sorts the input of a window function by the shortest
//! ordering that satisfies it, given what it knows about the rows: below
//! `WHERE x.a = x.b`, `PARTITION BY x.a ORDER BY x.a, x.b, x.c` is
//! satisfied by sorting on `b, c`. What it knows comes from the operators
//! beneath — the filter — and Ballista cuts the plan into stages: the
//! window's stage reads the filter's output from a shuffle, which carries
//! no such knowledge. The executor, rebuilding the window over
//! `sort(b, c)`, failed with "Expects PARTITION BY expression to be
//! ordered". [`ExplicitWindowSorts`] spells the window's whole ordering out
//! in the sort: the same order for these rows, and one any stage can check.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec};
use datafusion::physical_plan::{
    ChildrenPropertiesMode, ExecutionPlan, InputOrderMode, ReplaceChildrenOptions,
};

/// Replaces the sort below a window function with one by the window's
/// partition keys and order (see the module docs).
#[derive(Debug, Default)]
pub struct ExplicitWindowSorts;

impl PhysicalOptimizerRule for ExplicitWindowSorts {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let window_expr = if let Some(window) = node.downcast_ref::<BoundedWindowAggExec>() {
                if window.input_order_mode != InputOrderMode::Sorted {
                    return Ok(Transformed::no(node));
                }
                window.window_expr()
            } else if let Some(window) = node.downcast_ref::<WindowAggExec>() {
                window.window_expr()
            } else {
                return Ok(Transformed::no(node));
            };
            let Some(first) = window_expr.first() else {
                return Ok(Transformed::no(node));
            };
            let Some(sort) = node.children()[0].downcast_ref::<SortExec>() else {
                return Ok(Transformed::no(node));
            };
            // The partition keys (in the direction the window orders them,
            // if it does), then the window's order.
            let order_by = first.order_by();
            let mut wanted: Vec<PhysicalSortExpr> = first
                .partition_by()
                .iter()
                .map(|key| {
                    order_by
                        .iter()
                        .find(|sort| sort.expr.as_ref() == key.as_ref())
                        .cloned()
                        .unwrap_or_else(|| PhysicalSortExpr::new_default(key.clone()))
                })
                .collect();
            for sort_expr in order_by {
                if !wanted
                    .iter()
                    .any(|w| w.expr.as_ref() == sort_expr.expr.as_ref())
                {
                    wanted.push(sort_expr.clone());
                }
            }
            let current = sort.expr();
            if current.len() >= wanted.len()
                && current.iter().zip(&wanted).all(|(have, want)| have == want)
            {
                return Ok(Transformed::no(node));
            }
            let Some(ordering) = LexOrdering::new(wanted) else {
                return Ok(Transformed::no(node));
            };
            let explicit = SortExec::new(ordering, sort.input().clone())
                .with_preserve_partitioning(sort.preserve_partitioning())
                .with_fetch(sort.fetch());
            let children = vec![Arc::new(explicit) as Arc<dyn ExecutionPlan>];
            let options = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
            let rebuilt = node.clone().replace_children(children, options)?;
            Ok(Transformed::yes(rebuilt))
        })
        .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        "quiver_explicit_window_sorts"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
