//! Text read as a `timestamp` or `date` the way PostgreSQL reads it.
//!
//! The analyzer rule [`PostgresDateTimeInput`] runs after type coercion and
//! puts [`DateTimeInput`] in place of every cast of text to a timestamp or
//! a date — written (`'2024-05-17 10:00'::timestamp`) or made by coercion
//! (`WHERE t > '2024-05-17 10:00'`) — which Arrow's cast would read as ISO
//! 8601 with seconds only (see `quiver_udf_registry::DateTimeInput`).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Cast, Expr, ExprSchemable, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;
use quiver_udf_registry::DateTimeInput;

use crate::integers::rewrite_expressions;

/// Reads text cast to a timestamp or a date PostgreSQL's way (see the
/// module docs).
#[derive(Debug, Default)]
pub struct PostgresDateTimeInput;

impl AnalyzerRule for PostgresDateTimeInput {
    fn name(&self) -> &str {
        "quiver_postgres_datetime_input"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite_expressions(plan, read_as_postgresql)
    }
}

fn read_as_postgresql(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::Cast(Cast { expr, field }) = expr else {
        return Ok(Transformed::no(expr));
    };
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
