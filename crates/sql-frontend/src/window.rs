//! Window functions that keep their meaning when a plan is distributed.
//!
//! See [`PortableWindowUdf`]: DataFusion may evaluate `lag`, `lead`,
//! `nth_value`, `first_value` and `last_value` over reversed input, and
//! the flag that says so (like `IGNORE NULLS`) is lost when the physical
//! plan is serialized for an executor. The analyzer rule
//! [`PortableWindowFunctions`] wraps those functions so the flags travel
//! with them, before any physical plan exists.

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::{NullTreatment, WindowFunction, WindowFunctionDefinition};
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
        plan.transform_up_with_subqueries(|node| {
            if !matches!(node, LogicalPlan::Window(_)) {
                return Ok(Transformed::no(node));
            }
            node.map_expressions(|expr| expr.transform_up(portable))
        })
        .map(|transformed| transformed.data)
    }
}

fn portable(expr: Expr) -> Result<Transformed<Expr>> {
    let Expr::WindowFunction(window) = &expr else {
        return Ok(Transformed::no(expr));
    };
    let WindowFunctionDefinition::WindowUDF(function) = &window.fun else {
        return Ok(Transformed::no(expr));
    };
    let ignore_nulls = window.params.null_treatment == Some(NullTreatment::IgnoreNulls);
    let Some(wrapped) = PortableWindowUdf::wrap(function, ignore_nulls) else {
        return Ok(Transformed::no(expr));
    };
    let Expr::WindowFunction(window) = expr else {
        unreachable!("matched above");
    };
    let WindowFunction { params, .. } = *window;
    Ok(Transformed::yes(Expr::from(WindowFunction {
        fun: WindowFunctionDefinition::WindowUDF(wrapped),
        params,
    })))
}
