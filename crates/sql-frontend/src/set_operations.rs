//! `INTERSECT ALL` and `EXCEPT ALL` with PostgreSQL's multiset rules.
//!
//! A row that appears `m` times on the left and `n` times on the right
//! appears `min(m, n)` times in `INTERSECT ALL` and `max(m - n, 0)` times in
//! `EXCEPT ALL`. DataFusion plans both as a semi or anti join on every
//! column, so `INTERSECT ALL` kept all `m` copies and `EXCEPT ALL` none.
//! [`multiset_set_operations`] numbers the copies of each row on both sides
//! and joins on the copy number too: the `k`-th copy on the left meets the
//! `k`-th copy on the right, if there is one.

use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, JoinType, NullEquality, Result};
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{Expr, ExprFunctionExt, Join, LogicalPlan, LogicalPlanBuilder};

/// The column that numbers the copies of a row on each side.
const COPY: [&str; 2] = ["__quiver_copy_left", "__quiver_copy_right"];

/// Rewrites the semi and anti joins DataFusion plans for `INTERSECT ALL`
/// and `EXCEPT ALL` in `plan` (and its subqueries) to PostgreSQL's
/// multiset semantics.
pub fn multiset_set_operations(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| match &node {
        LogicalPlan::Join(join) if is_all_set_operation(join) => {
            Ok(Transformed::yes(numbered_join(join)?))
        }
        _ => Ok(Transformed::no(node)),
    })
    .map(|transformed| transformed.data)
}

/// Whether `join` is how DataFusion plans `INTERSECT ALL` / `EXCEPT ALL`: a
/// semi or anti join on every column, NULLs equal, without a filter, over
/// a left side that is not made distinct (that is the plan without `ALL`).
/// Subqueries (`IN`, `EXISTS`) never join with NULLs equal.
fn is_all_set_operation(join: &Join) -> bool {
    matches!(join.join_type, JoinType::LeftSemi | JoinType::LeftAnti)
        && join.null_equality == NullEquality::NullEqualsNull
        && join.filter.is_none()
        && join.on.len() == join.left.schema().fields().len()
        && join.on.len() == join.right.schema().fields().len()
        && !matches!(join.left.as_ref(), LogicalPlan::Distinct(_))
}

/// `input` with a column `copy` numbering the copies of each of its rows.
fn number_copies(input: &Arc<LogicalPlan>, copy: &str) -> Result<LogicalPlan> {
    let columns: Vec<Expr> = input
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let numbered = row_number().partition_by(columns).build()?.alias(copy);
    LogicalPlanBuilder::from(input.as_ref().clone())
        .window(vec![numbered])?
        .build()
}

fn numbered_join(join: &Join) -> Result<LogicalPlan> {
    let left = number_copies(&join.left, COPY[0])?;
    let right = number_copies(&join.right, COPY[1])?;
    let (mut left_keys, mut right_keys): (Vec<Column>, Vec<Column>) = join
        .left
        .schema()
        .columns()
        .into_iter()
        .zip(join.right.schema().columns())
        .unzip();
    left_keys.push(Column::from_name(COPY[0]));
    right_keys.push(Column::from_name(COPY[1]));
    let output: Vec<Expr> = join
        .left
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    LogicalPlanBuilder::from(left)
        .join_detailed(
            right,
            join.join_type,
            (left_keys, right_keys),
            None,
            NullEquality::NullEqualsNull,
        )?
        .project(output)?
        .build()
}
