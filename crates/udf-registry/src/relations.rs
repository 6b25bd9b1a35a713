//! Wasm calls in `FROM` that DataFusion's SQL planner cannot plan itself,
//! planned by [`WasmRelationPlanner`] (a [`RelationPlanner`]):
//!
//! - transforms, `f(TABLE t PARTITION BY k ORDER BY o, args...)`, as a
//!   [`WasmTransformNode`] over the plan of their input (see
//!   [`crate::transform`]); the table argument arrives as a call of
//!   [`TABLE_ARGUMENT`] (see the frontend's `relation_arguments`);
//! - `LATERAL f(t.x, ...)` of a table function, as a [`WasmLateralCall`]
//!   that [`LateralWasmCalls`](crate::lateral::LateralWasmCalls) joins.

use std::sync::Arc;

use datafusion::common::{DFSchema, Result, ScalarValue, plan_err};
use datafusion::logical_expr::execution_props::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::logical_expr::{Expr, ExprSchemable, Extension, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_expr::create_physical_expr;
use datafusion::sql::sqlparser::ast::{
    self, FunctionArg, FunctionArgExpr, FunctionArgumentClause, FunctionArguments, TableFactor,
};

use crate::definition::{Kind, TableColumn};
use crate::function::WasmFunction;
use crate::lateral::WasmLateralCall;
use crate::registry::FunctionRegistry;
use crate::table::evaluate_constant;
use crate::transform::{SortKey, TransformCall, WasmTransformNode, constants};
use crate::types::SqlType;
use crate::udf::resolve;

/// The name `TABLE rel PARTITION BY ... ORDER BY ...` arguments are
/// rewritten to before parsing: `"quiver.table"((SELECT * FROM rel), keys...
/// ORDER BY ...)` (sqlparser has no syntax for table arguments).
pub const TABLE_ARGUMENT: &str = "quiver.table";

/// A registry error as DataFusion carries it (its SQLSTATE kept).
fn external(e: crate::Error) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::External(Box::new(e))
}

/// Plans Wasm calls in `FROM`: transforms and `LATERAL` table function calls.
#[derive(Debug)]
pub struct WasmRelationPlanner {
    registry: Arc<FunctionRegistry>,
}

impl WasmRelationPlanner {
    pub fn new(registry: Arc<FunctionRegistry>) -> Self {
        Self { registry }
    }
}

/// The parts of a table argument: its query and keys.
struct TableArgument {
    query: Box<ast::Query>,
    partition_by: Vec<ast::Expr>,
    order_by: Vec<ast::OrderByExpr>,
}

/// `arg` as a table argument, if it is one: `"quiver.table"(...)` (what
/// `TABLE rel PARTITION BY ...` becomes) or a bare `(SELECT ...)`.
fn table_argument(arg: &FunctionArg) -> Option<TableArgument> {
    let FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) = arg else {
        return None;
    };
    match expr {
        ast::Expr::Subquery(query) => Some(TableArgument {
            query: query.clone(),
            partition_by: vec![],
            order_by: vec![],
        }),
        ast::Expr::Function(f) if is_table_marker(&f.name) => {
            let FunctionArguments::List(list) = &f.args else {
                return None;
            };
            let mut args = list.args.iter().filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            });
            let Some(ast::Expr::Subquery(query)) = args.next() else {
                return None;
            };
            let order_by = list
                .clauses
                .iter()
                .find_map(|c| match c {
                    FunctionArgumentClause::OrderBy(keys) => Some(keys.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            Some(TableArgument {
                query,
                partition_by: args.collect(),
                order_by,
            })
        }
        _ => None,
    }
}

fn is_table_marker(name: &ast::ObjectName) -> bool {
    matches!(name.0.as_slice(), [part] if part.as_ident().is_some_and(|i| i.value == TABLE_ARGUMENT && i.quote_style.is_some()))
}

/// The value of a constant argument expression.
fn constant(name: &str, expr: &Expr) -> Result<ScalarValue> {
    if let Expr::Literal(value, _) = expr {
        return Ok(value.clone());
    }
    let schema = DFSchema::empty();
    let physical = create_physical_expr(
        expr,
        &schema,
        &ExecutionProps::new(),
        &PhysicalPlanningContext::default(),
    )
    .or_else(|e| {
        plan_err!(
            "arguments of transform {name} after its table must be constants, not {expr}: {e}"
        )
    })?;
    evaluate_constant(physical.as_ref())
}

impl WasmRelationPlanner {
    /// The function `name` calls (its name as folded) and its overloads of
    /// a `kind` (none: not a Wasm function of that kind); `None` for a name
    /// that is no identifier.
    fn overloads(
        &self,
        name: &ast::ObjectName,
        context: &dyn RelationPlannerContext,
        kind: impl Fn(&Kind) -> bool,
    ) -> Option<(String, Vec<Arc<WasmFunction>>)> {
        let last = name.0.last()?.as_ident()?;
        let function_name = context.normalize_ident(last.clone());
        let overloads = self
            .registry
            .overloads(&function_name)
            .into_iter()
            .filter(|f| kind(&f.def().kind))
            .collect();
        Some((function_name, overloads))
    }

    /// `LATERAL f(t.x, ...)` of a Wasm table function whose arguments refer
    /// to an earlier relation's row: a [`WasmLateralCall`], which
    /// [`LateralWasmCalls`](crate::lateral::LateralWasmCalls) joins.
    fn plan_lateral(
        &self,
        relation: TableFactor,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<RelationPlanning> {
        let TableFactor::Function {
            lateral: true,
            name,
            args,
            alias,
            ..
        } = &relation
        else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let Some((function_name, overloads)) =
            self.overloads(name, context, |kind| matches!(kind, Kind::Table { .. }))
        else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        if overloads.is_empty() {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        }
        let exprs = args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => {
                    context.sql_to_expr(e.clone(), &DFSchema::empty())
                }
                other => plan_err!("{function_name} cannot take argument {other}"),
            })
            .collect::<Result<Vec<_>>>()?;
        if !exprs.iter().any(Expr::contains_outer) {
            // Constant arguments: an ordinary table function call.
            return Ok(RelationPlanning::Original(Box::new(relation)));
        }
        let empty = DFSchema::empty();
        let arg_types = exprs
            .iter()
            .map(|e| e.get_type(&empty))
            .collect::<Result<Vec<_>>>()?;
        let (function, types) = resolve(&function_name, &overloads, &arg_types)?;
        let call = WasmLateralCall::new(
            function.clone(),
            types,
            exprs,
            self.registry.module_dir().cloned(),
        )?;
        let plan = LogicalPlan::Extension(Extension {
            node: Arc::new(call),
        });
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
            plan,
            alias.clone(),
        ))))
    }
}

impl RelationPlanner for WasmRelationPlanner {
    fn plan_relation(
        &self,
        relation: TableFactor,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<RelationPlanning> {
        if matches!(relation, TableFactor::Function { lateral: true, .. }) {
            return self.plan_lateral(relation, context);
        }
        let TableFactor::Table {
            name,
            args: Some(args),
            alias,
            ..
        } = &relation
        else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let Some((function_name, overloads)) =
            self.overloads(name, context, |kind| *kind == Kind::Transform)
        else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        if overloads.is_empty() {
            if args.args.iter().any(|a| {
                matches!(a, FunctionArg::Unnamed(FunctionArgExpr::Expr(ast::Expr::Function(f))) if is_table_marker(&f.name))
            }) {
                return Err(external(crate::Error::FunctionNotFound(format!(
                    "function {function_name} takes no TABLE argument: only transforms (CREATE FUNCTION ... (TABLE, ...) RETURNS TABLE) do"
                ))));
            }
            return Ok(RelationPlanning::Original(Box::new(relation)));
        }
        let Some(table) = args.args.first().and_then(table_argument) else {
            return Err(external(crate::Error::FunctionNotFound(format!(
                "function {function_name} without a table does not exist: the first argument of transform {function_name} is its input, TABLE name or TABLE (SELECT ...)"
            ))));
        };
        let input = context.plan(TableFactor::Derived {
            lateral: false,
            subquery: table.query,
            alias: None,
            sample: None,
        })?;
        let passed = input.schema().fields().len();
        let columns = input
            .schema()
            .fields()
            .iter()
            .map(|f| match SqlType::from_data_type(f.data_type()) {
                Some(ty) => Ok(TableColumn {
                    name: f.name().clone(),
                    ty,
                }),
                None => Err(external(crate::Error::UnsupportedType(format!(
                    "transform {function_name} cannot take column {} of type {}",
                    f.name(),
                    f.data_type()
                )))),
            })
            .collect::<Result<Vec<_>>>()?;

        // Keys: columns of the input, or extra columns computed below.
        let mut extra: Vec<Expr> = Vec::new();
        let mut key_column = |expr: ast::Expr, context: &mut dyn RelationPlannerContext| {
            let expr = context.sql_to_expr(expr, input.schema())?;
            if let Expr::Column(c) = &expr
                && let Ok(i) = input.schema().index_of_column(c)
            {
                return Ok(i);
            }
            extra.push(expr.alias(format!("#key{}", extra.len())));
            Ok::<_, datafusion::error::DataFusionError>(passed + extra.len() - 1)
        };
        let partition_by = table
            .partition_by
            .into_iter()
            .map(|e| key_column(e, context))
            .collect::<Result<Vec<_>>>()?;
        let order_by = table
            .order_by
            .into_iter()
            .map(|o| {
                let descending = o.options.asc == Some(false);
                Ok(SortKey {
                    column: key_column(o.expr, context)?,
                    descending,
                    // PostgreSQL's default: nulls sort as if larger.
                    nulls_first: o.options.nulls_first.unwrap_or(descending),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let input = if extra.is_empty() {
            input
        } else {
            let all = input.schema().columns().into_iter().map(Expr::Column);
            LogicalPlanBuilder::from(input)
                .project(all.chain(extra).collect::<Vec<_>>())?
                .build()?
        };

        let values = args.args[1..]
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => {
                    let expr = context.sql_to_expr(e.clone(), &DFSchema::empty())?;
                    constant(&function_name, &expr)
                }
                other => plan_err!("transform {function_name} cannot take argument {other}"),
            })
            .collect::<Result<Vec<_>>>()?;
        let arg_types: Vec<_> = values.iter().map(ScalarValue::data_type).collect();
        let (function, types) = resolve(&function_name, &overloads, &arg_types)?;
        let values = values
            .iter()
            .zip(&types)
            .map(|(v, t)| match t.data_type() {
                Some(t) => v.cast_to(&t),
                None => plan_err!("{function_name}: anyelement needs a concrete type"),
            })
            .collect::<Result<Vec<_>>>()?;
        let output = function
            .describe(&columns, &constants(&values)?, &types)
            .map_err(external)?;
        let call = TransformCall {
            function: function.clone(),
            args: values,
            types,
            input: columns,
            partition_by,
            order_by,
            output,
            modules: self.registry.module_dir().cloned(),
        };
        let plan = WasmTransformNode::new(call, input)?.plan();
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
            plan,
            alias.clone(),
        ))))
    }
}
