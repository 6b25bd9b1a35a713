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

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::{Expr, Limit, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;

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
