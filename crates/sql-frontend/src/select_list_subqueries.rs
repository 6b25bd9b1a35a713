//! `EXISTS (...)` and `x IN (...)` in a select list.
//!
//! DataFusion plans these subqueries only as conditions of a `WHERE` (it
//! turns them into semi and anti joins); in a select list — `SELECT
//! EXISTS (SELECT 1 FROM u WHERE u.k = t.k) FROM t`, `SELECT 2 = ANY
//! (SELECT ...)` — they reached the physical planner and failed ("Physical
//! plan does not support logical expression Exists"). They become counting
//! scalar subqueries, which DataFusion decorrelates (see `crate::subquery`):
//! - `EXISTS (q)` is `(SELECT count(*) FROM q) > 0`;
//! - `x IN (q)`, `q` of one column `c`, is true where some `c = x`; else
//!   false where `q` has no rows; else NULL where `x` or some `c` is NULL;
//!   else false — PostgreSQL's three-valued answer. `NOT IN` is its
//!   negation.
//!
//! A subquery in an `ORDER BY` key (`ORDER BY CASE WHEN x IN (SELECT ...)
//! THEN 0 ELSE 1 END`, as Grafana's table list sorts) is computed in a
//! select list first ([`sort_key_subqueries`]): DataFusion refuses
//! subqueries in a sort.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result, ScalarValue, Spans};
use datafusion::functions_aggregate::count::count_all;
use datafusion::logical_expr::expr::{Exists, InSubquery};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, Subquery, lit, not, when};

/// `plan` with each sort key that holds subqueries, none of them
/// correlated, computed as a column of a projection under the sort, which
/// then sorts by that column; a projection over the sort drops it again.
pub(crate) fn sort_key_subqueries(plan: LogicalPlan) -> Result<LogicalPlan> {
    let rewritten = plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::Sort(sort) = &node else {
            return Ok(Transformed::no(node));
        };
        if !sort
            .expr
            .iter()
            .any(|key| has_uncorrelated_subqueries(&key.expr))
        {
            return Ok(Transformed::no(node));
        }
        let LogicalPlan::Sort(sort) = node else {
            unreachable!("matched a sort")
        };
        let columns: Vec<Expr> = sort
            .input
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        let mut computed = columns.clone();
        let mut keys = Vec::with_capacity(sort.expr.len());
        for (index, key) in sort.expr.into_iter().enumerate() {
            if has_uncorrelated_subqueries(&key.expr) {
                let name = format!("__quiver_sort_key_{index}");
                computed.push(key.expr.clone().alias(&name));
                keys.push(key.with_expr(Expr::Column(Column::from_name(name))));
            } else {
                keys.push(key);
            }
        }
        let sorted = LogicalPlanBuilder::from(Arc::unwrap_or_clone(sort.input))
            .project(computed)?
            .sort_with_limit(keys, sort.fetch)?
            .project(columns)?
            .build()?;
        Ok(Transformed::yes(sorted))
    })?;
    Ok(rewritten.data)
}

/// Whether `expr` holds subqueries, none of them correlated (a correlated
/// one is left to fail as before: DataFusion decorrelates few of those in
/// a select list).
fn has_uncorrelated_subqueries(expr: &Expr) -> bool {
    let mut found = false;
    let correlated = expr
        .exists(|e| {
            let subquery = match e {
                Expr::Exists(Exists { subquery, .. })
                | Expr::InSubquery(InSubquery { subquery, .. })
                | Expr::ScalarSubquery(subquery) => subquery,
                _ => return Ok(false),
            };
            found = true;
            Ok(!subquery.outer_ref_columns.is_empty())
        })
        .unwrap_or(true);
    found && !correlated
}

/// `plan` with the `EXISTS` and `IN` subqueries of its select lists
/// counted (see the module docs).
pub(crate) fn select_list_subqueries(plan: LogicalPlan) -> Result<LogicalPlan> {
    let rewritten = plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::Projection(projection) = &node else {
            return Ok(Transformed::no(node));
        };
        let input = projection.input.schema().clone();
        let names = NamePreserver::new(&node);
        node.map_expressions(|expr| {
            crate::integers::keeping_name(expr, &names, |expr| {
                expr.transform_up(|expr| counted(expr, &input))
            })
        })?
        .map_data(LogicalPlan::recompute_schema)
    })?;
    Ok(rewritten.data)
}

/// One `EXISTS` or `IN` subquery of a select list over `input` as counts.
fn counted(expr: Expr, input: &DFSchema) -> Result<Transformed<Expr>> {
    Ok(Transformed::yes(match expr {
        Expr::Exists(Exists { subquery, negated }) => {
            let any_row = count(
                subquery.subquery.as_ref().clone(),
                subquery.outer_ref_columns,
            )?
            .gt(lit(0i64));
            if negated { not(any_row) } else { any_row }
        }
        Expr::InSubquery(InSubquery {
            expr,
            subquery,
            negated,
        }) => {
            let rows = subquery.subquery.as_ref().clone();
            let value = Expr::Column(Column::from(rows.schema().qualified_field(0)));
            // `x` as the subquery sees it: a reference to the outer row.
            let outer = outer_reference(expr.as_ref().clone(), input)?;
            let mut matching_references = subquery.outer_ref_columns.clone();
            outer.apply(|e| {
                if matches!(e, Expr::OuterReferenceColumn(..)) {
                    matching_references.push(e.clone());
                }
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            })?;
            let matching = LogicalPlanBuilder::from(rows.clone())
                .filter(value.clone().eq(outer))?
                .build()?;
            let nulls = LogicalPlanBuilder::from(rows.clone())
                .filter(value.is_null())?
                .build()?;
            let any_match = count(matching, matching_references)?.gt(lit(0i64));
            let any_row = count(rows, subquery.outer_ref_columns.clone())?.gt(lit(0i64));
            let any_null = count(nulls, subquery.outer_ref_columns)?.gt(lit(0i64));
            let found = when(any_match, lit(true))
                .when(not(any_row), lit(false))
                .when(expr.is_null().or(any_null), lit(ScalarValue::Boolean(None)))
                .otherwise(lit(false))?;
            if negated { not(found) } else { found }
        }
        other => return Ok(Transformed::no(other)),
    }))
}

/// `(SELECT count(*) FROM rows)`, correlated by `outer_ref_columns`.
fn count(rows: LogicalPlan, outer_ref_columns: Vec<Expr>) -> Result<Expr> {
    let counted = LogicalPlanBuilder::from(rows)
        .aggregate(Vec::<Expr>::new(), vec![count_all()])?
        .build()?;
    Ok(Expr::ScalarSubquery(Subquery {
        subquery: Arc::new(counted),
        outer_ref_columns,
        spans: Spans::new(),
    }))
}

/// `expr`, over `input`, with each column a reference to the outer row.
fn outer_reference(expr: Expr, input: &DFSchema) -> Result<Expr> {
    expr.transform_up(|e| match e {
        Expr::Column(column) => {
            let (_, field) = input.qualified_field_from_column(&column)?;
            Ok(Transformed::yes(Expr::OuterReferenceColumn(
                field.clone(),
                column,
            )))
        }
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}
