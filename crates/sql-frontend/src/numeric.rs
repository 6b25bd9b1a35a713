//! `numeric` quotients and averages at PostgreSQL's scale.
//!
//! PostgreSQL divides `numeric`s to at least 16 significant digits,
//! rounding; `avg` of integers or `numeric`s is such a quotient (a
//! `numeric`). DataFusion truncates a decimal quotient to four more
//! decimals than the dividend, and averages integers as `double precision`.
//! [`numeric_quotients`] rewrites a planned statement before the analyzer
//! types it:
//! - `a / b` of a decimal and a decimal or integer becomes
//!   [`NumericDivision`] (named as the `/` it replaces);
//! - `avg(x)` of an integer or decimal becomes `sum(x)` and `count(x)` in
//!   the aggregate, divided by [`NumericDivision`] in a projection above it
//!   that gives the column the `avg`'s name. Both halves split across
//!   Ballista stages as DataFusion's own do.
//!
//! `avg` as a window function keeps DataFusion's result.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result};
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::expr::{AggregateFunction, ScalarFunction};
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator, Projection,
};
use quiver_udf_registry::NumericDivision;

use crate::integers::expression_schema;

/// `plan` with its `numeric` quotients and averages computed PostgreSQL's
/// way (see the module docs).
pub fn numeric_quotients(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        let schema = expression_schema(&node);
        let divided =
            node.map_expressions(|expr| expr.transform_up(|expr| quotient(expr, &schema)))?;
        let divided = if divided.transformed {
            divided.data.recompute_schema().map(Transformed::yes)?
        } else {
            divided
        };
        // The averages after the quotients: `avg(x / 2)` sums `x / 2` as
        // PostgreSQL computes it.
        divided.transform_data(|node| match node {
            LogicalPlan::Aggregate(aggregate) => averages(aggregate),
            other => Ok(Transformed::no(other)),
        })
    })
    .map(|transformed| transformed.data)
}

fn quotient(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Divide,
        right,
    }) = &expr
    else {
        return Ok(Transformed::no(expr));
    };
    let (Ok(left_type), Ok(right_type)) = (left.get_type(schema), right.get_type(schema)) else {
        return Ok(Transformed::no(expr));
    };
    if !NumericDivision::divides(&left_type, &right_type) {
        return Ok(Transformed::no(expr));
    }
    Ok(Transformed::yes(divide(
        left.as_ref().clone(),
        right.as_ref().clone(),
    )))
}

fn divide(left: Expr, right: Expr) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(
        NumericDivision::udf(),
        vec![left, right],
    ))
}

/// The `avg` of an integer or decimal argument, as its call's parameters.
fn numeric_average(expr: &Expr, schema: &DFSchema) -> Option<AggregateFunction> {
    let Expr::AggregateFunction(call) = expr else {
        return None;
    };
    let [argument] = call.params.args.as_slice() else {
        return None;
    };
    let averages = call.func.name() == "avg"
        && call.params.order_by.is_empty()
        && argument
            .get_type(schema)
            .is_ok_and(|t| NumericDivision::averages(&t));
    averages.then(|| call.clone())
}

fn unaliased(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => &alias.expr,
        other => other,
    }
}

/// `aggregate` with each numeric `avg` split into `sum` and `count`, under
/// a projection that divides them (see the module docs).
fn averages(aggregate: Aggregate) -> Result<Transformed<LogicalPlan>> {
    let schema = aggregate.input.schema();
    let averages: Vec<Option<AggregateFunction>> = aggregate
        .aggr_expr
        .iter()
        .map(|e| numeric_average(unaliased(e), schema))
        .collect();
    if averages.iter().all(Option::is_none) {
        return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate)));
    }
    let output = aggregate.schema.clone();
    let groups = output.fields().len() - aggregate.aggr_expr.len();
    let mut aggr_expr = Vec::with_capacity(aggregate.aggr_expr.len() * 2);
    let mut projection: Vec<Expr> = output
        .iter()
        .take(groups)
        .map(|(qualifier, field)| Expr::Column(Column::from((qualifier, field))))
        .collect();
    for (i, (expr, average)) in aggregate.aggr_expr.iter().zip(averages).enumerate() {
        let (qualifier, field) = output.qualified_field(groups + i);
        match average {
            Some(call) => {
                let part = |func, name: String| {
                    Expr::AggregateFunction(AggregateFunction {
                        func,
                        params: call.params.clone(),
                    })
                    .alias(name)
                };
                let (sum, count) = (
                    format!("__quiver_avg_sum_{i}"),
                    format!("__quiver_avg_count_{i}"),
                );
                aggr_expr.push(part(sum_udaf(), sum.clone()));
                aggr_expr.push(part(count_udaf(), count.clone()));
                projection.push(
                    divide(
                        Expr::Column(Column::from_name(sum)),
                        Expr::Column(Column::from_name(count)),
                    )
                    .alias_qualified(qualifier.cloned(), field.name()),
                );
            }
            None => {
                aggr_expr.push(expr.clone());
                projection.push(Expr::Column(Column::from((qualifier, field))));
            }
        }
    }
    let split = Aggregate::try_new(aggregate.input, aggregate.group_expr, aggr_expr)?;
    let projection = Projection::try_new(projection, Arc::new(LogicalPlan::Aggregate(split)))?;
    Ok(Transformed::yes(LogicalPlan::Projection(projection)))
}
