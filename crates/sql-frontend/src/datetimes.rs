//! Dates, times and intervals as PostgreSQL reads and compares them.
//!
//! The analyzer rule [`PostgresDateTimes`] runs after type coercion and
//! - puts [`DateTimeInput`] in place of every cast of text to a timestamp
//!   or a date — written (`'2024-05-17 10:00'::timestamp`) or made by
//!   coercion (`WHERE t > '2024-05-17 10:00'`) — which Arrow's cast would
//!   read as ISO 8601 with seconds only;
//! - compares intervals by their [`IntervalSpan`] (`interval '25 hours' >
//!   interval '1 day'`), where Arrow compares months, then days, then
//!   nanoseconds.

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::IntervalUnit;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Between, BinaryExpr, Cast, Expr, ExprSchemable, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;
use quiver_udf_registry::{DateTimeInput, IntervalSpan};

use crate::integers::rewrite_expressions;
use crate::sized_text::is_comparison;

/// Reads text cast to a timestamp or a date, and compares intervals,
/// PostgreSQL's way (see the module docs).
#[derive(Debug, Default)]
pub struct PostgresDateTimes;

impl AnalyzerRule for PostgresDateTimes {
    fn name(&self) -> &str {
        "quiver_postgres_datetimes"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite_expressions(plan, |expr, schema| match expr {
            Expr::Cast(cast) => read_as_postgresql(cast, schema),
            Expr::BinaryExpr(binary) => compared_by_span(binary, schema),
            Expr::Between(between) => between_spans(between, schema),
            other => Ok(Transformed::no(other)),
        })
    }
}

fn is_interval(expr: &Expr, schema: &DFSchema) -> bool {
    expr.get_type(schema)
        .is_ok_and(|t| t == DataType::Interval(IntervalUnit::MonthDayNano))
}

fn span(expr: Expr) -> Box<Expr> {
    Box::new(Expr::ScalarFunction(ScalarFunction::new_udf(
        IntervalSpan::udf(),
        vec![expr],
    )))
}

/// A comparison of two intervals as the comparison of their spans.
fn compared_by_span(binary: BinaryExpr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    if !is_comparison(binary.op)
        || !is_interval(&binary.left, schema)
        || !is_interval(&binary.right, schema)
    {
        return Ok(Transformed::no(Expr::BinaryExpr(binary)));
    }
    let BinaryExpr { left, op, right } = binary;
    Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr {
        left: span(*left),
        op,
        right: span(*right),
    })))
}

/// `x BETWEEN a AND b` of intervals, by their spans.
fn between_spans(between: Between, schema: &DFSchema) -> Result<Transformed<Expr>> {
    if ![&between.expr, &between.low, &between.high]
        .iter()
        .all(|e| is_interval(e, schema))
    {
        return Ok(Transformed::no(Expr::Between(between)));
    }
    let Between {
        expr,
        negated,
        low,
        high,
    } = between;
    Ok(Transformed::yes(Expr::Between(Between {
        expr: span(*expr),
        negated,
        low: span(*low),
        high: span(*high),
    })))
}

/// A cast of text to a timestamp or a date, read PostgreSQL's way.
fn read_as_postgresql(cast: Cast, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Cast { expr, field } = cast;
    let text = expr
        .get_type(schema)
        .is_ok_and(|t| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View));
    if !text || !DateTimeInput::reads(field.data_type()) {
        return Ok(Transformed::no(Expr::Cast(Cast { expr, field })));
    }
    Ok(Transformed::yes(Expr::ScalarFunction(
        ScalarFunction::new_udf(DateTimeInput::udf(field.data_type().clone()), vec![*expr]),
    )))
}
