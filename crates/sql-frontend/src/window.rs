//! Window functions that keep their meaning when a plan is distributed.
//!
//! See [`PortableWindowUdf`]: DataFusion may evaluate `lag`, `lead`,
//! `nth_value`, `first_value` and `last_value` over reversed input, and
//! the flag that says so (like `IGNORE NULLS`) is lost when the physical
//! plan is serialized for an executor. The analyzer rule
//! [`PortableWindowFunctions`] wraps those functions so the flags travel
//! with them, before any physical plan exists.
//!
//! The same rule drops the keys of a window's `ORDER BY` that are also its
//! partition keys (`PARTITION BY a ORDER BY a DESC, b`): within a partition
//! they are constant, so the order is the same, and DataFusion 55's sort
//! planning let such a window's `a DESC` order stand in for a later
//! window's `ORDER BY a` — that window then saw its rows in the wrong order.
//! A window that would become the same as another (`PARTITION BY a ORDER
//! BY a, b` beside `PARTITION BY a ORDER BY a DESC, b`) keeps its keys:
//! DataFusion's common-subexpression elimination moves a window function
//! found in two window nodes into a projection below them, which cannot
//! run it (docs/upstream.md #21).

use std::collections::HashSet;

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::{NullTreatment, WindowFunction, WindowFunctionDefinition};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;
use quiver_udf_registry::PortableWindowUdf;

/// Replaces built-in window functions whose result depends on evaluation
/// order or null treatment with their [`PortableWindowUdf`].
#[derive(Debug, Default)]
pub struct PortableWindowFunctions;

impl AnalyzerRule for PortableWindowFunctions {
    fn name(&self) -> &str {
        "quiver_portable_window_functions"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        // The window functions of the plan as rewritten so far.
        let mut seen = HashSet::new();
        plan.transform_up_with_subqueries(|node| {
            if !matches!(node, LogicalPlan::Window(_)) {
                return Ok(Transformed::no(node));
            }
            let names = NamePreserver::new(&node);
            node.map_expressions(|expr| {
                let name = names.save(&expr);
                expr.transform_up(|expr| portable(expr, &mut seen))
                    .map(|expr| expr.update_data(|expr| name.restore(expr)))
            })
        })
        .map(|transformed| transformed.data)
    }
}

/// `expr` rewritten as the module docs say, unless it would become one of
/// the window functions `seen` without its partition keys; `seen` gets it.
fn portable(expr: Expr, seen: &mut HashSet<Expr>) -> Result<Transformed<Expr>> {
    let Expr::WindowFunction(window) = expr else {
        return Ok(Transformed::no(expr));
    };
    let (stripped, ordered) = without_partition_keys_in_order(window.clone());
    let mut rewritten = wrapped(stripped, ordered);
    if ordered && seen.contains(&rewritten.data) {
        rewritten = wrapped(window, false);
    }
    seen.insert(rewritten.data.clone());
    Ok(rewritten)
}

/// `window` with its function wrapped in its [`PortableWindowUdf`] where it
/// has one; `transformed` if so or if `ordered` (its keys were dropped).
fn wrapped(window: Box<WindowFunction>, ordered: bool) -> Transformed<Expr> {
    let WindowFunctionDefinition::WindowUDF(function) = &window.fun else {
        return Transformed::new_transformed(Expr::from(*window), ordered);
    };
    let ignore_nulls = window.params.null_treatment == Some(NullTreatment::IgnoreNulls);
    let Some(wrapped) = PortableWindowUdf::wrap(function, ignore_nulls) else {
        return Transformed::new_transformed(Expr::from(*window), ordered);
    };
    let WindowFunction { params, .. } = *window;
    Transformed::yes(Expr::from(WindowFunction {
        fun: WindowFunctionDefinition::WindowUDF(wrapped),
        params,
    }))
}

/// `window` without the `ORDER BY` keys that are partition keys, and
/// whether it had any. One key at least stays: without `ORDER BY` a frame
/// means something else.
fn without_partition_keys_in_order(mut window: Box<WindowFunction>) -> (Box<WindowFunction>, bool) {
    let params = &mut window.params;
    let partition_by = &params.partition_by;
    let kept: Vec<_> = params
        .order_by
        .iter()
        .filter(|sort| !partition_by.contains(&sort.expr))
        .cloned()
        .collect();
    if kept.is_empty() || kept.len() == params.order_by.len() {
        return (window, false);
    }
    params.order_by = kept;
    (window, true)
}
