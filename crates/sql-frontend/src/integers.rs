//! Integers with PostgreSQL's types and overflow rules.
//!
//! In PostgreSQL an integer literal that fits 32 bits is an `integer`, and
//! integer arithmetic that leaves its type's range fails with
//! `integer out of range` (SQLSTATE 22003). DataFusion types every integer
//! literal `Int64` and wraps around on overflow. Clients see the
//! difference: node-postgres returns `SELECT 1` as the string `'1'` when it
//! is described as a `bigint`, and `9223372036854775807 + 1` must not be a
//! negative number.
//!
//! Two steps give Quiver PostgreSQL's behaviour:
//! - [`type_literals`] types literals that fit 32 bits `Int32` in every
//!   statement as soon as it is planned, before DataFusion's type
//!   coercion, which then widens them wherever they meet a wider type;
//! - the analyzer rule [`CheckedIntegerArithmetic`] runs after DataFusion's
//!   own and replaces integer `+`, `-` and `*` with [`CheckedArithmetic`]
//!   (both sides have one type by then).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::utils::expr::COUNT_STAR_EXPANSION;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::{AggregateFunction, GroupingSet, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprSchemable, LogicalPlan, Subquery, Union, Values, WriteOp,
};
use datafusion::optimizer::AnalyzerRule;
use quiver_udf_registry::CheckedArithmetic;

/// Types the integer literals of a freshly planned statement that fit 32
/// bits `Int32`, as PostgreSQL types them `integer`. It runs before the
/// analyzer, whose type coercion then widens them wherever they meet a
/// wider type, and before parameters are bound: a parameter's value keeps
/// the type the parameter was described with.
///
/// A `VALUES` column is narrowed as a whole, when all its values are such
/// literals (its rows were given one type per column when they were
/// planned). Some literals keep DataFusion's types: those of the `VALUES`
/// list of an `INSERT` (typed as the table's columns), of recursive
/// queries (the work table their recursive term reads was given its static
/// term's types), and `count(*)`'s stand-in argument, which DataFusion
/// recognizes by its type. Afterwards every schema is derived again, and
/// subqueries' references to the query around them take the new types.
pub fn type_literals(plan: LogicalPlan) -> Result<LogicalPlan> {
    let typed = plan.transform_down_with_subqueries(|node| match node {
        LogicalPlan::RecursiveQuery(_) => {
            Ok(Transformed::new(node, false, TreeNodeRecursion::Jump))
        }
        LogicalPlan::Dml(ref dml)
            if matches!(dml.op, WriteOp::Insert(_)) && lists_rows(&dml.input) =>
        {
            Ok(Transformed::new(node, false, TreeNodeRecursion::Jump))
        }
        LogicalPlan::Values(values) => narrow_values(values),
        LogicalPlan::Limit(_) => Ok(Transformed::no(node)),
        node => {
            let names = NamePreserver::new(&node);
            node.map_expressions(|expr| keeping_name(expr, &names, narrow_literals))
        }
    })?;
    if !typed.transformed {
        return Ok(typed.data);
    }
    let recomputed = recompute_schemas(typed.data)?;
    recompute_schemas(retype_outer_references(recomputed)?)
}

/// `plan` with every node's schema derived again from its inputs, bottom
/// up.
fn recompute_schemas(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| match node {
        // A union keeps the types it was planned with when recomputed:
        // derived again from its first input, as the SQL planner did
        // (type coercion then finds the types all inputs share).
        LogicalPlan::Union(union) => Union::try_new_with_loose_types(union.inputs)
            .map(|union| Transformed::yes(LogicalPlan::Union(union))),
        node => node.recompute_schema().map(Transformed::yes),
    })
    .map(|recomputed| recomputed.data)
}

/// `plan` with each subquery's references to the query around it typed as
/// the columns they name are now: a reference keeps the type it was
/// planned with, and `EXISTS (SELECT 1 FROM s WHERE s.a = x.b)` over a
/// column `x.b` narrowed to `integer` compared a `bigint` reference with
/// `integer` values ("Can't compare arrays of different types").
fn retype_outer_references(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_down_with_subqueries(|node| {
        let outer = merge_schema(&node.inputs());
        node.map_expressions(|expr| {
            expr.transform_down(|expr| match expr {
                Expr::Exists(mut exists) => {
                    exists.subquery = retype_subquery(exists.subquery, &outer)?;
                    Ok(Transformed::yes(Expr::Exists(exists)))
                }
                Expr::InSubquery(mut in_subquery) => {
                    in_subquery.subquery = retype_subquery(in_subquery.subquery, &outer)?;
                    Ok(Transformed::yes(Expr::InSubquery(in_subquery)))
                }
                Expr::ScalarSubquery(subquery) => Ok(Transformed::yes(Expr::ScalarSubquery(
                    retype_subquery(subquery, &outer)?,
                ))),
                expr => Ok(Transformed::no(expr)),
            })
        })
    })
    .map(|retyped| retyped.data)
}

/// `subquery` with its references to columns of `outer` typed as they are
/// there.
fn retype_subquery(mut subquery: Subquery, outer: &DFSchema) -> Result<Subquery> {
    let retype = |expr: Expr| {
        expr.transform(|expr| match expr {
            Expr::OuterReferenceColumn(field, column) => {
                match outer
                    .qualified_field_from_column(&column)
                    .map(|(_, now)| now)
                {
                    Ok(now) if now.data_type() != field.data_type() => Ok(Transformed::yes(
                        Expr::OuterReferenceColumn(Arc::clone(now), column),
                    )),
                    _ => Ok(Transformed::no(Expr::OuterReferenceColumn(field, column))),
                }
            }
            expr => Ok(Transformed::no(expr)),
        })
    };
    let plan = Arc::unwrap_or_clone(subquery.subquery)
        .transform_down_with_subqueries(|node| node.map_expressions(retype))?
        .data;
    subquery.subquery = Arc::new(recompute_schemas(plan)?);
    subquery.outer_ref_columns = subquery
        .outer_ref_columns
        .into_iter()
        .map(|expr| retype(expr).map(|t| t.data))
        .collect::<Result<_>>()?;
    Ok(subquery)
}

fn narrow_literals(expr: Expr) -> Result<Transformed<Expr>> {
    expr.transform_down(|expr| match expr {
        Expr::AggregateFunction(AggregateFunction { ref params, .. })
            if counts_rows(&params.args) =>
        {
            Ok(Transformed::new(expr, false, TreeNodeRecursion::Jump))
        }
        Expr::WindowFunction(ref window) if counts_rows(&window.params.args) => {
            Ok(Transformed::new(expr, false, TreeNodeRecursion::Jump))
        }
        Expr::Literal(ScalarValue::Int64(Some(value)), None) => match i32::try_from(value) {
            Ok(value) => Ok(Transformed::yes(Expr::Literal(
                ScalarValue::Int32(Some(value)),
                None,
            ))),
            Err(_) => Ok(Transformed::no(expr)),
        },
        other => Ok(Transformed::no(other)),
    })
}

/// Whether `input`, the rows an `INSERT` stores, is a `VALUES` list (the
/// SQL planner typed it as the table's columns).
fn lists_rows(input: &LogicalPlan) -> bool {
    match input {
        LogicalPlan::Values(_) => true,
        LogicalPlan::Projection(projection) => lists_rows(&projection.input),
        _ => false,
    }
}

/// `values` with each column made only of integer literals that fit 32
/// bits (and NULLs) typed `Int32`: PostgreSQL gives `VALUES (1), (2)` the
/// type `integer`, and `VALUES (1), (5000000000)` the type `bigint`, as it
/// types a `UNION` of those literals.
fn narrow_values(values: Values) -> Result<Transformed<LogicalPlan>> {
    let fits = |expr: &Expr| match expr {
        Expr::Literal(ScalarValue::Int64(value), None) => {
            value.is_none_or(|value| i32::try_from(value).is_ok())
        }
        Expr::Literal(ScalarValue::Null, None) => true,
        _ => false,
    };
    let narrowed: Vec<bool> = (0..values.schema.fields().len())
        .map(|column| {
            values.schema.field(column).data_type() == &DataType::Int64
                && values.values.iter().all(|row| fits(&row[column]))
        })
        .collect();
    if !narrowed.contains(&true) {
        return Ok(Transformed::no(LogicalPlan::Values(values)));
    }
    let rows = values
        .values
        .into_iter()
        .map(|row| {
            row.into_iter()
                .zip(&narrowed)
                .map(|(expr, &narrowed)| match expr {
                    Expr::Literal(ScalarValue::Int64(value), None) if narrowed => {
                        Expr::Literal(ScalarValue::Int32(value.map(|value| value as i32)), None)
                    }
                    expr => expr,
                })
                .collect()
        })
        .collect();
    let fields: Vec<_> = values
        .schema
        .iter()
        .zip(&narrowed)
        .map(|((qualifier, field), &narrowed)| {
            let field = match narrowed {
                true => Arc::new(field.as_ref().clone().with_data_type(DataType::Int32)),
                false => Arc::clone(field),
            };
            (qualifier.cloned(), field)
        })
        .collect();
    let schema = DFSchema::new_with_metadata(fields, values.schema.metadata().clone())?;
    Ok(Transformed::yes(LogicalPlan::Values(Values {
        schema: Arc::new(schema),
        values: rows,
    })))
}

/// Whether `args` is `count(*)`'s: the one literal DataFusion puts there.
fn counts_rows(args: &[Expr]) -> bool {
    matches!(args, [Expr::Literal(value, None)] if value == &COUNT_STAR_EXPANSION)
}

/// Replaces `+`, `-` and `*` on integers with [`CheckedArithmetic`], so
/// that a result out of its type's range is an error, not a wrapped value.
#[derive(Debug, Default)]
pub struct CheckedIntegerArithmetic;

impl AnalyzerRule for CheckedIntegerArithmetic {
    fn name(&self) -> &str {
        "quiver_checked_integer_arithmetic"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite_expressions(plan, checked)
    }
}

/// `plan` (and its subqueries) with every expression rewritten bottom-up
/// by `rewrite`, which sees the schema the expression is typed against;
/// each rewritten expression keeps its name, so that the columns a plan's
/// nodes refer to by name stay the same.
pub(crate) fn rewrite_expressions(
    plan: LogicalPlan,
    rewrite: impl Fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        let schema = expression_schema(&node);
        let names = NamePreserver::new(&node);
        node.map_expressions(|expr| {
            keeping_name(expr, &names, |expr| {
                expr.transform_up(|expr| rewrite(expr, &schema))
            })
        })
    })
    .map(|transformed| transformed.data)
}

/// `expr` rewritten by `rewrite` under the name it had. The members of a
/// grouping set (`ROLLUP (a + 1)`) keep their names one by one: the
/// aggregate names its columns after them, and an alias around the whole
/// set made one column of it.
pub(crate) fn keeping_name(
    expr: Expr,
    names: &NamePreserver,
    rewrite: impl Fn(Expr) -> Result<Transformed<Expr>>,
) -> Result<Transformed<Expr>> {
    let Expr::GroupingSet(set) = expr else {
        let name = names.save(&expr);
        return rewrite(expr).map(|expr| expr.update_data(|expr| name.restore(expr)));
    };
    let mut transformed = false;
    let mut member = |expr: Expr| -> Result<Expr> {
        let name = expr.schema_name().to_string();
        let rewritten = rewrite(expr)?;
        transformed |= rewritten.transformed;
        let expr = rewritten.data;
        Ok(if expr.schema_name().to_string() == name {
            expr
        } else {
            expr.alias(name)
        })
    };
    let mut members = |exprs: Vec<Expr>| {
        exprs
            .into_iter()
            .map(&mut member)
            .collect::<Result<Vec<_>>>()
    };
    let set = match set {
        GroupingSet::Rollup(exprs) => GroupingSet::Rollup(members(exprs)?),
        GroupingSet::Cube(exprs) => GroupingSet::Cube(members(exprs)?),
        GroupingSet::GroupingSets(sets) => GroupingSet::GroupingSets(
            sets.into_iter()
                .map(&mut members)
                .collect::<Result<Vec<_>>>()?,
        ),
    };
    Ok(Transformed::new_transformed(
        Expr::GroupingSet(set),
        transformed,
    ))
}

/// The schema `node`'s expressions are typed against: its inputs', or for a
/// node without inputs (a scan's filters, `VALUES`), its own.
pub(crate) fn expression_schema(node: &LogicalPlan) -> DFSchema {
    let inputs = node.inputs();
    if inputs.is_empty() {
        node.schema().as_ref().clone()
    } else {
        merge_schema(&inputs)
    }
}

fn checked(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &expr else {
        return Ok(Transformed::no(expr));
    };
    let Some(function) = CheckedArithmetic::udf(*op) else {
        return Ok(Transformed::no(expr));
    };
    let (Ok(left_type), Ok(right_type)) = (left.get_type(schema), right.get_type(schema)) else {
        return Ok(Transformed::no(expr));
    };
    if left_type != right_type || !left_type.is_integer() {
        return Ok(Transformed::no(expr));
    }
    let Expr::BinaryExpr(BinaryExpr { left, right, .. }) = expr else {
        unreachable!("matched above");
    };
    Ok(Transformed::yes(Expr::ScalarFunction(
        ScalarFunction::new_udf(function, vec![*left, *right]),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{LogicalPlanBuilder, lit};
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn literals_that_fit_32_bits_are_integers() {
        let ctx = SessionContext::new();
        let plan = ctx
            .state()
            .create_logical_plan("SELECT 1, 5000000000, 1 + 2")
            .await
            .unwrap();
        let plan = type_literals(plan).unwrap();
        let types: Vec<_> = plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().to_string())
            .collect();
        assert_eq!(types, ["Int32", "Int64", "Int32"]);
    }

    #[test]
    fn integer_arithmetic_is_checked_and_keeps_its_name() {
        let plan = LogicalPlanBuilder::empty(true)
            .project(vec![lit(1i64) + lit(2i64), lit(1.5) + lit(2.5)])
            .unwrap()
            .build()
            .unwrap();
        let before: Vec<_> = plan.schema().field_names();
        let plan = CheckedIntegerArithmetic
            .analyze(plan, &ConfigOptions::default())
            .unwrap();
        assert_eq!(plan.schema().field_names(), before);
        let LogicalPlan::Projection(projection) = &plan else {
            panic!("a projection stays one");
        };
        assert!(
            matches!(&projection.expr[0], Expr::ScalarFunction(f) if f.name() == "checked_add")
        );
        assert!(matches!(&projection.expr[1], Expr::BinaryExpr(_)));
    }
}
