//! `FULL` and `RIGHT JOIN ... USING`, refused until they can be answered
//! as PostgreSQL answers them.
//!
//! In PostgreSQL the column a `USING` join merges is `COALESCE(l.c, r.c)`:
//! a row only the right side has shows its key. DataFusion resolves the
//! merged column to the left side's, so such a row showed NULL (and a
//! filter on the key could not find it). An answer that differs silently
//! is worse than none, so these joins fail with 0A000 and a way around.

use datafusion::common::JoinType;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::{JoinConstraint, LogicalPlan};

use crate::error::{Error, Result};

/// Fails with 0A000 if `plan` has a `FULL` or `RIGHT` join with `USING`.
pub fn refuse_outer_using(plan: &LogicalPlan) -> Result<()> {
    let mut refused = None;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Join(join) = node
            && join.join_constraint == JoinConstraint::Using
            && matches!(join.join_type, JoinType::Full | JoinType::Right)
        {
            refused = Some(join.join_type);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    match refused {
        Some(join_type) => Err(Error::FeatureNotSupported(format!(
            "{} JOIN ... USING is not supported yet: its merged column would not be \
             COALESCE(left, right); write ON l.c = r.c and COALESCE(l.c, r.c) instead",
            if join_type == JoinType::Full {
                "FULL"
            } else {
                "RIGHT"
            }
        ))),
        None => Ok(()),
    }
}
