//! Rounding to integers as PostgreSQL rounds.
//!
//! PostgreSQL rounds when it casts a fraction to an integer, where
//! DataFusion truncates: `CAST(2.75 AS int)` is `3`, not `2`. A `numeric`
//! rounds half away from zero, a `double precision` or `real` half to even
//! (`rint`), and `round(double precision)` rounds half to even too. A
//! literal such as `2.5` is a `numeric`, as in PostgreSQL; a float literal
//! (a folded constant) rounds as the `numeric` it was written as.
//!
//! The analyzer rule [`PostgresRounding`] runs after type coercion and puts
//! the rounding in: DataFusion's `round` (half away from zero) for
//! `numeric` and literals, [`RoundHalfEven`] for floats.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Cast, Expr, ExprSchemable, LogicalPlan, TryCast};
use datafusion::optimizer::AnalyzerRule;
use quiver_udf_registry::RoundHalfEven;

use crate::integers::rewrite_expressions;

/// Rounds fractions cast to integers, and `round` of floats, PostgreSQL's
/// way (see the module docs).
#[derive(Debug, Default)]
pub struct PostgresRounding;

impl AnalyzerRule for PostgresRounding {
    fn name(&self) -> &str {
        "quiver_postgres_rounding"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite_expressions(plan, rounded)
    }
}

fn is_literal(expr: &Expr) -> bool {
    match expr {
        Expr::Literal(..) => true,
        Expr::Negative(inner) => is_literal(inner),
        _ => false,
    }
}

fn is_float(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Float32 | DataType::Float64)
}

fn is_round(expr: &Expr) -> bool {
    matches!(expr, Expr::ScalarFunction(f) if matches!(f.name(), "round" | "round_half_even"))
}

/// `value` rounded to an integral value the way PostgreSQL rounds a value
/// of its type; `None` when it needs no rounding.
fn round(value: Expr, schema: &DFSchema) -> Option<Expr> {
    let data_type = value.get_type(schema).ok()?;
    if is_round(&value) {
        return None;
    }
    let function = if is_float(&data_type) && !is_literal(&value) {
        RoundHalfEven::udf()
    } else if is_float(&data_type)
        || matches!(
            data_type,
            DataType::Decimal128(..) | DataType::Decimal256(..)
        )
    {
        datafusion::functions::math::round()
    } else {
        return None;
    };
    Some(Expr::ScalarFunction(ScalarFunction::new_udf(
        function,
        vec![value],
    )))
}

fn rounded(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    Ok(match expr {
        Expr::Cast(Cast { expr, field }) if field.data_type().is_integer() => {
            match round((*expr).clone(), schema) {
                Some(rounded) => Transformed::yes(Expr::Cast(Cast {
                    expr: Box::new(rounded),
                    field,
                })),
                None => Transformed::no(Expr::Cast(Cast { expr, field })),
            }
        }
        Expr::TryCast(TryCast { expr, field }) if field.data_type().is_integer() => {
            match round((*expr).clone(), schema) {
                Some(rounded) => Transformed::yes(Expr::TryCast(TryCast {
                    expr: Box::new(rounded),
                    field,
                })),
                None => Transformed::no(Expr::TryCast(TryCast { expr, field })),
            }
        }
        Expr::ScalarFunction(call)
            if call.name() == "round"
                && call.args.len() == 1
                && !is_literal(&call.args[0])
                && call.args[0].get_type(schema).is_ok_and(|t| is_float(&t)) =>
        {
            let ScalarFunction { args, .. } = call;
            Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
                RoundHalfEven::udf(),
                args,
            )))
        }
        other => Transformed::no(other),
    })
}
