//! Scalar subqueries with PostgreSQL's semantics.
//!
//! In PostgreSQL a scalar subquery — `(SELECT b FROM u WHERE u.k = t.k)` —
//! is NULL when it has no row, its value when it has one, and an error
//! (21000) when it has more. DataFusion refuses to plan a correlated one
//! unless it is aggregated ("Correlated scalar subquery must be aggregated
//! to return at most one row"), which is how SQLAlchemy's and other clients'
//! catalog queries look, and plans an uncorrelated one as a join that
//! repeats the outer row for every row of the subquery.
//!
//! [`ScalarSubqueryRows`] gives every scalar subquery that is not already
//! one row an aggregate on top, [`SubqueryRows`], which DataFusion then
//! decorrelates like any aggregated subquery, and takes the value out with
//! [`SubqueryValue`], which has PostgreSQL's semantics (see
//! `quiver_udf_registry`'s `scalar_subquery`). Two shapes DataFusion cannot
//! decorrelate are reshaped first:
//!
//! - a `WHERE` condition on the outer row alone (`WHERE t.flag AND u.k =
//!   t.k`) moves out, as `CASE WHEN t.flag THEN (subquery) END`;
//! - a select list that reads the outer row (`SELECT t.a + u.b ...`, as in
//!   SQLAlchemy's column reflection) is computed outside: the subquery
//!   returns the inner columns it needs as one struct, a projection under
//!   the query's own adds its rows as a column, and the query computes the
//!   expression from that column and the outer row.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Column, Result};
use datafusion::config::ConfigOptions;
use datafusion::functions::core::expr_fn::named_struct;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    Expr, LogicalPlan, LogicalPlanBuilder, Projection, Subquery, col, lit, when,
};
use datafusion::optimizer::AnalyzerRule;
use quiver_udf_registry::{SubqueryRows, SubqueryValue};

/// The analyzer rule (see the module documentation). It runs after
/// DataFusion's own analyzer rules, before the plan's invariants are checked.
#[derive(Debug, Default)]
pub struct ScalarSubqueryRows;

impl AnalyzerRule for ScalarSubqueryRows {
    fn name(&self) -> &str {
        "quiver_scalar_subquery_rows"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let mut lifted = 0;
        plan.transform_up_with_subqueries(|node| {
            let node = match node {
                LogicalPlan::Projection(projection) => lift_select_lists(projection, &mut lifted)?,
                other => Transformed::no(other),
            };
            node.transform_data(wrap_subqueries)
        })
        .data()
    }
}

/// Wraps the scalar subqueries in `node`'s expressions.
fn wrap_subqueries(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let names = NamePreserver::new(&node);
    node.map_expressions(|expr| {
        let name = names.save(&expr);
        expr.transform_up(|expr| match expr {
            Expr::ScalarSubquery(subquery) if needs_wrapping(&subquery) => {
                Ok(Transformed::yes(value_of(subquery)?))
            }
            other => Ok(Transformed::no(other)),
        })
        .map(|expr| expr.update_data(|expr| name.restore(expr)))
    })
}

/// Whether `subquery` may have several rows. One of several columns is an
/// error DataFusion reports; an aggregate DataFusion judges itself (a
/// grouped one, whose groups may depend on the outer row).
fn needs_wrapping(subquery: &Subquery) -> bool {
    let plan = subquery.subquery.as_ref();
    let aggregated = match strip(plan) {
        LogicalPlan::Aggregate(_) => true,
        LogicalPlan::Filter(filter) => matches!(filter.input.as_ref(), LogicalPlan::Aggregate(_)),
        _ => false,
    };
    plan.schema().fields().len() == 1 && !aggregated && plan.max_rows().is_none_or(|rows| rows > 1)
}

/// `plan` under its projections and aliases.
fn strip(plan: &LogicalPlan) -> &LogicalPlan {
    match plan {
        LogicalPlan::Projection(projection) => strip(&projection.input),
        LogicalPlan::SubqueryAlias(alias) => strip(&alias.input),
        other => other,
    }
}

/// The value of `subquery`, through `subquery_rows` and `subquery_value`.
fn value_of(subquery: Subquery) -> Result<Expr> {
    let (plan, outer) = hoist_outer_conditions(Arc::unwrap_or_clone(subquery.subquery))?;
    let (qualifier, field) = plan.schema().qualified_field(0);
    let name = field.name().clone();
    let column = Expr::Column((qualifier, field).into());
    let rows = rows_of(plan, column, name, subquery.spans)?;
    Ok(only_if(outer, SubqueryValue::udf().call(vec![rows])))
}

/// The scalar subquery `subquery_rows(value)` over `plan`.
fn rows_of(
    plan: LogicalPlan,
    value: Expr,
    name: String,
    spans: datafusion::common::Spans,
) -> Result<Expr> {
    let plan = LogicalPlanBuilder::from(plan)
        .aggregate(
            Vec::<Expr>::new(),
            vec![SubqueryRows::udaf().call(vec![value]).alias(name)],
        )?
        .build()?;
    Ok(Expr::ScalarSubquery(Subquery {
        outer_ref_columns: plan.all_out_ref_exprs(),
        subquery: Arc::new(plan),
        spans,
    }))
}

/// `CASE WHEN <conditions> THEN value END`, the conditions read in the
/// outer query; `value` itself without conditions.
fn only_if(conditions: Vec<Expr>, value: Expr) -> Expr {
    match conjunction(conditions) {
        // Infallible: `when` fails only without a WHEN.
        Some(condition) => when(unnest_outer(condition), value)
            .end()
            .expect("a CASE with one WHEN"),
        None => value,
    }
}

/// `expr` with its outer references as plain columns, for the outer query.
fn unnest_outer(expr: Expr) -> Expr {
    expr.transform(|expr| match expr {
        Expr::OuterReferenceColumn(_, column) => Ok(Transformed::yes(Expr::Column(column))),
        other => Ok(Transformed::no(other)),
    })
    .data()
    .expect("the rewrite is infallible")
}

/// Takes the conditions that read only outer columns out of the `WHERE` of
/// `plan` (under its projections and aliases). With such a condition false
/// or NULL the subquery has no row, so its value is NULL: the same as
/// `CASE WHEN condition THEN (subquery) END`.
fn hoist_outer_conditions(plan: LogicalPlan) -> Result<(LogicalPlan, Vec<Expr>)> {
    match plan {
        LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => {
            let expressions = plan.expressions();
            let [input] = plan.inputs()[..] else {
                unreachable!("projections and aliases have one input");
            };
            let (input, outer) = hoist_outer_conditions(input.clone())?;
            if outer.is_empty() {
                return Ok((plan, outer));
            }
            Ok((plan.with_new_exprs(expressions, vec![input])?, outer))
        }
        LogicalPlan::Filter(filter) => {
            let (outer, inner): (Vec<Expr>, Vec<Expr>) =
                split_conjunction_owned(filter.predicate.clone())
                    .into_iter()
                    .partition(|e| e.contains_outer() && e.column_refs().is_empty());
            if outer.is_empty() {
                return Ok((LogicalPlan::Filter(filter), outer));
            }
            let input = Arc::unwrap_or_clone(filter.input);
            let plan = match conjunction(inner) {
                Some(predicate) => LogicalPlanBuilder::from(input).filter(predicate)?.build()?,
                None => input,
            };
            Ok((plan, outer))
        }
        other => Ok((other, vec![])),
    }
}

/// Computes, outside their subqueries, the select lists of `projection`'s
/// scalar subqueries that read the outer row (see the module documentation).
fn lift_select_lists(
    projection: Projection,
    lifted: &mut usize,
) -> Result<Transformed<LogicalPlan>> {
    let liftable = |expr: &Expr| {
        matches!(expr, Expr::ScalarSubquery(subquery)
            if needs_wrapping(subquery) && reads_outer_row(subquery))
    };
    if !projection
        .expr
        .iter()
        .any(|expr| expr.exists(|e| Ok(liftable(e))).unwrap_or(false))
    {
        return Ok(Transformed::no(LogicalPlan::Projection(projection)));
    }
    let names = NamePreserver::new_for_projection();
    let mut below = vec![];
    let mut exprs = vec![];
    for expr in projection.expr {
        let name = names.save(&expr);
        let expr = expr.transform_up(|expr| match expr {
            Expr::ScalarSubquery(subquery) if liftable(&expr) => {
                *lifted += 1;
                let column = format!("__quiver_subquery_{lifted}");
                let (value, outside) = lift(subquery, &column)?;
                below.push(value.alias(&column));
                Ok(Transformed::yes(outside))
            }
            other => Ok(Transformed::no(other)),
        })?;
        exprs.push(expr.update_data(|expr| name.restore(expr)).data);
    }
    let input = Arc::unwrap_or_clone(projection.input);
    let passed = input.schema().columns().into_iter().map(Expr::Column);
    let input = LogicalPlanBuilder::from(input)
        .project(passed.chain(below))?
        .build()?;
    Ok(Transformed::yes(LogicalPlan::Projection(
        Projection::try_new(exprs, Arc::new(input))?,
    )))
}

/// Whether the select list of `subquery` reads the outer row.
fn reads_outer_row(subquery: &Subquery) -> bool {
    matches!(subquery.subquery.as_ref(), LogicalPlan::Projection(p) if p.expr.iter().any(Expr::contains_outer))
}

/// The rows to compute under the query as `column` (each a struct of the
/// inner columns the select list reads; NULL when a hoisted condition is
/// not met), and the expression that replaces the subquery.
fn lift(subquery: Subquery, column: &str) -> Result<(Expr, Expr)> {
    let (plan, outer) = hoist_outer_conditions(Arc::unwrap_or_clone(subquery.subquery))?;
    let LogicalPlan::Projection(projection) = plan else {
        unreachable!("reads_outer_row saw a projection");
    };
    let select = projection.expr[0].clone().unalias();
    let inner: Vec<Column> = select
        .column_refs()
        .into_iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let field = |i: usize| format!("c{i}");
    // `row` tells a row whose columns are all NULL from no row.
    let mut fields = vec![lit("row"), lit(true)];
    for (i, c) in inner.iter().enumerate() {
        fields.extend([lit(field(i)), Expr::Column(c.clone())]);
    }
    let plan = LogicalPlanBuilder::from(Arc::unwrap_or_clone(projection.input))
        .project([named_struct(fields).alias("row")])?
        .build()?;
    let rows = rows_of(plan, col("row"), "row".to_string(), subquery.spans)?;
    // `get_field` would do, but DataFusion 55's push_down_leaf_projections
    // breaks it on a computed struct; `subquery_value` reads the field.
    let value = |name: String| SubqueryValue::udf().call(vec![col(column), lit(name)]);
    let outside = select
        .transform(|expr| match expr {
            Expr::Column(c) => {
                let i = inner
                    .iter()
                    .position(|inner| *inner == c)
                    .expect("collected");
                Ok(Transformed::yes(value(field(i))))
            }
            Expr::OuterReferenceColumn(_, c) => Ok(Transformed::yes(Expr::Column(c))),
            other => Ok(Transformed::no(other)),
        })
        .data()?;
    let outside = when(value("row".to_string()).is_not_null(), outside).end()?;
    Ok((only_if(outer, rows), outside))
}
