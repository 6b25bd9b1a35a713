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
//!
//! The same holds where the window's input is a repartition that keeps
//! its input's order (`PARTITION BY a` over rows another window sorted):
//! Ballista turns the repartition into a shuffle, which keeps no order, so
//! the rule sorts the rows again above it. And where one sort serves two
//! windows through the filter's equivalence (`PARTITION BY a` and, after a
//! projection dropped `a`, `PARTITION BY b` over `WHERE a = b`), the upper
//! window gets a sort of its own.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
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
            let child = node.children()[0].clone();
            // The order the child gives now: its sort's, or what comes up
            // through it.
            let current: Vec<PhysicalSortExpr> = match child.downcast_ref::<SortExec>() {
                Some(sort) => sort.expr().iter().cloned().collect(),
                None => child
                    .properties()
                    .output_ordering()
                    .map(|ordering| ordering.iter().cloned().collect())
                    .unwrap_or_default(),
            };
            // The partition keys — in the direction the window orders them
            // if it does, else the one the child has chosen (which a window
            // above may rely on: `a ASC NULLS LAST` for its `ORDER BY a`) —
            // then the window's order.
            let order_by = first.order_by();
            let mut wanted: Vec<PhysicalSortExpr> = first
                .partition_by()
                .iter()
                .map(|key| {
                    order_by
                        .iter()
                        .chain(&current)
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
            let Some(ordering) = LexOrdering::new(wanted.clone()) else {
                return Ok(Transformed::no(node));
            };
            let explicit = if let Some(sort) = child.downcast_ref::<SortExec>() {
                if current.len() >= wanted.len()
                    && current.iter().zip(&wanted).all(|(have, want)| have == want)
                {
                    return Ok(Transformed::no(node));
                }
                SortExec::new(ordering, sort.input().clone())
                    .with_preserve_partitioning(sort.preserve_partitioning())
                    .with_fetch(sort.fetch())
            } else if child.downcast_ref::<RepartitionExec>().is_some() {
                // Order kept through a repartition, which Ballista makes a
                // shuffle: sorted again on this side of it.
                SortExec::new(ordering, child).with_preserve_partitioning(true)
            } else if sort_beneath(&child, &wanted).is_some_and(|(sort, wanted)| {
                !spells_out(sort.expr(), first.partition_by().len(), &wanted)
            }) {
                // Rows sorted further down, by an order that serves this
                // window only through an equivalence (see the module docs):
                // sorted again right below it.
                SortExec::new(ordering, child).with_preserve_partitioning(true)
            } else {
                return Ok(Transformed::no(node));
            };
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

/// The sort `plan`'s rows come from, reached through operators that keep
/// their input's rows in order and its columns (projections, windows),
/// with `wanted` rewritten to that sort's columns.
/// `None` when something else comes first, or `wanted` names a value made
/// on the way (a window's result, say).
fn sort_beneath<'a>(
    plan: &'a Arc<dyn ExecutionPlan>,
    wanted: &[PhysicalSortExpr],
) -> Option<(&'a SortExec, Vec<PhysicalSortExpr>)> {
    if let Some(sort) = plan.downcast_ref::<SortExec>() {
        return Some((sort, wanted.to_vec()));
    }
    let input = if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        let exprs = projection.expr();
        let mapped = wanted
            .iter()
            .map(|sort_expr| {
                let expr = Arc::clone(&sort_expr.expr).transform(|expr| {
                    match expr.downcast_ref::<Column>() {
                        Some(column) => {
                            Ok(Transformed::yes(Arc::clone(&exprs[column.index()].expr)))
                        }
                        None => Ok(Transformed::no(expr)),
                    }
                });
                Some(PhysicalSortExpr::new(expr.ok()?.data, sort_expr.options))
            })
            .collect::<Option<Vec<_>>>()?;
        return sort_beneath(projection.input(), &mapped);
    } else if plan.downcast_ref::<BoundedWindowAggExec>().is_some()
        || plan.downcast_ref::<WindowAggExec>().is_some()
    {
        // Input columns first, unchanged; window results after them.
        let input = plan.children()[0];
        let width = input.schema().fields().len();
        let from_input = wanted.iter().all(|sort_expr| {
            collect_columns(&sort_expr.expr)
                .iter()
                .all(|column| column.index() < width)
        });
        if !from_input {
            return None;
        }
        input
    } else {
        return None;
    };
    sort_beneath(input, wanted)
}

/// Whether `sorted` (a sort's keys) orders rows by `wanted` as written:
/// its first `partition_keys` keys are those of `wanted`, in any order or
/// direction, and the keys after them are `wanted`'s remaining ones.
fn spells_out(sorted: &LexOrdering, partition_keys: usize, wanted: &[PhysicalSortExpr]) -> bool {
    let partition_keys = partition_keys.min(wanted.len());
    if sorted.len() < wanted.len() {
        return false;
    }
    let same_keys = wanted[..partition_keys].iter().all(|key| {
        sorted[..partition_keys]
            .iter()
            .any(|have| have.expr.as_ref() == key.expr.as_ref())
    });
    same_keys && sorted[partition_keys..wanted.len()] == wanted[partition_keys..]
}
