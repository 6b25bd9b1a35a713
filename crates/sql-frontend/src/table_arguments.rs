//! Parameters among a table function's arguments (`SELECT * FROM
//! generate_series(1, $1)`, `SELECT * FROM my_rows($1)`), as drivers send
//! them: psycopg, JDBC and asyncpg send every statement with values this
//! way.
//!
//! DataFusion makes a table function's table when it plans the call, from
//! constant arguments; a `$n` there cannot be planned. So at Parse such a
//! statement is planned with a stand-in constant in place of each of those
//! parameters (for its result columns and the types of its other
//! parameters), and planned again at each Bind with their values written in
//! as constants. Parameters elsewhere in the statement stay parameters.
//!
//! Such a parameter's type is the client's, if it declared one; else, as
//! PostgreSQL infers it from the function, `bigint` for `generate_series`
//! and `range`, and for a Wasm table function the type all its overloads
//! take there.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Expr as DfExpr;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, ObjectNamePart, TableFactor, Value, ValueWithSpan,
    VisitMut, VisitorMut,
};
use datafusion::sql::unparser::Unparser;
use quiver_udf_registry::FunctionRegistry;

use crate::{Error, Result};

/// Where a parameter is: the table function (its name, folded) and the
/// argument (from 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Argument {
    pub function: String,
    pub position: usize,
}

impl Argument {
    /// The type PostgreSQL would infer for a parameter here.
    pub(crate) fn inferred_type(&self, registry: &FunctionRegistry) -> Option<DataType> {
        if matches!(self.function.as_str(), "generate_series" | "range") {
            return Some(DataType::Int64);
        }
        let overloads = registry.overloads(&self.function);
        // A transform's declared arguments come after its table.
        let declared = |f: &quiver_udf_registry::WasmFunction| match f.def().kind {
            quiver_udf_registry::Kind::Transform => self.position.checked_sub(1),
            _ => Some(self.position),
        };
        let mut types = overloads.iter().map(|f| {
            declared(f)
                .and_then(|at| f.def().args.get(at))
                .and_then(|t| t.data_type())
        });
        let first = types.next()??;
        types.all(|t| t.as_ref() == Some(&first)).then_some(first)
    }
}

/// Each `$n` among the arguments of `statement`'s table functions, by `n`.
pub(crate) fn parameters(statement: &DfStatement) -> BTreeMap<usize, Argument> {
    let mut found = BTreeMap::new();
    let mut statement = statement.clone();
    replace(&mut statement, &mut |n, argument| {
        found.entry(n).or_insert(argument);
        None
    });
    found
}

/// `statement` with each `$n` among its table functions' arguments
/// replaced by `value(n)`.
pub(crate) fn with_values(
    statement: &DfStatement,
    value: impl Fn(usize) -> Result<Expr>,
) -> Result<DfStatement> {
    let mut statement = statement.clone();
    let mut failed = None;
    replace(&mut statement, &mut |n, _| match value(n) {
        Ok(expr) => Some(expr),
        Err(e) => {
            failed.get_or_insert(e);
            None
        }
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(statement),
    }
}

/// A constant for a parameter's value. A value whose type the client left
/// to the server (text, of an `unknown` parameter) that reads as a number
/// is that number, as PostgreSQL resolves an untyped literal against the
/// function's integer arguments.
pub(crate) fn constant(value: ScalarValue, typed: bool) -> Result<Expr> {
    let value = match value {
        ScalarValue::Utf8(Some(text)) if !typed => {
            let number = text.trim();
            if let Ok(n) = number.parse::<i64>() {
                ScalarValue::Int64(Some(n))
            } else if let Ok(x) = number.parse::<f64>() {
                ScalarValue::Float64(Some(x))
            } else {
                ScalarValue::Utf8(Some(text))
            }
        }
        value => value,
    };
    Unparser::default()
        .expr_to_sql(&DfExpr::Literal(value, None))
        .map_err(|e| Error::Internal(format!("a parameter's value as SQL: {e}")))
}

/// Calls `each(n, argument)` for every `$n` among the arguments of
/// `statement`'s table functions, and puts what it returns (if anything) in
/// its place.
fn replace(statement: &mut DfStatement, each: &mut dyn FnMut(usize, Argument) -> Option<Expr>) {
    let DfStatement::Statement(statement) = statement else {
        return;
    };
    let _ = statement.visit(&mut TableFunctions { each });
}

struct TableFunctions<'a> {
    each: &'a mut dyn FnMut(usize, Argument) -> Option<Expr>,
}

impl VisitorMut for TableFunctions<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let (name, args) = match factor {
            TableFactor::Table {
                name,
                args: Some(args),
                ..
            } => (name, &mut args.args),
            TableFactor::Function { name, args, .. } => (name, args),
            _ => return ControlFlow::Continue(()),
        };
        let function = match name.0.last() {
            Some(ObjectNamePart::Identifier(ident)) => crate::names::folded(ident),
            _ => name.to_string(),
        };
        for (position, arg) in args.iter_mut().enumerate() {
            let (FunctionArg::Unnamed(FunctionArgExpr::Expr(expr))
            | FunctionArg::Named {
                arg: FunctionArgExpr::Expr(expr),
                ..
            }
            | FunctionArg::ExprNamed {
                arg: FunctionArgExpr::Expr(expr),
                ..
            }) = arg
            else {
                continue;
            };
            let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(expr, |expr| {
                if let Expr::Value(ValueWithSpan {
                    value: Value::Placeholder(id),
                    ..
                }) = expr
                    && let Some(n) = id.strip_prefix('$').and_then(|n| n.parse().ok())
                    && let Some(replacement) = (self.each)(
                        n,
                        Argument {
                            function: function.clone(),
                            position,
                        },
                    )
                {
                    *expr = replacement;
                }
                ControlFlow::<()>::Continue(())
            });
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{SqlParser, Statement};

    fn statement(sql: &str) -> DfStatement {
        match SqlParser::default().parse(sql).unwrap().pop().unwrap() {
            Statement::Sql(statement) => statement,
            _ => panic!("{sql} is SQL"),
        }
    }

    #[test]
    fn finds_and_fills_in_table_function_parameters_only() {
        let sql = statement("SELECT x FROM generate_series(1, $2) AS g(x) WHERE x > $1");
        let found = parameters(&sql);
        assert_eq!(found.keys().collect::<Vec<_>>(), [&2]);
        assert_eq!(found[&2].function, "generate_series");
        assert_eq!(found[&2].position, 1);
        let filled = with_values(&sql, |n| {
            constant(ScalarValue::Utf8(Some(format!("{}", n * 10))), false)
        })
        .unwrap();
        assert_eq!(
            filled.to_string(),
            "SELECT x FROM generate_series(1, 20) AS g (x) WHERE x > $1"
        );
        let typed = with_values(&sql, |_| {
            constant(ScalarValue::Utf8(Some("7".into())), true)
        })
        .unwrap();
        assert!(
            typed.to_string().contains("generate_series(1, '7')"),
            "{typed}"
        );
        assert!(parameters(&statement("SELECT $1 FROM t")).is_empty());
    }
}
